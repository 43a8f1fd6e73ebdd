"""IR graph -> Relax IRModule: a `main` function that calls one kernel per node or fused group.

The kernels are those of the graph's kernel plan (`edgecc.lower.plan`): each distinct kernel is
scheduled once and called from every node that computes it. Reshapes of whole tensors become
Relax reshapes (views, no copy); so do kernels that only reshape (TVM's build rewrites a call of
a PrimFunc with a reshape pattern into a view), which the statistics and the metadata therefore
count as views, not kernels. Constants become Relax constants, so the parameters are
embedded in the built library. An `edgecc_metadata` function returns a JSON description of the
inputs, the outputs and the kernels (name, kind, schedule, FLOPs per call, calls).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from edgecc.ir import Graph, Node, Value

from .kernels import call_args
from .symbolic import SymbolicDims, dim_bounds
from .plan import KernelPlan, PlannedKernel, plan_kernels
from .schedules import RULE_ATTR, ScheduledKernel, ScheduleFallback

__all__ = ["build_relax_module", "LoweringStats", "METADATA_FUNCTION"]

METADATA_FUNCTION = "edgecc_metadata"

#: schedule(kernel) -> ScheduledKernel (`edgecc.lower.schedules.Scheduler.schedule`)
ScheduleFn = Callable[[object], ScheduledKernel]
#: progress(stage, done, total)
ProgressFn = Callable[[str, int, int], None]


@dataclass
class LoweringStats:
    kernels: int = 0  # distinct PrimFuncs that run
    calls: int = 0  # call sites of those
    views: int = 0  # reshapes lowered to views (and calls of kernels that only reshape)
    scheduled_by: dict[str, int] = field(default_factory=dict)  # "tuned" / "default" / "generic" / "none" -> count
    kernel_names: list[str] = field(default_factory=list)
    #: kernels that did not get their intended schedule, and why
    fallbacks: list[ScheduleFallback] = field(default_factory=list)
    #: per kernel: {"name", "kind", "scheduled_by", "flops", "calls"} (also in the library's metadata)
    kernel_table: list[dict] = field(default_factory=list)


def _spec_shape(shape) -> list:
    """A shape for the metadata: ints, and the text of symbolic dimensions ("seq", "seq*2")."""
    return [d if isinstance(d, int) else str(d) for d in shape]


def graph_metadata(graph: Graph, extra: dict | None = None) -> dict:
    """The library's description of its inputs and outputs; with symbolic dimensions, also
    "dims": {variable: [lowest, highest or null]} for the variables the inputs define."""
    names_in = graph.meta.get("input_names") or [v.name for v in graph.inputs]
    names_out = graph.meta.get("output_names") or [v.name for v in graph.outputs]
    metadata = {
        "format": "edgecc-1",
        "inputs": [
            {"name": n, "shape": _spec_shape(v.type.shape), "dtype": v.type.dtype}
            for n, v in zip(names_in, graph.inputs)
        ],
        "outputs": [
            {"name": n, "shape": _spec_shape(v.type.shape), "dtype": v.type.dtype}
            for n, v in zip(names_out, graph.outputs)
        ],
    }
    input_vars = sorted(set().union(*(v.type.dim_vars for v in graph.inputs)))
    if input_vars:
        metadata["dims"] = {var: list(dim_bounds(graph, var)) for var in input_vars}
    return {**metadata, **(extra or {})}


class _ModuleBuilder:
    def __init__(self, graph: Graph, plan: KernelPlan, schedule: ScheduleFn | None,
                 progress: ProgressFn | None = None):
        from tvm import relax

        self.graph = graph
        self.plan = plan
        self.schedule = schedule
        self.bb = relax.BlockBuilder()
        self.env: dict[int, object] = {}
        self.functions: dict[str, object] = {}  # kernel key -> GlobalVar
        self.stats = LoweringStats()
        self.view_kernels: set[str] = set()  # keys of kernels that only reshape
        self.view_ids = {id(n) for n in plan.views}  # reshape nodes lowered to Relax views
        self.progress = progress
        self.dims = SymbolicDims(graph)

    def tensor_type(self, v: Value):
        from tvm import relax

        return relax.TensorType(self.dims.shape(v.type.shape), v.type.dtype)

    def relax_value(self, v: Value):
        from tvm import relax

        got = self.env.get(id(v))
        if got is None:
            if v.const is None:
                raise KeyError(f"%{v.name} has no Relax value")
            got = relax.const(v.const, v.type.dtype)
            self.env[id(v)] = got
        return got

    def add_kernel(self, planned: PlannedKernel) -> None:
        from tvm.relax.analysis import has_reshape_pattern

        kernel = planned.kernel
        scheduled = self.schedule(kernel) if self.schedule is not None else ScheduledKernel(kernel.func, "none")
        self.functions[planned.key] = self.bb.add_func(scheduled.func.with_attr("global_symbol", kernel.name),
                                                       kernel.name)
        stats = self.stats
        if has_reshape_pattern(scheduled.func):  # the build makes its calls views: it never runs
            self.view_kernels.add(planned.key)
            return
        stats.scheduled_by[scheduled.how] = stats.scheduled_by.get(scheduled.how, 0) + 1
        if scheduled.fallback is not None:
            stats.fallbacks.append(scheduled.fallback)
        stats.kernels += 1
        stats.kernel_names.append(kernel.name)
        flops = kernel.flops  # a formula ("256*batch*seq") for a kernel with symbolic extents
        entry = {"name": kernel.name, "kind": kernel.kind, "scheduled_by": scheduled.how,
                 "flops": flops if isinstance(flops, float) else str(flops), "calls": planned.calls}
        rule = scheduled.func.attrs.get(RULE_ATTR) if scheduled.func.attrs is not None else None
        if rule is not None:  # the rule that scheduled it, where the rule names itself (GPU rules)
            entry["rule"] = str(rule)
        stats.kernel_table.append(entry)

    def emit_node(self, node: Node) -> None:
        from tvm import relax

        if id(node) in self.view_ids:
            out = self.bb.emit(relax.op.reshape(self.relax_value(node.inputs[0]),
                                                self.dims.shape(node.output.type.shape)))
            self.env[id(node.output)] = out
            self.stats.views += 1
            return
        if node.op == "npu_region":
            from .npu import emit_npu_region

            region = self.graph.meta["npu_regions"][node.attrs["region"]]
            outs = emit_npu_region(self.bb, node, [self.relax_value(v) for v in node.inputs], region)
            self.env.update((id(v), out) for v, out in zip(node.outputs, outs))
            return
        self.dims.bind_fresh(self.bb, node, self.relax_value)  # sizes known only from run-time values
        planned = self.plan.kernel_of(node)
        key = planned.key
        args = [self.relax_value(v) for v in call_args(node)]
        args += [relax.prim_value(self.dims.vars[var]) for var in planned.kernel.tir_vars]
        out_types = [self.tensor_type(v) for v in node.outputs]
        result = self.bb.emit(relax.call_tir(self.functions[key], args,
                                             out_types if len(out_types) > 1 else out_types[0]))
        if key in self.view_kernels:
            self.stats.views += 1
        else:
            self.stats.calls += 1
        if len(node.outputs) == 1:
            self.env[id(node.output)] = result
        else:
            for i, v in enumerate(node.outputs):
                self.env[id(v)] = self.bb.emit(relax.TupleGetItem(result, i))

    def build(self, metadata: dict):
        from tvm import ir, relax

        # kernels first: a failure must not leave a half-built Relax function behind
        for i, planned in enumerate(self.plan):
            self.add_kernel(planned)
            if self.progress:
                self.progress("lower", i + 1, len(self.plan))
        params = []
        for v in self.graph.inputs:
            var = relax.Var(v.name, self.tensor_type(v))
            self.env[id(v)] = var
            params.append(var)
        with self.bb.function("main", params, attrs=self.dims.function_attrs() or None):
            with self.bb.dataflow():
                for node in self.graph.nodes:
                    self.emit_node(node)
                outs = [self.relax_value(v) for v in self.graph.outputs]
                result = outs[0] if len(outs) == 1 else relax.Tuple(outs)
                out = self.bb.emit_output(result)
            self.bb.emit_func_output(out)
        metadata = {**metadata, "kernels": self.stats.kernel_table}
        from .npu import npu_metadata

        npu = npu_metadata(self.graph)  # the NPU regions' models and estimates, when there are any
        if npu is not None:
            metadata["npu"] = npu
        with self.bb.function(METADATA_FUNCTION, []):
            self.bb.emit_func_output(ir.StringImm(json.dumps(metadata, sort_keys=True)))
        return self.bb.get()


def build_relax_module(graph: Graph, schedule: ScheduleFn | None = None, metadata: dict | None = None,
                       progress: ProgressFn | None = None, plan: KernelPlan | None = None):
    """Returns (IRModule, LoweringStats). `plan` defaults to `plan_kernels(graph)`."""
    builder = _ModuleBuilder(graph, plan if plan is not None else plan_kernels(graph), schedule, progress)
    mod = builder.build(graph_metadata(graph, metadata))
    return mod, builder.stats
