"""Converters for ONNX reductions and scans: Reduce*, ArgMax/ArgMin, TopK, CumSum, CumProd."""

from __future__ import annotations

from edgecc.ir.static_eval import static_value

from . import converter
from ._util import cast, scalar
from .checks import axes, axis, count
from .tensor import as_int64, emit_dynamic, length, runtime

_REDUCE = {
    "ReduceSum": "reduce_sum", "ReduceMean": "reduce_mean", "ReduceMax": "reduce_max",
    "ReduceMin": "reduce_min", "ReduceProd": "reduce_prod", "ReduceL1": "reduce_l1",
    "ReduceL2": "reduce_l2", "ReduceLogSum": "reduce_log_sum", "ReduceLogSumExp": "reduce_log_sum_exp",
    "ReduceSumSquare": "reduce_sum_square",
}


def _reduce(ir_op: str):
    def convert(ctx, inputs, attrs):
        x = inputs[0]
        if "axes" in attrs:
            axes = list(attrs["axes"])
        elif len(inputs) > 1 and inputs[1] is not None:
            if not runtime(inputs[1]):
                axes = [int(a) for a in ctx.static(inputs[1], "axes").reshape(-1)]
            elif length(as_int64(ctx, inputs[1], "axes")) > 0:
                return _runtime_axes(ctx, ir_op, x, inputs[1], attrs.get("keepdims", 1))
            else:  # no axes: a length known to be 0
                axes = []
        else:
            axes = []
        if not axes and attrs.get("noop_with_empty_axes", 0):
            return ctx.emit("identity", x)
        return ctx.emit(ir_op, x, axes=axes or None, keepdims=attrs.get("keepdims", 1))

    return convert


def _runtime_axes(ctx, ir_op: str, x, axes_value, keepdims: int):
    """A reduction over axes known only at run time: the reduced axes kept as 1, then squeezed."""
    axes_value = as_int64(ctx, axes_value, "axes")
    y = emit_dynamic(ctx, "dyn_reduce", x, axes_value, rank=x.type.rank, reduce=ir_op)
    if keepdims:
        return y
    return emit_dynamic(ctx, "dyn_reshape", y, axes_value, rank=x.type.rank - length(axes_value), mode="squeeze")


for _onnx, _ir in _REDUCE.items():
    converter(_onnx, checks={"axes": axes()})(_reduce(_ir))


@converter("ArgMax", "ArgMin", checks={"axis": axis()})
def _arg(ctx, inputs, attrs):
    return ctx.emit("argmax" if ctx.node.op_type == "ArgMax" else "argmin", inputs[0],
                    axis=attrs.get("axis", 0), keepdims=attrs.get("keepdims", 1),
                    select_last_index=attrs.get("select_last_index", 0))


@converter("TopK", checks={"axis": axis(), "k": count(0)})
def _topk(ctx, inputs, attrs):
    if "k" not in attrs and runtime(inputs[1]):
        k = ctx.emit("reshape", as_int64(ctx, inputs[1], "k"), shape=(1,))
        return emit_dynamic(ctx, "dyn_topk", inputs[0], k, rank=inputs[0].type.rank, num_outputs=2,
                            axis=attrs.get("axis", -1), largest=attrs.get("largest", 1), sorted=attrs.get("sorted", 1))
    k = attrs["k"] if "k" in attrs else int(ctx.static(inputs[1], "k").reshape(-1)[0])
    return ctx.emit("topk", inputs[0], k=k, axis=attrs.get("axis", -1), largest=attrs.get("largest", 1),
                    sorted=attrs.get("sorted", 1), num_outputs=2)


def _cumulative(ir_op: str):
    """CumSum/CumProd; an axis known only at run time selects among the scans along every axis."""

    def convert(ctx, inputs, attrs):
        x, axis_value = inputs[0], inputs[1]
        options = {"exclusive": attrs.get("exclusive", 0), "reverse": attrs.get("reverse", 0)}
        axis = static_value(axis_value)
        if axis is not None:
            return ctx.emit(ir_op, x, axis=int(axis.reshape(-1)[0]), **options)
        if axis_value.type.size != 1:
            raise ctx.fail(f"axis must hold one value, it has shape {axis_value.type.shape}")
        return _select_by_axis(ctx, x, axis_value, lambda a: ctx.emit(ir_op, x, axis=a, **options))

    return convert


def _select_by_axis(ctx, x, axis_value, result_for):
    """result_for(a) of the axis `a` that the run-time scalar `axis_value` names (negative counts
    from the end); every axis's result is computed and the named one selected."""
    rank = x.type.rank
    axis_value = ctx.emit("reshape", cast(ctx, axis_value, "int64"), shape=())
    selected = None
    for a in reversed(range(rank)):
        result = result_for(a)
        if selected is None:
            selected = result
            continue
        named = ctx.emit("logical_or", ctx.emit("equal", axis_value, scalar(ctx, a, "int64")),
                         ctx.emit("equal", axis_value, scalar(ctx, a - rank, "int64")))
        selected = ctx.emit("where", named, result, selected)
    return selected


converter("CumSum")(_cumulative("cumsum"))
converter("CumProd", since=26)(_cumulative("cumprod"))
