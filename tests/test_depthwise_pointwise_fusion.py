"""A depthwise conv and the 1x1 conv reading it, compiled as one `depthwise_pointwise` kernel,
against ONNX Runtime: strides, padding, residual adds, channel counts that are not multiples of
the channel block, and both x86 register files (AVX-512: 32 vector registers, AVX2: 16)."""

import numpy as np
import onnx
import pytest
from edgecc.targets import get_target
from onnx import helper
from ort_compare import make_model, run_ort

import edgecc


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


def _expanded_model(channels: int, size: int, expanded: int, out_channels: int, residual: bool, seed: int):
    """1x1 conv -> clip -> stride-2 depthwise conv -> clip -> 1x1 conv (-> add)."""
    rng = np.random.default_rng(seed)
    inits = {"E": (rng.standard_normal((expanded, channels, 1, 1)) * 0.3).astype(np.float32),
             "EB": rng.standard_normal(expanded).astype(np.float32)}
    dw_model, _ = _model(expanded, (size, size), 2, 1, out_channels, False, seed)
    inits.update({i.name: onnx.numpy_helper.to_array(i) for i in dw_model.graph.initializer})
    nodes = [helper.make_node("Conv", ["x", "E", "EB"], ["e"]), helper.make_node("Clip", ["e", "lo", "hi"], ["ec"])]
    for node in dw_model.graph.node:
        node.input[:] = ["ec" if name == "x" else name for name in node.input]
        if residual and node.output[0] == "out":
            node.output[0] = "p"
        nodes.append(node)
    inputs = {"x": rng.standard_normal((1, channels, size, size)).astype(np.float32)}
    if residual:
        half = (size - 1) // 2 + 1
        inputs["r"] = rng.standard_normal((1, out_channels, half, half)).astype(np.float32)
        nodes.append(helper.make_node("Add", ["p", "r"], ["out"]))
    return make_model(nodes, inputs, ["out"], inits), inputs


EXPANDED_CASES = {  # channels, size, expanded channels, out channels, residual add
    "blocks of 16": (16, 18, 96, 24, False),
    "odd size, residual": (12, 17, 72, 20, True),
    "odd channels": (8, 10, 36, 12, False),
}


@pytest.mark.parametrize("cpu", [None, "haswell"])
@pytest.mark.parametrize("case", list(EXPANDED_CASES))
def test_pointwise_depthwise_pointwise_is_one_kernel_matching_onnxruntime(case, cpu, tmp_path, monkeypatch):
    monkeypatch.setattr("edgecc.passes.fuse.DEPTHWISE_POINTWISE_BYTES", 0)
    monkeypatch.setattr("edgecc.passes.fuse.POINTWISE_DEPTHWISE_BYTES", 0)
    model, inputs = _expanded_model(*EXPANDED_CASES[case], seed=len(case))
    path = tmp_path / "pw_dw_pw.onnx"
    onnx.save(model, path)
    target = get_target("host", cpu=cpu) if cpu else "host"
    compiled = edgecc.compile(str(path), target, strict_schedules=True)
    assert [k["kind"] for k in compiled.stats.kernel_table if k["kind"] != "injective"] == ["conv_depthwise_pointwise"]
    got = compiled.load().run(inputs)["out"]
    np.testing.assert_allclose(got, run_ort(model, inputs)[0], rtol=1e-4, atol=1e-4)


def _fused_kinds(path, target, **options) -> list[str]:
    from edgecc.driver import prepare

    graph, *_ = prepare(str(path), target, **options)
    return [n.attrs["kind"] for n in graph.nodes if n.op == "fused" and n.attrs["kind"] != "injective"]


def test_small_depthwise_outputs_and_gpu_targets_keep_the_convs_apart(tmp_path, monkeypatch):
    model, _ = _expanded_model(*EXPANDED_CASES["blocks of 16"], seed=1)
    path = tmp_path / "pw_dw_pw.onnx"
    onnx.save(model, path)
    assert _fused_kinds(path, "host") == ["conv", "depthwise_conv", "conv"]  # 9x9x96 floats: below the sizes
    monkeypatch.setattr("edgecc.passes.fuse.DEPTHWISE_POINTWISE_BYTES", 0)
    monkeypatch.setattr("edgecc.passes.fuse.POINTWISE_DEPTHWISE_BYTES", 0)
    assert _fused_kinds(path, "host") == ["conv_depthwise_pointwise"]
    assert _fused_kinds(path, "rk3588-gpu") == ["conv", "depthwise_conv", "conv"]


def test_depthwise_conv_without_epilogue_keeps_its_own_kernel(tmp_path, monkeypatch):
    monkeypatch.setattr("edgecc.passes.fuse.DEPTHWISE_POINTWISE_BYTES", 0)
    rng = np.random.default_rng(7)
    inits = {"D": (rng.standard_normal((16, 1, 3, 3)) * 0.3).astype(np.float32),
             "P": (rng.standard_normal((8, 16, 1, 1)) * 0.3).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "D"], ["d"], group=16, pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["d", "P"], ["out"])]
    x = rng.standard_normal((1, 16, 12, 12)).astype(np.float32)
    model = make_model(nodes, {"x": x}, ["out"], inits)
    onnx.save(model, tmp_path / "dw_no_bias.onnx")
    assert _fused_kinds(tmp_path / "dw_no_bias.onnx", "host") == ["depthwise_conv", "conv"]
    got = edgecc.compile(str(tmp_path / "dw_no_bias.onnx"), "host", strict_schedules=True).load().run({"x": x})["out"]
    np.testing.assert_allclose(got, run_ort(model, {"x": x})[0], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["residual, odd rows", "stride 2", "odd size, residual"])
def test_depthwise_then_pointwise_on_aarch64_matches_onnxruntime_under_qemu(case, tmp_path, monkeypatch):
    from edgecc.runtime import load_any
    from edgecc.runtime.deploy import build_runner

    build_runner("aarch64", download=True)  # the runner the emulated library runs in
    monkeypatch.setattr("edgecc.passes.fuse.DEPTHWISE_POINTWISE_BYTES", 0)
    monkeypatch.setattr("edgecc.passes.fuse.POINTWISE_DEPTHWISE_BYTES", 0)
    model, inputs = _expanded_model(*EXPANDED_CASES[case], seed=3) if case in EXPANDED_CASES else _model(*CASES[case], seed=3)
    path = tmp_path / "dw_pw.onnx"
    onnx.save(model, path)
    compiled = edgecc.compile(str(path), "rpi4", strict_schedules=True)
    assert {"depthwise_pointwise", "conv_depthwise_pointwise"} & {k["kind"] for k in compiled.stats.kernel_table}
    compiled.export(tmp_path / "dw_pw.so")
    got = load_any(str(tmp_path / "dw_pw.so")).run(inputs)["out"]
    np.testing.assert_allclose(got, run_ort(model, inputs)[0], rtol=1e-4, atol=1e-4)


def test_depthwise_then_pointwise_builds_for_armv7_neon(tmp_path, monkeypatch):
    """16 quad registers and 4 lanes: the schedule holds (no ARMv7 runtime here to run it)."""
    monkeypatch.setattr("edgecc.passes.fuse.DEPTHWISE_POINTWISE_BYTES", 0)
    monkeypatch.setattr("edgecc.passes.fuse.POINTWISE_DEPTHWISE_BYTES", 0)
    for name, model in (("dw_pw", _model(*CASES["odd channels"], seed=5)[0]),
                        ("pw_dw_pw", _expanded_model(*EXPANDED_CASES["odd channels"], seed=5)[0])):
        onnx.save(model, tmp_path / f"{name}.onnx")
        compiled = edgecc.compile(str(tmp_path / f"{name}.onnx"), "armv7", strict_schedules=True)
        assert [k["kind"] for k in compiled.stats.kernel_table if k["kind"] != "injective"] == [
            {"dw_pw": "depthwise_pointwise", "pw_dw_pw": "conv_depthwise_pointwise"}[name]]


def test_task_rows_give_every_core_as_many_tasks():
    from edgecc.lower.schedules.cpu import task_rows

    assert [task_rows(h, 2) for h in (112, 56, 28, 14, 7)] == [4, 4, 2, 1, 1]
    assert [task_rows(h, 4) for h in (56, 28, 14)] == [2, 1, 2]  # 28 and 28 tasks; 14 rows: no multiple of 4


@pytest.mark.parametrize("kind", ["depthwise_pointwise", "conv_depthwise_pointwise"])
def test_depthwise_reads_unpadded_rows_and_the_expansion_epilogue_runs_per_tile(kind, tmp_path,
                                                                                monkeypatch):
    """No padded copy of the depthwise conv's input (bounds checks in its window reads); in the
    expanded kernel, the 1x1 conv's bias and clip are applied to each register tile right after
    the tile's reduction, before the depthwise conv of that channel block."""
    from edgecc.driver import prepare
    from edgecc.lower.plan import plan_kernels
    from edgecc.lower.schedules import make_scheduler

    monkeypatch.setattr("edgecc.passes.fuse.DEPTHWISE_POINTWISE_BYTES", 0)
    monkeypatch.setattr("edgecc.passes.fuse.POINTWISE_DEPTHWISE_BYTES", 0)
    if kind == "depthwise_pointwise":
        model, _ = _model(*CASES["one block"], seed=1)
    else:
        model, _ = _expanded_model(*EXPANDED_CASES["blocks of 16"], seed=1)
    onnx.save(model, tmp_path / "m.onnx")
    graph, target, _, _ = prepare(str(tmp_path / "m.onnx"), "host")
    kernel = next(p.kernel for p in plan_kernels(graph) if p.kernel.kind == kind)
    script = make_scheduler(target).schedule(kernel).func.script()
    assert 'T.sblock("pad' not in script and "T.if_then_else(" in script
    if kind == "conv_depthwise_pointwise":
        order = [line.split('"')[1] for line in script.splitlines() if 'T.sblock("' in line]
        update = order.index("conv2d_NCHWc_update")
        assert order[update + 1] == "clip" and order[update + 2].startswith("depthwise_conv2d_NCHWc")
