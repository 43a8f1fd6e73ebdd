"""Helpers shared by op declarations: broadcasting, axes, inference shorthands."""

from __future__ import annotations

from collections.abc import Sequence

from ..dims import Dim, format_shape
from ..graph import IRError, Node
from ..types import TensorType


def in_type(node: Node, idx: int) -> TensorType:
    value = node.input(idx)
    if value is None:
        raise IRError(f"{node.op}: input {idx} is missing")
    return value.type


def broadcast_shapes(*shapes: Sequence, op: str = "broadcast") -> tuple:
    """Numpy broadcasting of shapes; IRError when they are incompatible.

    A symbolic dimension broadcasts against 1 and against an equal formula; against another
    size it would broadcast only if the run time made it 1 or equal, which edgecc does not
    assume: that is an IRError naming both sizes.
    """
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for axis in range(rank):
        dims = {s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0}
        dims.discard(1)
        if len(dims) > 1:
            text = " and ".join(format_shape(s) for s in shapes)
            if any(isinstance(d, Dim) for d in dims):
                sizes = " and ".join(sorted(str(d) for d in dims))
                raise IRError(f"{op}: shapes {text} broadcast only if {sizes} are equal or 1 at run time, "
                              f"which is not known at compile time (--input-shape can give sizes one name, "
                              f"or fix them)")
            raise IRError(f"{op}: shapes {text} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def norm_axis(axis: int, rank: int, op: str = "op") -> int:
    if not -rank <= axis < max(rank, 1):
        raise IRError(f"{op}: axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def norm_axes(axes: Sequence[int], rank: int, op: str = "op") -> tuple[int, ...]:
    out = tuple(norm_axis(a, rank, op) for a in axes)
    if len(set(out)) != len(out):
        raise IRError(f"{op}: repeated axis in {tuple(axes)}")
    return out


def same_as_input(idx: int = 0):
    """Inference: one output with the type of input `idx` (layout kept, quantization dropped)."""

    def infer(node: Node):
        return [in_type(node, idx).with_quant(None)]

    return infer


def broadcast_infer(out_dtype: str | None = None):
    """Inference: numpy broadcast of all inputs; dtype of input 0 unless `out_dtype` is given."""

    def infer(node: Node):
        types = [v.type for v in node.inputs if v is not None]
        shape = broadcast_shapes(*(t.shape for t in types), op=node.op)
        first = types[0]
        if out_dtype is None:
            for t in types[1:]:
                if t.dtype != first.dtype:
                    raise IRError(f"{node.op}: input dtypes differ ({first.dtype} and {t.dtype})")
        layouts = {t.layout for t in types if t.rank == len(shape)}
        layout = layouts.pop() if len(layouts) == 1 else None
        return [TensorType(out_dtype or first.dtype, shape, layout)]

    return infer


def body_infer(node: Node):
    """Inference of an op with a body subgraph (`fused`, `npu_region`): the body's inputs bind, in
    order, to the node's inputs; its outputs are the node's outputs."""
    body = node.subgraph
    if body is None:
        raise IRError(f"{node.op}: node has no body")
    if len(body.inputs) != len(node.inputs):
        raise IRError(f"{node.op}: body takes {len(body.inputs)} inputs, node passes {len(node.inputs)}")
    for outer, inner in zip(node.inputs, body.inputs):
        if outer is None or outer.type.shape != inner.type.shape or outer.type.dtype != inner.type.dtype:
            raise IRError(f"{node.op}: input {outer} does not match body input {inner}")
    return [v.type for v in body.outputs]


def require_float(node: Node, idx: int = 0) -> None:
    dtype = in_type(node, idx).dtype
    if not dtype.startswith(("float", "bfloat")):
        raise IRError(f"{node.op}: needs a floating-point input, got {dtype}")
