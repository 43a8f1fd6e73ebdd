"""Elementwise lowerings: one scalar expression per op, applied with numpy broadcasting."""

from __future__ import annotations

import math

import numpy as np
from tvm import te, tirx

from . import fastmath, lowering
from .shapes import is_one, te_shape


def dtype_of(x) -> str:
    """The dtype of a TE tensor slice or TIR expression."""
    dtype = getattr(x, "dtype", None)
    return str(dtype) if dtype is not None else str(x.ty)


def _is_float(dtype: str) -> bool:
    return dtype.startswith(("float", "bfloat"))


def _c(value, dtype):
    return tirx.const(value, dtype)


def broadcast_compute(inputs, out_shape, fn, name: str, dtype: str | None = None):
    """out[i] = fn(*(x[broadcast index of i] for x in inputs))."""
    rank = len(out_shape)

    def body(*idx):
        args = []
        for t in inputs:
            offset = rank - len(t.shape)
            sub = [0 if is_one(t.shape[k]) and not is_one(out_shape[k + offset]) else idx[k + offset]
                   for k in range(len(t.shape))]
            args.append(t(*sub) if sub else t())
        return fn(*args)

    return te.compute(te_shape(out_shape), body, name=name)


def _log1p(x):
    dtype = dtype_of(x)
    if dtype in ("float32", "float64"):
        return tirx.log1p(x)
    return tirx.log1p(x.astype("float32")).astype(dtype)


def _softplus(x):
    return tirx.Select(x > _c(0, dtype_of(x)), x + _log1p(fastmath.exp(-x)), _log1p(fastmath.exp(x)))


def _sigmoid(x):
    return _c(1, dtype_of(x)) / (_c(1, dtype_of(x)) + fastmath.exp(-x))


UNARY = {
    "relu": lambda x, a: tirx.max(x, _c(0, dtype_of(x))),
    "neg": lambda x, a: -x if dtype_of(x) != "bool" else x,
    "abs": lambda x, a: tirx.abs(x) if not dtype_of(x).startswith("uint") else x,
    "sign": lambda x, a: tirx.Select(x > _c(0, dtype_of(x)), _c(1, dtype_of(x)),
                                     tirx.Select(x < _c(0, dtype_of(x)), _c(-1, dtype_of(x)), _c(0, dtype_of(x)))),
    "identity": lambda x, a: x,
    "dropout": lambda x, a: x,
    "exp": lambda x, a: fastmath.exp(x),
    "log": lambda x, a: tirx.log(x),
    "sqrt": lambda x, a: tirx.sqrt(x),
    "erf": lambda x, a: fastmath.erf(x),
    "sin": lambda x, a: tirx.sin(x),
    "cos": lambda x, a: tirx.cos(x),
    "tan": lambda x, a: tirx.tan(x),
    "asin": lambda x, a: tirx.asin(x),
    "acos": lambda x, a: tirx.acos(x),
    "atan": lambda x, a: tirx.atan(x),
    "sinh": lambda x, a: tirx.sinh(x),
    "cosh": lambda x, a: tirx.cosh(x),
    "asinh": lambda x, a: tirx.asinh(x),
    "acosh": lambda x, a: tirx.acosh(x),
    "atanh": lambda x, a: tirx.atanh(x),
    "floor": lambda x, a: tirx.floor(x),
    "ceil": lambda x, a: tirx.ceil(x),
    "round": lambda x, a: tirx.nearbyint(x),
    "reciprocal": lambda x, a: _c(1, dtype_of(x)) / x,
    "sigmoid": lambda x, a: _sigmoid(x),
    "tanh": lambda x, a: fastmath.tanh(x),
    "softplus": lambda x, a: _softplus(x),
    "softsign": lambda x, a: x / (_c(1, dtype_of(x)) + tirx.abs(x)),
    "mish": lambda x, a: x * fastmath.tanh(_softplus(x)),
    "hard_swish": lambda x, a: x * tirx.max(_c(0, dtype_of(x)), tirx.min(_c(1, dtype_of(x)), x / _c(6, dtype_of(x)) + _c(0.5, dtype_of(x)))),
    "hard_sigmoid": lambda x, a: tirx.max(_c(0, dtype_of(x)), tirx.min(_c(1, dtype_of(x)), _c(a["alpha"], dtype_of(x)) * x + _c(a["beta"], dtype_of(x)))),
    "leaky_relu": lambda x, a: tirx.Select(x >= _c(0, dtype_of(x)), x, x * _c(a["alpha"], dtype_of(x))),
    "elu": lambda x, a: tirx.Select(x > _c(0, dtype_of(x)), x, _c(a["alpha"], dtype_of(x)) * (fastmath.exp(x) - _c(1, dtype_of(x)))),
    "celu": lambda x, a: tirx.max(_c(0, dtype_of(x)), x) + tirx.min(
        _c(0, dtype_of(x)), _c(a["alpha"], dtype_of(x)) * (fastmath.exp(x / _c(a["alpha"], dtype_of(x))) - _c(1, dtype_of(x)))),
    "selu": lambda x, a: _c(a["gamma"], dtype_of(x)) * tirx.Select(
        x > _c(0, dtype_of(x)), x, _c(a["alpha"], dtype_of(x)) * (fastmath.exp(x) - _c(1, dtype_of(x)))),
    "thresholded_relu": lambda x, a: tirx.Select(x > _c(a["alpha"], dtype_of(x)), x, _c(0, dtype_of(x))),
    "shrink": lambda x, a: tirx.Select(
        x < _c(-a["lambd"], dtype_of(x)), x + _c(a["bias"], dtype_of(x)),
        tirx.Select(x > _c(a["lambd"], dtype_of(x)), x - _c(a["bias"], dtype_of(x)), _c(0, dtype_of(x)))),
    "gelu": lambda x, a: _gelu(x, a["approximate"]),
    "logical_not": lambda x, a: tirx.Not(x),
    "bitwise_not": lambda x, a: tirx.bitwise_not(x),
    "isnan": lambda x, a: tirx.isnan(x),
    "isinf": lambda x, a: _isinf(x, a),
    "clip": lambda x, a: _clip(x, a),
}


def _gelu(x, approximate):
    half, one = _c(0.5, dtype_of(x)), _c(1, dtype_of(x))
    if approximate == "tanh":
        k = _c(math.sqrt(2 / math.pi), dtype_of(x))
        return half * x * (one + fastmath.tanh(k * (x + _c(0.044715, dtype_of(x)) * x * x * x)))
    return half * x * (one + fastmath.erf(x * _c(1 / math.sqrt(2), dtype_of(x))))


def _isinf(x, a):
    if not _is_float(dtype_of(x)):
        return tirx.const(False, "bool")
    pos = tirx.And(tirx.isinf(x), x > _c(0, dtype_of(x)))
    neg = tirx.And(tirx.isinf(x), x < _c(0, dtype_of(x)))
    out = tirx.const(False, "bool")
    if a["detect_positive"]:
        out = tirx.Or(out, pos)
    if a["detect_negative"]:
        out = tirx.Or(out, neg)
    return out


def _bound(value, dtype):
    if _is_float(dtype):
        return _c(value, dtype)
    info_min = tirx.min_value(dtype).value
    info_max = tirx.max_value(dtype).value
    return _c(int(max(min(value, info_max), info_min)), dtype)


def _clip(x, a):
    if a["min"] is not None:
        x = tirx.max(x, _bound(a["min"], dtype_of(x)))
    if a["max"] is not None:
        x = tirx.min(x, _bound(a["max"], dtype_of(x)))
    return x


def _cast(x, to):
    if to == "bool":
        return x != _c(0, dtype_of(x))
    if dtype_of(x) == "bool":
        return tirx.Select(x, _c(1, to), _c(0, to))
    return x.astype(to)


#: ops exact in any float type; the others run in float32 on half types (LLVM has no half-precision
#: versions of most math functions, and numpy computes them in float32 too)
EXACT_UNARY = {"relu", "neg", "abs", "sign", "identity", "dropout", "floor", "ceil", "round", "logical_not",
               "bitwise_not", "clip", "leaky_relu", "thresholded_relu", "shrink"}
HALF_TYPES = ("float16", "bfloat16")


def _in_float32(fn):
    """fn evaluated in float32 when its input is a half type."""

    def wrapped(x, *rest):
        dtype = dtype_of(x)
        if dtype not in HALF_TYPES:
            return fn(x, *rest)
        args = [x.astype("float32")] + [r.astype("float32") if hasattr(r, "dtype") and dtype_of(r) == dtype else r
                                        for r in rest]
        result = fn(*args)
        return result.astype(dtype) if dtype_of(result) == "float32" else result

    return wrapped


@lowering(*UNARY)
def _lower_unary(node, ins):
    fn = UNARY[node.op]
    if node.op not in EXACT_UNARY:
        fn = _in_float32(fn)
    attrs = node.attrs
    return [broadcast_compute(ins, ins[0].shape, lambda x: fn(x, attrs), node.op)]


@lowering("cast")
def _lower_cast(node, ins):
    to = node.attrs["to"]
    return [broadcast_compute(ins, ins[0].shape, lambda x: _cast(x, to), "cast")]


@lowering("bitcast")
def _lower_bitcast(node, ins):
    x = ins[0]
    to = node.attrs["to"]
    if to == "bool":  # a byte holding 0 or 1
        return [te.compute(tuple(x.shape), lambda *i: x(*i) != tirx.const(0, str(x.dtype)), name="bitcast")]
    if str(x.dtype) == "bool":
        return [te.compute(tuple(x.shape), lambda *i: x(*i).astype(to), name="bitcast")]
    return [te.compute(tuple(x.shape), lambda *i: tirx.reinterpret(to, x(*i)), name="bitcast")]


def _div(a, b):
    if _is_float(dtype_of(a)):
        return a / b
    return tirx.truncdiv(a, b)


def _fmod(a, b):
    """C fmod (exact), from libm; half types go through float32."""
    dtype = dtype_of(a)
    if dtype == "float64":
        return tirx.call_pure_extern("float64", "fmod", a, b)
    return tirx.call_pure_extern("float32", "fmodf", a.astype("float32"), b.astype("float32")).astype(dtype)


def _mod(a, b, fmod):
    if not _is_float(dtype_of(a)):
        return tirx.truncmod(a, b) if fmod else tirx.floormod(a, b)
    r = _fmod(a, b)
    if fmod:
        return r
    zero = _c(0, dtype_of(a))
    # the sign of the divisor, as numpy.mod: r + b where r and b differ in sign
    differ = tirx.And(r != zero, _xor(r < zero, b < zero))
    return tirx.Select(differ, r + b, r)


def _bit_shift(a, b, direction):
    """Shifts as ONNX defines them: amounts outside [0, bits) give 0 (or -1 for a negative value
    shifted right)."""
    dtype = dtype_of(a)
    zero = _c(0, dtype)
    amount = b.astype(dtype)
    out_of_range = b >= _c(np.iinfo(dtype).bits, dtype_of(b))
    if dtype.startswith("int"):
        out_of_range = tirx.Or(out_of_range, b < _c(0, dtype_of(b)))
    if direction == "LEFT":
        if dtype.startswith("int"):
            unsigned = "u" + dtype
            shifted = tirx.shift_left(a.astype(unsigned), amount.astype(unsigned)).astype(dtype)
        else:
            shifted = tirx.shift_left(a, amount)
        return tirx.Select(out_of_range, zero, shifted)
    overflow = tirx.Select(a < zero, _c(-1, dtype), zero) if dtype.startswith("int") else zero
    return tirx.Select(out_of_range, overflow, tirx.shift_right(a, amount))


def _equal(a, b):
    if dtype_of(a) == "bool":
        return tirx.Select(a, b, tirx.Not(b))
    return a == b


def _xor(a, b):
    return tirx.Select(a, tirx.Not(b), b)


def _pow(a, b):
    if _is_float(dtype_of(a)):
        return tirx.power(a, b.astype(dtype_of(a)))
    return tirx.power(a.astype("float64"), b.astype("float64")).astype(dtype_of(a))


BINARY = {
    "add": lambda a, b, at: a + b,
    "sub": lambda a, b, at: a - b,
    "mul": lambda a, b, at: a * b,
    "div": lambda a, b, at: _div(a, b),
    "pow": lambda a, b, at: _pow(a, b),
    "maximum": lambda a, b, at: tirx.max(a, b),
    "minimum": lambda a, b, at: tirx.min(a, b),
    "mod": lambda a, b, at: _mod(a, b, at["fmod"]),
    "prelu": lambda a, b, at: tirx.Select(a < _c(0, dtype_of(a)), a * b, a),
    "bitwise_and": lambda a, b, at: tirx.bitwise_and(a, b),
    "bitwise_or": lambda a, b, at: tirx.bitwise_or(a, b),
    "bitwise_xor": lambda a, b, at: tirx.bitwise_xor(a, b),
    "bit_shift": lambda a, b, at: _bit_shift(a, b, at["direction"]),
    "equal": lambda a, b, at: _equal(a, b),
    "less": lambda a, b, at: a < b,
    "greater": lambda a, b, at: a > b,
    "less_equal": lambda a, b, at: a <= b,
    "greater_equal": lambda a, b, at: a >= b,
    "logical_and": lambda a, b, at: tirx.And(a, b),
    "logical_or": lambda a, b, at: tirx.Or(a, b),
    "logical_xor": lambda a, b, at: _xor(a, b),
}


#: binary ops run in float32 on half types
HALF_IN_FLOAT32 = {"pow", "mod"}


@lowering(*BINARY)
def _lower_binary(node, ins):
    fn = BINARY[node.op]
    if node.op in HALF_IN_FLOAT32:
        fn = _in_float32(fn)
    attrs = node.attrs
    return [broadcast_compute(ins, node.output.shape, lambda a, b: fn(a, b, attrs), node.op)]


@lowering("where")
def _lower_where(node, ins):
    return [broadcast_compute(ins, node.output.shape, lambda c, a, b: tirx.Select(c, a, b), "where")]
