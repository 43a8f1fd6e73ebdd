"""A region of a quantized edgecc graph -> an int8 TFLite flatbuffer (Vela's input).

Written with the TFLite schema's flatbuffer builders that Vela ships (`ethosu.vela.tflite`), so
no TensorFlow is needed. 4-D tensors become NHWC. Quantization is edgecc's, exactly:
  * a tensor's scale and zero point come from its quantization parameters, the `qadd` that reads
    or writes it, the `dequantize` that reads it, or, for a convolution's output read only by
    convolutions, 1.0 (only the product in the multiplier matters there);
  * weights keep their int8 values; per-channel weight scales are chosen so that
    in_scale * w_scale[c] / out_scale equals edgecc's multiplier[c];
  * edgecc's int32 bias holds the data zero point's product with the weight sums (padding is
    filled with the zero point); TFLite's bias does not, so it is added back.
"""

from __future__ import annotations

import flatbuffers
import numpy as np

from ..backend import RegionRejected
from .support import _per_tensor_int8, flattens_into_dense, fused_activation, padding_mode

__all__ = ["region_to_tflite", "tensor_quantization"]


def _nhwc(shape):
    return (shape[0], shape[2], shape[3], shape[1]) if len(shape) == 4 else tuple(shape)


def tensor_quantization(body, outer_users=None) -> dict[int, tuple[float, int]]:
    """(scale, zero point) of every int8 value of `body`, keyed by id; RegionRejected when one
    is unknown or two users disagree. `outer_users` maps a body output's id to the outer graph's
    values it stands for (their dequantize consumers know its scale)."""
    known: dict[int, tuple[float | None, int | None]] = {}

    def put(v, scale=None, zp=None):
        s, z = known.get(id(v), (None, None))
        if scale is not None:
            if s is not None and not np.isclose(s, scale, rtol=1e-6):
                raise RegionRejected(f"%{v.name} has two scales ({s} and {scale})")
            s = float(scale)
        if zp is not None:
            if z is not None and z != zp:
                raise RegionRejected(f"%{v.name} has two zero points ({z} and {zp})")
            z = int(zp)
        known[id(v)] = (s, z)

    values = list(body.inputs) + [o for n in body.nodes for o in n.outputs]
    for v in values:
        if v.type.quant is not None and len(v.type.quant.scale) == 1:
            put(v, v.type.quant.scale[0], v.type.quant.zero_point[0])
        for outer in (outer_users or {}).get(id(v), ()):
            for user, index in outer.uses:
                put(v, *_reader_quantization(user, index))
    def propagate():
        for _ in range(len(body.nodes) + 1):  # through ops that keep quantization
            for n in body.nodes:
                a = n.attrs
                if n.op in ("qconv", "qdense"):
                    put(n.inputs[0], zp=a["data_zero_point"])
                    put(n.outputs[0], zp=a["out_zero_point"])
                elif n.op == "qadd":
                    put(n.inputs[0], a["a_scale"], a["a_zero_point"])
                    put(n.inputs[1], a["b_scale"], a["b_zero_point"])
                    put(n.outputs[0], a["scale"], a["out_zero_point"])
                elif n.op in ("dequantize", "quantize"):  # the int8 side of a pooling on int8 data
                    s_z = _per_tensor_int8(n)
                    put(n.inputs[0], *s_z)
                    put(n.outputs[0], *s_z)
                elif n.op in ("max_pool", "reshape"):
                    s_in, z_in = known.get(id(n.inputs[0]), (None, None))
                    s_out, z_out = known.get(id(n.outputs[0]), (None, None))
                    put(n.inputs[0], s_out, z_out)
                    put(n.outputs[0], s_in, z_in)

    propagate()
    # a scale no op fixes: values that only reach convolutions and dense layers (through pooling
    # and reshapes) may take any scale, as only in_scale * w_scale / out_scale matters there
    for v in values:
        outer = (outer_users or {}).get(id(v), ())
        free = all(_scale_free(o) for o in outer) if v.is_graph_output else _scale_free(v)
        if known.get(id(v), (None, None))[0] is None and free:
            put(v, 1.0)
            propagate()
    result = {}
    for v in values:
        s, z = known.get(id(v), (None, None))
        if z is None:
            raise RegionRejected(f"zero point of %{v.name} unknown")
        if s is None:
            raise RegionRejected(f"scale of %{v.name} unknown")
        result[id(v)] = (s, z)
    return result


def _reader_quantization(user, index: int) -> tuple[float | None, int | None]:
    """The (scale, zero point) a reader outside the region gives the value it reads, if any."""
    a = user.attrs
    if user.op == "dequantize" and user.input(1).const is not None:
        zp = user.input(2).const if user.input(2) is not None else 0
        return float(np.asarray(user.input(1).const).reshape(-1)[0]), int(np.asarray(zp).reshape(-1)[0])
    if user.op == "qadd":
        side = "a" if index == 0 else "b"
        return a[f"{side}_scale"], a[f"{side}_zero_point"]
    if user.op in ("qconv", "qdense") and index == 0:
        return None, a["data_zero_point"]
    if user.op in ("max_pool", "reshape"):  # they keep quantization: ask their readers
        for reader, i in user.outputs[0].uses:
            scale, zp = _reader_quantization(reader, i)
            if scale is not None:
                return scale, zp
    return None, None


def _scale_free(value) -> bool:
    """Whether every path from `value` ends in a qconv/qdense input through max_pool/reshape only."""
    if not value.uses or (value.is_graph_output and value.graph is not None and value.graph.parent is None):
        return False
    for user, index in value.uses:
        if user.op in ("qconv", "qdense") and index == 0:
            continue
        if user.op in ("max_pool", "reshape") and _scale_free(user.outputs[0]):
            continue
        return False
    return True


class _Writer:
    """Builds the flatbuffer: tensors and buffers as ops are added, then the model table."""

    def __init__(self, quant: dict[int, tuple[float, int]]):
        from ethosu.vela.tflite import TensorType

        self.quant = quant
        self.fb = flatbuffers.Builder(1 << 16)
        self.tensors: list[int] = []  # offsets of Tensor tables
        self.buffers: list[int] = [self._buffer(b"")]  # buffer 0: empty, by convention
        self.index: dict[int, int] = {}  # value id -> tensor index
        self.opcodes: dict[int, int] = {}  # builtin code -> opcode index
        self.operators: list[int] = []
        self.types = {"int8": TensorType.TensorType.INT8, "int32": TensorType.TensorType.INT32}

    # ----- flatbuffer pieces -------------------------------------------------------------------
    def _vector(self, start, items, prepend):
        start(self.fb, len(items))
        for item in reversed(items):
            prepend(item)
        return self.fb.EndVector()

    def _ints(self, start, items):
        return self._vector(start, [int(i) for i in items], self.fb.PrependInt32)

    def _buffer(self, data: bytes) -> int:
        from ethosu.vela.tflite import Buffer

        vec = self.fb.CreateByteVector(data) if data else None
        Buffer.Start(self.fb)
        if vec is not None:
            Buffer.AddData(self.fb, vec)
        return Buffer.End(self.fb)

    def _quantization(self, scales, zero_points, axis: int) -> int:
        from ethosu.vela.tflite import QuantizationParameters as Q

        s = self._vector(Q.StartScaleVector, [float(x) for x in scales], self.fb.PrependFloat32)
        z = self._vector(Q.StartZeroPointVector, [int(x) for x in zero_points], self.fb.PrependInt64)
        Q.Start(self.fb)
        Q.AddScale(self.fb, s)
        Q.AddZeroPoint(self.fb, z)
        Q.AddQuantizedDimension(self.fb, axis)
        return Q.End(self.fb)

    def tensor(self, name: str, shape, dtype: str, quant=None, data: np.ndarray | None = None) -> int:
        from ethosu.vela.tflite import Tensor

        buffer = 0
        if data is not None:
            self.buffers.append(self._buffer(np.ascontiguousarray(data).tobytes()))
            buffer = len(self.buffers) - 1
        name_off = self.fb.CreateString(name)
        shape_off = self._ints(Tensor.StartShapeVector, shape)
        quant_off = self._quantization(*quant) if quant is not None else None
        Tensor.Start(self.fb)
        Tensor.AddShape(self.fb, shape_off)
        Tensor.AddType(self.fb, self.types[dtype])
        Tensor.AddBuffer(self.fb, buffer)
        Tensor.AddName(self.fb, name_off)
        if quant_off is not None:
            Tensor.AddQuantization(self.fb, quant_off)
        self.tensors.append(Tensor.End(self.fb))
        return len(self.tensors) - 1

    def value(self, v) -> int:
        """The tensor of an int8 edgecc value (NHWC when 4-D), made on first use."""
        if id(v) not in self.index:
            scale, zp = self.quant[id(v)]
            self.index[id(v)] = self.tensor(v.name, _nhwc(v.type.shape), "int8", ([scale], [zp], 0))
        return self.index[id(v)]

    def operator(self, code: int, inputs, outputs, options_type: int = 0, options: int | None = None) -> None:
        from ethosu.vela.tflite import Operator

        opcode = self.opcodes.setdefault(code, len(self.opcodes))
        ins = self._ints(Operator.StartInputsVector, inputs)
        outs = self._ints(Operator.StartOutputsVector, outputs)
        Operator.Start(self.fb)
        Operator.AddOpcodeIndex(self.fb, opcode)
        Operator.AddInputs(self.fb, ins)
        Operator.AddOutputs(self.fb, outs)
        if options is not None:
            Operator.AddBuiltinOptionsType(self.fb, options_type)
            Operator.AddBuiltinOptions(self.fb, options)
        self.operators.append(Operator.End(self.fb))

    def finish(self, inputs, outputs, name: str) -> bytes:
        from ethosu.vela.tflite import Model, OperatorCode, SubGraph

        codes = []
        for code in sorted(self.opcodes, key=self.opcodes.get):
            OperatorCode.Start(self.fb)
            OperatorCode.AddDeprecatedBuiltinCode(self.fb, min(code, 127))
            OperatorCode.AddBuiltinCode(self.fb, code)
            OperatorCode.AddVersion(self.fb, 1)
            codes.append(OperatorCode.End(self.fb))
        tensors = self._vector(SubGraph.StartTensorsVector, self.tensors, self.fb.PrependUOffsetTRelative)
        ins = self._ints(SubGraph.StartInputsVector, inputs)
        outs = self._ints(SubGraph.StartOutputsVector, outputs)
        ops = self._vector(SubGraph.StartOperatorsVector, self.operators, self.fb.PrependUOffsetTRelative)
        sg_name = self.fb.CreateString(name)
        SubGraph.Start(self.fb)
        SubGraph.AddTensors(self.fb, tensors)
        SubGraph.AddInputs(self.fb, ins)
        SubGraph.AddOutputs(self.fb, outs)
        SubGraph.AddOperators(self.fb, ops)
        SubGraph.AddName(self.fb, sg_name)
        subgraph = SubGraph.End(self.fb)
        code_vec = self._vector(Model.StartOperatorCodesVector, codes, self.fb.PrependUOffsetTRelative)
        sg_vec = self._vector(Model.StartSubgraphsVector, [subgraph], self.fb.PrependUOffsetTRelative)
        buf_vec = self._vector(Model.StartBuffersVector, self.buffers, self.fb.PrependUOffsetTRelative)
        desc = self.fb.CreateString("edgecc")
        Model.Start(self.fb)
        Model.AddVersion(self.fb, 3)
        Model.AddOperatorCodes(self.fb, code_vec)
        Model.AddSubgraphs(self.fb, sg_vec)
        Model.AddDescription(self.fb, desc)
        Model.AddBuffers(self.fb, buf_vec)
        self.fb.Finish(Model.End(self.fb), file_identifier=b"TFL3")
        return bytes(self.fb.Output())


# ----- ops ---------------------------------------------------------------------------------------
def _activation(node) -> int:
    from ethosu.vela.tflite.ActivationFunctionType import ActivationFunctionType

    return getattr(ActivationFunctionType, fused_activation(node))


def _weight_params(w: _Writer, node, channels: int):
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


def _conv(w: _Writer, node) -> None:
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
    inputs, outputs = [data_in, wt, bt], [w.value(node.outputs[0])]
    opts_mod = DepthwiseConv2DOptions if depthwise else Conv2DOptions
    opts_mod.Start(w.fb)
    opts_mod.AddPadding(w.fb, getattr(Padding, pad))
    opts_mod.AddStrideH(w.fb, strides[0])
    opts_mod.AddStrideW(w.fb, strides[1])
    opts_mod.AddDilationHFactor(w.fb, dilations[0])
    opts_mod.AddDilationWFactor(w.fb, dilations[1])
    opts_mod.AddFusedActivationFunction(w.fb, _activation(node))
    if depthwise:
        DepthwiseConv2DOptions.AddDepthMultiplier(w.fb, 1)
    options = opts_mod.End(w.fb)
    code = B.BuiltinOperator.DEPTHWISE_CONV_2D if depthwise else B.BuiltinOperator.CONV_2D
    kind = O.BuiltinOptions.DepthwiseConv2DOptions if depthwise else O.BuiltinOptions.Conv2DOptions
    w.operator(code, inputs, outputs, kind, options)


def _explicit_pad(w: _Writer, node, pads) -> int:
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


def _dense(w: _Writer, node) -> None:
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
    F.Start(w.fb)
    F.AddFusedActivationFunction(w.fb, _activation(node))
    options = F.End(w.fb)
    w.operator(B.BuiltinOperator.FULLY_CONNECTED, [w.value(node.inputs[0]), wt, bt], [w.value(node.outputs[0])],
               O.BuiltinOptions.FullyConnectedOptions, options)


def _add(w: _Writer, node) -> None:
    from ethosu.vela.tflite import AddOptions, BuiltinOperator as B, BuiltinOptions as O

    AddOptions.Start(w.fb)
    AddOptions.AddFusedActivationFunction(w.fb, _activation(node))
    options = AddOptions.End(w.fb)
    w.operator(B.BuiltinOperator.ADD, [w.value(node.inputs[0]), w.value(node.inputs[1])],
               [w.value(node.outputs[0])], O.BuiltinOptions.AddOptions, options)


def _max_pool(w: _Writer, node) -> None:
    _pool(w, node, "MAX_POOL_2D")


def _pool(w: _Writer, node, operator: str) -> None:
    from ethosu.vela.tflite import BuiltinOperator as B, BuiltinOptions as O, Pool2DOptions as P
    from ethosu.vela.tflite.Padding import Padding

    a = node.attrs
    kernel, strides = a["kernel_shape"], a.get("strides") or (1, 1)
    pad = padding_mode(node.inputs[0].type.shape[2:], kernel, strides, (1, 1), a.get("pads") or (0,) * 4)
    P.Start(w.fb)
    P.AddPadding(w.fb, getattr(Padding, pad))
    P.AddStrideH(w.fb, strides[0])
    P.AddStrideW(w.fb, strides[1])
    P.AddFilterHeight(w.fb, kernel[0])
    P.AddFilterWidth(w.fb, kernel[1])
    options = P.End(w.fb)
    w.operator(getattr(B.BuiltinOperator, operator), [w.value(node.inputs[0])], [w.value(node.outputs[0])],
               O.BuiltinOptions.Pool2DOptions, options)


def _reshape(w: _Writer, node) -> None:
    from ethosu.vela.tflite import BuiltinOperator as B, BuiltinOptions as O, ReshapeOptions as R

    x = node.inputs[0].type
    if x.rank == 4 and x.shape[2] * x.shape[3] != 1 and x.shape[1] != 1 and not flattens_into_dense(node):
        raise RegionRejected(f"{node.name}: the flatten's dense layers are not in its region (NHWC order differs)")
    shape = _nhwc(node.outputs[0].type.shape)
    st = w.tensor(f"{node.name}.shape", (len(shape),), "int32", None, np.asarray(shape, np.int32))
    vec = w._ints(R.StartNewShapeVector, shape)
    R.Start(w.fb)
    R.AddNewShape(w.fb, vec)
    options = R.End(w.fb)
    w.operator(B.BuiltinOperator.RESHAPE, [w.value(node.inputs[0]), st], [w.value(node.outputs[0])],
               O.BuiltinOptions.ReshapeOptions, options)


def _alias(w: _Writer, node) -> None:
    """dequantize/quantize around a pooling on int8 data: the int8 tensor stands for both sides."""
    w.index[id(node.outputs[0])] = w.value(node.inputs[0])


def _mean(w: _Writer, node) -> None:
    """global_avg_pool on int8 data: MEAN over H and W (NHWC axes 1, 2), keeping the dims."""
    from ethosu.vela.tflite import BuiltinOperator as B, BuiltinOptions as O, ReducerOptions

    axes = w.tensor(f"{node.name}.axes", (2,), "int32", None, np.asarray([1, 2], np.int32))
    ReducerOptions.Start(w.fb)
    ReducerOptions.AddKeepDims(w.fb, True)
    options = ReducerOptions.End(w.fb)
    w.operator(B.BuiltinOperator.MEAN, [w.value(node.inputs[0]), axes], [w.value(node.outputs[0])],
               O.BuiltinOptions.ReducerOptions, options)


def _concat(w: _Writer, node) -> None:
    """concat on int8 data: each input requantized to the output's parameters (QUANTIZE) where
    they differ, then CONCATENATION along the axis in NHWC order."""
    from ethosu.vela.tflite import BuiltinOperator as B, BuiltinOptions as O, ConcatenationOptions

    out = node.outputs[0]
    out_quant = w.quant[id(out)]
    inputs = []
    for v in node.inputs:
        tensor = w.value(v)
        if w.quant[id(v)] != out_quant:
            rescaled = w.tensor(f"{v.name}.rescaled", _nhwc(v.type.shape), "int8", ([out_quant[0]], [out_quant[1]], 0))
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


def _avg_pool(w: _Writer, node) -> None:
    _pool(w, node, "AVERAGE_POOL_2D")


_OPS = {"dequantize": _alias, "quantize": _alias, "global_avg_pool": _mean, "avg_pool": _avg_pool, "concat": _concat,
        "qconv": _conv, "qdense": _dense, "qadd": _add, "max_pool": _max_pool, "reshape": _reshape}


def region_to_tflite(body, name: str, outer_users=None) -> bytes:
    """The region's body graph as a TFLite model with the same inputs and outputs (4-D as NHWC)."""
    writer = _Writer(tensor_quantization(body, outer_users))
    for node in body.nodes:
        _OPS[node.op](writer, node)
    inputs = [writer.value(v) for v in body.inputs]
    outputs = [writer.value(v) for v in body.outputs]
    return writer.finish(inputs, outputs, name)
