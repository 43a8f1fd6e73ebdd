"""A region of a quantized edgecc graph -> an int8 TFLite flatbuffer (Vela's input).

Written with the TFLite schema's flatbuffer builders that Vela ships (`ethosu.vela.tflite`), so
no TensorFlow is needed (`flatbuffer.py`). 4-D tensors become NHWC. Quantization is edgecc's,
exactly:
  * a tensor's scale and zero point: `quantization.py`;
  * weights keep their int8 values; per-channel weight scales are chosen so that
    in_scale * w_scale[c] / out_scale equals edgecc's multiplier[c];
  * edgecc's int32 bias holds the data zero point's product with the weight sums (padding is
    filled with the zero point); TFLite's bias does not, so it is added back;
  * an output clamp is TFLite's fused activation where one gives the same integer bounds for
    the output's scale and zero point (`support.tflite_activation`), else MAXIMUM/MINIMUM with
    constants after the operator;
  * a max pooling's explicit pads are a PAD before a VALID pooling (exact where the data never
    lies below its zero point, which PAD fills in: `support.pads_with_zero_point_exactly`), and
    so are an average pooling's that count the padding (as zeros: the zero point).
"""

from __future__ import annotations

import numpy as np

from ..backend import RegionRejected
from .flatbuffer import FlatbufferWriter, nhwc
from .quantization import tensor_quantization
from .support import clamp_bounds, flattens_into_dense, padding_mode, pads_counted_in_average, tflite_activation

__all__ = ["region_to_tflite"]


def _activation_output(w: FlatbufferWriter, node) -> tuple[int, int]:
    """(TFLite's fused activation, the tensor the operator writes) for `node`'s output clamp: the
    output itself when a fused activation is the clamp, else a temporary that `_clamp` bounds."""
    from ethosu.vela.tflite.ActivationFunctionType import ActivationFunctionType

    out = node.outputs[0]
    named = tflite_activation(clamp_bounds(node), *w.quant[id(out)])
    if named is not None:
        return getattr(ActivationFunctionType, named), w.value(out)
    scale, zp = w.quant[id(out)]
    return ActivationFunctionType.NONE, w.tensor(f"{node.name}.unclamped", nhwc(out.type.shape), "int8",
                                                 ([scale], [zp], 0))


def _clamp(w: FlatbufferWriter, node, written: int) -> None:
    """After an operator that wrote `written`: MAXIMUM and MINIMUM with int8 constants (of the
    output's quantization) bound it to the node's clamp, into the node's output."""
    from ethosu.vela.tflite import BuiltinOperator as B

    out = node.outputs[0]
    if written == w.value(out):
        return
    quant = ([w.quant[id(out)][0]], [w.quant[id(out)][1]], 0)
    lo, hi = clamp_bounds(node)
    steps = [(B.BuiltinOperator.MAXIMUM, lo, -128), (B.BuiltinOperator.MINIMUM, hi, 127)]
    steps = [(code, bound) for code, bound, dtype_bound in steps if bound != dtype_bound]
    for k, (code, bound) in enumerate(steps):
        const = w.tensor(f"{node.name}.clamp{k}", (1,), "int8", quant, np.asarray([bound], np.int8))
        last = k == len(steps) - 1
        result = w.value(out) if last else w.tensor(f"{node.name}.clamped{k}", nhwc(out.type.shape), "int8", quant)
        w.operator(code, [written, const], [result])
        written = result


def _weight_params(w: FlatbufferWriter, node, channels: int):
    """Per-channel weight scales giving edgecc's multipliers, and TFLite's bias (int32)."""
    x_scale, x_zp = w.quant[id(node.inputs[0])]
    y_scale, _ = w.quant[id(node.outputs[0])]
    mult = np.broadcast_to(np.asarray(node.inputs[3].const, np.float64).reshape(-1), (channels,))
    w_scales = mult * y_scale / x_scale
    if not np.all(w_scales > 0):
        raise RegionRejected(f"{node.name}: a multiplier is not positive")
    weights = np.asarray(node.inputs[1].const, np.int64)
    sums = weights.reshape(weights.shape[0], -1).sum(1) if node.op == "qconv" else weights.sum(0)
    bias = np.zeros(channels, np.int64) if node.inputs[2] is None else np.asarray(node.inputs[2].const, np.int64)
    bias = bias.reshape(-1) + node.attrs["data_zero_point"] * sums
    if np.abs(bias).max(initial=0) >= 2**31:
        raise RegionRejected(f"{node.name}: bias out of int32 range")
    return w_scales, bias.astype(np.int32), x_scale


def _conv(w: FlatbufferWriter, node) -> None:
    from ethosu.vela.tflite import BuiltinOperator as B, BuiltinOptions as O, Conv2DOptions, DepthwiseConv2DOptions
    from ethosu.vela.tflite.Padding import Padding

    a = node.attrs
    weights = np.asarray(node.inputs[1].const, np.int8)
    out_c, kernel = weights.shape[0], weights.shape[2:]
    depthwise = a["group"] != 1
    w_scales, bias, x_scale = _weight_params(w, node, out_c)
    strides, dilations = a.get("strides") or (1, 1), a.get("dilations") or (1, 1)
    pads = a.get("pads") or (0,) * 4
    pad = padding_mode(node.inputs[0].type.shape[2:], kernel, strides, dilations, pads)
    data_in = w.value(node.inputs[0])
    if pad is None:  # explicit pads: a PAD (filling the zero point, as edgecc does) before a VALID conv
        data_in, pad = _explicit_pad(w, node, pads), "VALID"
    if depthwise:
        data, axis = weights[:, 0].transpose(1, 2, 0)[None], 3
    else:
        data, axis = weights.transpose(0, 2, 3, 1), 0
    wt = w.tensor(f"{node.name}.weight", data.shape, "int8", (w_scales, [0] * out_c, axis), data)
    bt = w.tensor(f"{node.name}.bias", (out_c,), "int32", (x_scale * w_scales, [0] * out_c, 0), bias)
    activation, written = _activation_output(w, node)
    inputs, outputs = [data_in, wt, bt], [written]
    opts_mod = DepthwiseConv2DOptions if depthwise else Conv2DOptions
    opts_mod.Start(w.fb)
    opts_mod.AddPadding(w.fb, getattr(Padding, pad))
    opts_mod.AddStrideH(w.fb, strides[0])
    opts_mod.AddStrideW(w.fb, strides[1])
    opts_mod.AddDilationHFactor(w.fb, dilations[0])
    opts_mod.AddDilationWFactor(w.fb, dilations[1])
    opts_mod.AddFusedActivationFunction(w.fb, activation)
    if depthwise:
        DepthwiseConv2DOptions.AddDepthMultiplier(w.fb, 1)
    options = opts_mod.End(w.fb)
    code = B.BuiltinOperator.DEPTHWISE_CONV_2D if depthwise else B.BuiltinOperator.CONV_2D
    kind = O.BuiltinOptions.DepthwiseConv2DOptions if depthwise else O.BuiltinOptions.Conv2DOptions
    w.operator(code, inputs, outputs, kind, options)
    _clamp(w, node, written)


def _explicit_pad(w: FlatbufferWriter, node, pads) -> int:
    """A PAD of the convolution's input by `pads` (ONNX order); returns the padded tensor."""
    from ethosu.vela.tflite import BuiltinOperator as B, BuiltinOptions as O, PadOptions

    x = node.inputs[0]
    n, c, h, wd = x.type.shape
    top, left, bottom, right = pads
    paddings = np.asarray([[0, 0], [top, bottom], [left, right], [0, 0]], np.int32)
    pt = w.tensor(f"{node.name}.paddings", (4, 2), "int32", None, paddings)
    scale, zp = w.quant[id(x)]
    out = w.tensor(f"{node.name}.padded", (n, h + top + bottom, wd + left + right, c), "int8", ([scale], [zp], 0))
    PadOptions.Start(w.fb)
    options = PadOptions.End(w.fb)
    w.operator(B.BuiltinOperator.PAD, [w.value(x), pt], [out], O.BuiltinOptions.PadOptions, options)
    return out


def _dense(w: FlatbufferWriter, node) -> None:
    from ethosu.vela.tflite import BuiltinOperator as B, BuiltinOptions as O, FullyConnectedOptions as F

    weights = np.asarray(node.inputs[1].const, np.int8).T.copy()  # [N, K]
    flatten = node.inputs[0].producer
    if flatten is not None and flatten.op == "reshape" and flattens_into_dense(flatten):
        # the input is NHWC data flattened: take the weight rows in that order (NCHW index of each)
        _, c, h, wd = flatten.inputs[0].type.shape
        weights = weights[:, np.arange(c * h * wd).reshape(c, h, wd).transpose(1, 2, 0).reshape(-1)].copy()
    n = weights.shape[0]
    w_scales, bias, x_scale = _weight_params(w, node, n)
    wt = w.tensor(f"{node.name}.weight", weights.shape, "int8", (w_scales, [0] * n, 0), weights)
    bt = w.tensor(f"{node.name}.bias", (n,), "int32", (x_scale * w_scales, [0] * n, 0), bias)
    activation, written = _activation_output(w, node)
    F.Start(w.fb)
    F.AddFusedActivationFunction(w.fb, activation)
    options = F.End(w.fb)
    w.operator(B.BuiltinOperator.FULLY_CONNECTED, [w.value(node.inputs[0]), wt, bt], [written],
               O.BuiltinOptions.FullyConnectedOptions, options)
    _clamp(w, node, written)


def _add(w: FlatbufferWriter, node) -> None:
    from ethosu.vela.tflite import AddOptions, BuiltinOperator as B, BuiltinOptions as O

    activation, written = _activation_output(w, node)
    AddOptions.Start(w.fb)
    AddOptions.AddFusedActivationFunction(w.fb, activation)
    options = AddOptions.End(w.fb)
    w.operator(B.BuiltinOperator.ADD, [w.value(node.inputs[0]), w.value(node.inputs[1])], [written],
               O.BuiltinOptions.AddOptions, options)
    _clamp(w, node, written)


def _max_pool(w: FlatbufferWriter, node) -> None:
    _pool(w, node, "MAX_POOL_2D")


def _pool(w: FlatbufferWriter, node, operator: str) -> None:
    from ethosu.vela.tflite import BuiltinOperator as B, BuiltinOptions as O, Pool2DOptions as P
    from ethosu.vela.tflite.Padding import Padding

    a = node.attrs
    kernel, strides = a["kernel_shape"], a.get("strides") or (1, 1)
    pads = a.get("pads") or (0,) * 4
    pad = padding_mode(node.inputs[0].type.shape[2:], kernel, strides, (1, 1), pads)
    data_in = w.value(node.inputs[0])
    if pad is None or pads_counted_in_average(node):  # a PAD filling the zero point before a VALID pooling
        data_in, pad = _explicit_pad(w, node, pads), "VALID"
    P.Start(w.fb)
    P.AddPadding(w.fb, getattr(Padding, pad))
    P.AddStrideH(w.fb, strides[0])
    P.AddStrideW(w.fb, strides[1])
    P.AddFilterHeight(w.fb, kernel[0])
    P.AddFilterWidth(w.fb, kernel[1])
    options = P.End(w.fb)
    w.operator(getattr(B.BuiltinOperator, operator), [data_in], [w.value(node.outputs[0])],
               O.BuiltinOptions.Pool2DOptions, options)


def _reshape(w: FlatbufferWriter, node) -> None:
    from ethosu.vela.tflite import BuiltinOperator as B, BuiltinOptions as O, ReshapeOptions as R

    x = node.inputs[0].type
    if x.rank == 4 and x.shape[2] * x.shape[3] != 1 and x.shape[1] != 1 and not flattens_into_dense(node):
        raise RegionRejected(f"{node.name}: the flatten's dense layers are not in its region (NHWC order differs)")
    shape = nhwc(node.outputs[0].type.shape)
    st = w.tensor(f"{node.name}.shape", (len(shape),), "int32", None, np.asarray(shape, np.int32))
    vec = w._ints(R.StartNewShapeVector, shape)
    R.Start(w.fb)
    R.AddNewShape(w.fb, vec)
    options = R.End(w.fb)
    w.operator(B.BuiltinOperator.RESHAPE, [w.value(node.inputs[0]), st], [w.value(node.outputs[0])],
               O.BuiltinOptions.ReshapeOptions, options)


def _alias(w: FlatbufferWriter, node) -> None:
    """dequantize/quantize around a pooling on int8 data: the int8 tensor stands for both sides."""
    w.index[id(node.outputs[0])] = w.value(node.inputs[0])


def _mean(w: FlatbufferWriter, node) -> None:
    """global_avg_pool on int8 data: MEAN over H and W (NHWC axes 1, 2), keeping the dims."""
    from ethosu.vela.tflite import BuiltinOperator as B, BuiltinOptions as O, ReducerOptions

    axes = w.tensor(f"{node.name}.axes", (2,), "int32", None, np.asarray([1, 2], np.int32))
    ReducerOptions.Start(w.fb)
    ReducerOptions.AddKeepDims(w.fb, True)
    options = ReducerOptions.End(w.fb)
    w.operator(B.BuiltinOperator.MEAN, [w.value(node.inputs[0]), axes], [w.value(node.outputs[0])],
               O.BuiltinOptions.ReducerOptions, options)


def _concat(w: FlatbufferWriter, node) -> None:
    """concat on int8 data: each input requantized to the output's parameters (QUANTIZE) where
    they differ, then CONCATENATION along the axis in NHWC order."""
    from ethosu.vela.tflite import BuiltinOperator as B, BuiltinOptions as O, ConcatenationOptions

    out = node.outputs[0]
    out_quant = w.quant[id(out)]
    inputs = []
    for v in node.inputs:
        tensor = w.value(v)
        if w.quant[id(v)] != out_quant:
            rescaled = w.tensor(f"{v.name}.rescaled", nhwc(v.type.shape), "int8", ([out_quant[0]], [out_quant[1]], 0))
            w.operator(B.BuiltinOperator.QUANTIZE, [tensor], [rescaled])
            tensor = rescaled
        inputs.append(tensor)
    rank = out.type.rank
    axis = node.attrs["axis"] % rank
    if rank == 4:
        axis = {0: 0, 1: 3, 2: 1, 3: 2}[axis]
    ConcatenationOptions.Start(w.fb)
    ConcatenationOptions.AddAxis(w.fb, axis)
    options = ConcatenationOptions.End(w.fb)
    w.operator(B.BuiltinOperator.CONCATENATION, inputs, [w.value(out)], O.BuiltinOptions.ConcatenationOptions, options)


def _requantize(w: FlatbufferWriter, node) -> None:
    """requantize: QUANTIZE from the input's to the output's parameters (scales in the ratio of
    the multiplier), then its clamp as MAXIMUM/MINIMUM."""
    from ethosu.vela.tflite import BuiltinOperator as B

    out = node.outputs[0]
    written = w.value(out)
    if clamp_bounds(node) != (-128, 127):
        scale, zp = w.quant[id(out)]
        written = w.tensor(f"{node.name}.unclamped", nhwc(out.type.shape), "int8", ([scale], [zp], 0))
    w.operator(B.BuiltinOperator.QUANTIZE, [w.value(node.inputs[0])], [written])
    _clamp(w, node, written)


def _clip(w: FlatbufferWriter, node) -> None:
    """clip on int8 data (a ReLU between ops that keep quantization): MAXIMUM/MINIMUM."""
    if clamp_bounds(node) == (-128, 127):
        w.index[id(node.outputs[0])] = w.value(node.inputs[0])
    else:
        _clamp(w, node, w.value(node.inputs[0]))


def _avg_pool(w: FlatbufferWriter, node) -> None:
    _pool(w, node, "AVERAGE_POOL_2D")


_OPS = {"dequantize": _alias, "quantize": _alias, "global_avg_pool": _mean, "avg_pool": _avg_pool, "concat": _concat,
        "qconv": _conv, "qdense": _dense, "qadd": _add, "max_pool": _max_pool, "reshape": _reshape,
        "requantize": _requantize, "clip": _clip}


def region_to_tflite(body, name: str, outer_users=None) -> bytes:
    """The region's body graph as a TFLite model with the same inputs and outputs (4-D as NHWC)."""
    writer = FlatbufferWriter(tensor_quantization(body, outer_users))
    for node in body.nodes:
        _OPS[node.op](writer, node)
    inputs = [writer.value(v) for v in body.inputs]
    outputs = [writer.value(v) for v in body.outputs]
    return writer.finish(inputs, outputs, name)
