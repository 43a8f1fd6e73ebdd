"""partition-npu: hand the regions an NPU supports to its compiler; the rest stays on the CPU.

Runs on a quantized graph after `lower-qdq` and before the CPU passes (layout, fusion), when the
target has an NPU (`target.npu_backend`, see `edgecc.targets.npu`). Each op the backend supports
joins a region of supported ops it reads from, unless that would make a cycle through a CPU op
(a region must not feed a CPU op that feeds it back). Each region becomes an `npu_region` node
holding the region as its body; its compiled form goes to `graph.meta["npu_regions"]`. Why an
op stays on the CPU (the backend's reason, or the NPU compiler's refusal of its region) is a
remark; so is each region's summary.
"""

from __future__ import annotations

from edgecc.ir import Graph, Node, Value
from edgecc.ir.ops.nn import macs

from ._outline import extract_body, replace_with_body
from .base import Pass, PassContext, register_pass

__all__ = ["NPU_CPU_MACS", "NPU_CPU_OPS", "NPU_REGIONS", "PartitionNpu", "form_regions", "is_convex"]

#: graph.meta key of the compiled regions: region name -> edgecc.targets.npu.CompiledRegion
NPU_REGIONS = "npu_regions"
#: graph.meta key of the ops left on the CPU: [(node name, op, reason)]
NPU_CPU_OPS = "npu_cpu_ops"
#: graph.meta key of the multiply-accumulates of the convolutions and matrix products left on the CPU
NPU_CPU_MACS = "npu_cpu_macs"
#: ops that only move data: a region of nothing else is not worth a call of the NPU
_DATA_MOVEMENT = {"reshape", "transpose", "squeeze", "unsqueeze", "flatten", "concat", "slice"}


def _producers(node: Node) -> list[Node]:
    return [v.producer for v in node.inputs if v is not None and v.producer is not None]


def is_convex(dg, nodes: list[Node]) -> bool:
    """No path leaves the set and comes back: one call can compute it without a cycle.
    `dg` is the graph's networkx view (`Graph.to_networkx()`)."""
    import networkx as nx

    members = {n.name for n in nodes}
    after = set().union(*nx.bfs_layers(dg, members)) - members
    before = set().union(*nx.bfs_layers(dg.reverse(copy=False), members)) - members
    return not (after & before)


def form_regions(graph: Graph, supported: set[int]) -> list[list[Node]]:
    """Maximal connected regions of supported nodes (in graph order) that stay convex: a node
    joins (and merges) the regions of the supported producers it reads when that makes no cycle."""
    dg = graph.to_networkx()
    region_of: dict[int, int] = {}  # node id -> region index
    regions: dict[int, list[Node]] = {}
    for node in graph.nodes:
        if id(node) not in supported:
            continue
        mine = [node]
        for producer in _producers(node):
            index = region_of.get(id(producer))
            if index is None or any(n is producer for n in mine[1:]) or index not in regions:
                continue
            candidate = regions[index] + mine
            if is_convex(dg, candidate):
                mine = candidate
                del regions[index]
        index = id(node)
        regions[index] = sorted(mine, key=graph.nodes.index)
        for n in mine:
            region_of[id(n)] = index
    return sorted(regions.values(), key=lambda r: graph.nodes.index(r[0]))


def _is_float(value: Value) -> bool:
    return not value.type.dtype.startswith(("int", "uint"))


@register_pass
class PartitionNpu(Pass):
    """Move the regions the target's NPU supports into `npu_region` nodes compiled for it."""

    name = "partition-npu"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        backend = ctx.target.npu_backend if ctx.target is not None else None
        if backend is None:
            return False
        if not any(o.type.dtype in ("int8", "uint8") for n in graph.nodes for o in n.outputs):
            from edgecc.errors import TargetError

            raise TargetError(f"target '{ctx.target.family}': the NPU runs int8 models: compile with "
                              "--quantize int8 --calibration DATA, or give a quantized model (QDQ or QOperator)")
        cpu_ops = graph.meta[NPU_CPU_OPS] = []

        def keep_on_cpu(node: Node, reason: str) -> None:
            cpu_ops.append((node.name, node.op, reason))
            ctx.note(f"stays on the CPU: {reason}", node)

        supported: set[int] = set()
        for node in graph.nodes:
            if node.op == "npu_region":  # partitioned by an earlier run
                continue
            reason = backend.support(node)
            if reason is None:
                supported.add(id(node))
            else:
                keep_on_cpu(node, reason)
        compiled = graph.meta.setdefault(NPU_REGIONS, {})
        changed = False
        for nodes in self._regions(graph, supported, keep_on_cpu):
            if all(n.op in _DATA_MOVEMENT for n in nodes):
                for n in nodes:
                    keep_on_cpu(n, "its region only moves data (not worth an NPU call)")
                continue
            name = f"npu{len(compiled)}"
            outlined = extract_body(nodes, "npu_body", copy_constants=True)
            outer_users = {id(b): [o] for b, o in zip(outlined.body.outputs, outlined.outputs)}
            try:
                compiled[name] = backend.compile_region(outlined.body, name, outer_users)
            except backend.Rejected as exc:
                for n in nodes:
                    keep_on_cpu(n, f"its region was refused: {exc}")
                continue
            estimate = compiled[name].estimates
            ctx.note(f"{len(nodes)} op(s) on {backend.name} ({', '.join(n.op for n in nodes)}); "
                     f"estimated {estimate.get('cycles_npu', 0):.0f} cycles", name)
            replace_with_body(graph, nodes, outlined, "npu_region", {"backend": backend.name, "region": name}, name)
            changed = True
        if changed:
            graph.topological_sort()  # CPU readers of a region may have stood between its members
        graph.meta[NPU_CPU_MACS] = sum(macs(n) for n in graph.nodes)  # what is not in a region
        return changed

    @staticmethod
    def _regions(graph: Graph, supported: set[int], keep_on_cpu) -> list[list[Node]]:
        """The regions, after moving to the CPU the ops that would pass a float tensor across a
        region's edge (the float side of an op the NPU runs on int8 data, cut from its partner)."""
        while True:
            regions = form_regions(graph, supported)
            dropped = False
            for nodes in regions:
                members = {id(n) for n in nodes}
                for n in nodes:
                    crossing = [v for v in n.inputs if v is not None and v.const is None and _is_float(v)
                                and (v.producer is None or id(v.producer) not in members)]
                    crossing += [o for o in n.outputs if _is_float(o) and (o.is_graph_output or any(
                        id(u) not in members for u, _ in o.uses))]
                    if crossing:
                        supported.discard(id(n))
                        keep_on_cpu(n, f"the float tensor %{crossing[0].name} would cross its region's edge")
                        dropped = True
            if not dropped:
                return regions
