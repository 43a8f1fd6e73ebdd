"""Converters for ONNX reductions and scans: Reduce*, ArgMax/ArgMin, TopK, CumSum, CumProd."""

from __future__ import annotations

from . import converter
from .checks import axes, axis, count

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
            axes = [int(a) for a in ctx.static(inputs[1], "axes").reshape(-1)]
        else:
            axes = []
        if not axes and attrs.get("noop_with_empty_axes", 0):
            return ctx.emit("identity", x)
        return ctx.emit(ir_op, x, axes=axes or None, keepdims=attrs.get("keepdims", 1))

    return convert


for _onnx, _ir in _REDUCE.items():
    converter(_onnx, checks={"axes": axes()})(_reduce(_ir))


@converter("ArgMax", "ArgMin", checks={"axis": axis()})
def _arg(ctx, inputs, attrs):
    return ctx.emit("argmax" if ctx.node.op_type == "ArgMax" else "argmin", inputs[0],
                    axis=attrs.get("axis", 0), keepdims=attrs.get("keepdims", 1),
                    select_last_index=attrs.get("select_last_index", 0))


@converter("TopK", checks={"axis": axis(), "k": count(0)})
def _topk(ctx, inputs, attrs):
    k = attrs["k"] if "k" in attrs else int(ctx.static(inputs[1], "k").reshape(-1)[0])
    return ctx.emit("topk", inputs[0], k=k, axis=attrs.get("axis", -1), largest=attrs.get("largest", 1),
                    sorted=attrs.get("sorted", 1), num_outputs=2)


@converter("CumSum")
def _cumsum(ctx, inputs, attrs):
    axis = int(ctx.static(inputs[1], "axis").reshape(-1)[0])
    return ctx.emit("cumsum", inputs[0], axis=axis, exclusive=attrs.get("exclusive", 0),
                    reverse=attrs.get("reverse", 0))


@converter("CumProd", since=26)
def _cumprod(ctx, inputs, attrs):
    axis = int(ctx.static(inputs[1], "axis").reshape(-1)[0])
    return ctx.emit("cumprod", inputs[0], axis=axis, exclusive=attrs.get("exclusive", 0),
                    reverse=attrs.get("reverse", 0))
