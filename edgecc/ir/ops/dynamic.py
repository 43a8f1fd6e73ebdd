"""Ops whose output shape is computed from run-time values (a shape, axes, pads, a count).

ONNX passes shapes, axes, pads, repeats and counts as tensors; when such a tensor is computed
from a run-time input, the output's sizes are known only when the model runs. These ops take the
value as a tensor input, and their output types hold fresh size variables, one per output
dimension, named by the node's `shape_vars` attribute (unique in the graph, chosen by the
frontend), so re-inference gives the same type. The ranks are known at compile time: they follow
from the input ranks and the (static) lengths of the value tensors.

The lowering computes each output's shape with a shape kernel at run time, binds the variables,
then runs the op's kernel (`edgecc.lower.te_ops.dynamic`).
"""

from __future__ import annotations

from ..dims import Dim
from ..graph import IRError, Node
from ..types import TensorType
from ._util import in_type
from .registry import Attr, Trait, register_op

__all__ = ["DYNAMIC_OPS", "fresh_shape", "value_length"]

_OPAQUE = [Trait.OPAQUE]
_VARS = {"shape_vars": Attr("any")}


def value_length(node: Node, idx: int) -> int:
    """The number of values in the 1-D (or scalar) value input `idx`, known at compile time."""
    t = in_type(node, idx)
    if t.rank > 1:
        raise IRError(f"{node.op} '{node.name}': input {idx} must be 1-D, it has shape {t.shape}")
    if t.rank == 0:
        return 1
    (n,) = t.shape
    if isinstance(n, Dim):
        raise IRError(f"{node.op} '{node.name}': input {idx} has a symbolic length {n}; "
                      "its length must be known at compile time")
    return n


def fresh_shape(node: Node, rank: int) -> list[Dim]:
    """The node's output shape: one size variable per dimension, from `shape_vars`."""
    names = node.attrs["shape_vars"]
    if not isinstance(names, (tuple, list)) or len(names) != rank or not all(isinstance(n, str) for n in names):
        raise IRError(f"{node.op} '{node.name}': shape_vars must name {rank} size variables, got {names!r}")
    return [Dim.var(n) for n in names]


def _same_rank(idx: int = 0):
    def infer(node: Node):
        t = in_type(node, idx)
        return [TensorType(t.dtype, fresh_shape(node, t.rank))]

    return infer


def _reshape_rank(node: Node) -> int:
    rank, n = in_type(node, 0).rank, value_length(node, 1)
    mode = node.attrs["mode"]
    if mode == "reshape":
        return n
    if mode == "squeeze":
        if n > rank:
            raise IRError(f"dyn_reshape '{node.name}': squeezes {n} axes of a rank-{rank} tensor")
        return rank - n
    return rank + n


def _reshape_infer(node: Node):
    return [TensorType(in_type(node, 0).dtype, fresh_shape(node, _reshape_rank(node)))]


def _expand_infer(node: Node):
    t = in_type(node, 0)
    return [TensorType(t.dtype, fresh_shape(node, max(t.rank, value_length(node, 1))))]


def _full_infer(node: Node):
    return [TensorType(node.attrs["dtype"], fresh_shape(node, value_length(node, 0)))]


def _range_infer(node: Node):
    return [TensorType(in_type(node, 0).dtype, fresh_shape(node, 1))]


def _topk_infer(node: Node):
    t = in_type(node, 0)
    shape = fresh_shape(node, t.rank)
    return [TensorType(t.dtype, shape), TensorType("int64", shape)]


def _one_hot_infer(node: Node):
    return [TensorType(in_type(node, 2).dtype, fresh_shape(node, in_type(node, 0).rank + 1))]


def _nonzero_infer(node: Node):
    (count,) = fresh_shape(node, 1)
    return [TensorType("int64", [in_type(node, 0).rank, count])]


def _split_infer(node: Node):
    t = in_type(node, 0)
    axis = node.attrs["axis"] % t.rank
    names = node.attrs["shape_vars"]
    if value_length(node, 1) != len(names):
        raise IRError(f"dyn_split '{node.name}': {value_length(node, 1)} sizes for {len(names)} outputs")
    out = []
    for name in names:
        shape = list(t.shape)
        shape[axis] = Dim.var(name)
        out.append(TensorType(t.dtype, shape))
    return out


_REDUCE_KINDS = ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "reduce_l1",
                 "reduce_l2", "reduce_log_sum", "reduce_log_sum_exp", "reduce_sum_square")


def _one_of(*allowed):
    def check(value):
        return None if value in allowed else f"is not one of {', '.join(allowed)}"

    return check


register_op("dyn_reduce", ["x", "axes"], _same_rank(), attrs={
    "reduce": Attr("str", check=_one_of(*_REDUCE_KINDS)), **_VARS}, traits=_OPAQUE,
    doc="the reduction `reduce` over the run-time `axes` (negative count from the end), reduced axes kept as 1")
register_op("dyn_reshape", ["x", "shape"], _reshape_infer, attrs={
    "mode": Attr("str", "reshape", check=_one_of("reshape", "squeeze", "unsqueeze")),
    "allowzero": Attr("int", 0), **_VARS}, traits=_OPAQUE,
    doc="x's elements in row-major order in a run-time shape: ONNX Reshape's (0 and -1), or x with the "
        "run-time axes squeezed or unsqueezed")
register_op("dyn_slice", ["x", "starts", "ends", "axes?", "steps?"], _same_rank(), attrs=_VARS,
            traits=_OPAQUE, doc="ONNX Slice with run-time starts, ends, axes and steps")
register_op("dyn_pad", ["x", "pads", "value?", "axes?"], _same_rank(), attrs={
    "mode": Attr("str", "constant", check=_one_of("constant", "reflect", "edge", "wrap")), **_VARS},
    traits=_OPAQUE, doc="ONNX Pad with run-time pads (begins then ends, negative crops), value and axes")
register_op("dyn_expand", ["x", "shape"], _expand_infer, attrs=_VARS, traits=_OPAQUE,
            doc="x broadcast with a run-time shape (ONNX Expand)")
register_op("dyn_tile", ["x", "repeats"], _same_rank(), attrs=_VARS, traits=_OPAQUE,
            doc="x repeated a run-time number of times along each axis")
register_op("dyn_full", ["shape"], _full_infer, attrs={"value": Attr("float", 0.0), "dtype": Attr("str"), **_VARS},
            traits=_OPAQUE, doc="a tensor of a run-time shape filled with `value` (ONNX ConstantOfShape)")
register_op("dyn_range", ["start", "limit", "delta"], _range_infer, attrs=_VARS, traits=_OPAQUE,
            doc="start, start + delta, ... below limit (above it for a negative delta), all scalars at run time")
register_op("dyn_topk", ["x", "k"], _topk_infer, attrs={
    "axis": Attr("int", -1), "largest": Attr("int", 1), "sorted": Attr("int", 1), **_VARS},
    traits=_OPAQUE, num_outputs=2, doc="the k largest (smallest) values along `axis` and their indices; k at run time")
register_op("dyn_one_hot", ["indices", "depth", "values"], _one_hot_infer, attrs={"axis": Attr("int", -1), **_VARS},
            traits=_OPAQUE, doc="one-hot encoding with a run-time depth; values = [off, on]")
register_op("dyn_resize", ["x", "roi?", "scales?", "sizes?"], _same_rank(), attrs={
    "axes": Attr("ints", None), "keep_aspect_ratio_policy": Attr("str", "stretch"),
    "mode": Attr("str", "nearest", check=_one_of("nearest", "linear", "cubic")),
    "coordinate_transformation_mode": Attr("str", "half_pixel"), "nearest_mode": Attr("str", "round_prefer_floor"),
    "cubic_coeff_a": Attr("float", -0.75), "exclude_outside": Attr("int", 0), "extrapolation_value": Attr("float", 0.0),
    **_VARS}, traits=_OPAQUE,
    doc="ONNX Resize with run-time roi, scales or sizes (float32 scales and roi, int64 sizes; over `axes`)")
register_op("dyn_split", ["x", "split"], _split_infer, attrs={"axis": Attr("int", 0), **_VARS}, traits=_OPAQUE,
            num_outputs=None, doc="x split along `axis` into parts of run-time sizes, one size variable per part")
register_op("dyn_affine_grid", ["theta", "size"], lambda node: [TensorType(
    in_type(node, 0).dtype, fresh_shape(node, value_length(node, 1)))], attrs={"align_corners": Attr("int", 0), **_VARS},
    traits=_OPAQUE, doc="ONNX AffineGrid with a run-time size (N, C, H, W) or (N, C, D, H, W)")
register_op("dyn_nms", ["boxes", "scores", "max_output_boxes_per_class?", "iou_threshold?", "score_threshold?"],
            lambda node: [TensorType("int64", [fresh_shape(node, 1)[0], 3])],
            attrs={"center_point_box": Attr("int", 0), **_VARS}, traits=_OPAQUE,
            doc="ONNX NonMaxSuppression: (batch, class, box) of the selected boxes, one row each")
def _unique_infer(node: Node):
    t = in_type(node, 0)
    (count,) = fresh_shape(node, 1)
    axis = node.attrs["axis"]
    if axis is None:
        size = t.size
        return [TensorType(t.dtype, [count]), TensorType("int64", [count]), TensorType("int64", [size]),
                TensorType("int64", [count])]
    axis %= t.rank
    shape = list(t.shape)
    length = shape[axis]
    shape[axis] = count
    return [TensorType(t.dtype, shape), TensorType("int64", [count]), TensorType("int64", [length]),
            TensorType("int64", [count])]


register_op("dyn_unique", ["x"], _unique_infer, attrs={"axis": Attr("int", None), "sorted": Attr("int", 1), **_VARS},
            traits=_OPAQUE, num_outputs=4,
            doc="ONNX Unique: the distinct slices along `axis` (elements when none), first indices, inverse, counts")
register_op("nonzero", ["x"], _nonzero_infer, attrs=_VARS, traits=_OPAQUE,
            doc="the indices of x's nonzero elements, shape (rank, count), in row-major order")

#: the ops of this module: their output shapes are known only at run time
DYNAMIC_OPS = frozenset({"dyn_reduce", "dyn_reshape", "dyn_slice", "dyn_pad", "dyn_expand", "dyn_tile", "dyn_full",
                         "dyn_range", "dyn_topk", "dyn_one_hot", "dyn_resize", "dyn_split", "dyn_affine_grid",
                         "dyn_nms", "dyn_unique", "nonzero"})
