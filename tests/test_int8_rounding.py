"""Rounding in the integer kernels, bit for bit.

qadd adds two quantized tensors as ONNX defines a DequantizeLinear, DequantizeLinear, Add,
QuantizeLinear group: each dequantized product (a - za) * sa rounded to float32, the sum rounded,
divided by the output scale and rounded half to even. A fused multiply-add of one product into the
sum skips that product's rounding and moves an output by one step now and then, so the tests run
every pair of 8-bit operands through scale sets where it would, against onnx's reference (on the
host, and under qemu for a Cortex-A76).

ONNX Runtime fuses such a group into its QLinearAdd, whose x86 kernel computes
a * (sa / sc) + b * (sb / sc) + (zc - ...) with multiply-adds instead: it too is one step off
the ONNX result now and then, e.g. at the residual add of a uint8 model of
tests/test_int8_kernels.py (`test_onnxruntime_qlinearadd_case_follows_onnx`; docs/quantization.md).

qconv's requantization (int32 sum, float32 multiplier x_scale * w_scale / y_scale, float32
product rounded half to even) is ONNX Runtime's: uint8 stride-2 convolutions match it exactly.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from ort_compare import make_model, ort_quantize, run_ort
from test_arm import aarch64_runner  # noqa: F401  (fixture: the AArch64 runner qemu runs libraries with)

import edgecc
from edgecc.ir.ops.quant import qadd_array

F32 = np.float32

#: (a_scale, a_zero_point, b_scale, b_zero_point, scale, zero_point, dtype): a fused multiply-add
#: of a's product (A), of b's (B) or of either (AB) into the sum changes an output of these
ADD_CASES = {
    "uint8-AB": (0.07752862, 178, 0.10862871, 199, 0.20616329, 214, "uint8"),
    "uint8-B": (0.087164454, 152, 0.116081454, 69, 0.15602787, 170, "uint8"),
    "uint8-A": (0.18410155, 195, 0.05684935, 170, 0.24691063, 79, "uint8"),
    "int8-AB": (0.16259009, -38, 0.06458844, 23, 0.29753125, -30, "int8"),
    "int8-B": (0.15500438, 59, 0.03490501, -66, 0.14722471, 24, "int8"),
}

#: the residual add (conv output + relu output) of tests/test_int8_kernels.py's
#: quantized_conv_model(32, 64, stride 2, uint8), as ONNX Runtime's quantize_static wrote it
ORT_RESIDUAL_ADD = (0.14613055, 124, 0.052590013, 0, 0.15866911, 109, "uint8")


def dq_add_q_model(a_scale, a_zp, b_scale, b_zp, scale, zp, dtype) -> onnx.ModelProto:
    """DequantizeLinear(a), DequantizeLinear(b), Add, QuantizeLinear on [256, 256] tensors."""
    np_type = np.dtype(dtype)
    elem = helper.np_dtype_to_tensor_dtype(np_type)
    params = {"a_scale": F32(a_scale), "a_zp": np_type.type(a_zp), "b_scale": F32(b_scale),
              "b_zp": np_type.type(b_zp), "y_scale": F32(scale), "y_zp": np_type.type(zp)}
    nodes = [helper.make_node("DequantizeLinear", ["a", "a_scale", "a_zp"], ["fa"]),
             helper.make_node("DequantizeLinear", ["b", "b_scale", "b_zp"], ["fb"]),
             helper.make_node("Add", ["fa", "fb"], ["sum"]),
             helper.make_node("QuantizeLinear", ["sum", "y_scale", "y_zp"], ["y"])]
    graph = helper.make_graph(
        nodes, "qadd", [helper.make_tensor_value_info(n, elem, [256, 256]) for n in ("a", "b")],
        [helper.make_tensor_value_info("y", elem, [256, 256])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in params.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    return model


def every_operand_pair(dtype: str) -> dict[str, np.ndarray]:
    values = np.arange(np.iinfo(dtype).min, np.iinfo(dtype).max + 1).astype(dtype)
    a, b = np.meshgrid(values, values, indexing="ij")
    return {"a": np.ascontiguousarray(a), "b": np.ascontiguousarray(b)}


def onnx_reference(model: onnx.ModelProto, feed: dict) -> np.ndarray:
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(model).run(None, feed)[0]


def edgecc_run(model: onnx.ModelProto, feed: dict) -> np.ndarray:
    return next(iter(edgecc.compile(model, "host").load().run(feed).values()))


@pytest.mark.parametrize("case", sorted(ADD_CASES) + ["ort-residual"])
def test_qadd_matches_the_onnx_reference_on_every_operand_pair(case):
    params = ORT_RESIDUAL_ADD if case == "ort-residual" else ADD_CASES[case]
    model = dq_add_q_model(*params)
    feed = every_operand_pair(params[-1])
    expected = onnx_reference(model, feed)
    compiled = edgecc.compile(model, "host")
    assert [n.op for n in compiled.graph.nodes] == ["qadd"]  # one integer kernel, not float ops
    np.testing.assert_array_equal(next(iter(compiled.load().run(feed).values())), expected)
    lo, hi = np.iinfo(params[-1]).min, np.iinfo(params[-1]).max
    folded = qadd_array(feed["a"], feed["b"], dict(compiled.graph.nodes[0].attrs), lo, hi)
    np.testing.assert_array_equal(folded, expected)  # edgecc's constant folding computes the same


def test_onnxruntime_qlinearadd_case_follows_onnx():
    """At a = 167, b = 54 of ORT_RESIDUAL_ADD the sum is 57.5000008 output steps above the zero
    point: ONNX's float32 steps give 57.5, rounded half to even to 58 (y = 167), the correctly
    rounded answer too. ONNX Runtime's fused QLinearAdd (x86) computes 57.49999 and returns 166."""
    a_scale, a_zp, b_scale, b_zp, scale, zp, dtype = ORT_RESIDUAL_ADD
    a, b = 167, 54
    exact = (Fraction(float(F32(a_scale))) * (a - a_zp) + Fraction(float(F32(b_scale))) * (b - b_zp)) \
        / Fraction(float(F32(scale)))
    assert Fraction(115, 2) < exact < Fraction(115, 2) + Fraction(1, 10**6)
    model = dq_add_q_model(*ORT_RESIDUAL_ADD)
    feed = {"a": np.full((256, 256), a, dtype), "b": np.full((256, 256), b, dtype)}
    assert onnx_reference(model, feed)[0, 0] == zp + 58
    assert (edgecc_run(model, feed) == zp + 58).all()


def conv_relu_model(stride: int, seed: int) -> tuple[onnx.ModelProto, tuple]:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((64, 32, 3, 3)).astype(np.float32) * 0.2
    b = rng.standard_normal(64).astype(np.float32) * 0.1
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], strides=[stride, stride], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    x = np.zeros((1, 32, 14, 14), np.float32)
    return make_model(nodes, {"x": x}, ["y"], {"w": w, "b": b}), x.shape


@pytest.mark.parametrize("fmt", ["QDQ", "QOperator"])
@pytest.mark.parametrize("per_channel", [True, False])
def test_uint8_stride2_convolution_requantizes_like_onnxruntime(tmp_path, fmt, per_channel):
    """32 -> 64 channels, 3x3, stride 2, uint8 data, 7-bit weights (`ort_quantize`): every output
    of several inputs equals ONNX Runtime's (exact int32 sums, float32 requantization)."""
    model, shape = conv_relu_model(2, seed=3)
    src = tmp_path / "f.onnx"
    onnx.save(model, src)
    rng = np.random.default_rng(4)
    calibration = [{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(4)]
    path = ort_quantize(src, tmp_path / "q.onnx", calibration, fmt, "uint8", per_channel=per_channel)
    assert ("QLinearConv" in {n.op_type for n in onnx.load(path).graph.node}) == (fmt == "QOperator")
    module = edgecc.compile(path, "host").load()
    quantized = onnx.load(path)
    for _ in range(4):
        feed = {"x": (rng.standard_normal(shape) * rng.uniform(0.5, 1.5)).astype(np.float32)}
        np.testing.assert_array_equal(next(iter(module.run(feed).values())), run_ort(quantized, feed)[0])


@pytest.mark.usefixtures("aarch64_runner")
@pytest.mark.parametrize("case", ["uint8-AB", "int8-B"])
def test_qadd_matches_the_onnx_reference_on_aarch64_under_qemu(tmp_path, case):
    """The same on a Cortex-A76 (rpi5), whose NEON code fuses multiply-adds too."""
    from test_arm_int8 import run_emulated

    model = dq_add_q_model(*ADD_CASES[case])
    feed = every_operand_pair(ADD_CASES[case][-1])
    got = run_emulated(edgecc.compile(model, "rpi5"), tmp_path, feed)
    np.testing.assert_array_equal(got, onnx_reference(model, feed))
