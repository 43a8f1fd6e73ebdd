"""Quantized ops: affine (de)quantization and integer kernels.

Affine quantization maps a real value r to an integer q with r = scale * (q - zero_point).

    quantize(x: f32, scale, zero_point?) {dtype, axis}    q = saturate(round_half_even(x / scale) + zp)
    dequantize(q: int, scale, zero_point?) {axis}          r = (q - zp) * scale            (f32)
    requantize(q: int, multiplier) {...}                   q' = clamp(round((q - zp_in) * m) + zp_out)
    qconv(x: int, w: int, bias: i32?, multiplier: f32?)   integer convolution, int32 accumulation
    qdense(x: int, w: int, bias: i32?, multiplier: f32?)  integer x @ W, int32 accumulation
    qadd(a: int, b: int) {...}                             quantized a + b, requantized

qconv and qdense accumulate `bias + sum(x * w)` in int32, products of 8-bit (or 16-bit) integers.
The data's zero point is only what padding fills in: its product with the weight sums belongs in
the bias (`edgecc.ir.quant_arith` builds such biases), so the inner loop multiplies raw integers.
The epilogue then either returns the int32 accumulator (no multiplier), scales it to float32
(`dtype="float32"`: acc * multiplier), or requantizes it: clamp(round(acc * multiplier) + zp_out,
out_min, out_max), where out_min/out_max (default: the dtype's range) also express a fused ReLU.
Multipliers are per output channel (or one), as float32: x_scale * w_scale[c] / y_scale.

`dequantize` has no numpy folding on purpose: quantized weights stay int8 constants until
`lower-qdq` turns them into integer kernels (and folds what is left).
"""

from __future__ import annotations

import numpy as np

from ..graph import IRError, Node
from ..layout import layout_of
from ..types import QuantParams, TensorType
from ._util import broadcast_shapes, in_type, norm_axis
from .nn import conv_geometry
from .registry import Attr, Trait, register_op

__all__ = ["INT_RANGE", "int_range", "quant_params_of", "qconv_reference", "requantize_array"]

#: integer element types a quantized tensor may have, with their ranges
INT_RANGE = {
    "int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "uint16": (0, 65535),
    "int32": (-(2**31), 2**31 - 1),
}
_DATA_TYPES = ("int8", "uint8", "int16")
_OUT_TYPES = ("int8", "uint8", "int16", "int32", "float32")


def int_range(dtype: str) -> tuple[int, int]:
    try:
        return INT_RANGE[dtype]
    except KeyError:
        raise IRError(f"{dtype} is not a quantized integer type") from None


def _static(node: Node, idx: int):
    from ..static_eval import static_value

    return static_value(node.input(idx))


def _check_params(node: Node, x: TensorType, axis) -> None:
    scale = in_type(node, 1)
    zp = node.input(2)
    if not scale.dtype.startswith("float"):
        raise IRError(f"{node.op}: scale must be floating-point, got {scale.dtype}")
    if axis is None:
        if scale.size != 1 or (zp is not None and zp.type.size != 1):
            raise IRError(f"{node.op}: per-tensor scale and zero point take one element")
        return
    axis = norm_axis(axis, x.rank, node.op)
    for v in (node.input(1), zp):
        if v is not None and v.type.size != x.shape[axis]:
            raise IRError(f"{node.op}: per-axis parameter has {v.type.size} elements, axis {axis} has "
                          f"{x.shape[axis]}")


def quant_params_of(node: Node) -> QuantParams | None:
    """The QuantParams of a quantize/dequantize node when its scale and zero point are known."""
    scale = _static(node, 1)
    if scale is None:
        return None
    zp = _static(node, 2) if node.input(2) is not None else np.zeros(scale.size, np.int64)
    if zp is None:
        return None
    axis = node.attrs.get("axis")
    scale = tuple(float(s) for s in np.asarray(scale, np.float32).reshape(-1))
    zp = tuple(int(z) for z in np.asarray(zp).reshape(-1))
    if axis is None:
        return QuantParams(scale[:1], zp[:1])
    x = in_type(node, 0)
    return QuantParams(scale, zp if len(zp) == len(scale) else zp * len(scale), norm_axis(axis, x.rank))


def _param_shape(x_rank: int, axis, size: int) -> tuple[int, ...]:
    if axis is None:
        return ()
    shape = [1] * x_rank
    shape[axis % x_rank] = size
    return tuple(shape)


# ----- quantize / dequantize ---------------------------------------------------------------
def _quantize_infer(node: Node):
    x = in_type(node, 0)
    dtype = node.attrs["dtype"]
    int_range(dtype)
    if not x.dtype.startswith(("float", "bfloat")):
        raise IRError(f"quantize: needs a floating-point input, got {x.dtype}")
    _check_params(node, x, node.attrs["axis"])
    zp = node.input(2)
    if zp is not None and zp.dtype != dtype:
        raise IRError(f"quantize: zero point is {zp.dtype}, output is {dtype}")
    return [TensorType(dtype, x.shape, x.layout, quant_params_of(node))]


def quantize_array(x, scale, zp, dtype: str, axis=None) -> np.ndarray:
    """numpy quantize: saturate(round_half_even(x / scale) + zp), computed in float32."""
    lo, hi = INT_RANGE[dtype]
    shape = _param_shape(np.ndim(x), axis, np.size(scale))
    s = np.asarray(scale, np.float32).reshape(shape)
    q = np.rint(np.asarray(x, np.float32) / s)
    if zp is not None:
        q = q + np.asarray(zp, np.float32).reshape(shape if np.size(zp) > 1 else ())
    return np.clip(q, lo, hi).astype(dtype)


def dequantize_array(q, scale, zp, axis=None) -> np.ndarray:
    """numpy dequantize: (q - zp) * scale in float32."""
    shape = _param_shape(np.ndim(q), axis, np.size(scale))
    v = np.asarray(q, np.int64)
    if zp is not None:
        v = v - np.asarray(zp, np.int64).reshape(shape if np.size(zp) > 1 else ())
    return (v.astype(np.float32) * np.asarray(scale, np.float32).reshape(shape)).astype(np.float32)


register_op(
    "quantize",
    ["x", "scale", "zero_point?"],
    _quantize_infer,
    attrs={"dtype": Attr("str"), "axis": Attr("int", None)},
    traits=[Trait.ELEMENTWISE, Trait.INJECTIVE],
    fold=lambda node, v: [quantize_array(v[0], v[1], v[2], node.attrs["dtype"], node.attrs["axis"])],
    doc="affine quantization, per tensor (axis=None) or per slice along `axis`",
)


def _dequantize_infer(node: Node):
    x = in_type(node, 0)
    int_range(x.dtype)
    _check_params(node, x, node.attrs["axis"])
    zp = node.input(2)
    if zp is not None and zp.dtype != x.dtype:
        raise IRError(f"dequantize: zero point is {zp.dtype}, input is {x.dtype}")
    return [TensorType("float32", x.shape, x.layout)]


register_op(
    "dequantize",
    ["x", "scale", "zero_point?"],
    _dequantize_infer,
    attrs={"axis": Attr("int", None)},
    traits=[Trait.ELEMENTWISE, Trait.INJECTIVE],
    doc="(x - zero_point) * scale as float32; not folded (see the module docstring)",
)


# ----- requantize ------------------------------------------------------------------------------
def _clamp_bounds(node: Node) -> tuple[int, int]:
    lo, hi = int_range(node.attrs["dtype"])
    a = node.attrs
    out_lo = lo if a["out_min"] is None else max(lo, a["out_min"])
    out_hi = hi if a["out_max"] is None else min(hi, a["out_max"])
    if out_lo > out_hi:
        raise IRError(f"{node.op}: empty output range [{out_lo}, {out_hi}]")
    return out_lo, out_hi


def requantize_array(acc, multiplier, zp_out: int, lo: int, hi: int, channel_axis: int | None = None):
    """numpy requantization of int32 values: clamp(round(float32(acc) * m) + zp, lo, hi)."""
    m = np.asarray(multiplier, np.float32)
    if m.size > 1:
        shape = [1] * np.ndim(acc)
        shape[channel_axis] = m.size
        m = m.reshape(shape)
    else:
        m = m.reshape(())
    v = np.rint(np.asarray(acc).astype(np.float32) * m) + np.float32(zp_out)
    return np.clip(v, lo, hi)


def _requantize_infer(node: Node):
    x = in_type(node, 0)
    int_range(x.dtype)
    _clamp_bounds(node)
    m = in_type(node, 1)
    if m.dtype != "float32":
        raise IRError(f"requantize: multiplier must be float32, got {m.dtype}")
    axis = node.attrs["axis"]
    if axis is None:
        if m.size != 1:
            raise IRError("requantize: a per-tensor multiplier takes one element")
    elif m.size != x.shape[norm_axis(axis, x.rank, "requantize")]:
        raise IRError(f"requantize: multiplier has {m.size} elements, axis {axis} has {x.shape[axis]}")
    return [TensorType(node.attrs["dtype"], x.shape, x.layout)]


def _requantize_fold(node: Node, v):
    a = node.attrs
    lo, hi = _clamp_bounds(node)
    acc = np.asarray(v[0], np.int64) - a["in_zero_point"]
    axis = None if a["axis"] is None else a["axis"] % np.ndim(acc)
    return [requantize_array(acc, v[1], a["out_zero_point"], lo, hi, axis)]


_REQUANT_ATTRS = {
    "out_zero_point": Attr("int", 0),
    "dtype": Attr("str", "int8"),
    "out_min": Attr("int", None),
    "out_max": Attr("int", None),
}

register_op(
    "requantize",
    ["x", "multiplier"],
    _requantize_infer,
    attrs={"in_zero_point": Attr("int", 0), "axis": Attr("int", None), **_REQUANT_ATTRS},
    traits=[Trait.ELEMENTWISE, Trait.INJECTIVE],
    fold=_requantize_fold,
    doc="clamp(round((x - in_zero_point) * multiplier) + out_zero_point, out_min, out_max)",
)


# ----- integer kernels --------------------------------------------------------------------------
def _epilogue_types(node: Node, channels: int, op: str) -> str:
    """Check bias and multiplier; returns the output dtype."""
    dtype = node.attrs["dtype"]
    if dtype not in _OUT_TYPES:
        raise IRError(f"{op}: output type {dtype} is not one of {', '.join(_OUT_TYPES)}")
    bias, mult = node.input(2), node.input(3)
    if bias is not None and (bias.dtype != "int32" or bias.type.size != channels):
        raise IRError(f"{op}: bias must be int32 with {channels} elements, got {bias.type}")
    if mult is None:
        if dtype != "int32":
            raise IRError(f"{op}: output {dtype} needs a multiplier")
    else:
        if mult.dtype != "float32" or mult.type.size not in (1, channels):
            raise IRError(f"{op}: multiplier must be float32 with 1 or {channels} elements, got {mult.type}")
        if dtype == "int32":
            raise IRError(f"{op}: an int32 output takes no multiplier")
    if dtype != "float32" and dtype != "int32":
        _clamp_bounds(node)
    return dtype


def _check_int_operands(node: Node, op: str) -> None:
    x, w = in_type(node, 0), in_type(node, 1)
    if x.dtype not in _DATA_TYPES or w.dtype not in _DATA_TYPES:
        raise IRError(f"{op}: operands must be int8, uint8 or int16, got {x.dtype} and {w.dtype}")
    lo, hi = INT_RANGE[x.dtype]
    if not lo <= node.attrs["data_zero_point"] <= hi:
        raise IRError(f"{op}: data zero point {node.attrs['data_zero_point']} is outside {x.dtype}")


def _qconv_infer(node: Node):
    _check_int_operands(node, "qconv")
    g = conv_geometry(node)
    dtype = _epilogue_types(node, g["O"], "qconv")
    out_layout = layout_of(node.attrs["out_layout"] or g["layout"].name)
    dims = {"N": g["N"], "C": g["O"], **dict(zip(g["spatial"], g["out_sizes"]))}
    t = in_type(node, 0)
    layout = t.layout if (node.attrs["layout"] is None and node.attrs["out_layout"] is None) else out_layout.name
    return [TensorType(dtype, out_layout.physical_shape(dims), layout)]


def _finish(acc: np.ndarray, node: Node, mult, channel_axis: int) -> np.ndarray:
    dtype = node.attrs["dtype"]
    if dtype == "int32":
        return acc
    if dtype == "float32":
        m = np.asarray(mult, np.float32)
        shape = [1] * acc.ndim
        if m.size > 1:
            shape[channel_axis] = m.size
        return acc.astype(np.float32) * m.reshape(shape if m.size > 1 else ())
    lo, hi = _clamp_bounds(node)
    return requantize_array(acc, mult, node.attrs["out_zero_point"], lo, hi, channel_axis)


def qconv_reference(x, w, bias, *, strides, pads, dilations, group, data_zero_point) -> np.ndarray:
    """int64 accumulation of a plain-layout (NC..., OI...) integer convolution: bias + sum(x_pad * w)."""
    nsp = x.ndim - 2
    pad_width = [(0, 0), (0, 0)] + [(pads[i], pads[i + nsp]) for i in range(nsp)]
    xp = np.pad(np.asarray(x, np.int64), pad_width, constant_values=data_zero_point)
    w = np.asarray(w, np.int64)
    n, c = x.shape[:2]
    o, cg = w.shape[:2]
    kernel = w.shape[2:]
    out_sp = [(xp.shape[2 + i] - dilations[i] * (kernel[i] - 1) - 1) // strides[i] + 1 for i in range(nsp)]
    out = np.zeros((n, o, *out_sp), np.int64)
    og = o // group
    for k in np.ndindex(*kernel):
        sl = tuple(slice(k[i] * dilations[i], k[i] * dilations[i] + strides[i] * (out_sp[i] - 1) + 1, strides[i])
                   for i in range(nsp))
        patch = xp[(slice(None), slice(None)) + sl]  # (n, c, *out)
        for gi in range(group):
            xs = patch[:, gi * cg:(gi + 1) * cg]
            ws = w[gi * og:(gi + 1) * og][(slice(None), slice(None)) + k]  # (og, cg)
            out[:, gi * og:(gi + 1) * og] += np.einsum("nc...,oc->no...", xs, ws)
    if bias is not None:
        out += np.asarray(bias, np.int64).reshape((1, -1) + (1,) * nsp)
    return out


def _qconv_fold(node: Node, v):
    a = node.attrs
    if any(a[k] is not None for k in ("layout", "kernel_layout", "out_layout")):
        return None
    nsp = v[0].ndim - 2
    acc = qconv_reference(v[0], v[1], v[2], strides=a["strides"] or (1,) * nsp, pads=a["pads"] or (0,) * (2 * nsp),
                          dilations=a["dilations"] or (1,) * nsp, group=a["group"],
                          data_zero_point=a["data_zero_point"])
    return [_finish(acc, node, v[3], 1)]


_KERNEL_ATTRS = {"data_zero_point": Attr("int", 0), **_REQUANT_ATTRS}
_KERNEL_ATTRS["dtype"] = Attr("str", "int32")

register_op(
    "qconv",
    ["data", "weight", "bias?", "multiplier?"],
    _qconv_infer,
    attrs={
        "strides": Attr("ints", None), "pads": Attr("ints", None), "dilations": Attr("ints", None),
        "group": Attr("int", 1), "layout": Attr("str", None), "kernel_layout": Attr("str", None),
        "out_layout": Attr("str", None), **_KERNEL_ATTRS,
    },
    traits=[Trait.ANCHOR, Trait.LAYOUT_SENSITIVE],
    fold=_qconv_fold,
    doc="integer convolution: int32 bias + sum(pad(data, data_zero_point) * weight), then the epilogue",
)


def _qdense_infer(node: Node):
    _check_int_operands(node, "qdense")
    x, w = in_type(node, 0), in_type(node, 1)
    if w.rank == 2:
        k, n = w.shape
    elif w.rank == 3:
        k, n = w.shape[1], w.shape[0] * w.shape[2]
    elif w.rank == 4:
        k, n = w.shape[1] * w.shape[3], w.shape[0] * w.shape[2]
    else:
        raise IRError(f"qdense: weight must be [K, N] or packed (N/b, K, b) or (N/b, K/4, b, 4), got {w.shape}")
    if x.rank < 1 or x.shape[-1] != k:
        raise IRError(f"qdense: input {x.shape} does not match weight {w.shape}")
    dtype = _epilogue_types(node, n, "qdense")
    return [TensorType(dtype, x.shape[:-1] + (n,))]


def _qdense_fold(node: Node, v):
    w = np.asarray(v[1], np.int64)
    if w.ndim == 3:
        w = w.transpose(1, 0, 2).reshape(w.shape[1], -1)
    elif w.ndim == 4:
        w = w.transpose(1, 3, 0, 2).reshape(w.shape[1] * w.shape[3], -1)
    acc = np.asarray(v[0], np.int64) @ w
    if v[2] is not None:
        acc = acc + np.asarray(v[2], np.int64).reshape(-1)
    return [_finish(acc, node, v[3], acc.ndim - 1)]


register_op(
    "qdense",
    ["data", "weight", "bias?", "multiplier?"],
    _qdense_infer,
    attrs=dict(_KERNEL_ATTRS),
    traits=[Trait.ANCHOR],
    fold=_qdense_fold,
    doc="integer data[..., K] @ W: int32 bias + sum(data * W), then the epilogue; W is [K, N], "
        "packed (N/b, K, b) or packed in groups of four rows (N/b, K/4, b, 4)",
)


# ----- elementwise on quantized tensors ------------------------------------------------------------
def _qadd_infer(node: Node):
    a, b = in_type(node, 0), in_type(node, 1)
    for t in (a, b):
        if t.dtype not in _DATA_TYPES:
            raise IRError(f"qadd: operands must be int8, uint8 or int16, got {t.dtype}")
    _clamp_bounds(node)
    shape = broadcast_shapes(a.shape, b.shape, op="qadd")
    layouts = {t.layout for t in (a, b) if t.rank == len(shape)}
    layout = layouts.pop() if len(layouts) == 1 else None
    at = node.attrs
    quant = QuantParams((float(np.float32(at["scale"])),), (at["out_zero_point"],))
    return [TensorType(node.attrs["dtype"], shape, layout, quant)]


def qadd_array(a, b, attrs: dict, lo: int, hi: int) -> np.ndarray:
    f32 = np.float32
    ra = (np.asarray(a, np.int32) - attrs["a_zero_point"]).astype(f32) * f32(attrs["a_scale"])
    rb = (np.asarray(b, np.int32) - attrs["b_zero_point"]).astype(f32) * f32(attrs["b_scale"])
    v = np.rint((ra + rb) / f32(attrs["scale"])) + f32(attrs["out_zero_point"])
    return np.clip(v, lo, hi)


register_op(
    "qadd",
    ["a", "b"],
    _qadd_infer,
    attrs={"a_scale": Attr("float"), "a_zero_point": Attr("int", 0), "b_scale": Attr("float"),
           "b_zero_point": Attr("int", 0), "scale": Attr("float"), **_REQUANT_ATTRS},
    traits=[Trait.ELEMENTWISE, Trait.BROADCAST, Trait.INJECTIVE],
    fold=lambda node, v: [qadd_array(v[0], v[1], node.attrs, *_clamp_bounds(node))],
    doc="quantized add: clamp(round((a_scale*(a - a_zp) + b_scale*(b - b_zp)) / scale) + zp)",
)
