"""convert-layout: blocked convolutions, followers, and transposes only at the boundary."""

import numpy as np
import pytest
from pass_check import check_pass, run_pipeline

from edgecc.ir import layout_of

CNN = """
graph @main(%x: f32[1,3,8,8]) {
  %w1 = const f32[16,3,3,3] dense<splat 0.5>
  %b1 = const f32[16] dense<splat 0.25>
  %w2 = const f32[16,1,3,3] dense<splat 0.1>
  %s = const f32[1,16,1,1] dense<splat 2.0>
  %c1 = conv(%x, %w1, %b1) {pads=[1,1,1,1]} : f32[1,16,8,8]
  %r1 = relu(%c1) : f32[1,16,8,8]
  %m = mul(%r1, %s) : f32[1,16,8,8]
  %d = conv(%m, %w2) {group=16, pads=[1,1,1,1]} : f32[1,16,8,8]
  %a = add(%d, %r1) : f32[1,16,8,8]
  %p = max_pool(%a) {kernel_shape=[2,2], strides=[2,2]} : f32[1,16,4,4]
  %g = global_avg_pool(%p) : f32[1,16,1,1]
  %y = reshape(%g) {shape=[1,16]} : f32[1,16]
  return %y
}
"""


def test_cnn_runs_blocked_with_transforms_only_at_the_boundary():
    graph, changed = run_pipeline("convert-layout{lanes=8},fold-constants,eliminate-dead-code", CNN)
    assert changed
    ops = [n.op for n in graph.nodes]
    assert ops.count("layout_transform") == 2, ops
    first, last = (n for n in graph.nodes if n.op == "layout_transform")
    assert (first.attrs["src"], first.attrs["dst"]) == ("NCHW", "NCHW3c")
    assert (last.attrs["src"], last.attrs["dst"]) == ("NCHW16c", "NCHW")
    convs = [n for n in graph.nodes if n.op == "conv"]
    assert [c.attrs["kernel_layout"] for c in convs] == ["OIHW3i16o", "OIHW1i16o"]
    assert convs[0].inputs[1].type.shape == (1, 1, 3, 3, 3, 16)
    assert graph.outputs[0].name == "y" and graph.outputs[0].type.shape == (1, 16)


def test_packed_weights_hold_the_same_values():
    graph, _ = run_pipeline("convert-layout{lanes=8},fold-constants", CNN.replace("dense<splat 0.5>", "dense<b64:" + _b64(np.arange(432, dtype=np.float32)) + ">"))
    conv = next(n for n in graph.nodes if n.op == "conv")
    plain = layout_of("OIHW3i16o").to_plain(conv.inputs[1].const, "OIHW")
    np.testing.assert_array_equal(plain, np.arange(432, dtype=np.float32).reshape(16, 3, 3, 3))


def test_matmul_with_constant_weight_becomes_dense_with_packed_weight():
    graph, _ = run_pipeline("convert-layout{lanes=8}", """
        graph @main(%x: f32[4,8]) {
          %w = const f32[8,32] dense<splat 1.0>
          %y = matmul(%x, %w) : f32[4,32]
          return %y
        }""")
    (node,) = graph.nodes
    assert node.op == "dense" and node.inputs[1].type.shape == (2, 8, 16)


def test_matmul_over_columns_no_vector_divides_packs_the_widest_half_vector_block():
    """1000 classes on 16 lanes: blocks of 40 columns (the matmul rule's tile), so each task
    streams one contiguous block of weights; 10 and 63 classes (no multiple of 8 divides them, and
    at most four vectors): one block of all columns; 65 classes stay a matmul."""
    for classes, packed in ((1000, (25, 64, 40)), (10, (1, 64, 10)), (63, (1, 64, 63)), (65, None)):
        graph, _ = run_pipeline("convert-layout{lanes=16}", f"""
            graph @main(%x: f32[1,64]) {{
              %w = const f32[64,{classes}] dense<splat 1.0>
              %y = matmul(%x, %w) : f32[1,{classes}]
              return %y
            }}""")
        (node,) = graph.nodes
        assert (node.op, node.inputs[1].type.shape if packed else None) == ("dense" if packed else "matmul", packed)


def test_classifier_over_1000_classes_matches_onnxruntime(tmp_path):
    import onnx
    from onnx import helper
    from ort_compare import make_model, run_ort

    import edgecc

    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 96)).astype(np.float32)
    w = rng.standard_normal((1000, 96)).astype(np.float32)
    model = make_model([helper.make_node("Gemm", ["x", "W"], ["y"], transB=1)], {"x": x}, ["y"], {"W": w})
    onnx.save(model, tmp_path / "fc.onnx")
    compiled = edgecc.compile(str(tmp_path / "fc.onnx"), "host", strict_schedules=True)
    np.testing.assert_allclose(compiled.load().run({"x": x})["y"], run_ort(model, {"x": x})[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cpu", [None, "haswell"])
def test_classifiers_over_a_few_columns_no_vector_divides_get_the_dense_rule(cpu, tmp_path):
    """10 and 30 classes: packed as one block, scheduled by the dense rule (no generic kernel:
    strict schedules), and matching ONNX Runtime on both register files."""
    import onnx
    from onnx import helper
    from ort_compare import make_model, run_ort

    import edgecc
    from edgecc.targets import get_target

    target = get_target("host", cpu=cpu) if cpu else get_target("host")
    for classes in (10, 30):
        rng = np.random.default_rng(classes)
        x = rng.standard_normal((3, 96)).astype(np.float32)
        inits = {"W": rng.standard_normal((96, classes)).astype(np.float32),
                 "B": rng.standard_normal(classes).astype(np.float32)}
        nodes = [helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Add", ["m", "B"], ["y"])]
        model = make_model(nodes, {"x": x}, ["y"], inits)
        onnx.save(model, tmp_path / "fc.onnx")
        compiled = edgecc.compile(str(tmp_path / "fc.onnx"), target, strict_schedules=True)
        assert [k["kind"] for k in compiled.stats.kernel_table] == ["dense"], classes
        np.testing.assert_allclose(compiled.load().run({"x": x})["y"], run_ort(model, {"x": x})[0], rtol=1e-4, atol=1e-4)


def test_layout_none_leaves_the_graph_alone():
    graph, changed = run_pipeline("convert-layout{layout=none}", CNN)
    assert not changed and "layout_transform" not in graph.op_counts()


def _b64(a):
    import base64

    return base64.b64encode(a.tobytes()).decode()


def test_conv_and_its_activation_run_blocked_between_two_transforms():
    check_pass("convert-layout{lanes=8},fold-constants,eliminate-dead-code", """
        graph @main(%x: f32[1,8,4,4]) {
          %w = const f32[8,8,1,1] dense<splat 0.5>
          %c = conv(%x, %w) : f32[1,8,4,4]
          %y = relu(%c) : f32[1,8,4,4]
          return %y
        }""", """
        graph @main(%x: f32[1,8,4,4]) {
          %w.OIHW8i8o = const f32[1,1,1,1,8,8] dense<splat 0.5>
          %x.NCHW8c = layout_transform(%x) {dst="NCHW8c", src="NCHW"} : f32[1,1,4,4,8]<NCHW8c>
          %c = conv(%x.NCHW8c, %w.OIHW8i8o) {kernel_layout="OIHW8i8o", layout="NCHW8c", out_layout="NCHW8c"} : f32[1,1,4,4,8]<NCHW8c>
          %relu_2 = relu(%c) : f32[1,1,4,4,8]<NCHW8c>
          %y = layout_transform(%relu_2) {dst="NCHW", src="NCHW8c"} : f32[1,8,4,4]<NCHW>
          return %y
        }""")


def test_channel_blocks_prefer_whole_vectors_then_multiples_of_eight_for_integer_convs():
    from edgecc.passes.convert_layout import choose_block

    assert [choose_block(c, 16) for c in (64, 48, 16, 24, 40, 12, 3)] == [32, 16, 16, 12, 10, 12, 3]
    assert [choose_block(c, 16, True) for c in (64, 48, 16, 24, 40, 12, 3)] == [32, 16, 16, 8, 8, 12, 3]
    assert [choose_block(c, 8, True) for c in (24, 12, 6)] == [8, 6, 6]
    assert [choose_block(c, 4, True) for c in (24, 6, 3)] == [8, 3, 3]
