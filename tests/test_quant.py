"""Post-training int8 quantization, end to end: edgecc's own quantization of a trained CNN, models
quantized by ONNX Runtime (QDQ and operator form) compiled by edgecc and compared with ONNX
Runtime's execution of them, the accuracy options, and bad calibration data."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from ort_compare import ort_quantize, run_ort

import edgecc
from edgecc.errors import CalibrationError
from edgecc.quant import QuantizeOptions

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))
import quantization as bench  # noqa: E402  (the digits model and ONNX Runtime's quantizer)

INTEGER_KERNELS = {"qconv", "qdense", "qadd"}


def all_ops(graph) -> list[str]:
    """Op names of a graph, fused bodies included."""
    ops = []
    for node in graph.nodes:
        ops.append(node.op)
        if node.subgraph is not None:
            ops += all_ops(node.subgraph)
    return ops


def all_nodes(graph) -> list:
    nodes = []
    for node in graph.nodes:
        nodes.append(node)
        if node.subgraph is not None:
            nodes += all_nodes(node.subgraph)
    return nodes


def float_kernels(graph) -> list[str]:
    return [op for op in all_ops(graph) if op in ("conv", "dense", "matmul")]


def ort_quantize_static(src: str, out: str, feeds: list[dict], fmt: str, activation: str = "int8", **kw) -> str:
    """ONNX Runtime's quantize_static with per-channel 7-bit weights (see `ort_quantize`)."""
    return ort_quantize(src, out, feeds, fmt, activation, **kw)


def image_feeds(count: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"input": rng.standard_normal((1, 3, 64, 64)).astype(np.float32)} for _ in range(count)]


# ----- models quantized by ONNX Runtime --------------------------------------------------------
@pytest.mark.parametrize("fmt,activation", [("QDQ", "int8"), ("QOperator", "uint8")])
@pytest.mark.parametrize("name", ["resnet_tiny", "mobilenetv2_tiny"])
def test_onnxruntime_quantized_cnn_matches_onnxruntime(name, fmt, activation, tmp_path):
    feeds = image_feeds(16)
    path = ort_quantize_static(os.path.join(DATA, f"{name}.onnx"), str(tmp_path / "q.onnx"), feeds, fmt, activation)
    model_ops = {n.op_type for n in onnx.load(path).graph.node}
    assert ("QLinearConv" in model_ops) == (fmt == "QOperator")
    compiled = edgecc.compile(path, "host")
    ops = all_ops(compiled.graph)
    assert "qconv" in ops and not float_kernels(compiled.graph)  # every convolution runs on integers
    if name == "resnet_tiny":
        assert "qadd" in ops  # the residual additions too
    module = compiled.load()
    for feed in image_feeds(3, seed=1):
        got = list(module.run(feed).values())[0]
        np.testing.assert_allclose(got, run_ort(onnx.load(path), feed)[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("mode", ["dynamic", "QDQ", "QOperator"])
def test_onnxruntime_quantized_transformer_matches_onnxruntime(mode, tmp_path):
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = os.path.join(DATA, "transformer_tiny.onnx")
    ids = np.random.default_rng(0).integers(0, 100, (16, 1, 8)).astype(np.int64)
    out = str(tmp_path / "q.onnx")
    if mode == "dynamic":  # MatMulInteger with DynamicQuantizeLinear
        quantize_dynamic(src, out, weight_type=QuantType.QInt8, reduce_range=True)
    else:  # QLinearMatMul, or QuantizeLinear/DequantizeLinear around MatMul
        ort_quantize_static(src, out, [{"input_ids": i} for i in ids], mode, op_types_to_quantize=["MatMul"])
    model_ops = {n.op_type for n in onnx.load(out).graph.node}
    assert {"dynamic": "MatMulInteger", "QDQ": "QuantizeLinear", "QOperator": "QLinearMatMul"}[mode] in model_ops
    compiled = edgecc.compile(out, "host", input_shapes={"input_ids": (1, 8)})
    if mode == "dynamic":  # run-time zero points of the data: an int32 matmul of centered integers
        assert any(n.op == "matmul" and n.inputs[0].type.dtype == "int32" for n in all_nodes(compiled.graph))
    else:
        assert "qdense" in all_ops(compiled.graph)
    module = compiled.load()
    for feed in ids[:3]:
        got = list(module.run({"input_ids": feed}).values())[0]
        np.testing.assert_allclose(got, run_ort(onnx.load(out), {"input_ids": feed})[0], rtol=1e-5, atol=1e-5)


def test_x86_int8_convolutions_multiply_channel_groups_on_avx2(tmp_path):
    """On AVX2 CPUs without VNNI, qconv weights of ONNX Runtime's reduce_range models (7-bit)
    are laid out with groups of four input channels innermost and the kernel is tensorized with
    vpmaddubsw + vpmaddwd, which cannot saturate on such weights; the results stay those of ONNX
    Runtime. (Full-range weights take pairs and vpmaddwd: tests/test_int8_kernels.py.)"""
    from edgecc.driver import prepare
    from edgecc.lower.plan import plan_kernels
    from edgecc.lower.schedules import make_scheduler
    from edgecc.targets import get_target

    avx2 = get_target("host", cpu="haswell")  # runs on every x86-64 host with AVX2
    assert avx2.int8_weight_pairs and avx2.int8_narrow_dot_channels == 4
    path = ort_quantize_static(os.path.join(DATA, "resnet_tiny.onnx"), str(tmp_path / "q.onnx"), image_feeds(8), "QDQ")
    graph, target, _, _ = prepare(path, avx2)
    convs = [n for n in all_nodes(graph) if n.op == "qconv"]
    for conv in convs:  # groups wherever the input-channel block allows (not the 3-channel stem)
        grouped = conv.inputs[0].type.shape[-1] % 4 == 0
        assert conv.attrs["kernel_layout"].endswith("o4i") == grouped, conv.attrs["kernel_layout"]
    scheduler = make_scheduler(target)
    scheduled = [scheduler.schedule(p.kernel) for p in plan_kernels(graph) if p.kernel.kind == "qconv"]
    assert all(s.how == "default" for s in scheduled)
    assert sum("llvm.x86.avx2.pmadd.ub.sw" in s.func.script() for s in scheduled) == len(scheduled) - 1
    feed = image_feeds(1, seed=2)[0]
    got = list(edgecc.compile(path, avx2).load().run(feed).values())[0]
    np.testing.assert_array_equal(got, run_ort(onnx.load(path), feed)[0])


# ----- edgecc's quantization of a trained model ----------------------------------------------------
@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """A small CNN trained on scikit-learn's digits and exported to ONNX, with its data."""
    x_train, y_train, x_test, y_test = bench.digits_split()
    net = bench.train_cnn(x_train, y_train, epochs=8)
    path = bench.export_onnx(net, str(tmp_path_factory.mktemp("digits") / "digits.onnx"))
    return {"model": path, "calibration": x_train[:128], "x": x_test, "y": y_test}


def test_int8_digits_cnn_keeps_fp32_accuracy_and_changes_fewer_decisions_than_onnxruntime_int8(digits, tmp_path):
    """edgecc's int8 keeps the fp32 accuracy and departs from the fp32 model's top-1 decisions no
    more often than ONNX Runtime's int8 of the same model and samples. Agreement with fp32 measures
    the quantization; accuracy against the labels would also count the images that a quantization
    error happens to turn right (one of 500 decides such a comparison)."""
    x, y = digits["x"], digits["y"]
    fp32 = bench.edgecc_compile(digits["model"], batch=1)
    int8 = bench.edgecc_compile(digits["model"], batch=1, calibration=digits["calibration"])
    ort_int8 = bench.ort_quantize(digits["model"], str(tmp_path / "ort_int8.onnx"), digits["calibration"])

    ops = all_ops(int8.graph)
    assert ops.count("qconv") == 3 and ops.count("qdense") == 2 and not float_kernels(int8.graph)
    assert bench.onnx_bytes(digits["model"])[0] == 4 * bench.weight_bytes(int8.graph)  # a quarter of the float weights
    top1_fp32 = bench.predictions(bench.edgecc_runner(fp32), x)
    top1_int8 = bench.predictions(bench.edgecc_runner(int8), x)
    top1_ort = bench.predictions(bench.ort_runner(ort_int8, 1), x)
    acc_fp32, acc_int8 = (top1_fp32 == y).mean(), (top1_int8 == y).mean()
    assert acc_fp32 > 0.9
    assert acc_int8 >= acc_fp32 - 0.01, (acc_int8, acc_fp32)
    agree_int8, agree_ort = (top1_int8 == top1_fp32).mean(), (top1_ort == top1_fp32).mean()
    assert agree_int8 >= agree_ort, (agree_int8, agree_ort)
    report = int8.graph.meta["quantization"]
    assert len(report["quantized"]) == 5 and report["samples"] == 128


@pytest.mark.parametrize("options", [
    dict(method="percentile", percentile=99.9),
    dict(method="entropy"),
    dict(activation_dtype="uint8"),
    dict(symmetric=True),
    dict(per_channel=False),
    dict(weight_bits=7),  # what AVX2 targets without VNNI get
])
def test_quantization_schemes_stay_close_to_fp32(digits, options):
    fp32 = bench.edgecc_runner(bench.edgecc_compile(digits["model"], batch=1))
    compiled = bench.edgecc_compile(digits["model"], batch=1, calibration=digits["calibration"], **options)
    assert not float_kernels(compiled.graph)
    run = bench.edgecc_runner(compiled)
    x = digits["x"][:100]
    agree = np.mean([fp32(x[i:i + 1]).argmax() == run(x[i:i + 1]).argmax() for i in range(len(x))])
    assert agree >= 0.95, agree
    if options.get("activation_dtype") == "uint8":
        dtypes = {v.type.dtype for n in compiled.graph.nodes for v in n.outputs}
        assert "uint8" in dtypes


def test_entropy_calibration_ignores_the_spike_of_exact_zeros():
    """Half the values of a ReLU output are exact zeros; the KL threshold must follow the nonzero
    values (clip at most their top 0.1%), not shrink towards the zero spike."""
    from edgecc.quant.calibrate import _range, _Stats

    rng = np.random.default_rng(0)
    x = np.maximum(rng.standard_normal(200_000), 0).astype(np.float32)
    stats = _Stats()
    stats.observe_range(x)
    stats.observe_hist(x)
    lo, hi = _range(stats, "entropy", 99.99, symmetric=False)
    assert lo == 0.0
    assert np.percentile(x[x > 0], 99.9) <= hi <= x.max()


def test_calibration_reports_each_sample_to_the_progress_callable(digits):
    """Calibration is a stage of the compile's progress: one step per sample run (two passes for a
    histogram method), then sensitivity per layer, each with its total."""
    heard = []
    edgecc.compile(digits["model"], "host", input_shapes={"x": (1, 1, 8, 8)},
                   progress=lambda stage, done, total: heard.append((stage, done, total)),
                   quantize=QuantizeOptions(calibration={"x": digits["calibration"][:16]}, method="entropy",
                                            sensitivity=True))
    calibrate = [(done, total) for stage, done, total in heard if stage == "calibrate"]
    assert calibrate == [(i, 32) for i in range(1, 33)]
    sensitivity = [(done, total) for stage, done, total in heard if stage == "sensitivity"]
    assert sensitivity == [(i, 5) for i in range(1, 6)]


def test_sensitivity_and_accuracy_budget_keep_layers_in_fp32(digits):
    base = dict(calibration={"x": digits["calibration"][:32]})
    keep_one = edgecc.compile(digits["model"], "host", input_shapes={"x": (1, 1, 8, 8)},
                              quantize=QuantizeOptions(keep_fp32=1, **base))
    report = keep_one.graph.meta["quantization"]
    assert len(report["sensitivity"]) == 5
    worst = max(report["sensitivity"], key=lambda e: e["error"])
    assert report["kept_fp32"] == [worst["layer"]]
    assert len(float_kernels(keep_one.graph)) == 1 and len(report["quantized"]) == 4
    assert report["evaluation"]["error"] < 0.1

    # a budget of zero error is met only by keeping every layer in float32
    none_left = edgecc.compile(digits["model"], "host", input_shapes={"x": (1, 1, 8, 8)},
                               quantize=QuantizeOptions(accuracy_budget=0.0, **base))
    assert none_left.graph.meta["quantization"]["quantized"] == []
    assert not {"qconv", "qdense"} & set(all_ops(none_left.graph))


def test_cli_quantize_with_calibration_folder(digits, tmp_path):
    folder = tmp_path / "calibration"
    folder.mkdir()
    for i, sample in enumerate(digits["calibration"][:16]):
        np.save(folder / f"{i:03d}.npy", sample[None])
    out = tmp_path / "digits_int8.so"
    proc = subprocess.run([sys.executable, "-m", "edgecc", "compile", digits["model"], "--input-shape", "x=1,1,8,8",
                           "--quantize", "int8", "--calibration", str(folder), "--sensitivity-plot",
                           str(tmp_path / "sensitivity.png"), "--keep-fp32", "1", "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "quantized 4 of 5 layers to int8" in proc.stdout and "top-1 agree" in proc.stdout
    assert (tmp_path / "sensitivity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calibration", "digits_int8.so", "sensitivity.png"]
    module = edgecc.runtime.load(str(out))
    got = module.run({"x": digits["x"][:1]})["logits"]
    assert got.shape == (1, 10) and got.dtype == np.float32


# ----- bad calibration data --------------------------------------------------------------------
def quantize_resnet(calibration):
    return edgecc.compile(os.path.join(DATA, "resnet_tiny.onnx"), "host",
                          quantize=QuantizeOptions(calibration=calibration))


@pytest.mark.parametrize("make,message", [
    (lambda d: np.savez(d / "c.npz", input=np.zeros((2, 3, 32, 32), np.float32)) or d / "c.npz", "has shape (2, 3, 32, 32)"),
    (lambda d: np.savez(d / "c.npz", input=np.zeros((1, 3, 64, 64), np.int32)) or d / "c.npz", "has dtype int32"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "folder has no .npy or .npz files"),
    (lambda d: d / "missing.npz", "no such file or folder"),
    (lambda d: (d / "bad.npz").write_bytes(b"not a zip") and d / "bad.npz", "not a readable .npz file"),
    (lambda d: np.savez(d / "c.npz", other=np.zeros((1, 3, 64, 64), np.float32),
                        more=np.zeros(1, np.float32)) or d / "c.npz", "no array for model input(s) input"),
])
def test_bad_calibration_data_is_one_clear_error(make, message, tmp_path):
    path = make(tmp_path)
    with pytest.raises(CalibrationError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        quantize_resnet(str(path))
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_cli_bad_calibration_exits_2_with_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, "-m", "edgecc", "compile", os.path.join(DATA, "resnet_tiny.onnx"),
                           "--quantize", "int8", "--calibration", str(tmp_path / "empty"),
                           "-o", str(tmp_path / "m.so")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "folder has no .npy or .npz files" in proc.stderr
    assert not (tmp_path / "m.so").exists()
    proc = subprocess.run([sys.executable, "-m", "edgecc", "compile", os.path.join(DATA, "resnet_tiny.onnx"),
                           "--quantize", "int8", "-o", str(tmp_path / "m.so")], capture_output=True, text=True)
    assert proc.returncode == 2 and "needs --calibration" in proc.stderr


# ----- pruning ------------------------------------------------------------------------------------
def test_zero_channels_are_pruned_with_outputs_unchanged():
    """A CNN whose second convolution has structurally pruned (all-zero) filters: they go, and so
    do the matching input channels of the convolution after, and outputs still match ORT."""
    from onnx import helper

    from ort_compare import make_model

    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((16, 3, 3, 3)).astype(np.float32)
    w2 = rng.standard_normal((32, 16, 3, 3)).astype(np.float32)
    b2 = rng.standard_normal(32).astype(np.float32)
    pruned = [1, 4, 5, 9, 20, 31]
    w2[pruned] = 0
    b2[pruned[:3]] = 0  # the others carry a bias: a constant channel folded into the next layer
    w3 = rng.standard_normal((8, 32, 1, 1)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3"], ["y"]),
    ]
    x = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
    model = make_model(nodes, {"x": x}, ["y"], {"w1": w1, "w2": w2, "b2": b2, "w3": w3})
    compiled = edgecc.compile(model, "host")
    from edgecc.driver import load_model

    graph = load_model(model, {}, [])
    from edgecc.passes import PassContext, PassManager, parse_pipeline

    PassManager(parse_pipeline("prune-zero-channels,eliminate-dead-code"), verify_each=True).run(graph, PassContext())
    convs = [n for n in graph.nodes if n.op == "conv"]
    assert [n.inputs[1].type.shape[0] for n in convs] == [16, 32 - len(pruned), 8]
    assert convs[2].inputs[1].type.shape[1] == 32 - len(pruned)
    got = compiled.load().run({"x": x})["y"]
    np.testing.assert_allclose(got, run_ort(model, {"x": x})[0], rtol=1e-4, atol=1e-4)


def test_weight_bits_follow_the_target():
    """Left unset, weight_bits is 7 where the target multiplies 7-bit weights with a wider dot
    product (x86 AVX2 without VNNI: vpmaddubsw) and 8 elsewhere; a given value stays."""
    from edgecc.quant import QuantizeOptions
    from edgecc.targets import get_target

    auto = QuantizeOptions(calibration={"x": np.zeros((1, 1, 8, 8), np.float32)})
    assert auto.resolved_weight_bits == 8  # no target chose: full range
    haswell = get_target("host", cpu="haswell")
    assert auto.for_target(haswell).weight_bits == 7
    for other in (get_target("host", cpu="icelake-server"), get_target("host", cpu="alderlake"), get_target("rpi5"),
                  get_target("rpi4")):
        assert auto.for_target(other).weight_bits == 8, other.tag
    assert QuantizeOptions(weight_bits=8).for_target(haswell).weight_bits == 8
    assert not auto.for_target(haswell).quantize_outputs
    assert auto.for_target(get_target("ethos-u")).quantize_outputs


def test_symbolic_batch_quantizes_like_a_fixed_one(tmp_path):
    """An input with a symbolic batch takes calibration samples of any batch within its bounds;
    the quantized library runs any batch and gives the fixed-batch library's results."""
    from onnx import TensorProto, helper, numpy_helper

    from edgecc.quant import QuantizeOptions

    rng = np.random.default_rng(0)
    w = rng.standard_normal((16, 32)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 32])], [numpy_helper.from_array(w, "w")])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    calibration = {"x": rng.standard_normal((8, 2, 16)).astype(np.float32)}  # 8 samples of batch 2
    symbolic = edgecc.compile(path, "host", input_shapes={"x": [(1, 4), 16]},
                              quantize=QuantizeOptions(calibration=calibration))
    fixed = edgecc.compile(path, "host", input_shapes={"x": [2, 16]}, quantize=QuantizeOptions(calibration=calibration))
    x = rng.standard_normal((2, 16)).astype(np.float32)
    np.testing.assert_array_equal(symbolic.load().run({"x": x})["y"], fixed.load().run({"x": x})["y"])
    three = symbolic.load().run({"x": np.concatenate([x, x[:1]])})["y"]
    np.testing.assert_array_equal(three[:2], fixed.load().run({"x": x})["y"])
    np.testing.assert_array_equal(three[2], three[0])  # the same row, the same result at any batch
