"""Symbolic dimensions in the Relax module: size variables, their bounds, and sizes known only at run time.

Every size variable of the graph (`edgecc.ir.dims.Dim`) becomes one int64 `tirx.Var` of the
`main` function. The graph inputs' shapes define them (each must appear by itself as some
input's dimension: the VM reads it from the tensor passed in); `graph.meta["dim_bounds"]`
({var: (lo, hi or None)}) becomes the function attributes `tir_var_lower_bound`,
`tir_var_upper_bound` (memory planning allocates for the largest size once, instead of at
every call) and `tir_non_negative_var`.

Data-dependent shapes. A node whose output type mentions a size variable that no earlier value
defines (a fresh variable: NonZero's count, a Reshape to a shape read from a tensor) binds it at
run time through its op's *shape function*, registered next to its lowering:

    from edgecc.lower.te_ops import shape_function

    @shape_function("nonzero")
    def _nonzero_shape(node, ins):
        # ins: TE tensors of the node's inputs (None for absent optional inputs), with symbolic
        # extents as in a lowering; returns one int64 tensor of shape (rank,) per output,
        # holding that output's dimensions at run time
        ...

The lowering builds the shape function into a small kernel, calls it, turns each result into a
Relax shape (`relax.op.tensor_to_shape`) and `match_cast`s it to the output's type, which binds
the fresh variables; then the node's own kernel runs with its outputs sized by them. A fresh
variable must appear by itself as a dimension of the output that introduces it (`f32[2,nnz]`,
not `f32[2*nnz]`), and the node must not be inside a fused group. Shape functions run on the
host CPU (the shape tensor is read there).
"""

from __future__ import annotations

from collections.abc import Callable

from edgecc.errors import LoweringError
from edgecc.ir import Dim, Graph, Node, Value

from .kernels import build_shape_kernel
from .te_ops.shapes import bare_vars

__all__ = ["SymbolicDims", "dim_bounds"]


def dim_bounds(graph: Graph, var: str) -> tuple[int, int | None]:
    """(lowest, highest or None) of a size variable, from graph.meta["dim_bounds"] (default 1, none)."""
    lo, hi = (graph.meta.get("dim_bounds") or {}).get(var, (1, None))
    return max(1, int(lo if lo is not None else 1)), (None if hi is None else int(hi))


class SymbolicDims:
    """The size variables of one graph's Relax function."""

    def __init__(self, graph: Graph):
        from tvm import tirx

        self.graph = graph
        names: set[str] = set()
        for v in graph.inputs:
            names |= v.type.dim_vars
        for node in graph.nodes:
            for v in node.outputs:
                names |= v.type.dim_vars
        self.vars = {name: tirx.Var(name, "int64") for name in sorted(names)}
        self.input_vars = set().union(*(v.type.dim_vars for v in graph.inputs)) if graph.inputs else set()
        self.bound = set().union(*(bare_vars(v.type.shape) for v in graph.inputs)) if graph.inputs else set()
        self._check_inputs_define_their_vars()
        self._shape_kernels = 0

    def _check_inputs_define_their_vars(self) -> None:
        for v in self.graph.inputs:
            for axis, d in enumerate(v.type.shape):
                missing = sorted(d.vars - self.bound) if isinstance(d, Dim) else []
                if missing:
                    raise LoweringError(f"input '{v.name}' dimension {axis} ({d}): size variable {missing[0]} "
                                        f"is not by itself a dimension of any input, so a run cannot know it")

    def shape(self, shape) -> list:
        """An IR shape in the function's variables (ints stay ints)."""
        import tvm
        from tvm import tirx

        from edgecc.ir.dims import evaluate_dim

        out = []
        for d in shape:
            if isinstance(d, Dim):
                out.append(tvm.sym.Analyzer().simplify(evaluate_dim(d, self.vars, floordiv=tirx.floordiv)))
            else:
                out.append(int(d))
        return out

    def function_attrs(self) -> dict:
        """`main`'s attributes for memory planning: each input variable's bounds (none when static)."""
        if not self.input_vars:
            return {}
        bounds = {var: dim_bounds(self.graph, var) for var in sorted(self.input_vars)}
        attrs = {"tir_var_lower_bound": {var: lo for var, (lo, _) in bounds.items()},
                 "tir_non_negative_var": sorted(self.vars)}
        upper = {var: hi for var, (_, hi) in bounds.items() if hi is not None}
        if upper:
            attrs["tir_var_upper_bound"] = upper
        return attrs

    def fresh_vars(self, node: Node) -> set[str]:
        """Variables of `node`'s outputs that nothing before it defines."""
        out: set[str] = set()
        for v in node.outputs:
            out |= v.type.dim_vars
        return out - self.bound

    def bind_fresh(self, bb, node: Node, relax_value: Callable[[Value], object]) -> None:
        """Emit `node`'s shape function and bind its fresh variables (see the module docstring)."""
        fresh = self.fresh_vars(node)
        if not fresh:
            return
        from tvm import relax

        where = f"node {node.name} ({node.op})"
        if node.op == "fused":
            raise LoweringError(f"{where}: a fused group cannot introduce the run-time size "
                                f"{', '.join(sorted(fresh))}; keep the op that computes it out of fusion")
        introduced = set().union(*(bare_vars(v.type.shape) for v in node.outputs))
        if fresh - introduced:
            raise LoweringError(f"{where}: run-time size {sorted(fresh - introduced)[0]} must be by itself a "
                                f"dimension of one of its outputs")
        self._shape_kernels += 1
        name = f"s{self._shape_kernels}_{node.op}_shape"
        func, args = build_shape_kernel(node, name)
        gv = bb.add_func(func, name)
        shape_types = [relax.TensorType([len(v.type.shape)], "int64") for v in node.outputs]
        call = bb.emit(relax.call_tir(gv, [relax_value(a) for a in args],
                                      shape_types if len(shape_types) > 1 else shape_types[0]))
        for i, v in enumerate(node.outputs):
            if not (v.type.dim_vars & fresh):
                continue
            shape_tensor = call if len(node.outputs) == 1 else bb.emit(relax.TupleGetItem(call, i))
            shape = bb.emit(relax.op.tensor_to_shape(shape_tensor))
            bb.match_cast(shape, relax.ShapeType(self.shape(v.type.shape)))
        self.bound |= fresh
