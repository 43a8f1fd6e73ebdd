"""A depthwise conv and the 1x1 conv reading it, compiled as one `depthwise_pointwise` kernel,
against ONNX Runtime: strides, padding, residual adds, channel counts that are not multiples of
the channel block, and both x86 register files (AVX-512: 32 vector registers, AVX2: 16)."""

import numpy as np
import onnx
import pytest
from onnx import helper
from ort_compare import make_model, run_ort

import edgecc
from edgecc.targets import get_target


def _model(channels: int, size: tuple[int, int], stride: int, pad: int, out_channels: int, residual: bool, seed: int):
    rng = np.random.default_rng(seed)
    inits = {"D": (rng.standard_normal((channels, 1, 3, 3)) * 0.3).astype(np.float32),
             "DB": rng.standard_normal(channels).astype(np.float32),
             "P": (rng.standard_normal((out_channels, channels, 1, 1)) * 0.3).astype(np.float32),
             "PB": rng.standard_normal(out_channels).astype(np.float32),
             "lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32)}
    nodes = [helper.make_node("Conv", ["x", "D", "DB"], ["d"], group=channels, pads=[pad] * 4, strides=[stride] * 2),
             helper.make_node("Clip", ["d", "lo", "hi"], ["dc"]),
             helper.make_node("Conv", ["dc", "P", "PB"], ["p" if residual else "out"])]
    height, width = size
    x = rng.standard_normal((1, channels, height, width)).astype(np.float32)
    inputs = {"x": x}
    if residual:
        out_h, out_w = ((height + 2 * pad - 3) // stride + 1, (width + 2 * pad - 3) // stride + 1)
        inputs["r"] = rng.standard_normal((1, out_channels, out_h, out_w)).astype(np.float32)
        nodes.append(helper.make_node("Add", ["p", "r"], ["out"]))
    return make_model(nodes, inputs, ["out"], inits), inputs


CASES = {  # channels, (height, width), stride, pad, out channels, residual add
    "one block": (32, (18, 18), 1, 1, 16, False),
    "residual, odd rows": (24, (17, 13), 1, 1, 24, True),
    "stride 2": (48, (15, 15), 2, 1, 24, False),
    "no padding": (40, (10, 12), 1, 0, 20, False),
    "odd channels": (36, (9, 7), 1, 1, 12, True),
}


@pytest.mark.parametrize("cpu", [None, "haswell"])
@pytest.mark.parametrize("case", list(CASES))
def test_depthwise_then_pointwise_is_one_kernel_matching_onnxruntime(case, cpu, tmp_path, monkeypatch):
    monkeypatch.setattr("edgecc.passes.fuse.DEPTHWISE_POINTWISE_BYTES", 0)  # fuse these small layers too
    model, inputs = _model(*CASES[case], seed=len(case))
    path = tmp_path / "dw_pw.onnx"
    onnx.save(model, path)
    target = get_target("host", cpu=cpu) if cpu else "host"
    compiled = edgecc.compile(str(path), target, strict_schedules=True)
    assert [k["kind"] for k in compiled.stats.kernel_table if k["kind"] != "injective"] == ["depthwise_pointwise"]
    got = compiled.load().run(inputs)["out"]
    np.testing.assert_allclose(got, run_ort(model, inputs)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["residual, odd rows", "stride 2"])
def test_depthwise_then_pointwise_on_aarch64_matches_onnxruntime_under_qemu(case, tmp_path, monkeypatch):
    from edgecc.runtime import load_any
    from edgecc.runtime.deploy import build_runner

    build_runner("aarch64", download=True)  # the runner the emulated library runs in
    monkeypatch.setattr("edgecc.passes.fuse.DEPTHWISE_POINTWISE_BYTES", 0)
    model, inputs = _model(*CASES[case], seed=3)
    path = tmp_path / "dw_pw.onnx"
    onnx.save(model, path)
    compiled = edgecc.compile(str(path), "rpi4", strict_schedules=True)
    assert "depthwise_pointwise" in [k["kind"] for k in compiled.stats.kernel_table]
    compiled.export(tmp_path / "dw_pw.so")
    got = load_any(str(tmp_path / "dw_pw.so")).run(inputs)["out"]
    np.testing.assert_allclose(got, run_ort(model, inputs)[0], rtol=1e-4, atol=1e-4)


def test_depthwise_then_pointwise_builds_for_armv7_neon(tmp_path, monkeypatch):
    """16 quad registers and 4 lanes: the schedule holds (no ARMv7 runtime here to run it)."""
    monkeypatch.setattr("edgecc.passes.fuse.DEPTHWISE_POINTWISE_BYTES", 0)
    model, _ = _model(*CASES["odd channels"], seed=5)
    path = tmp_path / "dw_pw.onnx"
    onnx.save(model, path)
    compiled = edgecc.compile(str(path), "armv7", strict_schedules=True)
    assert "depthwise_pointwise" in [k["kind"] for k in compiled.stats.kernel_table]
