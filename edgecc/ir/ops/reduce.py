"""Reductions, arg-reductions, and scan-like ops (cumsum, cumprod, topk)."""

from __future__ import annotations

import numpy as np

from ..graph import IRError, Node
from ..types import TensorType
from ._util import in_type, norm_axes, norm_axis
from .registry import Attr, Trait, register_op


def reduce_axes(node: Node, rank: int) -> tuple[int, ...]:
    axes = node.attrs["axes"]
    return tuple(range(rank)) if not axes else norm_axes(axes, rank, node.op)


def _reduce_infer(node: Node):
    t = in_type(node, 0)
    axes = reduce_axes(node, t.rank)
    if node.attrs["keepdims"]:
        shape = [1 if i in axes else d for i, d in enumerate(t.shape)]
    else:
        shape = [d for i, d in enumerate(t.shape) if i not in axes]
    return [TensorType(t.dtype, shape)]


def _np_reduce(fn):
    def fold(node, v):
        x = v[0]
        axes = reduce_axes(node, x.ndim)
        return [fn(x, axis=axes, keepdims=bool(node.attrs["keepdims"]))]

    return fold


REDUCTIONS = {
    "reduce_sum": lambda x, **k: np.sum(x, **k),
    "reduce_mean": lambda x, **k: np.mean(x, **k),
    "reduce_max": lambda x, **k: np.max(x, **k),
    "reduce_min": lambda x, **k: np.min(x, **k),
    "reduce_prod": lambda x, **k: np.prod(x, **k),
    "reduce_l1": lambda x, **k: np.sum(np.abs(x), **k),
    "reduce_l2": lambda x, **k: np.sqrt(np.sum(np.square(x), **k)),
    "reduce_log_sum": lambda x, **k: np.log(np.sum(x, **k)),
    "reduce_log_sum_exp": lambda x, **k: np.log(np.sum(np.exp(x), **k)),
    "reduce_sum_square": lambda x, **k: np.sum(np.square(x), **k),
}
for _name, _fn in REDUCTIONS.items():
    register_op(
        _name,
        ["x"],
        _reduce_infer,
        attrs={"axes": Attr("ints", None), "keepdims": Attr("int", 1)},
        traits=[Trait.REDUCTION, Trait.LAYOUT_SENSITIVE],
        fold=_np_reduce(_fn),
        doc="reduce over `axes` (all axes when empty)",
    )


def _arg_infer(node: Node):
    t = in_type(node, 0)
    axis = norm_axis(node.attrs["axis"], t.rank, node.op)
    if node.attrs["keepdims"]:
        shape = [1 if i == axis else d for i, d in enumerate(t.shape)]
    else:
        shape = [d for i, d in enumerate(t.shape) if i != axis]
    return [TensorType("int64", shape)]


def _arg_fold(fn):
    def fold(node, v):
        x = v[0]
        axis = node.attrs["axis"] % x.ndim
        if node.attrs["select_last_index"]:
            x = np.flip(x, axis)
            idx = x.shape[axis] - 1 - fn(x, axis=axis)
        else:
            idx = fn(x, axis=axis)
        if node.attrs["keepdims"]:
            idx = np.expand_dims(idx, axis)
        return [idx]

    return fold


for _name, _fn in (("argmax", np.argmax), ("argmin", np.argmin)):
    register_op(
        _name,
        ["x"],
        _arg_infer,
        attrs={"axis": Attr("int", 0), "keepdims": Attr("int", 1), "select_last_index": Attr("int", 0)},
        traits=[Trait.REDUCTION, Trait.LAYOUT_SENSITIVE],
        fold=_arg_fold(_fn),
    )


def _cumulative_fold(scan, exclusive):
    """Folder of a cumulative op: `scan(x, axis)` is the inclusive scan, `exclusive(x, out, axis)`
    turns it into the exclusive one; `reverse` scans the flipped input and flips the result."""

    def fold(node, values):
        x = values[0]
        axis = node.attrs["axis"] % x.ndim
        if node.attrs["reverse"]:
            x = np.flip(x, axis)
        out = scan(x, axis=axis, dtype=x.dtype)
        if node.attrs["exclusive"]:
            out = exclusive(x, out, axis)
        if node.attrs["reverse"]:
            out = np.flip(out, axis)
        return [out]

    return fold


def _exclusive_sum(x, out, axis):
    return out - x


def _exclusive_product(x, out, axis):
    """The products shifted one step along `axis`, starting with 1."""
    ones = np.ones_like(np.take(out, [0], axis=axis))
    return np.concatenate([ones, np.take(out, range(x.shape[axis] - 1), axis=axis)], axis=axis)


def _cumulative_infer(node: Node):
    """cumsum and cumprod: the input's type, without quantization."""
    t = in_type(node, 0)
    norm_axis(node.attrs["axis"], t.rank, node.op)
    return [t.with_quant(None)]


register_op(
    "cumsum",
    ["x"],
    _cumulative_infer,
    attrs={"axis": Attr("int"), "exclusive": Attr("int", 0), "reverse": Attr("int", 0)},
    traits=[Trait.OPAQUE, Trait.LAYOUT_SENSITIVE],
    fold=_cumulative_fold(np.cumsum, _exclusive_sum),
)


register_op(
    "cumprod",
    ["x"],
    _cumulative_infer,
    attrs={"axis": Attr("int"), "exclusive": Attr("int", 0), "reverse": Attr("int", 0)},
    traits=(Trait.LAYOUT_SENSITIVE, Trait.OPAQUE),
    fold=_cumulative_fold(np.cumprod, _exclusive_product),
    doc="cumulative product along `axis`, as ONNX CumProd",
)


def _topk_infer(node: Node):
    t = in_type(node, 0)
    axis = norm_axis(node.attrs["axis"], t.rank, "topk")
    k = node.attrs["k"]
    if not 0 <= k <= t.shape[axis]:
        raise IRError(f"topk: k={k} is out of range for axis size {t.shape[axis]}")
    shape = list(t.shape)
    shape[axis] = k
    return [TensorType(t.dtype, shape), TensorType("int64", shape)]


register_op(
    "topk",
    ["x"],
    _topk_infer,
    attrs={"k": Attr("int"), "axis": Attr("int", -1), "largest": Attr("int", 1), "sorted": Attr("int", 1)},
    traits=[Trait.OPAQUE, Trait.LAYOUT_SENSITIVE],
    num_outputs=2,
    doc="k largest (or smallest) values along axis and their int64 indices",
)
