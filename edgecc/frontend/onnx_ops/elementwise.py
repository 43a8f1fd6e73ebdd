"""Converters for elementwise ONNX ops: activations, math, comparisons, logic, Cast, BitCast, Clip."""

from __future__ import annotations

import numpy as np

from ..onnx import onnx_dtype
from . import converter
from ._util import scalar

_UNARY = {
    "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Exp": "exp", "Log": "log",
    "Sqrt": "sqrt", "Abs": "abs", "Neg": "neg", "Erf": "erf", "Floor": "floor", "Ceil": "ceil",
    "Round": "round", "Sign": "sign", "Reciprocal": "reciprocal", "Sin": "sin", "Cos": "cos",
    "Tan": "tan", "Asin": "asin", "Acos": "acos", "Atan": "atan", "Sinh": "sinh", "Cosh": "cosh",
    "Asinh": "asinh", "Acosh": "acosh", "Atanh": "atanh", "Not": "logical_not",
    "BitwiseNot": "bitwise_not", "IsNaN": "isnan", "Softplus": "softplus", "Softsign": "softsign",
    "HardSwish": "hard_swish", "Mish": "mish", "Identity": "identity",
}
_UNARY_ATTRS = {
    "HardSigmoid": ("hard_sigmoid", {"alpha": 0.2, "beta": 0.5}),
    "LeakyRelu": ("leaky_relu", {"alpha": 0.01}),
    "Elu": ("elu", {"alpha": 1.0}),
    "Celu": ("celu", {"alpha": 1.0}),
    "Selu": ("selu", {"alpha": 1.67326319217681884765625, "gamma": 1.05070102214813232421875}),
    "ThresholdedRelu": ("thresholded_relu", {"alpha": 1.0}),
    "Shrink": ("shrink", {"bias": 0.0, "lambd": 0.5}),
    "Gelu": ("gelu", {"approximate": "none"}),
    "IsInf": ("isinf", {"detect_positive": 1, "detect_negative": 1}),
}
_BINARY = {
    "Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow",
    "Equal": "equal", "Less": "less", "Greater": "greater", "LessOrEqual": "less_equal",
    "GreaterOrEqual": "greater_equal", "And": "logical_and", "Or": "logical_or", "Xor": "logical_xor",
    "BitwiseAnd": "bitwise_and", "BitwiseOr": "bitwise_or", "BitwiseXor": "bitwise_xor",
}


def _unary(ir_op: str):
    def convert(ctx, inputs, attrs):
        return ctx.emit(ir_op, inputs[0])

    return convert


def _unary_with(ir_op: str, defaults: dict):
    def convert(ctx, inputs, attrs):
        return ctx.emit(ir_op, inputs[0], **{k: attrs.get(k, v) for k, v in defaults.items()})

    return convert


def _binary(ir_op: str):
    def convert(ctx, inputs, attrs):
        if attrs.get("broadcast") == 0 and inputs[0].shape != inputs[1].shape:
            raise ctx.fail("legacy non-broadcast form with different shapes")
        return ctx.emit(ir_op, inputs[0], inputs[1])

    return convert


for _onnx, _ir in _UNARY.items():
    converter(_onnx)(_unary(_ir))
for _onnx, (_ir, _defaults) in _UNARY_ATTRS.items():
    converter(_onnx)(_unary_with(_ir, _defaults))
for _onnx, _ir in _BINARY.items():
    converter(_onnx)(_binary(_ir))


@converter("Dropout")
def _dropout(ctx, inputs, attrs):
    """Inference dropout is the identity; so is training dropout with ratio 0."""
    if len(inputs) > 2 and inputs[2] is not None and bool(ctx.static(inputs[2], "training_mode")):
        ratio = 0.5 if len(inputs) < 2 or inputs[1] is None else float(ctx.static(inputs[1], "ratio"))
        if ratio != 0.0:
            raise ctx.unsupported("training_mode=True (random masks)")
    out = ctx.emit("dropout", inputs[0])
    if len(ctx.node.output) > 1 and ctx.node.output[1]:
        mask = ctx.const(np.ones(inputs[0].shape, dtype=bool), ctx.node.output[1])
        return [out, mask]
    return out


@converter("Mod")
def _mod(ctx, inputs, attrs):
    return ctx.emit("mod", inputs[0], inputs[1], fmod=attrs.get("fmod", 0))


@converter("BitShift")
def _bit_shift(ctx, inputs, attrs):
    return ctx.emit("bit_shift", inputs[0], inputs[1], direction=attrs["direction"])


@converter("PRelu")
def _prelu(ctx, inputs, attrs):
    return ctx.emit("prelu", inputs[0], inputs[1])


@converter("Where")
def _where(ctx, inputs, attrs):
    return ctx.emit("where", *inputs)


@converter("Max", "Min", "Sum", "Mean")
def _variadic(ctx, inputs, attrs):
    op = {"Max": "maximum", "Min": "minimum", "Sum": "add", "Mean": "add"}[ctx.node.op_type]
    acc = inputs[0]
    for other in inputs[1:]:
        acc = ctx.emit(op, acc, other)
    if len(inputs) == 1 and ctx.node.op_type != "Mean":
        return ctx.emit("identity", acc)
    if ctx.node.op_type == "Mean":
        count = ctx.const(np.array(len(inputs), dtype=acc.dtype), "count")
        acc = ctx.emit("div", acc, count)
    return acc


@converter("Cast")
def _cast(ctx, inputs, attrs):
    to = onnx_dtype(attrs["to"])
    return ctx.emit("cast", inputs[0], to=_check_dtype(ctx, to))


@converter("CastLike")
def _cast_like(ctx, inputs, attrs):
    return ctx.emit("cast", inputs[0], to=inputs[1].dtype)


def _check_dtype(ctx, dtype: str) -> str:
    from edgecc.ir import DTYPES

    if dtype not in DTYPES:
        raise ctx.unsupported(f"element type {dtype}")
    return dtype


@converter("Clip", since=1)
def _clip_v1(ctx, inputs, attrs):
    return ctx.emit("clip", inputs[0], min=attrs.get("min", -3.4028234663852886e38),
                    max=attrs.get("max", 3.4028234663852886e38))


@converter("Clip", since=11)
def _clip(ctx, inputs, attrs):
    x = inputs[0]
    bounds = {}
    for key, value in (("min", inputs[1] if len(inputs) > 1 else None),
                       ("max", inputs[2] if len(inputs) > 2 else None)):
        if value is None:
            continue
        from edgecc.ir import static_value

        data = static_value(value)
        if data is None:  # a run-time bound: use maximum/minimum
            x = ctx.emit("maximum" if key == "min" else "minimum", x, value)
        else:
            bounds[key] = data.reshape(()).item()
    if not bounds:
        return x if x is not inputs[0] else ctx.emit("identity", x)
    return ctx.emit("clip", x, **bounds)


def _swish(ctx, x, alpha: float):
    gate = ctx.emit("sigmoid", x if alpha == 1.0 else ctx.emit("mul", x, scalar(ctx, alpha, x.dtype, "alpha")))
    return ctx.emit("mul", x, gate)


@converter("Swish", since=24)
def _swish_op(ctx, inputs, attrs):
    return _swish(ctx, inputs[0], attrs.get("alpha", 1.0))


@converter("SwiGLU", since=28)
def _swiglu(ctx, inputs, attrs):
    a, b = inputs[:2]
    if a.shape != b.shape:
        raise ctx.fail(f"A and B differ in shape ({a.shape} and {b.shape})")
    return ctx.emit("mul", _swish(ctx, a, attrs.get("alpha", 1.0)), b)


@converter("BitCast", since=26)
def _bitcast(ctx, inputs, attrs):
    to = onnx_dtype(attrs["to"])
    from edgecc.ir import DTYPES

    if to not in DTYPES:
        raise ctx.unsupported(f"element type {to}")
    return ctx.emit("bitcast", inputs[0], to=to)
