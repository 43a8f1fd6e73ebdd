"""Converters for quantized ONNX models: QDQ form and operator form.

QDQ form: QuantizeLinear / DequantizeLinear with constant scales and zero points become the IR's
`quantize` / `dequantize` ops, which `lower-qdq` later turns, with the float op between them, into
integer kernels. Operator form becomes integer kernels directly:

    QLinearConv, ConvInteger               -> qconv (int32 accumulation; requantized or int32 out)
    QLinearMatMul, MatMulInteger, QGemm    -> qdense (constant 2-D weights)
    QLinearAdd                             -> qadd
    QLinearGlobalAveragePool, QLinearAveragePool, QLinearConcat, QLinearMul, QLinearSigmoid,
    QLinearLeakyRelu, QLinearSoftmax       -> dequantize, the float op, quantize

(QGemm, QLinearAdd and the last group are ONNX Runtime's com.microsoft ops, which its quantizer
writes.) Where scales or zero points are run-time values, or weights are not constant, the
accumulation still runs on integers (operands widened to int16 with their zero points
subtracted, int32 sums) and the requantization is spelled out in IR ops.
"""

from __future__ import annotations

import numpy as np

from edgecc.ir import quant_arith as qk
from edgecc.ir import static_value
from edgecc.ir.ops.quant import INT_RANGE

from ..onnx import onnx_dtype
from . import converter

MS = "com.microsoft"


def _opt(inputs, i):
    return inputs[i] if len(inputs) > i else None


def _cast(ctx, x, dtype: str):
    return x if x.dtype == dtype else ctx.emit("cast", x, to=dtype)


def _is_float(dtype: str) -> bool:
    return dtype.startswith(("float", "bfloat"))


def _static(value):
    return None if value is None else static_value(value)


def _scalar(value) -> bool:
    return value is None or value.type.size == 1


# ----- QuantizeLinear / DequantizeLinear ----------------------------------------------------------
def _per_axis(ctx, param, x, axis: int, block_size: int = 0):
    """A scale or zero point shaped to broadcast against x: per tensor, per slice along `axis`, or
    per block of `block_size` elements along `axis` (a parameter of x's rank)."""
    rank = x.type.rank
    axis %= max(rank, 1)
    if block_size:
        if param.type.rank != rank:
            raise ctx.fail("blocked quantization parameters must have the input's rank")
        shape = list(param.shape)
        blocks = shape[axis]
        split = shape[:axis + 1] + [1] + shape[axis + 1:]
        value = ctx.emit("reshape", param, shape=tuple(split))
        split[axis + 1] = block_size
        value = ctx.emit("expand", value, shape=tuple(split))
        shape[axis] = blocks * block_size
        value = ctx.emit("reshape", value, shape=tuple(shape))
        if shape[axis] != x.shape[axis]:
            value = ctx.emit("slice", value, starts=(0,), ends=(x.shape[axis],), axes=(axis,))
        return value
    if param.type.rank == 0 or param.type.size == 1:
        return param if param.type.rank == 0 else ctx.emit("reshape", param, shape=())
    if param.type.rank != 1:
        raise ctx.fail("a per-axis quantization parameter must be 1-D")
    shape = [1] * rank
    shape[axis] = param.shape[0]
    return ctx.emit("reshape", param, shape=tuple(shape))


def _ir_params(ctx, x, scale, zero_point, axis: int, block: int):
    """(scale, zero point, axis) for the IR's quantize/dequantize, or None when the parameters
    are run-time values, blocked, or of a type those ops do not take."""
    if block or _static(scale) is None or (zero_point is not None and _static(zero_point) is None):
        return None
    if scale.dtype != "float32":
        return None
    if scale.type.size == 1 and _scalar(zero_point):
        return scale, zero_point, None
    if x.type.rank == 0:
        return None
    if scale.type.rank != 1 or (zero_point is not None and zero_point.type.rank != 1):
        return None
    return scale, zero_point, axis % x.type.rank


@converter("DequantizeLinear", since=10)
def _dequantize_linear(ctx, inputs, attrs):
    x, scale, zero_point = inputs[0], inputs[1], _opt(inputs, 2)
    axis, block = attrs.get("axis", 1), attrs.get("block_size", 0)
    out_dtype = onnx_dtype(attrs["output_dtype"]) if attrs.get("output_dtype") else scale.dtype
    if not _is_float(out_dtype) or x.dtype not in INT_RANGE:
        raise ctx.unsupported(f"dequantizing {x.dtype} to {out_dtype}")
    params = _ir_params(ctx, x, scale, zero_point, axis, block) if out_dtype == "float32" else None
    if params is not None:
        s, z, ax = params
        return ctx.emit("dequantize", x, s, z, axis=ax)
    value = _cast(ctx, x, "int32")
    if zero_point is not None:
        value = ctx.emit("sub", value, _cast(ctx, _per_axis(ctx, zero_point, x, axis, block), "int32"))
    value = ctx.emit("cast", value, to="float32")
    scale = _cast(ctx, _per_axis(ctx, scale, x, axis, block), "float32")
    return _cast(ctx, ctx.emit("mul", value, scale), out_dtype)


def _quantize(ctx, x, scale, zero_point, dtype: str):
    """saturate(round_half_even(x / scale) + zero_point), spelled out in float32 IR ops."""
    lo, hi = INT_RANGE[dtype]
    value = ctx.emit("round", ctx.emit("div", _cast(ctx, x, "float32"), _cast(ctx, scale, "float32")))
    if zero_point is not None:
        value = ctx.emit("add", value, _cast(ctx, zero_point, "float32"))
    return ctx.emit("cast", ctx.emit("clip", value, min=lo, max=hi), to=dtype)


@converter("QuantizeLinear", since=10)
def _quantize_linear(ctx, inputs, attrs):
    x, scale, zero_point = inputs[0], inputs[1], _opt(inputs, 2)
    if attrs.get("precision", 0):
        raise ctx.unsupported("the precision attribute")
    axis, block = attrs.get("axis", 1), attrs.get("block_size", 0)
    if zero_point is not None:
        dtype = zero_point.dtype
    else:
        dtype = onnx_dtype(attrs["output_dtype"]) if attrs.get("output_dtype") else "uint8"
    if dtype not in INT_RANGE or dtype == "int32":
        raise ctx.unsupported(f"quantizing to {dtype}")
    params = _ir_params(ctx, x, scale, zero_point, axis, block) if x.dtype == "float32" else None
    if params is not None:
        s, z, ax = params
        return ctx.emit("quantize", x, s, z, dtype=dtype, axis=ax)
    zp = None if zero_point is None else _per_axis(ctx, zero_point, x, axis, block)
    return _quantize(ctx, x, _per_axis(ctx, scale, x, axis, block), zp, dtype)


@converter("DynamicQuantizeLinear", since=11)
def _dynamic_quantize_linear(ctx, inputs, attrs):
    x = inputs[0]
    zero = ctx.const(np.array(0, np.float32), "zero")
    lo = ctx.emit("minimum", ctx.emit("reduce_min", x, keepdims=0), zero)
    hi = ctx.emit("maximum", ctx.emit("reduce_max", x, keepdims=0), zero)
    span = ctx.emit("where", ctx.emit("equal", hi, lo), ctx.const(np.array(1, np.float32), "one"),
                    ctx.emit("sub", hi, lo))
    scale = ctx.emit("div", span, ctx.const(np.array(255, np.float32), "qrange"))
    zero_point = ctx.emit("clip", ctx.emit("sub", zero, ctx.emit("div", lo, scale)), min=0, max=255)
    zero_point = ctx.emit("cast", ctx.emit("round", zero_point), to="uint8")
    y = _quantize(ctx, x, scale, zero_point, "uint8")
    return [y, scale, zero_point]


# ----- integer operands -------------------------------------------------------------------------------
def _centered(ctx, x, zero_point, axis: int | None = None):
    """x - zero_point as int16 IR ops (exact for 8-bit x): for run-time zero points or weights."""
    value = ctx.emit("cast", x, to="int16")
    if zero_point is None:
        return value
    zp = ctx.emit("cast", zero_point, to="int16")
    if axis is not None and zero_point.type.size > 1:
        shape = [1] * x.type.rank
        shape[axis] = zero_point.type.size
        zp = ctx.emit("reshape", zp, shape=tuple(shape))
    elif zero_point.type.rank:
        zp = ctx.emit("reshape", zp, shape=())
    return ctx.emit("sub", value, zp)


def _zero_point(value) -> int | None:
    """A static per-tensor zero point as an int (0 when absent); None when it is not static."""
    if value is None:
        return 0
    data = _static(value)
    if data is None or data.size != 1:
        return None
    return int(np.asarray(data).reshape(-1)[0])


def _static_weight(w, zero_point, axis: int):
    """Constant integer weights with their (static) zero point removed, or None."""
    data = _static(w)
    if data is None or str(data.dtype) not in ("int8", "uint8"):
        return None
    zp = np.zeros(1, np.int64) if zero_point is None else _static(zero_point)
    if zp is None:
        return None
    try:
        return qk.weight_as_signed(data, np.asarray(zp), axis)
    except ValueError:
        return None


def _operand(ctx, x, zero_point):
    """(data, data zero point attr) for an integer kernel: x itself when its zero point is static,
    else x - zero_point in int16."""
    zp = _zero_point(zero_point)
    if zp is not None and x.dtype in ("int8", "uint8"):
        return x, zp
    return _centered(ctx, x, zero_point), 0


def _requantize_ops(ctx, acc, factor, y_zero, dtype: str):
    """clip(round(acc * factor + y_zero)) in float64 IR ops (run-time scales), as onnx's reference."""
    value = ctx.emit("mul", ctx.emit("cast", acc, to="float64"), _cast(ctx, factor, "float64"))
    if y_zero is not None:
        value = ctx.emit("add", value, _cast(ctx, y_zero, "float64"))
    lo, hi = INT_RANGE[dtype]
    return ctx.emit("cast", ctx.emit("clip", ctx.emit("round", value), min=lo, max=hi), to=dtype)


# ----- matmul -----------------------------------------------------------------------------------------
def _dense(ctx, a, a_zero, b, b_zero, bias=None, epilogue=None):
    """qdense for a constant 2-D b; None when b is not one (or its zero point is not static)."""
    if b.type.rank != 2 or a.type.rank < 1 or a.dtype not in ("int8", "uint8"):
        return None
    w = _static_weight(b, b_zero, 1)
    a_zp = _zero_point(a_zero)
    if w is None or a_zp is None:
        return None
    bias = qk.integer_bias(w, 1, a_zp, bias)
    epilogue = epilogue or {}
    mult = epilogue.pop("multiplier", None)
    return ctx.emit("qdense", a, ctx.const(w, "weight"), None if bias is None else ctx.const(bias, "bias"),
                    None if mult is None else ctx.const(mult, "multiplier"), data_zero_point=a_zp, **epilogue)


@converter("MatMulInteger", since=10)
def _matmul_integer(ctx, inputs, attrs):
    a, b, a_zero, b_zero = inputs[0], inputs[1], _opt(inputs, 2), _opt(inputs, 3)
    if _scalar(a_zero):
        out = _dense(ctx, a, a_zero, b, b_zero, epilogue={"dtype": "int32"})
        if out is not None:
            return out
    if a_zero is not None and a_zero.type.size > 1:  # per-row zero points of A
        a_zero = ctx.emit("reshape", a_zero, shape=(a_zero.type.size, 1))
    b_axis = b.type.rank - 1 if b_zero is not None and b_zero.type.size > 1 else None
    return ctx.emit("matmul", _cast(ctx, _centered(ctx, a, a_zero), "int32"),
                    _cast(ctx, _centered(ctx, b, b_zero, b_axis), "int32"))


def _static_scales(*values) -> list | None:
    arrays = [_static(v) for v in values]
    return None if any(a is None for a in arrays) else arrays


@converter("QLinearMatMul", since=10)
def _qlinear_matmul(ctx, inputs, attrs):
    a, a_scale, a_zero, b, b_scale, b_zero, y_scale, y_zero = inputs[:8]
    dtype = y_zero.dtype if y_zero is not None else a.dtype
    if dtype not in INT_RANGE:
        raise ctx.unsupported(f"quantizing to {dtype}")
    scales = _static_scales(a_scale, b_scale, y_scale)
    if scales is not None and dtype in ("int8", "uint8", "int16") and _scalar(a_scale) and _scalar(y_scale) and _zero_point(y_zero) is not None:
        sa, sb, sy = scales
        out = _dense(ctx, a, a_zero, b, b_zero, epilogue={
            "dtype": dtype, "out_zero_point": _zero_point(y_zero), "multiplier": qk.multiplier(sa, sb, sy)})
        if out is not None:
            return out
    if a_scale.type.size > 1 or b_scale.type.size > 1 or y_scale.type.size > 1:
        raise ctx.unsupported("per-row or per-column scales with run-time values or weights")
    product = ctx.emit("matmul", _cast(ctx, _centered(ctx, a, a_zero), "int32"),
                       _cast(ctx, _centered(ctx, b, b_zero), "int32"))
    factor = ctx.emit("div", ctx.emit("mul", a_scale, b_scale), y_scale)
    return _requantize_ops(ctx, product, factor, y_zero, dtype)


@converter("QGemm", since=1, domain=MS)
def _qgemm(ctx, inputs, attrs):
    a, a_scale, a_zero, b, b_scale, b_zero = inputs[:6]
    c, y_scale, y_zero = _opt(inputs, 6), _opt(inputs, 7), _opt(inputs, 8)
    if attrs.get("transA", 0):
        raise ctx.unsupported("transA")
    alpha = np.float32(attrs.get("alpha", 1.0))
    scales = _static_scales(a_scale, b_scale, *([y_scale] if y_scale is not None else []))
    if scales is None or not _scalar(a_scale):
        raise ctx.unsupported("run-time scales")
    weight, zero = b, b_zero
    if attrs.get("transB", 0):
        data = _static(b)
        if data is None:
            raise ctx.unsupported("transB with run-time weights")
        weight = ctx.const(np.ascontiguousarray(data.T), "weight_t")
    bias = None
    if c is not None:
        bias = _static(c)
        if bias is None or bias.size != b.shape[0 if attrs.get("transB", 0) else 1]:
            raise ctx.unsupported("a bias that is not a constant per-column vector")
    sa, sb = scales[0], scales[1]
    if y_scale is None:
        epilogue = {"dtype": "float32", "multiplier": (qk.multiplier(sa, sb) * alpha).astype(np.float32)}
    else:
        dtype = y_zero.dtype if y_zero is not None else "uint8"
        epilogue = {"dtype": dtype, "out_zero_point": _zero_point(y_zero),
                    "multiplier": (qk.multiplier(sa, sb, scales[2]) * alpha).astype(np.float32)}
    out = _dense(ctx, a, a_zero, weight, zero, bias=bias, epilogue=epilogue)
    if out is None:
        raise ctx.unsupported("run-time weights or zero points")
    return out


# ----- convolution --------------------------------------------------------------------------------------
def _conv_attrs(ctx, x, w, attrs) -> dict:
    from .nn import resolve_pads

    nsp = x.type.rank - 2
    kernel = list(attrs.get("kernel_shape", w.shape[2:]))
    strides = list(attrs.get("strides", [1] * nsp))
    dilations = list(attrs.get("dilations", [1] * nsp))
    pads = resolve_pads(ctx, attrs, x.shape[2:], kernel, strides, dilations)
    return dict(strides=strides, pads=pads, dilations=dilations, group=attrs.get("group", 1))


def _qconv(ctx, x, x_zero, w, w_zero, attrs, bias=None, epilogue=None):
    """qconv; the int32 accumulator when epilogue is None."""
    conv = _conv_attrs(ctx, x, w, attrs)
    epilogue = dict(epilogue or {"dtype": "int32"})
    mult = epilogue.pop("multiplier", None)
    weight = _static_weight(w, w_zero, 0) if w.dtype in ("int8", "uint8") else None
    data, zp = _operand(ctx, x, x_zero)
    if weight is not None:
        bias = qk.integer_bias(weight, 0, zp, bias)
        wv = ctx.const(weight, "weight")
    else:  # run-time weights: centered in int16, zero point folded out of the data instead
        if zp:
            data, zp = _centered(ctx, x, x_zero), 0
        wv = _centered(ctx, w, w_zero, 0)
        bias = None if bias is None else np.asarray(bias, np.int32)
    return ctx.emit("qconv", data, wv, None if bias is None else ctx.const(bias, "bias"),
                    None if mult is None else ctx.const(mult, "multiplier"), data_zero_point=zp, **conv, **epilogue)


@converter("ConvInteger", since=10)
def _conv_integer(ctx, inputs, attrs):
    x, w, x_zero, w_zero = inputs[0], inputs[1], _opt(inputs, 2), _opt(inputs, 3)
    return _qconv(ctx, x, x_zero, w, w_zero, attrs)


@converter("QLinearConv", since=10)
def _qlinear_conv(ctx, inputs, attrs):
    x, x_scale, x_zero, w, w_scale, w_zero, y_scale, y_zero = inputs[:8]
    bias_value = _opt(inputs, 8)
    dtype = y_zero.dtype if y_zero is not None else x.dtype
    bias = _static(bias_value)
    scales = _static_scales(x_scale, w_scale, y_scale)
    static = (scales is not None and _zero_point(y_zero) is not None and (bias_value is None or bias is not None)
              and _static_weight(w, w_zero, 0) is not None and _zero_point(x_zero) is not None)
    if static:
        sx, sw, sy = scales
        return _qconv(ctx, x, x_zero, w, w_zero, attrs, bias=bias, epilogue={
            "dtype": dtype, "out_zero_point": _zero_point(y_zero), "multiplier": qk.multiplier(sx, sw, sy)})
    acc = _qconv(ctx, x, x_zero, w, w_zero, attrs)
    if bias_value is not None:
        shape = (bias_value.shape[0],) + (1,) * (x.type.rank - 2)
        acc = ctx.emit("add", acc, ctx.emit("reshape", _cast(ctx, bias_value, "int32"), shape=shape))
    scale = _cast(ctx, w_scale, "float64")
    if w_scale.type.size > 1:
        scale = ctx.emit("reshape", scale, shape=(w_scale.type.size,) + (1,) * (x.type.rank - 2))
    factor = ctx.emit("div", ctx.emit("mul", _cast(ctx, x_scale, "float64"), scale), _cast(ctx, y_scale, "float64"))
    return _requantize_ops(ctx, acc, factor, y_zero, dtype)


# ----- ONNX Runtime's elementwise and pooling ops -------------------------------------------------------------
@converter("QLinearAdd", since=1, domain=MS)
def _qlinear_add(ctx, inputs, attrs):
    a, a_scale, a_zero, b, b_scale, b_zero, c_scale = inputs[:7]
    c_zero = _opt(inputs, 7)
    scales = _static_scales(a_scale, b_scale, c_scale)
    zps = [_zero_point(z) for z in (a_zero, b_zero, c_zero)]
    dtype = c_zero.dtype if c_zero is not None else a.dtype
    if scales is None or None in zps or any(np.size(s) != 1 for s in scales) or a.dtype != b.dtype:
        return _through_float(ctx, [(a, a_scale, a_zero), (b, b_scale, b_zero)], c_scale, c_zero, "add")
    sa, sb, sc = (float(np.asarray(s).reshape(-1)[0]) for s in scales)
    return ctx.emit("qadd", a, b, a_scale=sa, a_zero_point=zps[0], b_scale=sb, b_zero_point=zps[1], scale=sc,
                    out_zero_point=zps[2], dtype=dtype)


def _dequantized(ctx, x, scale, zero):
    params = _ir_params(ctx, x, scale, zero, 1, 0)
    if params is not None and params[2] is None:
        return ctx.emit("dequantize", x, params[0], params[1])
    value = _cast(ctx, x, "int32")
    if zero is not None:
        value = ctx.emit("sub", value, _cast(ctx, ctx.emit("reshape", zero, shape=()), "int32"))
    return ctx.emit("mul", ctx.emit("cast", value, to="float32"), _cast(ctx, ctx.emit("reshape", scale, shape=()),
                                                                          "float32"))


def _requantized(ctx, value, scale, zero, dtype: str):
    params = _ir_params(ctx, value, scale, zero, 1, 0)
    if params is not None and params[2] is None:
        return ctx.emit("quantize", value, params[0], params[1], dtype=dtype)
    return _quantize(ctx, value, ctx.emit("reshape", scale, shape=()),
                     None if zero is None else ctx.emit("reshape", zero, shape=()), dtype)


def _through_float(ctx, operands, y_scale, y_zero, op_name: str, **op_attrs):
    """dequantize the operands, run the float op, quantize the result."""
    floats = [_dequantized(ctx, x, s, z) for x, s, z in operands]
    result = ctx.emit(op_name, *floats, **op_attrs)
    dtype = y_zero.dtype if y_zero is not None else operands[0][0].dtype
    return _requantized(ctx, result, y_scale, y_zero, dtype)


def _as_float_node(node, onnx_op: str):
    """A copy of a contrib QLinear node that reads as the float op it wraps."""
    import onnx

    proxy = onnx.NodeProto()
    proxy.CopyFrom(node)
    proxy.op_type, proxy.domain = onnx_op, ""
    return proxy


def _float_op(onnx_op: str):
    """The float converter of an ONNX op, called on dequantized operands."""
    def run(ctx, floats, attrs):
        from . import find_converter

        fn, _ = find_converter(onnx_op, "", ctx.opset)
        if fn is None:
            raise ctx.unsupported(f"{onnx_op} has no float converter")
        node = ctx.node
        ctx.node = _as_float_node(node, onnx_op)  # float converters may read the node's op type
        try:
            out = fn(ctx, floats, attrs)
        finally:
            ctx.node = node
        return out[0] if isinstance(out, list) else out

    return run


def _unary_contrib(onnx_op: str, keep=()):
    def convert(ctx, inputs, attrs):
        x, x_scale, x_zero, y_scale = inputs[:4]
        y_zero = _opt(inputs, 4)
        if attrs.get("channels_last", 0):
            raise ctx.unsupported("channels_last")
        value = _float_op(onnx_op)(ctx, [_dequantized(ctx, x, x_scale, x_zero)],
                                   {k: v for k, v in attrs.items() if k in keep})
        return _requantized(ctx, value, y_scale, y_zero, y_zero.dtype if y_zero is not None else x.dtype)

    return convert


_POOL_ATTRS = ("auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides", "dilations")
converter("QLinearGlobalAveragePool", since=1, domain=MS)(_unary_contrib("GlobalAveragePool"))
converter("QLinearAveragePool", since=1, domain=MS)(_unary_contrib("AveragePool", _POOL_ATTRS))
converter("QLinearSigmoid", since=1, domain=MS)(_unary_contrib("Sigmoid"))
converter("QLinearLeakyRelu", since=1, domain=MS)(_unary_contrib("LeakyRelu", ("alpha",)))
converter("QLinearSoftmax", since=1, domain=MS)(_unary_contrib("Softmax", ("axis",)))


@converter("QLinearMul", since=1, domain=MS)
def _qlinear_mul(ctx, inputs, attrs):
    a, a_scale, a_zero, b, b_scale, b_zero, c_scale = inputs[:7]
    return _through_float(ctx, [(a, a_scale, a_zero), (b, b_scale, b_zero)], c_scale, _opt(inputs, 7), "mul")


@converter("QLinearConcat", since=1, domain=MS)
def _qlinear_concat(ctx, inputs, attrs):
    y_scale, y_zero = inputs[0], inputs[1]
    rest = inputs[2:]
    if len(rest) % 3:
        raise ctx.fail("QLinearConcat takes (tensor, scale, zero point) triples")
    operands = [tuple(rest[i:i + 3]) for i in range(0, len(rest), 3)]
    floats = [_dequantized(ctx, x, s, z) for x, s, z in operands]
    axis = attrs["axis"] % operands[0][0].type.rank
    result = ctx.emit("concat", *floats, axis=axis)
    dtype = y_zero.dtype if y_zero is not None else operands[0][0].dtype
    return _requantized(ctx, result, y_scale, y_zero, dtype)

