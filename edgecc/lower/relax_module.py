"""IR graph -> Relax IRModule: a `main` function that calls one kernel per node or fused group.

Reshapes of whole tensors become Relax reshapes (views, no copy); everything else is a
`call_tir` of a kernel from `edgecc.lower.kernels`. Constants become Relax constants, so the
parameters are embedded in the built library. An `edgecc_metadata` function returns a JSON
description of the inputs and outputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from edgecc.ir import Graph, Node, Value

from .kernels import Kernel, build_kernel, kernel_key

__all__ = ["build_relax_module", "LoweringStats", "METADATA_FUNCTION"]

METADATA_FUNCTION = "edgecc_metadata"

ScheduleFn = Callable[[Kernel], object]


@dataclass
class LoweringStats:
    kernels: int = 0  # distinct PrimFuncs
    calls: int = 0  # call sites
    views: int = 0  # reshapes lowered to views
    scheduled_by: dict[str, int] = field(default_factory=dict)  # "tuned" / "default" / "none" -> count
    kernel_names: list[str] = field(default_factory=list)


def _tensor_type(v: Value):
    from tvm import relax

    return relax.TensorType(v.type.shape, v.type.dtype)


def graph_metadata(graph: Graph, extra: dict | None = None) -> dict:
    names_in = graph.meta.get("input_names") or [v.name for v in graph.inputs]
    names_out = graph.meta.get("output_names") or [v.name for v in graph.outputs]
    return {
        "format": "edgecc-1",
        "inputs": [
            {"name": n, "shape": list(v.type.shape), "dtype": v.type.dtype}
            for n, v in zip(names_in, graph.inputs)
        ],
        "outputs": [
            {"name": n, "shape": list(v.type.shape), "dtype": v.type.dtype}
            for n, v in zip(names_out, graph.outputs)
        ],
        **(extra or {}),
    }


class _ModuleBuilder:
    def __init__(self, graph: Graph, schedule: ScheduleFn | None, progress=None):
        from tvm import relax

        self.graph = graph
        self.schedule = schedule
        self.bb = relax.BlockBuilder()
        self.env: dict[int, object] = {}
        self.kernels: dict[str, object] = {}  # key -> GlobalVar
        self.stats = LoweringStats()
        self.progress = progress

    def relax_value(self, v: Value):
        from tvm import relax

        got = self.env.get(id(v))
        if got is None:
            if v.const is None:
                raise KeyError(f"%{v.name} has no Relax value")
            got = relax.const(v.const, v.type.dtype)
            self.env[id(v)] = got
        return got

    def emit_node(self, node: Node) -> None:
        from tvm import relax

        if _is_view(node):
            out = self.bb.emit(relax.op.reshape(self.relax_value(node.inputs[0]), node.output.type.shape))
            self.env[id(node.output)] = out
            self.stats.views += 1
            return
        gv, kernel = self.calls[id(node)]
        args = [self.relax_value(v) for v in kernel.args]
        out_types = [_tensor_type(v) for v in node.outputs]
        call = relax.call_tir(gv, args, out_types if len(out_types) > 1 else out_types[0])
        result = self.bb.emit(call)
        self.stats.calls += 1
        if len(node.outputs) == 1:
            self.env[id(node.output)] = result
        else:
            for i, v in enumerate(node.outputs):
                self.env[id(v)] = self.bb.emit(relax.TupleGetItem(result, i))

    def kernel_for(self, node: Node):
        key = kernel_key(node)
        name = _kernel_name(node, len(self.kernels))
        kernel = build_kernel(node, name)
        if key in self.kernels:
            gv, _ = self.kernels[key]
            return gv, kernel
        func, how = kernel.func, "none"
        if self.schedule is not None:
            func, how = self.schedule(kernel)
        self.stats.scheduled_by[how] = self.stats.scheduled_by.get(how, 0) + 1
        gv = self.bb.add_func(func.with_attr("global_symbol", name), name)
        self.kernels[key] = (gv, kernel)
        self.stats.kernels += 1
        self.stats.kernel_names.append(name)
        if self.progress:
            self.progress(len(self.kernels), name)
        return gv, kernel

    def build(self, metadata: dict):
        from tvm import ir, relax

        # kernels first: a failure must not leave a half-built Relax function behind
        self.calls = {id(n): self.kernel_for(n) for n in self.graph.nodes if not _is_view(n)}
        params = []
        for v in self.graph.inputs:
            var = relax.Var(v.name, _tensor_type(v))
            self.env[id(v)] = var
            params.append(var)
        with self.bb.function("main", params):
            with self.bb.dataflow():
                for node in self.graph.nodes:
                    self.emit_node(node)
                outs = [self.relax_value(v) for v in self.graph.outputs]
                result = outs[0] if len(outs) == 1 else relax.Tuple(outs)
                out = self.bb.emit_output(result)
            self.bb.emit_func_output(out)
        with self.bb.function(METADATA_FUNCTION, []):
            self.bb.emit_func_output(ir.StringImm(json.dumps(metadata, sort_keys=True)))
        return self.bb.get()


def _is_view(node: Node) -> bool:
    """A reshape of a computed tensor: lowered to a Relax reshape (a view), not a kernel."""
    return node.op == "reshape" and node.inputs[0].const is None and 0 not in node.output.type.shape


def _kernel_name(node: Node, index: int) -> str:
    base = node.attrs.get("kind") if node.op == "fused" else node.op
    return f"k{index}_{base}"


def build_relax_module(graph: Graph, schedule: ScheduleFn | None = None, metadata: dict | None = None,
                       progress=None):
    """Returns (IRModule, LoweringStats)."""
    builder = _ModuleBuilder(graph, schedule, progress)
    mod = builder.build(graph_metadata(graph, metadata))
    return mod, builder.stats
