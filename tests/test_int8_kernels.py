"""Integer convolution kernels on x86: the dot-product instruction follows the target's features
(vpdpbusd with VNNI, vpmaddwd with AVX2), every kernel keeps its own schedule, and the results
are exactly ONNX Runtime's on models it quantized.

Code for a CPU this machine lacks is checked in its assembly only; the AVX2 code also runs here
(every x86-64 host with VNNI has AVX2)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper
from ort_compare import make_model, ort_quantize, run_ort

import edgecc
from edgecc.targets import get_target

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))

#: --cpu -> (the dot-product instruction its int8 convolutions with 7-bit weights use, ones it must not)
CPUS = {"haswell": ("vpmaddubsw", ("vpdpbusd",)), "alderlake": ("{vex} vpdpbusd", ("vpmaddubsw", "vpmaddwd")),
        "icelake-server": ("vpdpbusd", ("vpmaddubsw", "vpmaddwd"))}


def quantized_conv_model(tmp_path, cin: int, cout: int, stride: int, pad: int, kernel: int, size: int,
                         activation: str, group: int = 1, reduce_range: bool = True) -> tuple[str, dict]:
    """conv -> relu -> conv (+ the first conv's output: a residual add), quantized by ONNX
    Runtime (QDQ, per-channel weights: 7-bit with `reduce_range`, else full 8-bit)."""

    rng = np.random.default_rng(cin * 100 + cout)
    w1 = rng.standard_normal((cout, cin // group, kernel, kernel)).astype(np.float32) * 0.2
    w2 = rng.standard_normal((cout, cout, 3, 3)).astype(np.float32) * 0.1
    b1 = rng.standard_normal(cout).astype(np.float32) * 0.1
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], strides=[stride, stride], pads=[pad] * 4, group=group),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "r1"], ["y"])]
    x = rng.standard_normal((1, cin, size, size)).astype(np.float32)
    model = make_model(nodes, {"x": x}, ["y"], {"w1": w1, "b1": b1, "w2": w2})
    src = tmp_path / "f.onnx"
    onnx.save(model, src)
    feeds = [{"x": rng.standard_normal(x.shape).astype(np.float32)} for _ in range(4)]
    path = ort_quantize(src, tmp_path / "q.onnx", feeds, activation=activation, reduce_range=reduce_range)
    return path, {"x": rng.standard_normal(x.shape).astype(np.float32)}


def disassembly(compiled, tmp_path) -> str:
    lib = tmp_path / "model.so"
    compiled.export(lib)
    return subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(lib)], check=True, capture_output=True,
                          text=True).stdout


def assert_every_kernel_scheduled(compiled) -> None:
    assert not compiled.stats.fallbacks, [str(f) for f in compiled.stats.fallbacks]
    assert set(compiled.stats.scheduled_by) == {"default"}, compiled.stats.scheduled_by


@pytest.mark.parametrize("cin,cout,stride,pad,kernel,size,activation", [
    (16, 32, 1, 1, 3, 14, "int8"),   # 14 columns: a tile that divides the row
    (16, 32, 1, 1, 3, 14, "uint8"),
    (32, 64, 2, 1, 3, 14, "int8"),   # stride 2, 7x7 output
    (24, 24, 1, 0, 1, 9, "int8"),    # 24 channels: an 8- or 4-lane block
    (24, 24, 1, 0, 1, 9, "uint8"),
    (64, 16, 1, 1, 3, 8, "uint8"),
])
def test_host_int8_convolutions_match_onnxruntime_exactly(tmp_path, cin, cout, stride, pad, kernel, size, activation):
    path, feed = quantized_conv_model(tmp_path, cin, cout, stride, pad, kernel, size, activation)
    compiled = edgecc.compile(path, "host")
    assert_every_kernel_scheduled(compiled)
    got = list(compiled.load().run(feed).values())[0]
    np.testing.assert_array_equal(got, run_ort(onnx.load(path), feed)[0])


@pytest.mark.parametrize("channels,stride,size,activation,pad", [
    (32, 1, 14, "uint8", 1),  # one 32-channel block, a 14-column row
    (64, 2, 15, "int8", 1),   # stride 2, two blocks, an odd input width
    (48, 1, 9, "int8", 1),    # 16-channel blocks (one vpermb per window row)
    (48, 1, 10, "uint8", 0),  # no padding: the input copied with a column to spare for the quads
])
def test_int8_depthwise_takes_vpermb_and_vpdpbusd(tmp_path, channels, stride, size, activation, pad):
    """For CPUs with AVX-512 VBMI and VNNI, depthwise qconvs over uint8 data sum each window row
    as one byte permutation and one vpdpbusd (`x86_depthwise_int8`); the results stay ONNX
    Runtime's (run where this host has those features). The same model for haswell keeps the
    float32 sums and is exact too."""
    path, feed = quantized_conv_model(tmp_path, channels, channels, stride, pad, 3, size, activation,
                                      group=channels)
    expected = run_ort(onnx.load(path), feed)[0]
    for target in (get_target("host", cpu="icelake-server"), get_target("host")):
        compiled = edgecc.compile(path, target)
        assert_every_kernel_scheduled(compiled)
        asm = disassembly(compiled, tmp_path)
        quads = all(target.has_feature(f) for f in ("avx512bw", "avx512vbmi", "avx512vnni"))
        assert quads == ("\tvpdpbusd " in asm and any(f"\t{op} " in asm for op in ("vpermb", "vpermt2b", "vpermi2b")))
        if target.cpu is None:
            np.testing.assert_array_equal(list(compiled.load().run(feed).values())[0], expected)
    avx2 = edgecc.compile(path, get_target("host", cpu="haswell"))
    assert_every_kernel_scheduled(avx2)
    assert "vpermb" not in disassembly(avx2, tmp_path)
    np.testing.assert_array_equal(list(avx2.load().run(feed).values())[0], expected)


@pytest.mark.parametrize("cpu", sorted(CPUS))
def test_dot_product_instruction_follows_the_cpu(tmp_path, cpu):
    path, feed = quantized_conv_model(tmp_path, 32, 32, 1, 1, 3, 10, "int8")
    target = get_target("host", cpu=cpu)
    compiled = edgecc.compile(path, target)
    assert_every_kernel_scheduled(compiled)
    asm = disassembly(compiled, tmp_path)
    instruction, others = CPUS[cpu]
    assert f"\t{instruction} " in asm
    assert not any(f"\t{i} " in asm for i in others)
    runnable = all(get_target("host").has_feature(f) for f in ("avx512vnni", "avxvnni")) or cpu == "haswell"
    if runnable and get_target("host").has_feature("avx2"):
        got = list(compiled.load().run(feed).values())[0]
        np.testing.assert_array_equal(got, run_ort(onnx.load(path), feed)[0])


def test_avx2_full_range_weights_multiply_channel_pairs(tmp_path):
    """Weights outside [-64, 64] could saturate vpmaddubsw's int16 pair sums: on AVX2 they are
    multiplied in pairs with vpmaddwd, exactly (the reference is the plain-layout int32 kernel:
    ONNX Runtime's own AVX2 kernels saturate on such weights)."""
    path, feed = quantized_conv_model(tmp_path, 32, 32, 1, 1, 3, 10, "int8", reduce_range=False)
    compiled = edgecc.compile(path, get_target("host", cpu="haswell"))
    assert_every_kernel_scheduled(compiled)
    asm = disassembly(compiled, tmp_path)
    assert "\tvpmaddwd " in asm and "\tvpmaddubsw " not in asm
    reference = edgecc.compile(path, "host", disabled_passes=["convert-layout"]).load().run(feed)
    got = compiled.load().run(feed)
    np.testing.assert_array_equal(list(got.values())[0], list(reference.values())[0])


def test_target_features_choose_the_weight_grouping():
    assert get_target("host", cpu="haswell").int8_dot_channels == 2
    assert get_target("host", cpu="znver3").int8_dot_channels == 2
    assert get_target("host", cpu="alderlake").int8_dot_channels == 4
    assert get_target("host", cpu="znver3").int8_narrow_dot_channels == 4  # vpmaddubsw, 7-bit weights
    assert get_target("host", cpu="znver4").has_feature("avx512vnni")
    assert not get_target("host", cpu="znver3").has_feature("avxvnni")


def test_metaschedule_vnni_intrinsic_is_registered_for_vnni_targets():
    """MetaSchedule's default rules for an AVX-512 VNNI CPU look up `dot_16x4_vnni`: edgecc
    registers it (vpdpbusd on 16 lanes) without importing all of TVM's tensor intrinsics."""
    from tvm.s_tir import TensorIntrin

    from edgecc.lower.schedules.x86_int8 import METASCHEDULE_VNNI, register_metaschedule_intrinsics

    register_metaschedule_intrinsics(get_target("host", cpu="icelake-server"))
    impl = TensorIntrin.get(METASCHEDULE_VNNI).impl.script()
    assert "llvm.x86.avx512.vpdpbusd.512" in impl


def test_float32_accumulation_only_where_it_is_exact():
    """Depthwise, stem and packed dense sums multiply-add in float32 only while every partial
    sum is an integer below 2**24 (float32 holds those exactly)."""
    from tvm import te

    from edgecc.lower.te_ops.quant import _sum_dtype

    s8, u8 = te.placeholder((1,), "int8"), te.placeholder((1,), "uint8")
    assert _sum_dtype(s8, s8, 1023) == "float32"  # 1023 x 128 x 128 < 2**24
    assert _sum_dtype(s8, s8, 1024) == "int32"
    assert _sum_dtype(u8, s8, 514) == "float32"  # 514 x 255 x 128 < 2**24
    assert _sum_dtype(u8, s8, 515) == "int32"


def test_seven_bit_weights_take_vpmaddubsw_on_avx2(digits_model):
    """edgecc's own quantization with weight_bits=7 keeps weights within [-63, 63], so AVX2 code
    multiplies groups of four channels (vpmaddubsw) and stays exact (the plain int32 kernel)."""
    from edgecc.quant import QuantizeOptions

    path, calibration, feed = digits_model
    options = QuantizeOptions(calibration={"x": calibration}, weight_bits=7)
    avx2 = get_target("host", cpu="haswell")
    compiled = edgecc.compile(path, avx2, input_shapes={"x": (1, 1, 8, 8)}, quantize=options)
    layouts = [n.attrs["kernel_layout"] for n in compiled.graph.nodes if n.op == "qconv"]
    layouts += [m.attrs["kernel_layout"] for n in compiled.graph.nodes if n.subgraph is not None
                for m in n.subgraph.nodes if m.op == "qconv"]
    assert any(lay.endswith("o4i") for lay in layouts), layouts
    weights = [v.const for v in compiled.graph.constants.values()
               if v.const is not None and v.const.dtype == np.int8 and v.const.ndim >= 2]  # not zero points
    assert weights and max(int(np.abs(w.astype(np.int32)).max()) for w in weights) <= 63
    reference = edgecc.compile(path, "host", input_shapes={"x": (1, 1, 8, 8)}, quantize=options,
                               disabled_passes=["convert-layout"])
    np.testing.assert_array_equal(compiled.load().run(feed)["logits"], reference.load().run(feed)["logits"])


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """The digits CNN of benchmarks/quantization.py, briefly trained, with calibration data."""
    import quantization as bench

    x_train, y_train, x_test, _ = bench.digits_split()
    net = bench.train_cnn(x_train, y_train, epochs=2)
    path = bench.export_onnx(net, str(tmp_path_factory.mktemp("digits") / "digits.onnx"))
    return path, x_train[:64], {"x": x_test[:1]}


def quantized_dense_model(tmp_path, k: int, n: int, activation: str,
                          rows: tuple[int, ...] = (2, 6), reduce_range: bool = False) -> tuple[str, dict]:
    """[*rows, k] @ [k, n] + bias -> relu -> @ [n, n] (MatMul layers, as in a transformer),
    quantized by ONNX Runtime (QDQ, full 8-bit weights; 7-bit with `reduce_range`)."""

    rng = np.random.default_rng(k * 100 + n)
    w1 = rng.standard_normal((k, n)).astype(np.float32) * 0.2
    w2 = rng.standard_normal((n, n)).astype(np.float32) * 0.1
    b1 = rng.standard_normal(n).astype(np.float32) * 0.1
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m1"]), helper.make_node("Add", ["m1", "b1"], ["a1"]),
             helper.make_node("Relu", ["a1"], ["r1"]), helper.make_node("MatMul", ["r1", "w2"], ["y"])]
    x = rng.standard_normal((*rows, k)).astype(np.float32)
    model = make_model(nodes, {"x": x}, ["y"], {"w1": w1, "b1": b1, "w2": w2})
    src = tmp_path / "f.onnx"
    onnx.save(model, src)
    feeds = [{"x": rng.standard_normal(x.shape).astype(np.float32)} for _ in range(4)]
    path = ort_quantize(src, tmp_path / "q.onnx", feeds, activation=activation, per_channel=False,
                        reduce_range=reduce_range)
    return path, {"x": rng.standard_normal(x.shape).astype(np.float32) * 2}


def qdense_weights(compiled) -> list[tuple[int, ...]]:
    nodes = list(compiled.graph.nodes) + [m for n in compiled.graph.nodes if n.subgraph is not None
                                          for m in n.subgraph.nodes]
    return [tuple(n.inputs[1].type.shape) for n in nodes if n.op == "qdense"]


@pytest.mark.parametrize("k,n,activation", [(64, 32, "int8"), (64, 32, "uint8"), (48, 16, "int8")])
def test_vnni_qdense_matches_onnxruntime_exactly(tmp_path, k, n, activation):
    """With VNNI, qdense weights are packed in groups of four rows (N/b, K/4, b, 4) and the
    products are vpdpbusd's; int8 data is moved to uint8 and corrected in the epilogue."""
    path, feed = quantized_dense_model(tmp_path, k, n, activation)
    compiled = edgecc.compile(path, get_target("host", cpu="icelake-server"))
    assert_every_kernel_scheduled(compiled)
    shapes = qdense_weights(compiled)
    assert shapes and all(len(s) == 4 and s[-1] == 4 for s in shapes), shapes
    assert "\tvpdpbusd " in disassembly(compiled, tmp_path)
    if get_target("host").has_feature("avx512vnni"):
        got = list(compiled.load().run(feed).values())[0]
        np.testing.assert_array_equal(got, run_ort(onnx.load(path), feed)[0])


def test_qdense_columns_no_vector_divides_take_blocks_of_eight(tmp_path):
    """40 columns: with VNNI, quad weights take the widest multiple of 8 dividing the columns up
    to four float vectors when no whole vector divides them: one block of 40 (five 8-lane
    vpdpbusd per group of four rows) with 16-lane vectors, blocks of 8 with 8-lane ones. Exact
    on this host."""
    path, feed = quantized_dense_model(tmp_path, 64, 40, "int8")
    for target in (get_target("host", cpu="icelake-server"), get_target("host")):
        if target.int8_dot_channels != 4:
            continue
        compiled = edgecc.compile(path, target)
        assert_every_kernel_scheduled(compiled)
        block = 40 if target.lanes("float32") == 16 else 8
        assert qdense_weights(compiled)[0] == (40 // block, 16, block, 4)
        assert "\tvpdpbusd " in disassembly(compiled, tmp_path)
    got = list(edgecc.compile(path, "host").load().run(feed).values())[0]
    np.testing.assert_array_equal(got, run_ort(onnx.load(path), feed)[0])


def test_avx2_qdense_keeps_the_packed_float_or_int32_path(tmp_path):
    path, feed = quantized_dense_model(tmp_path, 64, 32, "int8")
    compiled = edgecc.compile(path, get_target("host", cpu="haswell"))
    assert_every_kernel_scheduled(compiled)
    shapes = qdense_weights(compiled)
    assert shapes and all(len(s) == 3 for s in shapes), shapes
    assert "\tvpdpbusd " not in disassembly(compiled, tmp_path)
    got = list(compiled.load().run(feed).values())[0]
    np.testing.assert_array_equal(got, run_ort(onnx.load(path), feed)[0])


@pytest.mark.parametrize("activation", ["int8", "uint8"])
def test_avx2_seven_bit_qdense_takes_vpmaddubsw(tmp_path, activation):
    """7-bit weights (ONNX Runtime's reduce_range) fit vpmaddubsw without saturating: AVX2 packs
    them in groups of four rows, as VNNI does, and the results stay exact."""
    path, feed = quantized_dense_model(tmp_path, 64, 32, activation, reduce_range=True)
    compiled = edgecc.compile(path, get_target("host", cpu="haswell"))
    assert_every_kernel_scheduled(compiled)
    shapes = qdense_weights(compiled)
    assert shapes and all(len(s) == 4 and s[-1] == 4 for s in shapes), shapes
    asm = disassembly(compiled, tmp_path)
    assert "\tvpmaddubsw " in asm and "\tvpdpbusd " not in asm
    got = list(compiled.load().run(feed).values())[0]
    np.testing.assert_array_equal(got, run_ort(onnx.load(path), feed)[0])


@pytest.mark.parametrize("rows", [(2, 6), (1,)])
def test_plain_qdense_with_odd_column_counts_keeps_its_schedule(tmp_path, rows):
    """Column counts that whole vectors do not divide (1000 classes; 20 here) keep the [K, N]
    weight and tile the columns by whole half-vectors, unrolled (12 rows), or along whole weight
    rows (one row: a classifier at batch 1); the results stay exact."""
    path, feed = quantized_dense_model(tmp_path, 64, 20, "uint8", rows)
    compiled = edgecc.compile(path, "host")
    assert_every_kernel_scheduled(compiled)
    assert [len(s) for s in qdense_weights(compiled)] == [2, 2]
    got = list(compiled.load().run(feed).values())[0]
    np.testing.assert_array_equal(got, run_ort(onnx.load(path), feed)[0])


def test_integer_rules_without_a_dot_product_have_knobs(tmp_path):
    """qconv kernels without a dot-product instruction (the stem) and packed qdense kernels take
    the blocked convolution's and the dense rule's knobs, depthwise ones the quad rule's rows
    and columns; the default point builds the default schedule. Other tensorized kernels have
    none (the instruction fixes the tile), nor have [K, N] qdense kernels."""
    import tvm_ffi

    from edgecc.driver import prepare
    from edgecc.lower.plan import plan_kernels
    from edgecc.lower.schedules import RULES
    from edgecc.tune.knob_search import knob_space_of
    from test_quant import image_feeds

    src = os.path.join(os.path.dirname(__file__), "data", "mobilenetv2_tiny.onnx")
    path = ort_quantize(src, tmp_path / "q.onnx", image_feeds(4), activation="int8")
    graph, target, _, _ = prepare(path, get_target("host", cpu="icelake-server"))
    with_knobs, without = set(), set()
    for kernel in (p.kernel for p in plan_kernels(graph) if p.kernel.kind in ("qconv", "qdense")):
        space = knob_space_of(kernel, target)
        script = RULES[kernel.kind](kernel, target).script()
        if space is None:  # vpdpbusd, or a [K, N] qdense (10 classes) whose tile the columns decide
            assert "vpdpbusd" in script or kernel.args[1].type.rank == 2, kernel.name
            without.add(kernel.name)
            continue
        assert ("vpdpbusd" not in script or "depthwise" in script) and len(space.points()) > 1
        assert tvm_ffi.structural_equal(RULES[kernel.kind](kernel, target),
                                        RULES[kernel.kind](kernel, target, knobs=space.default()))
        with_knobs.add(kernel.name)
    assert with_knobs and without


def test_full_width_vectors_on_avx512_cpus_only():
    """On AVX-512 CPUs every graph gets 512-bit code (-prefer-256-bit off): the schedules plan whole
    512-bit vectors. Other CPUs never get the option; the tag does not depend on it."""
    from edgecc.targets import get_target

    for cpu, wide in ((None, None), ("haswell", False), ("znver3", False), ("sapphirerapids", True),
                      ("znver4", True)):
        target = get_target("host", cpu=cpu) if cpu else get_target("host")
        wide = target.vector_bytes == 64 if wide is None else wide
        assert (target.tvm_target_dict().get("mattr") == ["-prefer-256-bit"]) == wide, cpu
        assert target.for_graph(None) is target
        assert "prefer" not in target.tag


@pytest.mark.parametrize("dtype,zero_point,bounds", [("uint8", 114, (None, None)), ("uint8", 0, (0, 47)),
                                                     ("int8", -5, (-128, 100))])
def test_lrint_saturation_equals_rounding_then_clamping(dtype, zero_point, bounds):
    """The depthwise quad epilogue's conversion (clamp in float32, llvm.lrint, then the zero
    point) gives `_saturate`'s result (round half to even, zero point, clamp) for ties, values
    beyond int32 and random values, vectorized as in the kernels."""
    from types import SimpleNamespace

    import tvm
    from tvm import te

    from edgecc.lower.te_ops.quant import _saturate, _saturate_by_lrint

    node = SimpleNamespace(attrs={"dtype": dtype, "out_zero_point": zero_point, "out_min": bounds[0],
                                  "out_max": bounds[1]})
    rng = np.random.default_rng(0)
    ties = np.arange(-400, 400) + 0.5
    values = np.concatenate([ties, -ties, [3e9, -3e9, 1e30, -1e30, 2.0 ** 31, -(2.0 ** 31), 0.49999997, -0.5],
                             rng.uniform(-600, 600, 3000)]).astype(np.float32)
    values = np.resize(values, (len(values) + 15) // 16 * 16)
    x = te.placeholder((len(values),), "float32", name="x")

    def saturated(saturate):
        return te.compute(x.shape, lambda i: saturate(x[i], node, zero_point), name="y")

    outs = []
    for saturate in (_saturate, _saturate_by_lrint):
        y = saturated(saturate)
        sch = tvm.s_tir.Schedule(te.create_prim_func([x, y]))
        loop = sch.get_loops(sch.get_sblock("y"))[0]
        sch.vectorize(sch.split(loop, [None, 16])[1])
        built = tvm.compile(sch.mod, target=get_target("host").tvm_target())
        out = tvm.runtime.tensor(np.zeros(len(values), dtype))
        built["main"](tvm.runtime.tensor(values), out)
        outs.append(out.numpy())
    np.testing.assert_array_equal(outs[1], outs[0])
