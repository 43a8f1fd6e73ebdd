"""shift-to-uint8: int8 activations read by integer convolutions become uint8 (q + 128)."""

import os
import sys

import numpy as np
import onnx
import pytest
from pass_check import check_pass, check_unchanged

import edgecc
from edgecc.targets import get_target

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from ort_compare import run_ort  # noqa: E402
from test_int8_kernels import quantized_conv_model  # noqa: E402


def test_producer_writes_uint8_and_readers_take_the_move():
    """bias' = bias - 128 * sum(W) per output channel; zero points and clamp bounds + 128."""
    check_pass("shift-to-uint8", """
        graph @main(%x: f32[1,2,4,4]) {
          %xs = const f32[] dense<splat 0.5>
          %xz = const i8[] dense<splat 3>
          %w = const i8[2,2,1,1] dense<[1, -2, 3, 4]>
          %b = const i32[2] dense<[11, -37]>
          %m = const f32[2] dense<[0.5, 0.25]>
          %q = quantize(%x, %xs, %xz) {dtype="int8"} : i8[1,2,4,4]
          %y = qconv(%q, %w, %b, %m) {data_zero_point=3, dtype="int8", out_min=-1, out_zero_point=-1} : i8[1,2,4,4]
          %z = qconv(%y, %w, %b, %m) {data_zero_point=-1, dtype="int8", out_zero_point=2} : i8[1,2,4,4]
          %s = qadd(%y, %z) {a_scale=0.5, a_zero_point=-1, b_scale=0.5, b_zero_point=2, scale=1.0} : i8[1,2,4,4]
          return %s
        }""", """
        graph @main(%x: f32[1,2,4,4]) {
          %xs = const f32[] dense<splat 0.5>
          %w = const i8[2,2,1,1] dense<[1, -2, 3, 4]>
          %m = const f32[2] dense<[0.5, 0.25]>
          %zero_point_uint8 = const u8[] dense<splat 131>
          %qconv.bias_uint8 = const i32[2] dense<[139, -933]>
          %qconv_1.bias_uint8 = const i32[2] dense<[139, -933]>
          %q = quantize(%x, %xs, %zero_point_uint8) {dtype="uint8"} : u8[1,2,4,4]<q:scale=[0.5],zp=[131]>
          %y = qconv(%q, %w, %qconv.bias_uint8, %m) {data_zero_point=131, dtype="uint8", out_min=127, out_zero_point=127} : u8[1,2,4,4]
          %z = qconv(%y, %w, %qconv_1.bias_uint8, %m) {data_zero_point=127, dtype="int8", out_zero_point=2} : i8[1,2,4,4]
          %s = qadd(%y, %z) {a_scale=0.5, a_zero_point=127, b_scale=0.5, b_zero_point=2, scale=1.0} : i8[1,2,4,4]<q:scale=[1.0],zp=[0]>
          return %s
        }""")


def test_values_with_other_readers_or_no_kernel_reader_stay_int8():
    """A value read by an op that cannot take the move (here a reshape), or by no convolution, is left alone."""
    check_unchanged("shift-to-uint8", """
        graph @main(%x: f32[1,2,4,4]) {
          %xs = const f32[] dense<splat 0.5>
          %xz = const i8[] dense<splat 3>
          %w = const i8[2,2,1,1] dense<[1, -2, 3, 4]>
          %b = const i32[2] dense<[11, -37]>
          %m = const f32[2] dense<[0.5, 0.25]>
          %q = quantize(%x, %xs, %xz) {dtype="int8"} : i8[1,2,4,4]
          %y = qconv(%q, %w, %b, %m) {data_zero_point=3, dtype="int8"} : i8[1,2,4,4]
          %r = reshape(%q) {shape=[1,32]} : i8[1,32]
          %s = qadd(%y, %y) {a_scale=0.5, b_scale=0.5, scale=1.0} : i8[1,2,4,4]
          return %s, %r
        }""")


@pytest.mark.parametrize("cin,cout,stride,group", [(16, 32, 1, 1), (32, 32, 2, 32)])
def test_moved_activations_give_the_same_integers(tmp_path, cin, cout, stride, group):
    """ONNX Runtime's int8 model (a convolution or a depthwise one, relu, a padded convolution,
    a residual add): the same outputs with and without the pass, both exactly ONNX Runtime's, and
    no convolution left that moves int8 data itself."""
    # 7-bit weights: ONNX Runtime's AVX2 u8s8 kernels (hosts without VNNI) saturate full 8-bit pair sums
    path, feed = quantized_conv_model(tmp_path, cin, cout, stride, 1, 3, 14, "int8", group=group)
    target = get_target("host")
    if "shift-to-uint8" not in target.passes(2):
        pytest.skip("the host target does not request shift-to-uint8 (no AVX2)")
    moved = edgecc.compile(path, target)
    kept = edgecc.compile(path, target, disabled_passes=["shift-to-uint8"])
    conv_data = [n.inputs[0].dtype for n in moved.graph.walk() if n.op == "qconv"]
    assert conv_data and set(conv_data) == {"uint8"}, conv_data
    got = list(moved.load().run(feed).values())[0]
    np.testing.assert_array_equal(got, list(kept.load().run(feed).values())[0])
    np.testing.assert_array_equal(got, run_ort(onnx.load(path), feed)[0])


def test_an_addition_of_two_moved_values_is_moved_too():
    """qadd(a, b) with both operands moved is rebuilt twice; its own output, read by a
    convolution, still becomes uint8."""
    from pass_check import run_pipeline

    graph, _ = run_pipeline("shift-to-uint8", """
        graph @main(%x: f32[1,2,4,4]) {
          %xs = const f32[] dense<splat 0.5>
          %xz = const i8[] dense<splat 3>
          %w = const i8[2,2,1,1] dense<[1, -2, 3, 4]>
          %b = const i32[2] dense<[11, -37]>
          %m = const f32[2] dense<[0.5, 0.25]>
          %q = quantize(%x, %xs, %xz) {dtype="int8"} : i8[1,2,4,4]
          %y = qconv(%q, %w, %b, %m) {data_zero_point=3, dtype="int8", out_zero_point=-1} : i8[1,2,4,4]
          %z = qconv(%q, %w, %b, %m) {data_zero_point=3, dtype="int8", out_zero_point=2} : i8[1,2,4,4]
          %s = qadd(%y, %z) {a_scale=0.5, a_zero_point=-1, b_scale=0.5, b_zero_point=2, scale=1.0} : i8[1,2,4,4]
          %t = qconv(%s, %w, %b, %m) {data_zero_point=0, dtype="int8"} : i8[1,2,4,4]
          %u = qconv(%y, %w, %b, %m) {data_zero_point=-1, dtype="int8"} : i8[1,2,4,4]
          %v = qconv(%z, %w, %b, %m) {data_zero_point=2, dtype="int8"} : i8[1,2,4,4]
          return %t, %u, %v
        }""")
    add = next(n for n in graph.walk() if n.op == "qadd")
    assert add.output.dtype == "uint8"
    assert (add.attrs["a_zero_point"], add.attrs["b_zero_point"], add.attrs["out_zero_point"]) == (127, 130, 128)
    readers = [n for n in graph.walk() if n.op == "qconv" and n.inputs[0] is add.output]
    assert len(readers) == 1 and readers[0].attrs["data_zero_point"] == 128


def test_moves_pass_through_reshapes_to_a_dense_layer():
    """quantize -> reshape -> qdense: the reshape passes the move on, the dense bias takes it."""
    from pass_check import run_pipeline

    graph, _ = run_pipeline("shift-to-uint8", """
        graph @main(%x: f32[1,2,2,1]) {
          %xs = const f32[] dense<splat 0.5>
          %xz = const i8[] dense<splat 3>
          %w = const i8[4,2] dense<[1, -2, 3, 4, 0, 1, -1, 2]>
          %b = const i32[2] dense<[11, -37]>
          %m = const f32[2] dense<[0.5, 0.25]>
          %q = quantize(%x, %xs, %xz) {dtype="int8"} : i8[1,2,2,1]
          %r = reshape(%q) {shape=[1,4]} : i8[1,4]
          %y = qdense(%r, %w, %b, %m) {data_zero_point=3, dtype="int8"} : i8[1,2]
          return %y
        }""")
    reshape = next(n for n in graph.walk() if n.op == "reshape")
    dense = next(n for n in graph.walk() if n.op == "qdense")
    assert reshape.inputs[0].dtype == "uint8" and reshape.output.dtype == "uint8"
    assert dense.inputs[0] is reshape.output and dense.attrs["data_zero_point"] == 131
    np.testing.assert_array_equal(dense.inputs[2].const, [11 - 128 * 3, -37 - 128 * 5])


def _classifier(tmp_path, classes: int):
    """conv -> relu -> global average pool -> flatten -> gemm, quantized by ONNX Runtime (QDQ)."""
    from onnx import helper
    from ort_compare import make_model, ort_quantize

    rng = np.random.default_rng(classes)
    inits = {"w": rng.standard_normal((32, 16, 3, 3)).astype(np.float32) * 0.1,
             "fc": rng.standard_normal((classes, 32)).astype(np.float32) * 0.2,
             "fb": rng.standard_normal(classes).astype(np.float32) * 0.1}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["p"]), helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "fc", "fb"], ["y"], transB=1)]
    x = rng.standard_normal((1, 16, 8, 8)).astype(np.float32)
    onnx.save(make_model(nodes, {"x": x}, ["y"], inits), tmp_path / "f.onnx")
    feeds = [{"x": rng.standard_normal(x.shape).astype(np.float32)} for _ in range(4)]
    return ort_quantize(tmp_path / "f.onnx", tmp_path / "q.onnx", feeds, activation="int8"), {"x": x}


@pytest.mark.parametrize("classes, cpu", [(40, None), (1000, None), (1000, "haswell")])
def test_a_classifier_reads_uint8_features_with_the_same_results(tmp_path, classes, cpu):
    """The flattened features of an ONNX Runtime int8 classifier reach its dense layer as uint8;
    the outputs are the same with and without the pass, and ONNX Runtime's (the host's code, and
    AVX2 code, which every x86 host here runs)."""
    path, feed = _classifier(tmp_path, classes)
    target = get_target("host", cpu=cpu) if cpu else get_target("host")  # x86: the pass is requested
    assert "shift-to-uint8" in target.passes(2)
    moved = edgecc.compile(path, target)
    kept = edgecc.compile(path, target, disabled_passes=["shift-to-uint8"])
    assert [n.inputs[0].dtype for n in moved.graph.walk() if n.op == "qdense"] == ["uint8"]
    got = list(moved.load().run(feed).values())[0]
    np.testing.assert_array_equal(got, list(kept.load().run(feed).values())[0])
    np.testing.assert_array_equal(got, run_ort(onnx.load(path), feed)[0])
