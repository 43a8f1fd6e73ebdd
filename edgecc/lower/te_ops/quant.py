"""Lowerings of the quantized ops: integer multiply-accumulate in int32, requantizing epilogues.

qconv and qdense multiply sign- or zero-extended 8-bit (or 16-bit) integers and sum them in int32
(`qconv`, `qconv2d_NCHWc`, `qdepthwise_conv2d_NCHWc`, `qdense`, `qdense_pack`, `qdense_quads` blocks, which the
schedules in `edgecc.lower.schedules.quant` look for); blocked convolutions and packed dense
layers whose sums stay below 2**24 multiply-add in float32, which is exact there, and convert the
sum to int32. The epilogue (`qepilogue`) adds the int32
bias and, when there is a multiplier, scales the accumulator in float32 and rounds half to even
back to the output integer type, clamped to [out_min, out_max]; a float32 output stops after the
scaling. quantize/dequantize/requantize/qadd are elementwise.
Within `depthwise_in_quads` (the x86 rule for AVX-512 VBMI + VNNI) a depthwise qconv over uint8
data sums window rows as quads of four pixels in int32 (`qdepthwise_conv2d_NCHWc_quads`).
"""

from __future__ import annotations

import contextlib
import contextvars

import numpy as np
from tvm import te, tirx, topi

from edgecc.errors import LoweringError
from edgecc.ir import layout_of
from edgecc.ir.ops.nn import conv_geometry
from edgecc.ir.ops.quant import INT_RANGE

from . import lowering
from .elementwise import broadcast_compute
from .nn import pad_window, per_channel
from .shapes import shape_of, te_shape

ACC = "int32"


def _vectorizable_rounding() -> None:
    """Let TVM's loop vectorizer vectorize `nearbyint` (round half to even), as it does floor and
    round: without the op attribute it turns a vectorized requantizing epilogue into scalar code
    (LLVM's loop vectorizer then made uint8 outputs gathers and byte stores)."""
    import tvm

    if not tvm.ir.Op.get("tirx.nearbyint").get_attr("TVectorizable"):
        tvm.ir.register_op_attr("tirx.nearbyint", "TVectorizable", True)


_vectorizable_rounding()


def _shape(t) -> tuple:
    """A TE tensor's extents: ints, or TIR expressions along symbolic dimensions."""
    return shape_of(t)


def _param(p, idx, axis: int | None):
    """A quantization parameter at output index `idx`: the single value, or the one of idx[axis]."""
    if p is None:
        return None
    rank = len(p.shape)
    if axis is None or _size(p) == 1:
        return p(*([0] * rank))
    return p(idx[axis]) if rank == 1 else per_channel(p, idx[axis])


def _size(t) -> int:
    n = 1
    for d in t.shape:
        n *= int(d)
    return n


def _bounds(node):
    lo, hi = INT_RANGE[node.attrs["dtype"]]
    a = node.attrs
    if a.get("out_min") is not None:
        lo = max(lo, a["out_min"])
    if a.get("out_max") is not None:
        hi = min(hi, a["out_max"])
    return lo, hi


def _saturate(v, node, zero_point: int = 0):
    """round_half_even(v) + zero_point (float32 v), clamped to the node's output range, cast to its dtype."""
    lo, hi = _bounds(node)
    v = tirx.nearbyint(v)
    if zero_point:
        v = v + tirx.const(float(zero_point), "float32")
    return _clamp_cast(v, lo, hi, node.attrs["dtype"])


def _saturate_by_lrint(v, node, zero_point: int = 0):
    """`_saturate` with one conversion: v clamped to [lo - zp, hi - zp] in float32, then
    converted with llvm.lrint (round half to even, the default rounding mode: x86 vcvtps2dq) and
    moved by the zero point in int32. Rounding and clamping to integer bounds commute, and the
    clamp keeps the conversion in range, so the result is `_saturate`'s; it saves the separate
    rounding instruction (vrndscaleps) of each vector."""
    lo, hi = (tirx.const(float(bound - zero_point), "float32") for bound in _bounds(node))
    r = tirx.call_llvm_pure_intrin("int32", "llvm.lrint", tirx.max(tirx.min(v, hi), lo))
    if zero_point:
        r = r + tirx.const(zero_point, "int32")
    return r.astype(node.attrs["dtype"])


def _clamp_cast(v, lo: int, hi: int, dtype: str):
    """float32 v clamped to [lo, hi] and cast to the integer `dtype`, through int32 for narrower
    types (LLVM scalarizes a float32 -> uint8 vector conversion)."""
    v = tirx.max(tirx.min(v, tirx.const(float(hi), "float32")), tirx.const(float(lo), "float32"))
    if dtype in ("int8", "uint8", "int16", "uint16"):
        v = v.astype("int32")
    return v.astype(dtype)


def _param_axis(node, x) -> int | None:
    """The op's `axis` attribute as a non-negative axis of x (None: per-tensor parameters)."""
    axis = node.attrs["axis"]
    return None if axis is None else axis % len(x.shape)


# ----- quantize / dequantize / requantize ---------------------------------------------------------
@lowering("quantize")
def lower_quantize(node, ins):
    x, scale, zp = ins[0], ins[1], ins[2] if len(ins) > 2 else None
    axis = _param_axis(node, x)

    def body(*idx):
        v = x(*idx).astype("float32") / _param(scale, idx, axis).astype("float32")
        v = tirx.nearbyint(v)
        if zp is not None:
            v = v + _param(zp, idx, axis).astype("float32")
        return _clamp_cast(v, *INT_RANGE[node.attrs["dtype"]], node.attrs["dtype"])

    return [te.compute(x.shape, body, name="quantize")]


@lowering("dequantize")
def lower_dequantize(node, ins):
    x, scale, zp = ins[0], ins[1], ins[2] if len(ins) > 2 else None
    axis = _param_axis(node, x)

    def body(*idx):
        v = x(*idx).astype(ACC)
        if zp is not None:
            v = v - _param(zp, idx, axis).astype(ACC)
        return v.astype("float32") * _param(scale, idx, axis).astype("float32")

    return [te.compute(x.shape, body, name="dequantize")]


@lowering("requantize")
def lower_requantize(node, ins):
    x, mult = ins
    a = node.attrs
    axis = _param_axis(node, x)

    def body(*idx):
        v = x(*idx).astype(ACC) - tirx.const(a["in_zero_point"], ACC)
        return _saturate(v.astype("float32") * _param(mult, idx, axis), node, a["out_zero_point"])

    return [te.compute(x.shape, body, name="requantize")]


def _dequantized(v, dtype: str, zero_point: int, scale: float):
    """(v - zero_point) * scale in float32 for v of integer `dtype`, rounded once as
    DequantizeLinear rounds it, also where LLVM fuses the product into the addition that follows
    (a multiply-add skips the product's rounding). While |v - zero_point| has b <= 12 bits, the
    scale splits into its top 24 - b significant bits and the b bits below: both products are
    exact, so their sum is the product rounded once, fused or not. Wider data keeps the plain
    product."""
    diff = (v.astype(ACC) - tirx.const(zero_point, ACC)).astype("float32")
    lo_v, hi_v = INT_RANGE[dtype]
    bits = max(abs(lo_v - zero_point), abs(hi_v - zero_point)).bit_length()
    s = np.float32(scale)
    if bits > 12:
        return diff * tirx.const(float(s), "float32")
    high = (np.array(s).view(np.uint32) & np.uint32(0xFFFFFFFF << bits & 0xFFFFFFFF)).view(np.float32)[()]
    low = np.float32(s - high)
    return diff * tirx.const(float(high), "float32") + diff * tirx.const(float(low), "float32")


@lowering("qadd")
def lower_qadd(node, ins):
    a = node.attrs

    def fn(x, y):
        rx = _dequantized(x, str(ins[0].dtype), a["a_zero_point"], a["a_scale"])
        ry = _dequantized(y, str(ins[1].dtype), a["b_zero_point"], a["b_scale"])
        return _saturate((rx + ry) / tirx.const(float(a["scale"]), "float32"), node, a["out_zero_point"])

    return [broadcast_compute(ins, node.output.type.shape, fn, "qadd")]


# ----- the epilogue shared by qconv and qdense ----------------------------------------------------
def _epilogue(node, acc, bias_at, mult_at, saturate=_saturate):
    """bias add and requantization as one stage after the int32 reduction (`saturate` rounds,
    moves by the zero point and clamps)."""
    dtype = node.attrs["dtype"]

    def body(*idx):
        v = acc(*idx)
        if bias_at is not None:
            v = v + bias_at(idx)
        if dtype == "int32":
            return v
        v = v.astype("float32") * mult_at(idx)
        if dtype == "float32":
            return v
        return saturate(v, node, node.attrs["out_zero_point"])

    return te.compute(acc.shape, body, name="qepilogue")


def _mult_at(mult, channel):
    """idx -> the multiplier of the output channel `channel(idx)`."""
    if mult is None:
        return None
    if _size(mult) == 1:
        return lambda idx: mult(*([0] * len(mult.shape)))
    return lambda idx: per_channel(mult, channel(idx))


# ----- qconv ----------------------------------------------------------------------------------------
@lowering("qconv")
def lower_qconv(node, ins):
    data, weight = ins[0], ins[1]
    bias = ins[2] if len(ins) > 2 else None
    mult = ins[3] if len(ins) > 3 else None
    layout = node.attrs["layout"]
    if layout is not None and layout_of(layout).is_blocked:
        return _lower_blocked_qconv(node, data, weight, bias, mult)
    if layout is not None or node.attrs["kernel_layout"] is not None or node.attrs["out_layout"] is not None:
        raise LoweringError(f"qconv {node.name}: layout {layout} is not supported (plain NC... or NCHW{{b}}c)")
    g = conv_geometry(node)
    nsp = len(g["kernel"])
    zp = tirx.const(node.attrs["data_zero_point"], str(data.dtype))
    padded = pad_window(data, [0, 0, *g["pads"][:nsp]], [0, 0, *g["pads"][nsp:]], zp)
    cin_g, cout_g = g["C"] // g["group"], g["O"] // g["group"]
    rc = te.reduce_axis((0, cin_g), name="rc")
    rk = [te.reduce_axis((0, k), name=f"rk{i}") for i, k in enumerate(g["kernel"])]
    grouped = g["group"] > 1
    out_shape = te_shape(node.output.type.shape)

    def body(n, o, *ys):
        c = tirx.floordiv(o, cout_g) * cin_g + rc if grouped else rc
        pos = [y * s + r * d for y, r, s, d in zip(ys, rk, g["strides"], g["dilations"])]
        return te.sum(padded(n, c, *pos).astype(ACC) * weight(o, rc, *rk).astype(ACC), axis=[rc, *rk])

    acc = te.compute(tuple(out_shape), body, name="qconv")
    bias_at = None if bias is None else (lambda idx: per_channel(bias, idx[1]))
    return [_epilogue(node, acc, bias_at, _mult_at(mult, lambda idx: idx[1]))]


def _lower_blocked_qconv(node, data, weight, bias, mult):
    """qconv in NCHW{b}c with weights OIHW{ib}i{ob}o, OIHW{ib/2}i{ob}o2i (pairs for vpmaddwd),
    OIHW{ib/4}i{ob}o4i (quads for vpdpbusd) or OIHW1i{b}o (depthwise)."""
    if len(weight.shape) == 7 and int(weight.shape[6]) == 4:
        return _lower_quad_qconv(node, data, weight, bias, mult)
    a = node.attrs
    n, icc, h, w, ib = _shape(data)
    pairs = len(weight.shape) == 7  # OIHW{ib/2}i{ob}o2i: input channels in pairs innermost
    occ, _, kh, kw, wib, ob = _shape(weight)[:6]
    sh, sw = a["strides"] or (1, 1)
    dh, dw = a["dilations"] or (1, 1)
    top, left, bottom, right = a["pads"] or (0, 0, 0, 0)
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (w + left + right - dw * (kw - 1) - 1) // sw + 1
    zp = tirx.const(a["data_zero_point"], str(data.dtype))
    depthwise = a["group"] > 1
    dtype = _sum_dtype(data, weight, kh * kw if depthwise else icc * ib * kh * kw)
    padded = data
    if dtype == "float32" and not (pairs or depthwise):  # converted once, not at each of its uses
        # (a depthwise window uses each value a few times only: a float copy costs it more)
        padded = _padded_float(data, (top, left, bottom, right), a["data_zero_point"])
    elif top or left or bottom or right:
        padded = topi.nn.pad(data, (0, 0, top, left, 0), (0, 0, bottom, right, 0), pad_value=zp, name="pad")
    ry = te.reduce_axis((0, kh), name="ry")
    rx = te.reduce_axis((0, kw), name="rx")
    if depthwise:
        if wib != 1 or a["group"] != icc * ib:
            raise LoweringError(f"qconv {node.name}: blocked grouped convolutions must be depthwise")
        if _QUAD_DEPTHWISE.get() and quad_depthwise_fits(node):
            return [_lower_quad_depthwise(node, data, weight, bias, mult, (oh, ow))]
        acc = _depthwise_sum(padded, weight, (oh, ow, ob), (sh, sw), (dh, dw), (ry, rx), dtype)
    elif pairs:
        rc = te.reduce_axis((0, icc), name="rc")
        rp = te.reduce_axis((0, ib // 2), name="rp")
        rj = te.reduce_axis((0, 2), name="rj")
        acc = te.compute(
            (n, occ, oh, ow, ob),
            lambda b, oc, y, x, o: te.sum(
                padded[b, rc, y * sh + ry * dh, x * sw + rx * dw, rp * 2 + rj].astype(ACC)
                * weight[oc, rc, ry, rx, rp, o, rj].astype(ACC), axis=[rc, ry, rx, rp, rj]),
            name="qconv2d_NCHWc_pairs",
        )
    else:
        rc = te.reduce_axis((0, icc), name="rc")
        ri = te.reduce_axis((0, ib), name="ri")
        acc = _as_int32(te.compute(
            (n, occ, oh, ow, ob),
            lambda b, oc, y, x, o: te.sum(
                padded[b, rc, y * sh + ry * dh, x * sw + rx * dw, ri].astype(dtype)
                * weight[oc, rc, ry, rx, ri, o].astype(dtype), axis=[rc, ry, rx, ri]),
            name="qconv2d_NCHWc",
        ))
    return [_blocked_epilogue(node, acc, ob, bias, mult)]


#: float32 holds every integer up to 2**24 exactly
FLOAT_EXACT = 1 << 24


def _sum_dtype(data, weight, terms: int) -> str:
    """float32 when sums of `terms` products of data and weight values stay below 2**24 in
    magnitude (every partial sum is then an exact float32 integer and the product a vector FMA),
    else int32."""
    largest = max(abs(v) for v in INT_RANGE[str(data.dtype)]) * max(abs(v) for v in INT_RANGE[str(weight.dtype)])
    return "float32" if terms * largest < FLOAT_EXACT else ACC


def _as_int32(acc):
    """The accumulator as int32 (a float32 one holds exact integers)."""
    if str(acc.dtype) == ACC:
        return acc
    return te.compute(acc.shape, lambda *i: acc(*i).astype(ACC), name="accumulator_int32")


def _depthwise_sum(padded, weight, out, strides, dilations, window, dtype: str):
    """Depthwise NCHW{b}c window sums (`qdepthwise_conv2d_NCHWc`) as int32, multiply-added in
    `dtype` (float32 where that is exact, `_sum_dtype`)."""
    n, icc = _shape(padded)[:2]
    oh, ow, ob = out
    (sh, sw), (dh, dw), (ry, rx) = strides, dilations, window
    acc = te.compute(
        (n, icc, oh, ow, ob),
        lambda b, c, y, x, j: te.sum(
            padded[b, c, y * sh + ry * dh, x * sw + rx * dw, j].astype(dtype)
            * weight[c, 0, ry, rx, 0, j].astype(dtype), axis=[ry, rx]),
        name="qdepthwise_conv2d_NCHWc",
    )
    return _as_int32(acc)


#: whether blocked depthwise qconvs are lowered as sums of quads (`depthwise_in_quads`)
_QUAD_DEPTHWISE = contextvars.ContextVar("quad_depthwise", default=False)
#: taps of a window row one quad holds
QUAD = 4


@contextlib.contextmanager
def depthwise_in_quads():
    """Within this context, blocked depthwise qconvs that `quad_depthwise_fits` lower as sums of
    quads of a window row (`_lower_quad_depthwise`), the form of a four-product uint8 x int8 dot
    product; the same integers, summed in int32."""
    token = _QUAD_DEPTHWISE.set(True)
    try:
        yield
    finally:
        _QUAD_DEPTHWISE.reset(token)


def quad_depthwise_fits(node) -> bool:
    """Whether a blocked depthwise qconv reads uint8 data and int8 OIHW1i{b}o weights with window
    rows of at most four taps and no dilation (one quad per window row)."""
    data, weight = (v.type for v in node.inputs[:2])
    return (data.dtype == "uint8" and weight.dtype == "int8" and weight.rank == 6 and int(weight.shape[3]) <= QUAD
            and tuple(node.attrs["dilations"] or (1, 1)) == (1, 1))


def _lower_quad_depthwise(node, data, weight, bias, mult, out):
    """A depthwise qconv as int32 sums over window rows of quad products: the taps x*s .. x*s+3
    of a row (`qdepthwise_conv2d_NCHWc_quads`) times each channel's weights of that row as
    (C/b, kh, 4, b) quads whose taps past the window are 0 (`weight_quads`). The padded input
    (`pad`, uint8, the zero point around it) is wide enough for every quad, so a quad is four
    consecutive pixels: what one byte permutation turns into the operand of vpdpbusd. The
    epilogue converts with llvm.lrint (`_saturate_by_lrint`): this form is built for x86 only."""
    a = node.attrs
    n, icc, _, w, b = _shape(data)
    kh, kw = int(weight.shape[2]), int(weight.shape[3])
    sh, sw = a["strides"] or (1, 1)
    top, left, bottom, right = a["pads"] or (0, 0, 0, 0)
    oh, ow = out
    right = max(right, (ow - 1) * sw + QUAD - w - left)
    padded = _padded_uint8(data, (top, left, bottom, right), a["data_zero_point"], shift=False)
    zero = tirx.const(0, "int8")
    quads = te.compute((icc, kh, QUAD, b), lambda c, y, q, j: tirx.if_then_else(
        q < kw, weight[c, 0, y, tirx.min(q, kw - 1), 0, j], zero), name="weight_quads")
    ry, rq = te.reduce_axis((0, kh), name="ry"), te.reduce_axis((0, QUAD), name="rq")
    acc = te.compute(
        (n, icc, oh, ow, b),
        lambda i, c, y, x, j: te.sum(padded[i, c, y * sh + ry, x * sw + rq, j].astype(ACC)
                                     * quads[c, ry, rq, j].astype(ACC), axis=[ry, rq]),
        name="qdepthwise_conv2d_NCHWc_quads",
    )
    return _blocked_epilogue(node, acc, b, bias, mult, saturate=_saturate_by_lrint)


def _blocked_epilogue(node, acc, ob: int, bias, mult, offset=None, saturate=_saturate):
    """The epilogue of an NCHW{ob}c accumulator; `offset` [O/ob, ob] is subtracted with the bias."""
    channel = lambda idx: idx[1] * ob + idx[4]  # noqa: E731

    def blocked(p):
        if p is None:
            return None
        if len(p.shape) == 5:
            return lambda idx: p[0, idx[1], 0, 0, idx[4]]
        return lambda idx: per_channel(p, channel(idx))

    mult_at = None
    if mult is not None:
        mult_at = (lambda idx: mult(*([0] * len(mult.shape)))) if _size(mult) == 1 else blocked(mult)
    bias_at = blocked(bias)
    if offset is not None:
        with_bias = bias_at
        bias_at = lambda idx: (0 if with_bias is None else with_bias(idx)) - offset[idx[1], idx[4]]  # noqa: E731
    return _epilogue(node, acc, bias_at, mult_at, saturate)


#: what int8 data is moved by to become uint8 for u8 x s8 dot products (vpdpbusd)
UINT8_OFFSET = 128


def _lower_quad_qconv(node, data, weight, bias, mult):
    """qconv with OIHW{ib/4}i{ob}o4i weights: uint8 data x int8 weights in groups of four input
    channels (`qconv2d_NCHWc_quads`, x86 vpdpbusd).

    int8 data is read as uint8 x + 128 (stage `pad`, together with the zero-point padding);
    the extra 128 x (sum of each output channel's weights) is computed in the kernel as a product
    of the same shape (`weight_offset`, uint8 128s from `data_offset` times the weights) and
    subtracted in the epilogue, so the result is exactly the int8 convolution's."""
    a = node.attrs
    n, icc, h, w, ib = _shape(data)
    occ, _, kh, kw, quads, ob, _ = _shape(weight)
    sh, sw = a["strides"] or (1, 1)
    dh, dw = a["dilations"] or (1, 1)
    top, left, bottom, right = a["pads"] or (0, 0, 0, 0)
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (w + left + right - dw * (kw - 1) - 1) // sw + 1
    shift = str(data.dtype) == "int8"
    src = data
    if shift or top or left or bottom or right:
        src = _padded_uint8(data, (top, left, bottom, right), a["data_zero_point"], shift)
    red = [te.reduce_axis((0, e), name=nm) for e, nm in ((icc, "rc"), (kh, "ry"), (kw, "rx"), (quads, "rq"), (4, "rj"))]
    rc, ry, rx, rq, rj = red
    acc = te.compute(
        (n, occ, oh, ow, ob),
        lambda b, oc, y, x, o: te.sum(
            src[b, rc, y * sh + ry * dh, x * sw + rx * dw, rq * 4 + rj].astype(ACC)
            * weight[oc, rc, ry, rx, rq, o, rj].astype(ACC), axis=red),
        name="qconv2d_NCHWc_quads",
    )
    offset = None
    if shift:
        moved = te.compute((4,), lambda j: tirx.const(UINT8_OFFSET, "uint8"), name="data_offset")
        wred = [te.reduce_axis((0, e), name=nm) for e, nm in ((icc, "wc"), (kh, "wy"), (kw, "wx"), (quads, "wq"), (4, "wj"))]
        wc, wy, wx, wq, wj = wred
        offset = te.compute(
            (occ, ob),
            lambda oc, o: te.sum(moved[wj].astype(ACC) * weight[oc, wc, wy, wx, wq, o, wj].astype(ACC), axis=wred),
            name="weight_offset",
        )
    return [_blocked_epilogue(node, acc, ob, bias, mult, offset)]


def _padded_float(data, pads, zero_point: int):
    """NCHW{b}c data padded with its zero point, as float32 (stage `pad`): the float32
    multiply-adds of small sums then read their data like a float convolution."""
    n, c, h, w, b = _shape(data)
    top, left, bottom, right = pads
    fill = tirx.const(float(zero_point), "float32")

    def body(i, j, y, x, k):
        yy, xx = y - top, x - left
        v = data[i, j, yy, xx, k].astype("float32")
        if top or left or bottom or right:
            v = tirx.if_then_else(tirx.all(yy >= 0, yy < h, xx >= 0, xx < w), v, fill)
        return v

    return te.compute((n, c, h + top + bottom, w + left + right, b), body, name="pad")


def _padded_uint8(data, pads, zero_point: int, shift: bool):
    """NCHW{b}c data padded with its zero point and, when `shift`, moved from int8 to uint8."""
    n, c, h, w, b = _shape(data)
    top, left, bottom, right = pads
    fill = tirx.const(zero_point, str(data.dtype))

    def body(i, j, y, x, k):
        yy, xx = y - top, x - left
        v = data[i, j, yy, xx, k]
        if top or left or bottom or right:
            inside = tirx.all(yy >= 0, yy < h, xx >= 0, xx < w)
            v = tirx.if_then_else(inside, v, fill)
        return (v.astype(ACC) + UINT8_OFFSET).astype("uint8") if shift else v

    return te.compute((n, c, h + top + bottom, w + left + right, b), body, name="pad")


# ----- qdense ---------------------------------------------------------------------------------------
@lowering("qdense")
def lower_qdense(node, ins):
    data, weight = ins[0], ins[1]
    bias = ins[2] if len(ins) > 2 else None
    mult = ins[3] if len(ins) > 3 else None
    out_shape = te_shape(node.output.type.shape)
    if len(weight.shape) == 4:
        return [_lower_quad_qdense(node, data, weight, bias, mult)]
    if len(weight.shape) == 3:
        nb, k, b = _shape(weight)
        rk = te.reduce_axis((0, k), name="rk")
        dtype = _sum_dtype(data, weight, k)
        acc = _as_int32(te.compute(
            out_shape,
            lambda *idx: te.sum(data[(*idx[:-1], rk)].astype(dtype)
                                * weight[idx[-1] // b, rk, idx[-1] % b].astype(dtype), axis=rk),
            name="qdense_pack",
        ))
    else:
        k = int(weight.shape[0])
        rk = te.reduce_axis((0, k), name="rk")
        acc = te.compute(
            out_shape,
            lambda *idx: te.sum(data[(*idx[:-1], rk)].astype(ACC) * weight[rk, idx[-1]].astype(ACC), axis=rk),
            name="qdense",
        )
    bias_at = None if bias is None else (lambda idx: per_channel(bias, idx[-1]))
    return [_epilogue(node, acc, bias_at, _mult_at(mult, lambda idx: idx[-1]))]


def _lower_quad_qdense(node, data, weight, bias, mult):
    """qdense with (N/b, K/4, b, 4) weights: uint8 data x int8 weights in groups of four rows
    (`qdense_quads`, x86 vpdpbusd). int8 data is read as uint8 x + 128 (stage `data_uint8`) and
    128 x (sum of each column's weights) (`weight_offset`) is subtracted in the epilogue, as in
    `_lower_quad_qconv`, so the result is exactly the int8 product's."""
    nb, quads, b, _ = _shape(weight)
    out_shape = te_shape(node.output.type.shape)
    shift = str(data.dtype) == "int8"
    src = data
    if shift:
        src = te.compute(_shape(data), lambda *i: (data(*i).astype(ACC) + UINT8_OFFSET).astype("uint8"),
                         name="data_uint8")
    rq, rj = te.reduce_axis((0, quads), name="rq"), te.reduce_axis((0, 4), name="rj")
    acc = te.compute(
        out_shape,
        lambda *idx: te.sum(src[(*idx[:-1], rq * 4 + rj)].astype(ACC)
                            * weight[idx[-1] // b, rq, idx[-1] % b, rj].astype(ACC), axis=[rq, rj]),
        name="qdense_quads",
    )
    offset = None
    if shift:
        moved = te.compute((4,), lambda j: tirx.const(UINT8_OFFSET, "uint8"), name="data_offset")
        wq, wj = te.reduce_axis((0, quads), name="wq"), te.reduce_axis((0, 4), name="wj")
        offset = te.compute(
            (nb, b),
            lambda oc, o: te.sum(moved[wj].astype(ACC) * weight[oc, wq, o, wj].astype(ACC), axis=[wq, wj]),
            name="weight_offset",
        )
    bias_at = None if bias is None else (lambda idx: per_channel(bias, idx[-1]))
    if offset is not None:
        with_bias = bias_at
        bias_at = lambda idx: ((0 if with_bias is None else with_bias(idx))  # noqa: E731
                               - offset[idx[-1] // b, idx[-1] % b])
    return _epilogue(node, acc, bias_at, _mult_at(mult, lambda idx: idx[-1]))
