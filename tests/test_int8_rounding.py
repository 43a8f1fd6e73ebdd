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


def integer_reference(model: onnx.ModelProto, feed: dict) -> list[np.ndarray]:
    """The outputs of an ONNX Runtime QDQ model of QuantizeLinear, Conv (+Relu), Add and
    DequantizeLinear computed exactly as integer kernels do: int32 convolution sums requantized
    with the float32 multiplier x_scale * w_scale / y_scale (a float32 product, rounded half to
    even), additions as ONNX's DequantizeLinear, Add, QuantizeLinear. No float convolution."""
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    quantized = {}  # value -> (integers, scale, zero point); float values in `real`
    real = dict(feed)
    pending = {}  # float value -> ("acc", int64 sums, per-channel scale, relu) or ("add", a, b, relu)

    def dequantized(name):
        node = producers[name]
        q, scale, zp = quantized.get(node.input[0]) or (init[node.input[0]], init[node.input[1]],
                                                         init[node.input[2]])
        return q, scale, zp

    producers = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        op, ins, out = node.op_type, node.input, node.output[0]
        if op == "DequantizeLinear":
            if ins[0] in quantized:
                q, scale, zp = quantized[ins[0]]
                real[out] = (q.astype(np.int32) - int(zp)).astype(F32) * F32(scale)
        elif op == "Conv":
            (xq, xs, xz), (wq, ws, wz) = dequantized(ins[0]), dequantized(ins[1])
            acc_scale = F32(xs) * ws.astype(F32)
            assert not np.any(wz)
            x = np.pad(xq.astype(np.int64) - int(xz), [(0, 0), (0, 0)] + [(p, p) for p in node_pads(node)])
            acc = conv_sums(x, wq.astype(np.int64), node_strides(node))
            if len(ins) > 2:  # an int32 bias in the accumulator's scale
                bq, bs, _ = dequantized(ins[2])
                assert np.array_equal(bs, acc_scale)
                acc = acc + bq.reshape(1, -1, 1, 1)
            pending[out] = ("acc", acc, acc_scale, False)
        elif op == "Relu":
            pending[out] = pending[ins[0]][:-1] + (True,)
        elif op == "Add":
            pending[out] = ("add", dequantized(ins[0]), dequantized(ins[1]), False)
        elif op == "QuantizeLinear":
            scale, zp = init[ins[1]], init[ins[2]]
            lo, hi = np.iinfo(zp.dtype).min, np.iinfo(zp.dtype).max
            if ins[0] in pending and pending[ins[0]][0] == "acc":
                _, acc, acc_scale, relu = pending[ins[0]]
                v = acc.astype(F32) * (acc_scale / F32(scale)).reshape(1, -1, 1, 1)
            elif ins[0] in pending:
                _, (a, sa, za), (b, sb, zb), relu = pending[ins[0]]
                v = ((a.astype(np.int32) - int(za)).astype(F32) * F32(sa)
                     + (b.astype(np.int32) - int(zb)).astype(F32) * F32(sb)) / F32(scale)
            else:
                v, relu = real[ins[0]] / F32(scale), False
            q = np.rint(v) + int(zp)
            quantized[out] = (np.clip(q, int(zp) if relu else lo, hi).astype(zp.dtype), scale, zp)
        else:
            raise AssertionError(f"integer_reference: no {op}")
    return [real[o.name] for o in model.graph.output]


def node_pads(node) -> list[int]:
    return list(next(a.ints for a in node.attribute if a.name == "pads"))[:2]


def node_strides(node) -> int:
    return next((a.ints[0] for a in node.attribute if a.name == "strides"), 1)


def conv_sums(x: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """Exact int64 sums of a padded NCHW input and OIHW weights."""
    kh, kw = w.shape[2:]
    oh, ow = (x.shape[2] - kh) // stride + 1, (x.shape[3] - kw) // stride + 1
    out = np.zeros((x.shape[0], w.shape[0], oh, ow), np.int64)
    for i in range(kh):
        for j in range(kw):
            window = x[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
            out += np.einsum("nchw,oc->nohw", window, w[:, :, i, j])
    return out


def residual_block(seed: int) -> tuple[onnx.ModelProto, tuple]:
    """conv 16 -> 32 (3x3) -> relu -> conv 32 -> 32 -> + the relu output (a residual add)."""
    rng = np.random.default_rng(seed)
    inits = {"w1": rng.standard_normal((32, 16, 3, 3)).astype(np.float32) * 0.2,
             "b1": rng.standard_normal(32).astype(np.float32) * 0.1,
             "w2": rng.standard_normal((32, 32, 3, 3)).astype(np.float32) * 0.1}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "r1"], ["y"])]
    x = np.zeros((1, 16, 10, 10), np.float32)
    return make_model(nodes, {"x": x}, ["y"], inits), x.shape


@pytest.mark.parametrize("activation", ["int8", "uint8"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_residual_block_is_the_exact_integer_computation(tmp_path, activation, seed):
    """edgecc's outputs are the integer computation's on every input; ONNX Runtime's may be one
    output step off: with int8 activations it runs some of these convolutions and the addition
    in float32 (DequantizeLinear -> Conv -> QuantizeLinear, after its int8 -> uint8 conversion
    of other pairs; seed 3: 6 of 12,800 outputs), with uint8 its fused QLinearAdd rounds
    differently (below)."""
    model, shape = residual_block(seed)
    src = tmp_path / "f.onnx"
    onnx.save(model, src)
    rng = np.random.default_rng(seed + 100)
    calibration = [{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(4)]
    path = ort_quantize(src, tmp_path / "q.onnx", calibration, "QDQ", activation)
    quantized = onnx.load(path)
    step = next(numpy_helper.to_array(i) for i in quantized.graph.initializer if i.name == "y_scale")
    module = edgecc.compile(path, "host").load()
    for _ in range(4):
        feed = {"x": (rng.standard_normal(shape) * rng.uniform(0.5, 1.5)).astype(np.float32)}
        got = next(iter(module.run(feed).values()))
        np.testing.assert_array_equal(got, integer_reference(quantized, feed)[0])
        assert np.abs(got - run_ort(quantized, feed)[0]).max() <= step * 1.001


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


def test_uint8_stride2_residual_model_is_the_exact_integer_computation(tmp_path):
    """The model and input of tests/test_int8_kernels.py (32 -> 64 channels, stride 2, uint8)
    where ONNX Runtime's output differs in 1 of 3,136 elements: edgecc's equals the integer
    computation everywhere, ONNX Runtime's is one step off at the residual add of
    `test_onnxruntime_qlinearadd_case_follows_onnx`."""
    from test_int8_kernels import quantized_conv_model

    path, feed = quantized_conv_model(tmp_path, 32, 64, 2, 1, 3, 14, "uint8")
    quantized = onnx.load(path)
    got = next(iter(edgecc.compile(path, "host").load().run(feed).values()))
    np.testing.assert_array_equal(got, integer_reference(quantized, feed)[0])
    step = next(numpy_helper.to_array(i) for i in quantized.graph.initializer if i.name == "y_scale")
    assert np.abs(got - run_ort(quantized, feed)[0]).max() <= step * 1.001
