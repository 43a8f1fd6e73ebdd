"""The flatbuffer side of the TFLite writer: tensors, buffers, operators and the model table,
with the TFLite schema's builders that Vela ships (`ethosu.vela.tflite`)."""

from __future__ import annotations

import flatbuffers
import numpy as np

__all__ = ["FlatbufferWriter", "nhwc"]


def nhwc(shape):
    return (shape[0], shape[2], shape[3], shape[1]) if len(shape) == 4 else tuple(shape)


class FlatbufferWriter:
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
            self.index[id(v)] = self.tensor(v.name, nhwc(v.type.shape), "int8", ([scale], [zp], 0))
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
