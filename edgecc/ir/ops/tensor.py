"""Data-movement ops: reshape, transpose, concat, split, slice, gather, pad, tile, expand,
resize, and the shape ops, whose results edgecc always knows at compile time (as numbers, or as
formulas of symbolic sizes)."""

from __future__ import annotations

import math

import numpy as np

from ..dims import Dim, UndecidableDim, format_shape, symbolic_array
from ..graph import IRError, Node
from ..types import TensorType
from ._util import broadcast_shapes, in_type, norm_axes, norm_axis
from .attr_checks import at_least, one_of
from .registry import Attr, Trait, register_op

INJECTIVE = (Trait.INJECTIVE, Trait.LAYOUT_SENSITIVE)


def resolve_reshape(in_shape, target, allowzero: int = 0) -> tuple:
    """ONNX Reshape's output shape from the input shape and a target with 0 (copy the input's
    dimension, unless `allowzero`) and -1 (whatever is left) entries. Both may hold Dims; -1 is
    the input's size divided by the product of the other entries, exact in the normal form of
    `Dim` when the formula divides. IRError when the target does not fit."""
    out = []
    for i, d in enumerate(target):
        if not isinstance(d, Dim) and d == 0 and not allowzero:
            if i >= len(in_shape):
                raise IRError(f"reshape: 0 at axis {i} copies a dimension the input {format_shape(in_shape)} "
                              f"does not have")
            out.append(in_shape[i])
        else:
            out.append(d if isinstance(d, Dim) else int(d))
    free = [i for i, d in enumerate(out) if not isinstance(d, Dim) and d == -1]
    if len(free) > 1:
        raise IRError(f"reshape: shape {format_shape(target)} has more than one -1")
    if free:
        known = math.prod(d for i, d in enumerate(out) if i != free[0])
        total = math.prod(in_shape)
        try:
            rest = total // known if known != 0 else None
            fits = rest is not None and rest * known == total
        except UndecidableDim:
            fits = False
        if not fits:
            raise IRError(f"reshape: cannot reshape {format_shape(in_shape)} to {format_shape(target)}")
        out[free[0]] = rest
    return tuple(out)


def _reshape_infer(node: Node):
    t = in_type(node, 0)
    shape = node.attrs["shape"]
    if any(d < 0 for d in shape) or math.prod(shape) != t.size:
        raise IRError(f"reshape: cannot reshape {format_shape(t.shape)} to {format_shape(shape)}")
    return [TensorType(t.dtype, shape, None, t.quant if not t.quant or not t.quant.per_channel else None)]


register_op(
    "reshape",
    ["x"],
    _reshape_infer,
    attrs={"shape": Attr("dims", check=at_least(0))},
    traits=INJECTIVE,
    fold=lambda node, v: [v[0].reshape(node.attrs["shape"])],
    doc="reshape to a fully resolved static shape (no -1 or 0 entries)",
)


def _transpose_infer(node: Node):
    t = in_type(node, 0)
    perm = node.attrs["perm"]
    if sorted(perm) != list(range(t.rank)):
        raise IRError(f"transpose: perm {perm} is not a permutation of rank {t.rank}")
    return [TensorType(t.dtype, tuple(t.shape[p] for p in perm), None, t.quant if not (t.quant and t.quant.per_channel) else None)]


register_op(
    "transpose",
    ["x"],
    _transpose_infer,
    attrs={"perm": Attr("ints")},
    traits=INJECTIVE,
    fold=lambda node, v: [np.transpose(v[0], node.attrs["perm"])],
)


def _concat_infer(node: Node):
    types = [v.type for v in node.inputs]
    first = types[0]
    axis = norm_axis(node.attrs["axis"], first.rank, "concat")
    for t in types[1:]:
        if t.rank != first.rank or t.dtype != first.dtype or any(
            a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != axis
        ):
            raise IRError(f"concat: {t} does not fit {first} along axis {axis}")
    shape = list(first.shape)
    shape[axis] = sum(t.shape[axis] for t in types)
    layouts = {t.layout for t in types}
    return [TensorType(first.dtype, shape, layouts.pop() if len(layouts) == 1 else None)]


register_op(
    "concat",
    ["inputs*"],
    _concat_infer,
    attrs={"axis": Attr("int")},
    traits=INJECTIVE,
    fold=lambda node, v: [np.concatenate(v, axis=node.attrs["axis"])],
)


def _split_infer(node: Node):
    t = in_type(node, 0)
    axis = norm_axis(node.attrs["axis"], t.rank, "split")
    sizes = node.attrs["sizes"]
    if sum(sizes) != t.shape[axis] or min(sizes, default=0) < 0:
        raise IRError(f"split: sizes {format_shape(sizes)} do not add up to {t.shape[axis]}")
    out = []
    for s in sizes:
        shape = list(t.shape)
        shape[axis] = s
        out.append(TensorType(t.dtype, shape, t.layout))
    return out


def _split_fold(node, v):
    idx = np.cumsum(node.attrs["sizes"])[:-1]
    return np.split(v[0], idx, axis=node.attrs["axis"])


register_op(
    "split",
    ["x"],
    _split_infer,
    attrs={"axis": Attr("int", 0), "sizes": Attr("dims")},
    traits=INJECTIVE,
    fold=_split_fold,
    num_outputs=None,
)


def slice_ranges(shape, starts, ends, axes, steps) -> list:
    """Per-axis index ranges of an ONNX-style slice (clamped as numpy does): a `range` for a
    static dimension, a `SymbolicRange` for a symbolic one."""
    rank = len(shape)
    axes = norm_axes(axes if axes else range(len(starts)), rank, "slice")
    steps = steps or (1,) * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise IRError("slice: starts, ends, axes and steps differ in length")
    ranges = [range(d) if not isinstance(d, Dim) else SymbolicRange(0, d, 1) for d in shape]
    for s, e, a, st in zip(starts, ends, axes, steps):
        if st == 0:
            raise IRError("slice: step 0")
        if isinstance(shape[a], Dim):
            ranges[a] = symbolic_slice(shape[a], s, e, st)
        else:
            ranges[a] = range(*slice(s, e, st).indices(shape[a]))
    return ranges


#: a start or end at least this far from 0 means "from the first" or "to the last" element
_OPEN_END = (1 << 31) - 1


class SymbolicRange:
    """start, length and step of a slice along a symbolic dimension (start may be a Dim)."""

    __slots__ = ("start", "length", "step")

    def __init__(self, start, length, step):
        self.start, self.length, self.step = start, length, step

    def __len__(self):
        raise UndecidableDim(f"slice length {self.length} is not known at compile time")


def symbolic_slice(dim: Dim, start: int, end: int, step: int) -> SymbolicRange:
    """The slice [start:end:step] of an axis of symbolic size `dim`, or UndecidableDim when where
    it starts or ends depends on the run-time size (`seq[0:3]`: 3 elements, or fewer)."""
    def index(i: int, forward: bool):
        if i >= _OPEN_END:
            return dim if forward else dim - 1
        if i <= -_OPEN_END:
            return 0 if forward else -1
        if i < 0:
            at = dim + i
            if not at >= (0 if forward else -1):
                raise UndecidableDim(f"slice index {i} of a dimension of size {dim}")
            return at
        if forward and i == 0:
            return 0
        if not i <= dim:  # an int past a symbolic size clamps, which only the run time decides
            raise UndecidableDim(f"slice index {i} of a dimension of size {dim}")
        return i

    try:
        if step > 0:
            lo, hi = index(start, True), index(end, True)
            length = (hi - lo + step - 1) // step if hi - lo >= 0 else 0
        else:
            lo, hi = index(start, False), index(end, False)
            length = (lo - hi - step - 1) // -step if lo - hi >= 0 else 0
    except UndecidableDim:
        raise UndecidableDim(f"slice [{start}:{end}:{step}] of a dimension of size {dim} has a length that is "
                             f"not known at compile time") from None
    return SymbolicRange(lo, length, step)


def _slice_infer(node: Node):
    t = in_type(node, 0)
    a = node.attrs
    ranges = slice_ranges(t.shape, a["starts"], a["ends"], a["axes"], a["steps"])
    return [TensorType(t.dtype, [r.length if isinstance(r, SymbolicRange) else len(r) for r in ranges], t.layout)]


def _slice_fold(node, v):
    a = node.attrs
    ranges = slice_ranges(v[0].shape, a["starts"], a["ends"], a["axes"], a["steps"])
    return [v[0][tuple(slice(r.start, r.stop if r.stop >= 0 else None, r.step) for r in ranges)]]


register_op(
    "slice",
    ["x"],
    _slice_infer,
    attrs={"starts": Attr("ints"), "ends": Attr("ints"), "axes": Attr("ints", None),
           "steps": Attr("ints", None)},
    traits=INJECTIVE,
    fold=_slice_fold,
    doc="x[starts:ends:steps] along axes, with numpy clamping",
)


def _gather_infer(node: Node):
    t, idx = in_type(node, 0), in_type(node, 1)
    axis = norm_axis(node.attrs["axis"], t.rank, "gather")
    if idx.dtype not in ("int32", "int64"):
        raise IRError(f"gather: indices must be int32 or int64, got {idx.dtype}")
    return [TensorType(t.dtype, t.shape[:axis] + idx.shape + t.shape[axis + 1 :])]


def _gather_fold(node, v):
    data, idx = v
    axis = node.attrs["axis"] % data.ndim
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    return [np.take(data, idx, axis=axis)]


register_op("gather", ["data", "indices"], _gather_infer, attrs={"axis": Attr("int", 0)},
            traits=INJECTIVE, fold=_gather_fold)


def _gather_elements_infer(node: Node):
    t, idx = in_type(node, 0), in_type(node, 1)
    norm_axis(node.attrs["axis"], t.rank, "gather_elements")
    if idx.rank != t.rank:
        raise IRError("gather_elements: indices rank must equal data rank")
    return [TensorType(t.dtype, idx.shape)]


def _gather_elements_fold(node, v):
    data, idx = v
    axis = node.attrs["axis"] % data.ndim
    idx = np.where(idx < 0, idx + data.shape[axis], idx)
    return [np.take_along_axis(data, idx, axis=axis)]


register_op("gather_elements", ["data", "indices"], _gather_elements_infer,
            attrs={"axis": Attr("int", 0)}, traits=INJECTIVE, fold=_gather_elements_fold)


def _gather_nd_infer(node: Node):
    t, idx = in_type(node, 0), in_type(node, 1)
    b = node.attrs["batch_dims"]
    k = idx.shape[-1]
    if b + k > t.rank:
        raise IRError(f"gather_nd: index depth {k} with {b} batch dims exceeds rank {t.rank}")
    return [TensorType(t.dtype, idx.shape[:-1] + t.shape[b + k :])]


register_op("gather_nd", ["data", "indices"], _gather_nd_infer,
            attrs={"batch_dims": Attr("int", 0, check=at_least(0))}, traits=INJECTIVE)


def _scatter_infer(node: Node):
    return [in_type(node, 0).with_quant(None)]


register_op("scatter_elements", ["data", "indices", "updates"], _scatter_infer,
            attrs={"axis": Attr("int", 0), "reduction": Attr("str", "none")}, traits=[Trait.OPAQUE])
register_op("scatter_nd", ["data", "indices", "updates"], _scatter_infer,
            attrs={"reduction": Attr("str", "none")}, traits=[Trait.OPAQUE])


def _expand_infer(node: Node):
    t = in_type(node, 0)
    return [TensorType(t.dtype, broadcast_shapes(t.shape, node.attrs["shape"], op="expand"))]


register_op(
    "expand",
    ["x"],
    _expand_infer,
    attrs={"shape": Attr("dims")},
    traits=INJECTIVE,
    fold=lambda node, v: [np.broadcast_to(v[0], broadcast_shapes(v[0].shape, node.attrs["shape"])).copy()],
    doc="numpy broadcast of x against `shape`",
)


def _tile_infer(node: Node):
    t = in_type(node, 0)
    reps = node.attrs["repeats"]
    if len(reps) != t.rank or min(reps, default=1) < 0:
        raise IRError(f"tile: repeats {reps} do not fit rank {t.rank}")
    return [TensorType(t.dtype, [d * r for d, r in zip(t.shape, reps)])]


register_op("tile", ["x"], _tile_infer, attrs={"repeats": Attr("ints", check=at_least(0))}, traits=INJECTIVE,
            fold=lambda node, v: [np.tile(v[0], node.attrs["repeats"])])


def _pad_infer(node: Node):
    t = in_type(node, 0)
    pads = node.attrs["pads"]
    if len(pads) != 2 * t.rank:
        raise IRError(f"pad: {len(pads)} pads for rank {t.rank}")
    if node.attrs["mode"] not in ("constant", "reflect", "edge", "wrap"):
        raise IRError(f"pad: unknown mode {node.attrs['mode']}")
    shape = [d + pads[i] + pads[i + t.rank] for i, d in enumerate(t.shape)]
    if any(d < 0 for d in shape):
        raise IRError(f"pad: pads {pads} remove more than {t.shape}")
    return [TensorType(t.dtype, shape, t.layout)]


def _pad_fold(node, v):
    x = v[0]
    pads = node.attrs["pads"]
    r = x.ndim
    crop = tuple(slice(max(-pads[i], 0), x.shape[i] - max(-pads[i + r], 0)) for i in range(r))
    x = x[crop]
    width = [(max(pads[i], 0), max(pads[i + r], 0)) for i in range(r)]
    mode = node.attrs["mode"]
    if mode == "constant":
        return [np.pad(x, width, mode="constant", constant_values=node.attrs["value"])]
    return [np.pad(x, width, mode={"edge": "edge", "reflect": "reflect", "wrap": "wrap"}[mode])]


register_op(
    "pad",
    ["x"],
    _pad_infer,
    attrs={"pads": Attr("ints"), "mode": Attr("str", "constant", check=one_of("constant", "reflect", "edge", "wrap")),
           "value": Attr("float", 0.0)},
    traits=INJECTIVE,
    fold=_pad_fold,
    doc="pads are (begin..., end...) per axis; negative pads crop",
)


def _resize_infer(node: Node):
    t = in_type(node, 0)
    sizes = node.attrs["sizes"]
    if len(sizes) != t.rank:
        raise IRError(f"resize: output sizes {sizes} do not fit rank {t.rank}")
    if node.attrs["mode"] not in ("nearest", "linear", "cubic"):
        raise IRError(f"resize: unknown mode {node.attrs['mode']}")
    return [TensorType(t.dtype, sizes, t.layout)]


register_op(
    "resize",
    ["x"],
    _resize_infer,
    attrs={
        "sizes": Attr("ints"),
        "scales": Attr("floats", None),
        "mode": Attr("str", "nearest", check=one_of("nearest", "linear", "cubic")),
        "coordinate_transformation_mode": Attr("str", "half_pixel"),
        "nearest_mode": Attr("str", "round_prefer_floor"),
        "cubic_coeff_a": Attr("float", -0.75),
        "exclude_outside": Attr("int", 0),
        "extrapolation_value": Attr("float", 0.0),
        "roi": Attr("floats", None),
    },
    traits=[Trait.INJECTIVE, Trait.LAYOUT_SENSITIVE],
    doc="ONNX Resize with the output size resolved; scales kept for coordinate transforms",
)


# ----- ops on shapes (always static) -----------------------------------------------------------
def _shape_range(node: Node, rank: int) -> tuple[int, int]:
    start = node.attrs["start"]
    end = node.attrs["end"]
    start = max(0, min(rank, start + rank if start < 0 else start))
    end = rank if end is None else max(0, min(rank, end + rank if end < 0 else end))
    return start, max(start, end)


def _shape_infer(node: Node):
    start, end = _shape_range(node, in_type(node, 0).rank)
    return [TensorType("int64", (end - start,))]


def _shape_fold(node, v):
    shape = in_type(node, 0).shape
    start, end = _shape_range(node, len(shape))
    return [symbolic_array(np.array(shape[start:end], dtype=object).reshape(-1), "int64")]


register_op(
    "shape",
    ["x"],
    _shape_infer,
    attrs={"start": Attr("int", 0), "end": Attr("int", None)},
    traits=[Trait.SHAPE],
    fold=_shape_fold,
    doc="the shape of x as int64 (folds to a constant when static, to a symbolic value otherwise)",
)
register_op(
    "size",
    ["x"],
    lambda node: [TensorType("int64", ())],
    traits=[Trait.SHAPE],
    fold=lambda node, v: [symbolic_array(np.array(in_type(node, 0).size, dtype=object), "int64")],
)


def _full_infer(node: Node):
    return [TensorType(node.attrs["dtype"], node.attrs["shape"])]


register_op(
    "full",
    [],
    _full_infer,
    attrs={"shape": Attr("dims", check=at_least(0)), "value": Attr("any", 0.0), "dtype": Attr("str", "float32")},
    traits=[Trait.INJECTIVE],
    fold=lambda node, v: [np.full(node.attrs["shape"], node.attrs["value"], dtype=node.attrs["dtype"])],
    doc="a tensor filled with one value (kept as an op so large fills are not stored as parameters)",
)
