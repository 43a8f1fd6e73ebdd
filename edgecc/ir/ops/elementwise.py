"""Elementwise ops: unary math and activations, broadcasting binary ops, where, cast, bitcast, clip."""

from __future__ import annotations

import math

import numpy as np

from ..dims import Dim, symbolic_array
from ..graph import IRError
from ..types import DTYPES, TensorType, np_dtype
from ._util import broadcast_infer, in_type, require_float, same_as_input
from .registry import Attr, Trait, register_op

UNARY_TRAITS = (Trait.ELEMENTWISE, Trait.INJECTIVE, Trait.LAYOUT_AGNOSTIC)
BINARY_TRAITS = (Trait.ELEMENTWISE, Trait.BROADCAST, Trait.INJECTIVE)

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _gelu(x, approximate="none"):
    if approximate == "tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _float_unary(name, fn, attrs=None, doc=""):
    """A unary op on floating-point tensors; `fn(x, **attrs)` is its numpy meaning."""

    def infer(node):
        require_float(node)
        return same_as_input()(node)

    def fold(node, values):
        return [fn(values[0], **node.attrs)]

    register_op(name, ["x"], infer, attrs=attrs, traits=UNARY_TRAITS, fold=fold, doc=doc)


def _any_unary(name, fn, attrs=None, out_dtype=None, doc=""):
    def infer(node):
        t = in_type(node, 0).with_quant(None)
        return [t.with_dtype(out_dtype) if out_dtype else t]

    def fold(node, values):
        return [fn(values[0], **node.attrs)]

    register_op(name, ["x"], infer, attrs=attrs, traits=UNARY_TRAITS, fold=fold, doc=doc)


# ----- unary math on floats --------------------------------------------------------------
for _name, _fn in {
    "exp": np.exp,
    "log": np.log,
    "sqrt": np.sqrt,
    "erf": _erf,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "asin": np.arcsin,
    "acos": np.arccos,
    "atan": np.arctan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "asinh": np.arcsinh,
    "acosh": np.arccosh,
    "atanh": np.arctanh,
    "floor": np.floor,
    "ceil": np.ceil,
    "round": np.round,  # half to even, as ONNX
    "reciprocal": np.reciprocal,
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "softplus": lambda x: np.log1p(np.exp(x)),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "mish": lambda x: x * np.tanh(np.log1p(np.exp(x))),
    "hard_swish": lambda x: x * np.clip(x / 6.0 + 0.5, 0, 1),
}.items():
    _float_unary(_name, lambda x, _f=_fn: _f(x))

_float_unary("gelu", _gelu, {"approximate": Attr("str", "none")}, doc="x * Phi(x); tanh form optional")
_float_unary(
    "hard_sigmoid",
    lambda x, alpha, beta: np.clip(alpha * x + beta, 0, 1),
    {"alpha": Attr("float", 0.2), "beta": Attr("float", 0.5)},
)
_float_unary(
    "elu",
    lambda x, alpha: np.where(x > 0, x, alpha * (np.exp(x) - 1)),
    {"alpha": Attr("float", 1.0)},
)
_float_unary(
    "celu",
    lambda x, alpha: np.maximum(0, x) + np.minimum(0, alpha * (np.exp(x / alpha) - 1)),
    {"alpha": Attr("float", 1.0)},
)
_float_unary(
    "selu",
    lambda x, alpha, gamma: gamma * np.where(x > 0, x, alpha * (np.exp(x) - 1)),
    {"alpha": Attr("float", 1.67326319217681884765625), "gamma": Attr("float", 1.05070102214813232421875)},
)
_float_unary(
    "thresholded_relu", lambda x, alpha: np.where(x > alpha, x, 0), {"alpha": Attr("float", 1.0)}
)

# ----- unary ops on any numeric type -----------------------------------------------------
_any_unary("relu", lambda x: np.maximum(x, 0).astype(x.dtype))
_any_unary("neg", np.negative)
_any_unary("abs", np.abs)
_any_unary("sign", np.sign)
_any_unary("identity", lambda x: x)
_any_unary("dropout", lambda x, ratio: x, {"ratio": Attr("float", 0.5)}, doc="inference dropout: x")
_any_unary("leaky_relu", lambda x, alpha: np.where(x >= 0, x, alpha * x), {"alpha": Attr("float", 0.01)})
_any_unary(
    "shrink",
    lambda x, bias, lambd: np.where(x < -lambd, x + bias, np.where(x > lambd, x - bias, 0)),
    {"bias": Attr("float", 0.0), "lambd": Attr("float", 0.5)},
)
_any_unary("logical_not", np.logical_not, out_dtype="bool")
_any_unary("bitwise_not", np.invert)
_any_unary("isnan", np.isnan, out_dtype="bool")
_any_unary(
    "isinf",
    lambda x, detect_positive, detect_negative: (np.isposinf(x) & bool(detect_positive))
    | (np.isneginf(x) & bool(detect_negative)),
    {"detect_positive": Attr("int", 1), "detect_negative": Attr("int", 1)},
    out_dtype="bool",
)


def _clip_fold(node, values):
    lo, hi = node.attrs["min"], node.attrs["max"]
    x = values[0]
    if lo is not None:
        x = np.maximum(x, np.asarray(lo).astype(x.dtype))
    if hi is not None:
        x = np.minimum(x, np.asarray(hi).astype(x.dtype))
    return [x]


register_op(
    "clip",
    ["x"],
    same_as_input(),
    attrs={"min": Attr("float", None), "max": Attr("float", None)},
    traits=UNARY_TRAITS,
    fold=_clip_fold,
    doc="min(max(x, min), max); a None bound is absent",
)


def _cast_infer(node):
    to = node.attrs["to"]
    if to not in DTYPES:
        raise IRError(f"cast: unknown dtype {to}")
    return [in_type(node, 0).with_quant(None).with_dtype(to)]


def _cast_fold(node, values):
    x = values[0]
    to = node.attrs["to"]
    if x.dtype == object:  # a shape vector with symbolic entries stays symbolic as an integer type
        return [symbolic_array(x, to)]
    if np.issubdtype(x.dtype, np.floating) and np.issubdtype(np.dtype(to), np.integer):
        with np.errstate(invalid="ignore"):
            return [np.trunc(x).astype(to)]
    return [x.astype(to)]


register_op("cast", ["x"], _cast_infer, attrs={"to": Attr("str")}, traits=UNARY_TRAITS, fold=_cast_fold)


def _bitcast_infer(node):
    t = in_type(node, 0)
    to = node.attrs["to"]
    if to not in DTYPES:
        raise IRError(f"bitcast: unknown dtype {to}")
    if np_dtype(to).itemsize != np_dtype(t.dtype).itemsize:
        raise IRError(f"bitcast: {t.dtype} and {to} differ in width")
    return [TensorType(to, t.shape, t.layout)]


register_op(
    "bitcast",
    ["x"],
    _bitcast_infer,
    attrs={"to": Attr("str")},
    traits=(Trait.ELEMENTWISE, Trait.INJECTIVE, Trait.LAYOUT_AGNOSTIC),
    fold=lambda node, v: [np.ascontiguousarray(v[0]).view(np_dtype(node.attrs["to"]))],
    doc="the same bits read as another element type of the same width",
)


# ----- binary ops ------------------------------------------------------------------------
def _trunc_div(a, b):
    """Integer division toward zero, as ONNX divides integers; a symbolic (non-negative)
    dimension divides by floor division, which is the same for non-negative values."""
    if not isinstance(a, Dim) and not isinstance(b, Dim):
        a, b = int(a), int(b)
        q = abs(a) // abs(b)
        return q if (a < 0) == (b < 0) else -q
    if not isinstance(b, Dim) and b < 0:
        return -(a // -int(b))
    return a // b


def _int_div(a, b):
    if a.dtype == object or b.dtype == object:  # shape arithmetic on symbolic dimensions
        return np.frompyfunc(_trunc_div, 2, 1)(a, b)
    if np.issubdtype(a.dtype, np.integer):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.trunc(np.true_divide(a, b)).astype(a.dtype)
    return np.true_divide(a, b)


def _mod(a, b, fmod):
    return np.fmod(a, b) if fmod else np.mod(a, b)


def _pow(a, b):
    if np.issubdtype(a.dtype, np.integer):
        return np.power(a.astype(np.float64), b).astype(a.dtype)
    return np.power(a, b.astype(a.dtype))


def _pow_infer(node):
    a, b = in_type(node, 0), in_type(node, 1)
    from ._util import broadcast_shapes

    return [TensorType(a.dtype, broadcast_shapes(a.shape, b.shape, op="pow"), a.layout)]


def _binary(name, fn, *, out_dtype=None, traits=(), attrs=None, infer=None):
    def fold(node, values):
        return [fn(values[0], values[1], **node.attrs)]

    register_op(
        name,
        ["a", "b"],
        infer or broadcast_infer(out_dtype),
        attrs=attrs,
        traits=BINARY_TRAITS + tuple(traits),
        fold=fold,
    )


_binary("add", np.add, traits=[Trait.COMMUTATIVE])
_binary("sub", np.subtract)
_binary("mul", np.multiply, traits=[Trait.COMMUTATIVE])
_binary("div", _int_div)
_binary("pow", _pow, infer=_pow_infer)
_binary("maximum", np.maximum, traits=[Trait.COMMUTATIVE])
_binary("minimum", np.minimum, traits=[Trait.COMMUTATIVE])
_binary("mod", _mod, attrs={"fmod": Attr("int", 0)})
_binary("prelu", lambda x, s: np.where(x < 0, x * s, x))
_binary("bitwise_and", np.bitwise_and, traits=[Trait.COMMUTATIVE])
_binary("bitwise_or", np.bitwise_or, traits=[Trait.COMMUTATIVE])
_binary("bitwise_xor", np.bitwise_xor, traits=[Trait.COMMUTATIVE])
def _bit_shift(a, b, direction):
    """ONNX shifts: amounts outside [0, bits) give 0, or -1 for a negative value shifted right."""
    a, b = np.broadcast_arrays(a, b)
    out_of_range = (b < 0) | (b >= np.iinfo(a.dtype).bits)
    amount = np.where(out_of_range, 0, b).astype(a.dtype)
    if direction == "LEFT":
        unsigned = np.dtype(f"u{a.dtype.itemsize}")
        shifted = np.left_shift(a.view(unsigned) if a.dtype.kind == "i" else a, amount.astype(unsigned)).view(a.dtype)
        return np.where(out_of_range, 0, shifted).astype(a.dtype)
    overflow = np.where(a < 0, -1, 0) if a.dtype.kind == "i" else 0
    return np.where(out_of_range, overflow, np.right_shift(a, amount)).astype(a.dtype)


_binary("bit_shift", _bit_shift, attrs={"direction": Attr("str")})
for _name, _fn in {
    "equal": np.equal,
    "less": np.less,
    "greater": np.greater,
    "less_equal": np.less_equal,
    "greater_equal": np.greater_equal,
}.items():
    _binary(_name, _fn, out_dtype="bool")
for _name, _fn in {
    "logical_and": np.logical_and,
    "logical_or": np.logical_or,
    "logical_xor": np.logical_xor,
}.items():
    _binary(_name, _fn, out_dtype="bool", traits=[Trait.COMMUTATIVE])


def _where_infer(node):
    cond, a, b = (in_type(node, i) for i in range(3))
    if cond.dtype != "bool":
        raise IRError(f"where: condition must be bool, got {cond.dtype}")
    if a.dtype != b.dtype:
        raise IRError(f"where: branch dtypes differ ({a.dtype} and {b.dtype})")
    from ._util import broadcast_shapes

    return [TensorType(a.dtype, broadcast_shapes(cond.shape, a.shape, b.shape, op="where"))]


register_op(
    "where",
    ["cond", "a", "b"],
    _where_infer,
    traits=BINARY_TRAITS,
    fold=lambda node, v: [np.where(v[0], v[1], v[2])],
)
