"""Convs whose weights outweigh their input run weights first (`schedule_weights_first_conv`):
the kernels ResNet's late 3x3 layers and ResNet-50's channel-reducing 1x1 layers get, against
ONNX Runtime on both x86 register files."""

import numpy as np
import onnx
import pytest
from edgecc.targets import get_target
from onnx import helper
from ort_compare import make_model, run_ort

import edgecc
from edgecc.driver import prepare
from edgecc.lower.plan import plan_kernels
from edgecc.lower.schedules.cpu import weights_first

CASES = {  # channels in, out, image size, stride, residual add, window
    "7x7, residual": (64, 64, 7, 1, True, 3),
    "stride 2": (32, 64, 14, 2, False, 3),
    "odd sizes": (48, 40, 9, 1, True, 3),
    "1x1, fewer channels out": (256, 64, 7, 1, True, 1),
    "1x1, odd channel blocks": (320, 80, 7, 1, True, 1),
}


def _model(cin: int, cout: int, size: int, stride: int, residual: bool, window: int):
    rng = np.random.default_rng(cin + cout + size)
    inits = {"W": (rng.standard_normal((cout, cin, window, window)) * 0.1).astype(np.float32),
             "B": rng.standard_normal(cout).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[window // 2] * 4, strides=[stride] * 2)]
    inputs = {"x": rng.standard_normal((1, cin, size, size)).astype(np.float32)}
    if residual:
        inputs["r"] = rng.standard_normal((1, cout, (size - 1) // stride + 1, (size - 1) // stride + 1)).astype(np.float32)
        nodes.append(helper.make_node("Add", ["c", "r"], ["s"]))
    nodes.append(helper.make_node("Relu", ["s" if residual else "c"], ["out"]))
    return make_model(nodes, inputs, ["out"], inits), inputs


@pytest.mark.parametrize("cpu", [None, "haswell"])
@pytest.mark.parametrize("case", list(CASES))
def test_weights_first_conv_matches_onnxruntime(case, cpu, tmp_path):
    model, inputs = _model(*CASES[case])
    path = tmp_path / "conv.onnx"
    onnx.save(model, path)
    target = get_target("host", cpu=cpu) if cpu else get_target("host")
    graph, target, _, _ = prepare(str(path), target)
    assert [weights_first(p.kernel) for p in plan_kernels(graph) if p.kernel.kind == "conv"] == [True]
    got = edgecc.compile(str(path), target, strict_schedules=True).load().run(inputs)["out"]
    np.testing.assert_allclose(got, run_ort(model, inputs)[0], rtol=1e-4, atol=1e-4)


def test_channel_blocks_that_do_not_divide_among_the_cores_split_the_rows_too(tmp_path):
    """5 output channel blocks on 2 cores: each block's rows in 2 parts (4 and 3 rows), 10 tasks
    that divide evenly, instead of 5 that run 3:2; the result matches ONNX Runtime."""
    from edgecc.lower.schedules import make_scheduler
    from edgecc.lower.schedules.cpu import row_parts

    assert (row_parts(5, 7, 2), row_parts(4, 7, 2), row_parts(5, 7, 4), row_parts(5, 1, 2)) == (2, 1, 4, 1)
    model, inputs = _model(*CASES["1x1, odd channel blocks"])
    onnx.save(model, tmp_path / "conv.onnx")
    graph, target, _, _ = prepare(str(tmp_path / "conv.onnx"), get_target("host", threads=2))
    (kernel,) = [p.kernel for p in plan_kernels(graph) if p.kernel.kind == "conv"]
    blocks = kernel.outputs[0].type.shape[1]
    assert blocks % 2 and weights_first(kernel)
    assert f"T.parallel({2 * blocks})" in make_scheduler(target).schedule(kernel).func.script()
    got = edgecc.compile(str(tmp_path / "conv.onnx"), target, strict_schedules=True).load().run(inputs)["out"]
    np.testing.assert_allclose(got, run_ort(model, inputs)[0], rtol=1e-4, atol=1e-4)


def test_convs_with_larger_inputs_or_widening_1x1_windows_keep_output_tiles_first(tmp_path):
    # input outweighs weights (stride 2: no Winograd); 1x1 keeping or widening the channels
    for cin, size, kernel, cout in ((8, 56, 3, 64), (64, 7, 1, 64), (32, 7, 1, 128)):
        rng = np.random.default_rng(0)
        w = (rng.standard_normal((cout, cin, kernel, kernel)) * 0.1).astype(np.float32)
        x = rng.standard_normal((1, cin, size, size)).astype(np.float32)
        conv = helper.make_node("Conv", ["x", "W"], ["out"], pads=[kernel // 2] * 4, strides=[2, 2])
        model = make_model([conv], {"x": x}, ["out"], {"W": w})
        onnx.save(model, tmp_path / "conv.onnx")
        graph, *_ = prepare(str(tmp_path / "conv.onnx"), "host")
        assert [weights_first(p.kernel) for p in plan_kernels(graph) if p.kernel.kind == "conv"] == [False]


@pytest.mark.slow
def test_weights_first_conv_on_aarch64_matches_onnxruntime_under_qemu(tmp_path):
    from edgecc.runtime import load_any
    from edgecc.runtime.deploy import build_runner

    build_runner("aarch64", download=True)  # the runner the emulated library runs in
    model, inputs = _model(*CASES["odd sizes"])
    onnx.save(model, tmp_path / "conv.onnx")
    compiled = edgecc.compile(str(tmp_path / "conv.onnx"), "rpi4", strict_schedules=True)
    compiled.export(tmp_path / "conv.so")
    got = load_any(str(tmp_path / "conv.so")).run(inputs)["out"]
    np.testing.assert_allclose(got, run_ort(model, inputs)[0], rtol=1e-4, atol=1e-4)

