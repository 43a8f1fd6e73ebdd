"""Default CPU schedules: every kernel of the test models gets its kind's rule, and stays correct;
kernels that do not get their intended schedule are reported (and refused in strict mode)."""

import os

import numpy as np
import onnx
import pytest
from ort_compare import ort_quantize, run_ort

import edgecc
from edgecc.driver import prepare
from edgecc.errors import ScheduleError
from edgecc.lower.plan import plan_kernels
from edgecc.lower.schedules import make_scheduler
from edgecc.lower.schedules.cpu import conv_tiling

DATA = os.path.join(os.path.dirname(__file__), "data")


@pytest.mark.parametrize("name,shapes", [("resnet_tiny", None), ("mobilenetv2_tiny", None),
                                         ("transformer_tiny", {"input_ids": (1, 16)})])
def test_every_kernel_gets_its_rule(name, shapes):
    graph, target, _, _ = prepare(os.path.join(DATA, f"{name}.onnx"), "host", input_shapes=shapes)
    scheduler = make_scheduler(target)
    kinds = {}
    for planned in plan_kernels(graph):
        kernel = planned.kernel
        scheduled = scheduler.schedule(kernel)
        kinds.setdefault(kernel.kind, set()).add(scheduled.how)
        expected = "default"
        if kernel.kind == "matmul" and kernel.outputs[0].type.shape[-1] % 8:
            expected = "generic"  # too few columns for the vector width: the generic rule, on purpose
        assert scheduled.how == expected, f"{name}: {kernel.name} ({kernel.kind}) was scheduled by {scheduled.how}"
        assert scheduled.fallback is None, str(scheduled.fallback)
        assert "parallel" in scheduled.func.script() or kernel.outputs[0].type.size < 4096
    assert {"conv", "pool"} <= set(kinds) or "dense" in kinds


def test_conv_tiles_fit_the_registers():
    assert conv_tiling(56, 16, 8) == (4, 2)  # 4 columns x 2 vectors = 8 accumulators
    assert conv_tiling(112, 8, 8) == (8, 1)
    for width in (7, 14, 28, 56, 112):
        for block in (8, 16):
            tile, vectors = conv_tiling(width, block, 8)
            assert tile * vectors <= 12 and tile >= 4 and vectors * 8 == block


# ----- fallbacks: kernels that did not get their intended schedule --------------------------------
def _ort_quantized(tmp_path) -> str:
    rng = np.random.default_rng(0)
    feeds = [{"input": rng.standard_normal((1, 3, 64, 64)).astype(np.float32)} for _ in range(8)]
    return ort_quantize(os.path.join(DATA, "resnet_tiny.onnx"), tmp_path / "q.onnx", feeds)


def test_quantized_cnn_gets_every_intended_schedule(tmp_path):
    path = _ort_quantized(tmp_path)
    compiled = edgecc.compile(path, "host", strict_schedules=True)
    assert compiled.stats.fallbacks == []
    assert "qconv" in {k["kind"] for k in compiled.stats.kernel_table}
    x = np.random.default_rng(5).standard_normal((1, 3, 64, 64)).astype(np.float32)
    got = compiled.load().run({"input": x})["output"]
    np.testing.assert_allclose(got, run_ort(onnx.load(path), {"input": x})[0], rtol=1e-5, atol=1e-5)


@pytest.fixture
def failing_conv_rule(monkeypatch):
    from edgecc.lower import schedules

    def fail(kernel, target):
        raise RuntimeError("forced failure\nsecond line")

    from edgecc.targets import get_target

    make_scheduler(get_target("host"))  # loads the registered rules before one is replaced
    monkeypatch.setitem(schedules.RULES, "conv", fail)


def test_rule_that_raises_is_a_visible_fallback(failing_conv_rule, tmp_path):
    path = os.path.join(DATA, "resnet_tiny.onnx")
    compiled = edgecc.compile(path, "host")
    convs = [k["name"] for k in compiled.stats.kernel_table if k["kind"] == "conv"]
    assert convs and sorted(f.kernel for f in compiled.stats.fallbacks) == sorted(convs)
    for fallback in compiled.stats.fallbacks:
        assert (fallback.kind, fallback.intended, fallback.got) == ("conv", "default", "generic")
        assert fallback.reason == "the conv rule raised RuntimeError: forced failure"
    assert all(k["scheduled_by"] == "generic" for k in compiled.stats.kernel_table if k["kind"] == "conv")
    x = np.random.default_rng(6).standard_normal((1, 3, 64, 64)).astype(np.float32)
    got = compiled.load().run({"input": x})["output"]
    np.testing.assert_allclose(got, run_ort(onnx.load(path), {"input": x})[0], rtol=1e-4, atol=1e-4)

    with pytest.raises(ScheduleError) as err:
        edgecc.compile(path, "host", strict_schedules=True)
    message = str(err.value)
    assert "\n" not in message and all(name in message for name in convs)


def test_kind_without_rule_and_record_that_does_not_replay_are_fallbacks():
    graph, target, _, _ = prepare(os.path.join(DATA, "resnet_tiny.onnx"), "host")
    planned = [p.kernel for p in plan_kernels(graph)]
    conv = next(k for k in planned if k.kind == "conv")

    class BrokenRecords:
        def lookup(self, kernel):
            raise ValueError("trace does not fit")

    scheduled = make_scheduler(target, BrokenRecords()).schedule(conv)
    assert (scheduled.how, scheduled.fallback.intended, scheduled.fallback.got) == ("default", "tuned", "default")
    assert "tuning record did not replay (ValueError: trace does not fit)" in scheduled.fallback.reason

    conv.kind = "conv_unheard_of"
    scheduled = make_scheduler(target).schedule(conv)
    assert scheduled.how == "generic" and scheduled.fallback.reason == "no schedule rule for kind 'conv_unheard_of'"


# ----- where a depthwise convolution pads its input ------------------------------------------------
def _depthwise_model(channels=32, size=15):
    """Depthwise 3x3 convolutions with padding: stride 2 (15x15 -> 8x8), stride 1 on 8x8 and on
    10x9 (after a padded 1x1 conv), each with Relu."""
    from ort_compare import make_model
    from onnx import helper

    rng = np.random.default_rng(3)
    w = {f"W{i}": (rng.standard_normal((channels, 1, 3, 3)) * 0.3).astype(np.float32) for i in range(3)}
    w["P"] = (rng.standard_normal((channels, channels, 1, 1)) * 0.2).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "W0"], ["a"], group=channels, pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["a"], ["ar"]),
             helper.make_node("Conv", ["ar", "W1"], ["b"], group=channels, pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["b"], ["br"]),
             helper.make_node("Conv", ["br", "P"], ["c"], pads=[1, 0, 1, 1]),
             helper.make_node("Conv", ["c", "W2"], ["d"], group=channels, pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["d"], ["out"])]
    x = rng.standard_normal((1, channels, size, size)).astype(np.float32)
    return make_model(nodes, {"x": x}, ["out"], w), x


def test_depthwise_padding_places_compute_the_same(tmp_path):
    """Every place the depthwise rule can pad (all first, per output row, per channel plane, or
    bounds checks in the window reads) gives the default's result; the default is the bounds
    checks (a padded plane for small stride-1 images), and its code then has no padded buffer;
    the model matches ONNX Runtime."""
    import tvm

    from edgecc.lower.schedules import RULES
    from edgecc.lower.schedules.cpu import PAD_PLACES, depthwise_pad_place
    from edgecc.tune.database import workload_module

    model, x = _depthwise_model()
    path = tmp_path / "dw.onnx"
    onnx.save(model, path)
    graph, target, _, _ = prepare(str(path), "host")
    kernels = [p.kernel for p in plan_kernels(graph) if p.kernel.kind == "depthwise_conv"]
    assert [depthwise_pad_place(k) for k in kernels] == ["inline", "plane", "inline"]  # stride 2; 8x8; 10x9
    assert ["pad" in RULES["depthwise_conv"](k, target).script() for k in kernels] == [False, True, False]
    rng = np.random.default_rng(0)
    for kernel in kernels:
        args = [rng.standard_normal([int(d) for d in v.type.shape]).astype(np.float32) for v in kernel.args]
        results = []
        for place in (None, *PAD_PLACES):
            knobs = None if place is None else {"pad": place, "parallel": "channels" if place == "plane" else "rows"}
            func = RULES["depthwise_conv"](kernel, target, knobs=knobs)
            lib = tvm.compile(workload_module(func), target=target.tvm_target())
            out = tvm.runtime.tensor(np.zeros([int(d) for d in kernel.outputs[0].type.shape], np.float32))
            lib["main"](*[tvm.runtime.tensor(a) for a in args], out)
            results.append(out.numpy())
        for got in results[1:]:
            np.testing.assert_allclose(got, results[0], rtol=1e-6, atol=1e-6)
    got = edgecc.compile(str(path), "host").load().run({"x": x})["out"]
    np.testing.assert_allclose(got, run_ort(model, {"x": x})[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("window, place", [(3, "rows"), (7, None)])
def test_first_conv_reads_its_nchw_input_and_pads_where_its_window_says(window, place, tmp_path):
    """A model's first conv (3 channels in, stride 2) is one kernel with the layout transform of
    its input; with a 3x3 window each parallel task pads the input rows it reads, inside the
    parallel loop; a 7x7 window, whose tasks' rows overlap more, pads a copy of the whole image
    first. The results match ONNX Runtime."""
    from ort_compare import make_model
    from onnx import helper

    from edgecc.lower.schedules.cpu import pad_place

    rng = np.random.default_rng(window)
    w = (rng.standard_normal((32, 3, window, window)) * 0.3).astype(np.float32)
    x = rng.standard_normal((1, 3, 34, 34)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], pads=[window // 2] * 4, strides=[2, 2]),
             helper.make_node("Clip", ["c", "lo", "hi"], ["out"])]
    inits = {"W": w, "lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}
    model = make_model(nodes, {"x": x}, ["out"], inits)
    onnx.save(model, tmp_path / "stem.onnx")
    graph, target, _, _ = prepare(str(tmp_path / "stem.onnx"), "host")
    kernels = [p.kernel for p in plan_kernels(graph)]
    assert kernels[0].kind == "conv" and kernels[0].args[0].type.shape == (1, 3, 34, 34)
    assert pad_place(kernels[0]) == place
    script = make_scheduler(target).schedule(kernels[0]).func.script()
    pad_line = next(i for i, line in enumerate(script.splitlines()) if 'T.sblock("pad")' in line)
    first_parallel = next(i for i, line in enumerate(script.splitlines()) if "T.parallel" in line)
    conv_line = next(i for i, line in enumerate(script.splitlines()) if 'T.sblock("conv2d_NCHWc' in line)
    parallel_loops = script.count("T.parallel")
    assert (parallel_loops, pad_line < conv_line) == ((1, True) if place == "rows" else (2, True))
    assert first_parallel < pad_line
    got = edgecc.compile(str(tmp_path / "stem.onnx"), "host", strict_schedules=True).load().run({"x": x})["out"]
    np.testing.assert_allclose(got, run_ort(model, {"x": x})[0], rtol=1e-4, atol=1e-4)


# ----- a 1x1 conv and the stride-2 depthwise conv reading it, in one kernel ------------------------
@pytest.mark.parametrize("size", [18, 17])
def test_pointwise_conv_feeding_a_strided_depthwise_conv_is_one_correct_kernel(size, tmp_path, monkeypatch):
    from onnx import helper
    from ort_compare import make_model

    monkeypatch.setattr("edgecc.passes.fuse.POINTWISE_DEPTHWISE_BYTES", 0)  # fuse these small layers too
    rng = np.random.default_rng(4)
    inits = {"P": (rng.standard_normal((32, 8, 1, 1)) * 0.3).astype(np.float32),
             "PB": rng.standard_normal(32).astype(np.float32),
             "D": (rng.standard_normal((32, 1, 3, 3)) * 0.3).astype(np.float32),
             "DB": rng.standard_normal(32).astype(np.float32),
             "lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32)}
    nodes = [helper.make_node("Conv", ["x", "P", "PB"], ["p"]),
             helper.make_node("Clip", ["p", "lo", "hi"], ["pc"]),
             helper.make_node("Conv", ["pc", "D", "DB"], ["d"], group=32, pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Clip", ["d", "lo", "hi"], ["out"])]
    x = rng.standard_normal((1, 8, size, size)).astype(np.float32)
    model = make_model(nodes, {"x": x}, ["out"], inits)
    path = tmp_path / "pw_dw.onnx"
    onnx.save(model, path)
    compiled = edgecc.compile(str(path), "host", strict_schedules=True)
    assert [k["kind"] for k in compiled.stats.kernel_table if "conv" in k["kind"]] == ["conv_depthwise"]
    got = compiled.load().run({"x": x})["out"]
    np.testing.assert_allclose(got, run_ort(model, {"x": x})[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cpu, tile_rows", [(None, None), ("haswell", 4), ("skylake-avx512", 8)])
def test_float_matrix_products_take_eight_rows_where_the_registers_hold_them(cpu, tile_rows, tmp_path):
    """A float32 dense layer's register tile takes 8 rows where 8 x its column vectors fit the
    accumulator registers (AVX-512: 8 x 2 of 24), else 4 (AVX2: 8 x 2 would need 16 of 12); the
    host gets whichever its vector registers allow. Both match ONNX Runtime."""
    from onnx import helper
    from ort_compare import make_model

    from edgecc.lower.schedules.cpu import accumulator_registers, gemm_knobs
    from edgecc.targets import get_target
    from edgecc.targets.host import host_cpu_features

    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 128)).astype(np.float32)
    w = (rng.standard_normal((256, 128)) * 0.1).astype(np.float32)
    model = make_model([helper.make_node("Gemm", ["x", "W"], ["y"], transB=1)], {"x": x}, ["y"], {"W": w})
    onnx.save(model, tmp_path / "gemm.onnx")
    target = get_target("host", cpu=cpu) if cpu else get_target("host")
    graph, target, _, _ = prepare(str(tmp_path / "gemm.onnx"), target)
    kernel = next(p.kernel for p in plan_kernels(graph) if p.kernel.kind == "dense")
    default = gemm_knobs(kernel, target).default()
    vectors = -(-default["cols"] // target.lanes("float32"))
    assert default["rows"] == (tile_rows or (8 if 8 * vectors <= accumulator_registers(target) else 4))
    if cpu == "skylake-avx512" and "avx512f" not in host_cpu_features():
        target = get_target("host")  # AVX-512 code cannot run here: the results of the host's own tile
    got = edgecc.compile(str(tmp_path / "gemm.onnx"), target, strict_schedules=True).load().run({"x": x})["y"]
    np.testing.assert_allclose(got, run_ort(model, {"x": x})[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("rows, inner, columns, order", [(128, 256, 512, "columns"), (256, 64, 32, "rows")])
def test_matrix_products_take_the_larger_operand_tile_by_tile(rows, inner, columns, order, tmp_path):
    """Weights larger than the data: column tiles first (each block of weights read once for every
    row tile); smaller: row tiles first. Both orders match ONNX Runtime."""
    from onnx import helper
    from ort_compare import make_model

    from edgecc.lower.schedules.cpu import gemm_knobs, gemm_order

    rng = np.random.default_rng(rows)
    x = rng.standard_normal((rows, inner)).astype(np.float32)
    w = (rng.standard_normal((columns, inner)) * 0.1).astype(np.float32)
    gemm = helper.make_node("Gemm", ["x", "W"], ["y"], transB=1)
    model = make_model([gemm], {"x": x}, ["y"], {"W": w})
    onnx.save(model, tmp_path / "gemm.onnx")
    graph, target, _, _ = prepare(str(tmp_path / "gemm.onnx"), "host")
    kernel = next(p.kernel for p in plan_kernels(graph) if p.kernel.kind in ("dense", "matmul"))
    assert gemm_order(kernel) == order
    space = gemm_knobs(kernel, target)
    assert space.default()["order"] == order
    other = {**space.default(), "order": "rows" if order == "columns" else "columns"}
    space.check(other)
    got = edgecc.compile(str(tmp_path / "gemm.onnx"), "host", strict_schedules=True).load().run({"x": x})["y"]
    np.testing.assert_allclose(got, run_ort(model, {"x": x})[0], rtol=1e-4, atol=1e-4)


def _row_reduction_model(op: str, shape: tuple[int, ...], axis: int):
    from onnx import helper
    from ort_compare import make_model

    rng = np.random.default_rng(len(shape) + axis)
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    if op == "LayerNormalization":
        scale = rng.standard_normal(shape[axis:]).astype(np.float32)
        bias = rng.standard_normal(shape[axis:]).astype(np.float32)
        node = helper.make_node(op, ["x", "scale", "bias"], ["y"], axis=axis, epsilon=1e-5)
        return make_model([node], {"x": x}, ["y"], {"scale": scale, "bias": bias}, opset=17), x
    return make_model([helper.make_node(op, ["x"], ["y"], axis=axis)], {"x": x}, ["y"]), x


@pytest.mark.parametrize("op, shape, axis, in_lanes", [
    ("Softmax", (2, 4, 32, 128), -1, True),
    ("LayerNormalization", (1, 64, 256), -1, True),
    ("LogSoftmax", (8, 48), -1, True),
    ("Softmax", (2, 64, 5, 7), 1, False),   # reduced axis not innermost in memory: left scalar
    ("Softmax", (4, 24), -1, False),        # fewer than two vectors per row
])
def test_row_reductions_accumulate_in_vector_lanes(op, shape, axis, in_lanes, tmp_path):
    """Reductions along the innermost axis keep one partial result per vector lane (an `rfactor`
    block with a vectorized lane loop); elsewhere they stay scalar. Both match ONNX Runtime."""
    model, x = _row_reduction_model(op, shape, axis)
    onnx.save(model, tmp_path / "m.onnx")
    graph, target, _, _ = prepare(str(tmp_path / "m.onnx"), "host")
    kernel = next(p.kernel for p in plan_kernels(graph) if p.kernel.kind == "reduction")
    scheduled = make_scheduler(target).schedule(kernel)
    assert scheduled.how == "default"
    script = scheduled.func.script()
    assert ("_rf_update" in script) == in_lanes
    if in_lanes:
        lines = script.splitlines()
        update = next(i for i, line in enumerate(lines) if 'T.sblock("' in line and "_rf_update" in line)
        assert "T.vectorized(" in lines[update - 1]  # the lane loop, right around the update
    got = edgecc.compile(str(tmp_path / "m.onnx"), "host", strict_schedules=True).load().run({"x": x})["y"]
    np.testing.assert_allclose(got, run_ort(model, {"x": x})[0], rtol=1e-5, atol=1e-5)
