"""Helpers for tests: build small ONNX models, compile them with edgecc, compare with ONNX Runtime."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import edgecc
from edgecc.compare import compare_outputs

DEFAULT_OPSET = 17


def tensor_info(name: str, dtype, shape) -> onnx.ValueInfoProto:
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    return helper.make_tensor_value_info(name, elem, shape)


def make_model(nodes, inputs: Mapping[str, np.ndarray], outputs: Sequence[str],
               initializers: Mapping[str, np.ndarray] | None = None, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """A model from nodes; graph inputs take dtype and shape from example arrays."""
    graph = helper.make_graph(
        nodes,
        "test",
        [tensor_info(name, arr.dtype, arr.shape) for name, arr in inputs.items()],
        [],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 10)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    known = {vi.name: vi for vi in inferred.graph.value_info}
    for name in outputs:
        vi = known.get(name)
        elem = vi.type.tensor_type.elem_type if vi is not None else TensorProto.FLOAT
        model.graph.output.append(helper.make_tensor_value_info(name, elem, None))
    return model


def run_ort(model: onnx.ModelProto, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, dict(inputs))


def run_edgecc(model, inputs: Mapping[str, np.ndarray], **compile_kwargs) -> list[np.ndarray]:
    compiled = edgecc.compile(model, "host", verify_each=True, **compile_kwargs)
    outputs = compiled.load().run(inputs)
    return list(outputs.values())


def assert_matches_ort(model: onnx.ModelProto, inputs: Mapping[str, np.ndarray], rtol: float = 1e-4,
                       atol: float = 1e-4, **compile_kwargs) -> list[np.ndarray]:
    """Compile with edgecc, run, and compare every output with ONNX Runtime."""
    expected = run_ort(model, inputs)
    got = run_edgecc(model, inputs, **compile_kwargs)
    problems = [r.problem for r in compare_outputs(got, expected, rtol, atol) if not r.ok]
    assert not problems, "; ".join(problems)
    return got


def single_op_model(op_type: str, inputs: Mapping[str, np.ndarray], n_outputs: int = 1,
                    initializers: Mapping[str, np.ndarray] | None = None, opset: int = DEFAULT_OPSET,
                    **attrs) -> onnx.ModelProto:
    """One node named after its op, reading `inputs` then `initializers` (in that order)."""
    names = list(inputs) + list(initializers or {})
    outs = [f"out{i}" for i in range(n_outputs)]
    node = helper.make_node(op_type, names, outs, name=op_type.lower(), **attrs)
    return make_model([node], inputs, outs, initializers, opset)


def ort_quantize(src: str, out: str, feeds, fmt: str = "QDQ", activation: str = "int8", per_channel: bool = True,
                 reduce_range: bool = True, **kw) -> str:
    """ONNX Runtime's quantize_static of the model file `src` into `out`, calibrated on `feeds`
    (input name -> array dicts), int8 weights. reduce_range=True (7-bit weights) by default: ONNX
    Runtime's AVX2 u8s8 kernels saturate 16-bit pair sums with full 8-bit weights, so its own
    execution of a full-range model is not exact integer arithmetic to compare against."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    samples = iter(feeds)

    class Reader(CalibrationDataReader):
        def get_next(self):
            return next(samples, None)

    quantize_static(str(src), str(out), Reader(), quant_format=getattr(QuantFormat, fmt), per_channel=per_channel,
                    reduce_range=reduce_range, weight_type=QuantType.QInt8,
                    activation_type=QuantType.QInt8 if activation == "int8" else QuantType.QUInt8, **kw)
    return str(out)
