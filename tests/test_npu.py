"""NPU targets (Ethos-U through Vela): partitioning, the regions' TFLite models and Vela's
estimates, running the regions on LiteRT's reference kernels, and the refusals.

Models are quantized by ONNX Runtime (QDQ, per-channel int8 weights, reduce_range as in
tests/test_quant.py) and compared with ONNX Runtime's execution of the same quantized model."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper
from ort_compare import ort_quantize

import edgecc
from edgecc.errors import InputError, TargetError, ToolchainError
from edgecc.runtime.npu import EMULATION_NOTE
from ort_compare import make_model, run_ort

RNG = np.random.default_rng(0)
QUANT_OPS = ("quantize", "dequantize")


def weights(*shape, scale=0.3):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def feeds(count: int, seed: int, shape=(1, 3, 16, 16)) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(count)]


def ort_qdq(model: onnx.ModelProto, path, fmt: str = "QDQ") -> str:
    """ONNX Runtime's static QDQ (or QOperator) quantization on 16 random samples."""
    src = str(path) + ".float.onnx"
    onnx.save(model, src)
    graph_input = model.graph.input[0]
    shape = [d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    samples = [{graph_input.name: f["x"]} for f in feeds(16, seed=1, shape=shape)]
    return ort_quantize(src, path, samples, fmt)


def conv(x, w, out, **attrs):
    return helper.make_node("Conv", [x, w, w + "_b"], [out], **attrs)


def cnn() -> onnx.ModelProto:
    """conv, depthwise conv, residual add, max pooling, two branches concatenated, average
    pooling, flatten, fully connected."""
    nodes = [
        conv("x", "w1", "c1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c1"], ["r1"]),
        conv("r1", "w2", "c2", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=8),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Add", ["r1", "r2"], ["a"]),
        helper.make_node("MaxPool", ["a"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        conv("p", "w3", "c3", kernel_shape=[1, 1]), helper.make_node("Relu", ["c3"], ["r3"]),
        conv("p", "w4", "c4", kernel_shape=[3, 3], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c4"], ["r4"]),
        helper.make_node("Concat", ["r3", "r4"], ["cat"], axis=1),
        helper.make_node("AveragePool", ["cat"], ["ap"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("MaxPool", ["ap"], ["p2"], kernel_shape=[4, 4]),
        helper.make_node("Flatten", ["p2"], ["f"]),
        helper.make_node("Gemm", ["f", "w5", "w5_b"], ["y"], transB=1),
    ]
    init = {"w1": weights(8, 3, 3, 3), "w1_b": weights(8), "w2": weights(8, 1, 3, 3), "w2_b": weights(8),
            "w3": weights(8, 8, 1, 1), "w3_b": weights(8), "w4": weights(8, 8, 3, 3), "w4_b": weights(8),
            "w5": weights(10, 16), "w5_b": weights(10)}
    return make_model(nodes, {"x": feeds(1, 0)[0]["x"]}, ["y"], init)


def split_cnn() -> onnx.ModelProto:
    """A cosine (which Ethos-U lacks; it stays float) between int8 layers."""
    nodes = [
        conv("x", "w1", "c1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Cos", ["r1"], ["cos"]),
        helper.make_node("GlobalAveragePool", ["cos"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w2", "w2_b"], ["y"], transB=1),
    ]
    init = {"w1": weights(8, 3, 3, 3), "w1_b": weights(8), "w2": weights(10, 8), "w2_b": weights(10)}
    return make_model(nodes, {"x": feeds(1, 0)[0]["x"]}, ["y"], init)


def branch_cnn() -> onnx.ModelProto:
    """conv -> sigmoid (CPU) -> add, and conv -> add: one region may not hold both conv and add."""
    nodes = [
        conv("x", "w1", "c1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c1"], ["s"]),
        helper.make_node("Add", ["c1", "s"], ["a"]),
        conv("a", "w2", "y", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    ]
    init = {"w1": weights(8, 3, 3, 3), "w1_b": weights(8), "w2": weights(4, 8, 3, 3), "w2_b": weights(4)}
    return make_model(nodes, {"x": feeds(1, 0)[0]["x"]}, ["y"], init)


def ops_of(graph) -> list[str]:
    return [n.op for n in graph.nodes]


def npu_ops(graph) -> list[list[str]]:
    return [[b.op for b in n.subgraph.nodes] for n in graph.nodes if n.op == "npu_region"]


def output_step(path: str) -> float:
    """The scale of the quantized model's output (one quantization step of the result)."""
    model = onnx.load(path)
    dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == model.graph.output[0].name)
    scale = next(i for i in model.graph.initializer if i.name == dq.input[1])
    return float(onnx.numpy_helper.to_array(scale))


@pytest.fixture(scope="module")
def cnn_qdq(tmp_path_factory):
    return ort_qdq(cnn(), tmp_path_factory.mktemp("npu") / "cnn_qdq.onnx")


@pytest.fixture(scope="module")
def cnn_compiled(cnn_qdq):
    return edgecc.compile(cnn_qdq, "ethos-u")


def test_int8_cnn_runs_entirely_on_the_npu_and_matches_onnxruntime(cnn_qdq, cnn_compiled):
    graph = cnn_compiled.graph
    assert [op for op in ops_of(graph) if op not in QUANT_OPS] == ["npu_region"]
    assert npu_ops(graph) == [["qconv", "qconv", "qadd", "max_pool", "qconv", "qconv", "dequantize", "dequantize",
                               "concat", "quantize", "dequantize", "avg_pool", "quantize", "max_pool", "reshape",
                               "qdense"]]
    assert {op: reason for _, op, reason in graph.meta["npu_cpu_ops"]} == {
        "quantize": "it quantizes the model's float input", "dequantize": "it makes the model's float output"}
    region = graph.meta["npu_regions"]["npu0"]
    assert region.estimates["cycles_npu"] > 0 and region.estimates["sram_kib"] > 0
    assert region.npu_model[4:8] == b"TFL3" and region.reference[4:8] == b"TFL3"
    module = cnn_compiled.load()
    assert "LiteRT" in module.emulation_note
    step = output_step(cnn_qdq)
    for feed in feeds(4, seed=7):
        got = module.run(feed)["y"]
        expected = run_ort(onnx.load(cnn_qdq), feed)[0]
        assert np.abs(got - expected).max() <= step * 1.001  # within one quantization step of the output


def test_a_library_with_npu_regions_refuses_to_be_timed_from_python(cnn_qdq, cnn_compiled):
    module = cnn_compiled.load()
    feed = feeds(1, seed=9)[0]
    for timing, what in ((module.benchmark, "benchmark"), (module.profile, "profile")):
        with pytest.raises(InputError, match=f"{what} refused: NPU regions run on LiteRT"):
            timing(feed)


def test_npu_regions_equal_edgecc_int8_cpu_kernels(cnn_qdq, cnn_compiled):
    on_cpu = edgecc.compile(cnn_qdq, "host").load()
    on_npu = cnn_compiled.load()
    step = output_step(cnn_qdq)
    for feed in feeds(4, seed=8):
        assert np.abs(on_npu.run(feed)["y"] - on_cpu.run(feed)["y"]).max() <= step * 1.001


def test_library_runs_after_load_from_disk(cnn_qdq, cnn_compiled, tmp_path):
    from edgecc.runtime import load

    path = tmp_path / "m.so"
    cnn_compiled.export(path)
    module = load(path)
    regions = module.metadata["npu"]["regions"]
    assert [r["ops"][0] for r in regions] == ["qconv"] and regions[0]["estimates"]["accelerator"] == "ethos-u65-256"
    feed = feeds(1, seed=9)[0]
    np.testing.assert_array_equal(module.run(feed)["y"], cnn_compiled.load().run(feed)["y"])


def test_unsupported_op_splits_into_npu_cpu_npu_regions(tmp_path):
    path = ort_qdq(split_cnn(), tmp_path / "split.onnx")
    compiled = edgecc.compile(path, "ethos-u")
    ops = [op for op in ops_of(compiled.graph) if op not in QUANT_OPS]
    assert ops[0] == "npu_region" and ops[-1] == "npu_region" and "npu_region" not in ops[1:-1]
    cpu = {op: reason for _, op, reason in compiled.graph.meta["npu_cpu_ops"]}
    assert cpu["cos"] == "cos on float tensors: Ethos-U runs int8 ops only"
    assert compiled.graph.meta["npu_cpu_macs"] == 0  # both convolutions and the dense layer are on the NPU
    assert any("stays on the CPU: cos on float tensors" in str(r) for r in compiled.remarks)
    module = compiled.load()
    for feed in feeds(3, seed=3):
        assert np.abs(module.run(feed)["y"] - run_ort(onnx.load(path), feed)[0]).max() <= output_step(path) * 1.001


def test_regions_never_cycle_through_a_cpu_op(tmp_path):
    from edgecc.passes.partition_npu import is_convex

    path = ort_qdq(branch_cnn(), tmp_path / "branch.onnx")
    compiled = edgecc.compile(path, "ethos-u")
    regions = npu_ops(compiled.graph)
    assert regions == [["qconv"], ["qadd", "qconv"]]  # the conv feeds the sigmoid on the CPU and the add
    module = compiled.load()
    for feed in feeds(3, seed=4):
        assert np.abs(module.run(feed)["y"] - run_ort(onnx.load(path), feed)[0]).max() <= output_step(path) * 1.001
    graph = edgecc.driver.prepare(path, "host", disabled_passes=["fuse", "convert-layout", "winograd"])[0]
    conv, add = [n for n in graph.nodes if n.op == "qconv"][0], [n for n in graph.nodes if n.op == "qadd"][0]
    assert not is_convex(graph.to_networkx(), [conv, add])


def tflite_io(model: bytes) -> tuple[list, list]:
    """(name, shape) of a TFLite model's inputs and of its outputs, in order (Vela's schema reader)."""
    from ethosu.vela.tflite.Model import Model

    graph = Model.GetRootAsModel(model, 0).Subgraphs(0)
    tensor = lambda i: (graph.Tensors(i).Name().decode(), graph.Tensors(i).ShapeAsNumpy().tolist())  # noqa: E731
    return ([tensor(graph.Inputs(k)) for k in range(graph.InputsLength())],
            [tensor(graph.Outputs(k)) for k in range(graph.OutputsLength())])


def test_vela_models_keep_the_reference_models_inputs_and_outputs_in_order(tmp_path):
    """On the board the runner feeds Vela's model in the order of the region call, which is the
    reference model's: Vela keeps it (here for a region with two inputs)."""
    compiled = edgecc.compile(ort_qdq(branch_cnn(), tmp_path / "branch.onnx"), "ethos-u")
    regions = compiled.graph.meta["npu_regions"].values()
    assert [len(tflite_io(r.reference)[0]) for r in regions] == [1, 2]
    for region in regions:
        assert tflite_io(region.npu_model) == tflite_io(region.reference)


def test_qoperator_model_imports_and_partitions(tmp_path):
    path = ort_qdq(cnn(), tmp_path / "cnn_qop.onnx", fmt="QOperator")
    assert "QLinearConv" in {n.op_type for n in onnx.load(path).graph.node}
    compiled = edgecc.compile(path, "ethos-u")
    assert sum(len(r) for r in npu_ops(compiled.graph)) >= 8
    module = compiled.load()
    feed = feeds(1, seed=5)[0]
    assert np.abs(module.run(feed)["y"] - run_ort(onnx.load(path), feed)[0]).max() <= output_step(path) * 1.001


def test_region_vela_refuses_stays_on_the_cpu(cnn_qdq, monkeypatch):
    from edgecc.targets.npu.ethos_u import vela

    def refuse(*args, **kwargs):
        raise SystemExit("Error: the region does not fit")

    monkeypatch.setattr("ethosu.vela.vela.main", refuse)
    compiled = edgecc.compile(cnn_qdq, "ethos-u")
    assert "npu_region" not in ops_of(compiled.graph)
    assert any("its region was refused: Vela refused the region: Error: the region does not fit" in str(r)
               for r in compiled.remarks)
    assert vela.ACCELERATORS  # the module under test is the one patched
    feed = feeds(1, seed=6)[0]
    assert np.abs(compiled.load().run(feed)["y"] - run_ort(onnx.load(cnn_qdq), feed)[0]).max() <= \
        output_step(cnn_qdq) * 1.001


def test_float_model_is_refused_with_one_line(tmp_path):
    path = tmp_path / "float.onnx"
    onnx.save(cnn(), path)
    proc = subprocess.run([sys.executable, "-m", "edgecc", "compile", str(path), "--target", "ethos-u",
                           "-o", str(tmp_path / "m.so")], capture_output=True, text=True)
    assert proc.returncode == 2 and not (tmp_path / "m.so").exists()
    assert proc.stderr.strip().count("\n") == 0 and "--quantize int8" in proc.stderr


def test_npu_targets_need_opt_level_2(cnn_qdq):
    with pytest.raises(TargetError, match="NPU partitioning needs -O2"):
        edgecc.compile(cnn_qdq, "ethos-u", opt_level=1)


def test_unknown_accelerator_is_a_target_error():
    with pytest.raises(TargetError, match="unknown accelerator 'ethos-u99'"):
        edgecc.targets.get_target("ethos-u", accelerator="ethos-u99")


def test_missing_vela_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ethosu.vela.vela", None)
    with pytest.raises(ToolchainError, match=r"pip install -e '\.\[npu\]'"):
        edgecc.targets.get_target("ethos-u").check_toolchain()


def test_cli_prints_partitions_and_vela_estimates(cnn_qdq, tmp_path):
    out = tmp_path / "m.so"
    proc = subprocess.run([sys.executable, "-m", "edgecc", "compile", cnn_qdq, "--target", "ethos-u",
                           "--accelerator", "ethos-u55-128", "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "npu0 on ethos-u: 16 ops" in proc.stdout and "(ethos-u55-128, Vela)" in proc.stdout
    assert "NPU cycles" in proc.stdout and "SRAM" in proc.stdout and "DRAM" in proc.stdout
    assert "16 of 18 ops on the NPU (2 of the CPU's are quantize/dequantize); 114,848 of 114,848 MACs on the NPU " \
        "(100.0%)" in proc.stdout
    run = subprocess.run([sys.executable, "-m", "edgecc", "run", str(out), "--compare-onnxruntime", cnn_qdq,
                          "--rtol", "0", "--atol", str(output_step(cnn_qdq) * 1.001)], capture_output=True, text=True)
    assert run.returncode == 0 and "LiteRT" in run.stderr, run.stderr
    timed = subprocess.run([sys.executable, "-m", "edgecc", "run", str(out), "--benchmark", "3"],
                           capture_output=True, text=True)
    assert timed.returncode == 2 and timed.stdout == "", timed.stderr
    assert timed.stderr == f"edgecc: error: {out}: --benchmark refused: {EMULATION_NOTE}, whose timings say nothing " \
        "about the board\n"
    inspect = subprocess.run([sys.executable, "-m", "edgecc", "inspect", cnn_qdq, "--target", "ethos-u",
                              "--partitions"], capture_output=True, text=True)
    assert inspect.returncode == 0 and "x_QuantizeLinear (quantize): it quantizes the model's float input" in inspect.stdout


@pytest.fixture(scope="module")
def imx93_library(cnn_qdq, tmp_path_factory):
    compiled = edgecc.compile(cnn_qdq, "imx93-npu")
    assert compiled.target.tag == "imx93-npu+ethos-u65-256"
    out = tmp_path_factory.mktemp("imx93") / "imx93.so"
    compiled.export(out)
    return str(out)


def test_imx93_library_reports_its_regions(imx93_library, tmp_path):
    report = subprocess.run([sys.executable, "-m", "edgecc", "report", imx93_library, "--plot",
                             str(tmp_path / "npu.png")], capture_output=True, text=True)
    assert report.returncode == 0 and "npu0 on ethos-u: 16 ops" in report.stdout, report.stderr
    assert "16 of 18 ops on the NPU" in report.stdout
    assert (tmp_path / "npu.png").read_bytes()[:4] == b"\x89PNG"


def test_imx93_library_runs_under_qemu_with_regions_on_litert(cnn_qdq, cnn_compiled, imx93_library):
    """The AArch64 CPU part runs in the deploy runner under qemu-user; each NPU region call comes
    back to this process through the runner's pipes and runs on LiteRT: the outputs equal those
    of the same model compiled for ethos-u (this CPU + the same regions on LiteRT in-process)."""
    from edgecc.runtime import load_any

    module = load_any(imx93_library)
    assert module.emulated and "qemu-user" in module.emulation_note and "LiteRT" in module.emulation_note
    on_host = cnn_compiled.load()
    step = output_step(cnn_qdq)
    for feed in feeds(3, seed=7):
        got = module.run(feed)["y"]
        np.testing.assert_array_equal(got, on_host.run(feed)["y"])
        assert np.abs(got - run_ort(onnx.load(cnn_qdq), feed)[0]).max() <= step * 1.001
    with pytest.raises(InputError, match="benchmark refused: the aarch64 CPU part runs under qemu-user"):
        module.benchmark(feeds(1, seed=7)[0])


def test_imx93_split_model_runs_npu_cpu_npu_under_qemu(tmp_path):
    """NPU, CPU (a cosine in float on the A55 code), NPU: two region calls through the pipes in one run."""
    from edgecc.runtime import load_any

    path = ort_qdq(split_cnn(), tmp_path / "split.onnx")
    compiled = edgecc.compile(path, "imx93-npu")
    ops = [op for op in ops_of(compiled.graph) if op not in QUANT_OPS]
    assert ops[0] == "npu_region" and ops[-1] == "npu_region" and "npu_region" not in ops[1:-1]
    compiled.export(tmp_path / "split.so")
    module = load_any(tmp_path / "split.so")
    on_host = edgecc.compile(path, "ethos-u").load()
    for feed in feeds(2, seed=3):
        got = module.run(feed)["y"]  # the float cosine on the A55 code may round differently from x86-64's
        assert np.abs(got - on_host.run(feed)["y"]).max() <= output_step(path) * 1.001
        assert np.abs(got - run_ort(onnx.load(path), feed)[0]).max() <= output_step(path) * 1.001


def test_edgecc_run_compares_an_imx93_library_with_onnxruntime(cnn_qdq, imx93_library):
    run = subprocess.run([sys.executable, "-m", "edgecc", "run", imx93_library, "--compare-onnxruntime", cnn_qdq,
                          "--rtol", "0", "--atol", str(output_step(cnn_qdq) * 1.001)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines().count(
        "edgecc: the aarch64 CPU part runs under qemu-user emulation here, the NPU regions on LiteRT's int8 "
        "reference kernels (no Ethos-U on this machine)") == 1, run.stderr
    timed = subprocess.run([sys.executable, "-m", "edgecc", "run", imx93_library, "--benchmark", "3"],
                           capture_output=True, text=True)
    assert timed.returncode == 2 and timed.stdout == "" and timed.stderr.count("\n") == 1, timed.stderr
    assert "--benchmark refused: the aarch64 CPU part runs under qemu-user" in timed.stderr


def test_imx93_deploy_folder_runs_the_regions_through_tflite_on_the_board(imx93_library, tmp_path):
    """edgecc runner builds the AArch64 runner, which serves the NPU regions; without --npu-host it
    opens TensorFlow Lite's C library and the Ethos-U delegate (the board's path), absent here: one
    line naming what is missing and the variable that points to it (exit 1)."""
    import shutil

    deploy = tmp_path / "deploy"
    runner = subprocess.run([sys.executable, "-m", "edgecc", "runner", "--target", "imx93-npu", "-o", str(deploy),
                             "--model", imx93_library], capture_output=True, text=True)
    assert runner.returncode == 0, runner.stderr
    assert {"edgecc-runner", "libtvm_runtime.so", "libtvm_ffi.so", "imx93.so"} <= {p.name for p in deploy.iterdir()}
    qemu = [shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static"), "-L", "/usr/aarch64-linux-gnu"]
    np.save(deploy / "x.npy", feeds(1, seed=2)[0]["x"])
    env = dict(os.environ, EDGECC_TFLITE_LIB="libtensorflowlite_c.so")
    board = subprocess.run([*qemu, "./edgecc-runner", "imx93.so", "--input", "x=x.npy", "--output-dir", "."],
                           cwd=deploy, capture_output=True, text=True, env=env)
    assert board.returncode == 1 and board.stderr.count("\n") == 1, board.stderr
    assert "NPU regions, which need TensorFlow Lite's C library (libtensorflowlite_c.so" in board.stderr
    assert "set EDGECC_TFLITE_LIB" in board.stderr
    info = subprocess.run([*qemu, "./edgecc-runner", "imx93.so", "--info"], cwd=deploy, capture_output=True,
                          text=True)
    assert info.returncode == 0 and '"npu_model"' in info.stdout  # the regions' Vela models are in the library
    bad = subprocess.run([*qemu, "./edgecc-runner", "imx93.so", "--npu-host", "7"], cwd=deploy, capture_output=True,
                         text=True)
    assert bad.returncode == 2 and bad.stderr == "edgecc-runner: error: --npu-host needs READ_FD,WRITE_FD\n"


def test_ethos_u_host_target_has_no_deploy_runner():
    with pytest.raises(TargetError, match="built for ARM targets and CUDA GPUs"):
        edgecc.targets.get_target("ethos-u").deploy_runner()
    assert edgecc.targets.get_target("imx93-npu").deploy_runner() == ("aarch64", "cpu")


@pytest.mark.parametrize("name,on_npu", [("resnet_tiny", 18), ("mobilenetv2_tiny", 23)])
def test_zoo_models_partition_and_match_onnxruntime(name, on_npu, tmp_path):
    """Strided convolutions with explicit pads go to the NPU through a PAD, the global average
    pooling between a dequantize and a quantize as a MEAN, resnet_tiny's stem max pooling (pads 1
    at stride 2, on ReLU output) through a PAD too; what stays on the CPU is the model's input
    quantize and output dequantize: one region."""
    import os

    data = os.path.join(os.path.dirname(__file__), "data", f"{name}.onnx")
    path = ort_qdq(onnx.load(data), tmp_path / f"{name}_qdq.onnx")
    compiled = edgecc.compile(path, "ethos-u")
    assert [len(r) for r in npu_ops(compiled.graph)] == [on_npu]
    module = compiled.load()
    step = output_step(path)
    for feed in feeds(3, seed=12, shape=(1, 3, 64, 64)):
        feed = {"input": feed["x"]}
        assert np.abs(module.run(feed)["output"] - run_ort(onnx.load(path), feed)[0]).max() <= step * 1.001


def test_edgecc_quantized_cnn_runs_entirely_on_the_npu(tmp_path):
    """The float CNN quantized by edgecc for an NPU target: the residual add, the concatenation,
    the average pooling (output with its input's parameters) and the dense output in int8, so
    all of it but the input quantize and output dequantize is one NPU region, which computes
    what edgecc's int8 CPU kernels compute for the same quantization within two output steps."""
    from edgecc.quant import QuantizeOptions

    model = cnn()
    onnx.save(model, tmp_path / "cnn.onnx")
    calibration = np.stack([f["x"] for f in feeds(64, seed=5)])
    compiled = edgecc.compile(tmp_path / "cnn.onnx", "ethos-u", quantize=QuantizeOptions(calibration={"x": calibration}))
    assert ops_of(compiled.graph) == ["quantize", "npu_region", "dequantize"]
    host_options = QuantizeOptions(calibration={"x": calibration}, quantize_outputs=True)
    on_host = edgecc.compile(tmp_path / "cnn.onnx", "host", quantize=host_options).load()
    step = float(compiled.graph.nodes[-1].inputs[1].const)
    module = compiled.load()
    for x in calibration[:3]:  # inside the calibrated output range: no clipping at the int8 output
        feed = {"x": x}
        out = module.run(feed)["y"]
        assert np.abs(out - on_host.run(feed)["y"]).max() <= 2 * step * 1.001
        ref = run_ort(model, feed)[0]
        assert np.abs(out - ref).max() <= 0.05 * np.abs(ref).max()


@pytest.mark.parametrize("name,cpu_ops", [("resnet_tiny", ["quantize", "dequantize"]),
                                           ("mobilenetv2_tiny", ["quantize", "dequantize"])])
def test_edgecc_quantized_zoo_models_partition_like_ort_qdq_and_match_fp32(name, cpu_ops, tmp_path):
    """Quantized by edgecc for an NPU target, the residual adds, the global average pooling and
    the classifier's output are quantized too: what stays on the CPU is what stays there for
    ONNX Runtime's QDQ model (input quantize, output dequantize)."""
    from edgecc.quant import QuantizeOptions

    path = os.path.join(os.path.dirname(__file__), "data", f"{name}.onnx")
    calibration = np.random.default_rng(3).standard_normal((16, 1, 3, 64, 64)).astype(np.float32)
    compiled = edgecc.compile(path, "ethos-u", quantize=QuantizeOptions(calibration={"input": calibration}))
    assert [op for op in ops_of(compiled.graph) if op != "npu_region"] == cpu_ops
    module = compiled.load()
    for feed in feeds(3, seed=13, shape=(1, 3, 64, 64)):
        ref = run_ort(onnx.load(path), {"input": feed["x"]})[0]
        out = module.run({"input": feed["x"]})["output"]
        assert np.abs(out - ref).max() <= 0.03 * np.abs(ref).max()


def clip_cnn(lo: float, hi: float, pool_pads: bool = False) -> onnx.ModelProto:
    """conv -> Clip(lo, hi) [-> 3x3 max pooling, stride 2, pads 1] -> conv."""
    nodes = [conv("x", "w1", "c1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["c1", "lo", "hi"], ["r1"])]
    if pool_pads:
        nodes.append(helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    nodes.append(conv("p1" if pool_pads else "r1", "w2", "y", kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    init = {"w1": weights(8, 3, 3, 3), "w1_b": weights(8), "w2": weights(4, 8, 3, 3), "w2_b": weights(4),
            "lo": np.array(lo, np.float32), "hi": np.array(hi, np.float32)}
    return make_model(nodes, {"x": feeds(1, 0)[0]["x"]}, ["y"], init)


def compile_edgecc_quantized(model, tmp_path):
    """(the model quantized by edgecc for ethos-u, the same quantization on host int8 CPU kernels,
    calibration samples)."""
    from edgecc.quant import QuantizeOptions

    onnx.save(model, tmp_path / "model.onnx")
    calibration = np.stack([f["x"] for f in feeds(16, seed=5)])
    compiled = edgecc.compile(tmp_path / "model.onnx", "ethos-u", quantize=QuantizeOptions(calibration={"x": calibration}))
    on_host = edgecc.compile(tmp_path / "model.onnx", "host",
                             quantize=QuantizeOptions(calibration={"x": calibration}, quantize_outputs=True))
    return compiled, on_host.load(), calibration


def region_operators(compiled) -> list[str]:
    """The TFLite operators of the compiled model's regions (their reference models, as LiteRT reads them)."""
    from ai_edge_litert.interpreter import Interpreter

    ops = []
    for region in compiled.graph.meta["npu_regions"].values():
        ops += [op["op_name"] for op in Interpreter(model_content=region.reference)._get_ops_details()]
    return ops


def test_tflite_fused_activations_are_chosen_by_their_integer_bounds():
    from edgecc.targets.npu.ethos_u.support import tflite_activation

    assert tflite_activation((-128, 127), 6 / 255, -128) == "NONE"  # also ReLU's and ReLU6's bounds on [0, 6]
    assert tflite_activation((-128, 127), 0.05, -10) == "NONE"
    assert tflite_activation((-10, 127), 0.05, -10) == "RELU"
    assert tflite_activation((-10, 110), 0.05, -10) == "RELU6"  # -10 + 6 / 0.05
    assert tflite_activation((-30, 10), 0.05, -10) == "RELU_N1_TO_1"
    assert tflite_activation((-10, 109), 0.05, -10) is None  # no TFLite activation: MINIMUM/MAXIMUM


@pytest.mark.parametrize("lo,hi", [(-1.0, 1.0), (0.5, 1.5)])
def test_output_clamps_stay_in_npu_regions(lo, hi, tmp_path):
    """A convolution's clip whose integer bounds no TFLite fused activation has (for the scale
    the region's tensors take) becomes a MAXIMUM with a constant after it, in the same region
    (once refused as 'not a TFLite activation'), and computes what edgecc's int8 CPU kernels
    compute within one output step."""
    compiled, on_host, calibration = compile_edgecc_quantized(clip_cnn(lo, hi), tmp_path)
    assert ops_of(compiled.graph) == ["quantize", "npu_region", "dequantize"]
    clamps = [(n.attrs["out_min"], n.attrs["out_max"]) for n in compiled.graph.nodes[1].subgraph.nodes if n.op == "qconv"]
    assert clamps[0] != (None, None)  # the first convolution's output is clamped
    assert set(region_operators(compiled)) & {"MAXIMUM", "MINIMUM"} == {"MAXIMUM"}
    module = compiled.load()
    step = float(compiled.graph.nodes[-1].inputs[1].const)
    for x in calibration[:3]:
        assert np.abs(module.run({"x": x})["y"] - on_host.run({"x": x})["y"]).max() <= step * 1.001


@pytest.mark.parametrize("symmetric,relu_op,clamp_ops", [(False, "requantize", set()), (True, "clip", {"MAXIMUM"})])
def test_requantize_and_integer_clip_go_to_the_npu(symmetric, relu_op, clamp_ops, tmp_path):
    """A ReLU after max pooling in ONNX Runtime's QDQ model is, after lower-qdq, a requantize to
    the next parameters (QUANTIZE int8 to int8 in the region, whose inner scales follow from its
    multiplier) and, with symmetric activations (zero point 0), a clip at 0 on the integers
    (MAXIMUM with a constant), with or without a requantize after it depending on the
    calibrated ranges. Both once stayed on the CPU between two regions."""
    nodes = [conv("x", "w1", "c1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("MaxPool", ["c1"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Relu", ["p"], ["r"]),
             conv("r", "w2", "y", kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    init = {"w1": weights(8, 3, 3, 3), "w1_b": weights(8), "w2": weights(4, 8, 3, 3), "w2_b": weights(4)}
    onnx.save(make_model(nodes, {"x": feeds(1, 0)[0]["x"]}, ["y"], init), tmp_path / "pool_relu.onnx")
    path = ort_quantize(tmp_path / "pool_relu.onnx", tmp_path / "pool_relu_qdq.onnx", feeds(16, seed=1),
                        extra_options={"ActivationSymmetric": symmetric})
    compiled = edgecc.compile(path, "ethos-u")
    assert [op for op in ops_of(compiled.graph) if op not in QUANT_OPS] == ["npu_region"]
    region = npu_ops(compiled.graph)[0]
    assert region[:2] == ["qconv", "max_pool"] and relu_op in region and region[-1] == "qconv"
    operators = set(region_operators(compiled))
    assert ("QUANTIZE" in operators) == ("requantize" in region) and operators & {"MAXIMUM", "MINIMUM"} == clamp_ops
    module = compiled.load()
    on_cpu = edgecc.compile(path, "host").load()
    for feed in feeds(3, seed=11):
        got = module.run(feed)["y"]
        assert np.abs(got - run_ort(onnx.load(path), feed)[0]).max() <= output_step(path) * 1.001
        assert np.abs(got - on_cpu.run(feed)["y"]).max() <= output_step(path) * 1.001


def test_padded_max_pool_goes_to_the_npu_after_a_relu(tmp_path):
    """Max pooling with pads TFLite cannot name (1 at stride 2) becomes a PAD, filling the zero
    point, then a VALID MAX_POOL_2D: exact on data that never lies below its zero point."""
    compiled, on_host, calibration = compile_edgecc_quantized(clip_cnn(0.0, 1.5, pool_pads=True), tmp_path)
    assert ops_of(compiled.graph) == ["quantize", "npu_region", "dequantize"]
    assert {"PAD", "MAX_POOL_2D"} <= set(region_operators(compiled))
    module = compiled.load()
    step = float(compiled.graph.nodes[-1].inputs[1].const)
    for x in calibration[:3]:
        assert np.abs(module.run({"x": x})["y"] - on_host.run({"x": x})["y"]).max() <= step * 1.001


def test_average_pooling_counting_its_pads_goes_to_the_npu(tmp_path):
    """AveragePool with pads and count_include_pad=1 (PyTorch's default) becomes a PAD, filling
    the zero point (real 0), and a VALID AVERAGE_POOL_2D: within two output steps of ONNX Runtime
    (an LSB of the pooling's rounding, through the 3x3 convolution after it), while the same model
    not counting its pads (TFLite's SAME) differs from it by far more at the borders."""
    def model(count_include_pad: int) -> onnx.ModelProto:
        nodes = [conv("x", "w1", "c1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
                 helper.make_node("AveragePool", ["c1"], ["p"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                  count_include_pad=count_include_pad),
                 conv("p", "w2", "y", kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
        init = {"w1": w1, "w1_b": b1, "w2": w2, "w2_b": b2}
        return make_model(nodes, {"x": feeds(1, 0)[0]["x"]}, ["y"], init)

    w1, b1, w2, b2 = weights(8, 3, 3, 3), weights(8), weights(4, 8, 3, 3), weights(4)
    counted = ort_qdq(model(1), tmp_path / "counted.onnx")
    compiled = edgecc.compile(counted, "ethos-u")
    assert [op for op in ops_of(compiled.graph) if op not in QUANT_OPS] == ["npu_region"]
    assert {"PAD", "AVERAGE_POOL_2D"} <= set(region_operators(compiled))
    not_counted = edgecc.compile(ort_qdq(model(0), tmp_path / "not_counted.onnx"), "ethos-u").load()
    module, step = compiled.load(), output_step(counted)
    for feed in feeds(3, seed=2):
        got = module.run(feed)["y"]
        assert np.abs(got - run_ort(onnx.load(counted), feed)[0]).max() <= 2 * step * 1.001
        assert np.abs(got - not_counted.run(feed)["y"]).max() > 5 * step


def test_padded_max_pool_on_data_below_the_zero_point_stays_on_the_cpu(tmp_path):
    compiled, on_host, calibration = compile_edgecc_quantized(clip_cnn(-0.5, 1.5, pool_pads=True), tmp_path)
    assert [op for op in ops_of(compiled.graph) if op not in QUANT_OPS] == ["npu_region", "fused", "npu_region"]
    cpu = {op: reason for _, op, reason in compiled.graph.meta["npu_cpu_ops"]}
    assert cpu["max_pool"] == ("pads [1, 1, 1, 1] are neither TFLite's SAME nor VALID, and the input may lie below "
                               "its zero point, which a PAD fills in")
    module = compiled.load()
    step = float(compiled.graph.nodes[-1].inputs[1].const)
    for x in calibration[:3]:
        assert np.abs(module.run({"x": x})["y"] - on_host.run({"x": x})["y"]).max() <= step * 1.001


@pytest.mark.slow
def test_digits_cnn_runs_on_the_npu_within_one_point_of_fp32(tmp_path):
    """The CNN of tests/test_quant.py trained on scikit-learn's digits, calibrated on its training
    images by ONNX Runtime's QDQ quantization, every op but the input quantize and output
    dequantize on the NPU (its NCHW flatten included: the dense weights take NHWC order)."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import quantization as bench
    from edgecc.runtime import load

    x_train, y_train, x_test, y_test = bench.digits_split()
    net = bench.train_cnn(x_train, y_train, epochs=8)
    fp32 = bench.export_onnx(net, str(tmp_path / "digits.onnx"))
    qdq = bench.ort_quantize(fp32, str(tmp_path / "digits_qdq.onnx"), x_train[:128], reduce_range=True)
    compiled = edgecc.compile(qdq, "ethos-u", input_shapes={"x": (1, 1, 8, 8)})
    assert [op for op in ops_of(compiled.graph) if op not in QUANT_OPS] == ["npu_region"]
    compiled.export(tmp_path / "digits.so")
    module = load(tmp_path / "digits.so")
    acc_npu = float((bench.predictions(lambda x: module.run({"x": x})["logits"], x_test) == y_test).mean())
    acc_fp32 = float((bench.predictions(bench.ort_runner(fp32, 1), x_test) == y_test).mean())
    assert acc_npu >= acc_fp32 - 0.01, (acc_npu, acc_fp32)


@pytest.mark.slow
def test_digits_cnn_for_imx93_runs_under_qemu_like_the_ethos_u_library(tmp_path):
    """The digits CNN (ONNX Runtime QDQ) compiled for imx93-npu: its A55 code under qemu, its one
    region on LiteRT through the runner's pipes; logits bit-identical to the ethos-u library's
    on 20 test images."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import quantization as bench
    from edgecc.runtime import load, load_any

    x_train, y_train, x_test, _ = bench.digits_split()
    net = bench.train_cnn(x_train, y_train, epochs=8)
    fp32 = bench.export_onnx(net, str(tmp_path / "digits.onnx"))
    qdq = bench.ort_quantize(fp32, str(tmp_path / "digits_qdq.onnx"), x_train[:128], reduce_range=True)
    for target in ("imx93-npu", "ethos-u"):
        edgecc.compile(qdq, target, input_shapes={"x": (1, 1, 8, 8)}).export(tmp_path / f"{target}.so")
    emulated, on_host = load_any(tmp_path / "imx93-npu.so"), load(tmp_path / "ethos-u.so")
    assert emulated.emulated and [r["ops"] for r in emulated.metadata["npu"]["regions"]] == \
        [r["ops"] for r in on_host.metadata["npu"]["regions"]]
    for x in x_test[:20]:
        np.testing.assert_array_equal(emulated.run({"x": x[None]})["logits"], on_host.run({"x": x[None]})["logits"])


def test_edgecc_quantized_digits_cnn_runs_on_the_npu_within_one_point_of_fp32(tmp_path):
    """The same CNN as a float model quantized by edgecc itself (--quantize int8 --calibration):
    for an NPU target the final dense layer's output is quantized too, so everything but the
    input quantize and output dequantize is one NPU region, and top-1 stays within a point."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
    import quantization as bench
    from edgecc.quant import QuantizeOptions
    from edgecc.runtime import load

    x_train, y_train, x_test, y_test = bench.digits_split()
    net = bench.train_cnn(x_train, y_train, epochs=8)
    fp32 = bench.export_onnx(net, str(tmp_path / "digits.onnx"))
    qopts = QuantizeOptions(calibration={"x": x_train[:128]})
    compiled = edgecc.compile(fp32, "ethos-u", input_shapes={"x": (1, 1, 8, 8)}, quantize=qopts)
    assert ops_of(compiled.graph) == ["quantize", "npu_region", "dequantize"]
    assert not qopts.quantize_outputs  # the caller's options are left as given
    compiled.export(tmp_path / "digits.so")
    module = load(tmp_path / "digits.so")
    acc_npu = float((bench.predictions(lambda x: module.run({"x": x})["logits"], x_test) == y_test).mean())
    acc_fp32 = float((bench.predictions(bench.ort_runner(fp32, 1), x_test) == y_test).mean())
    assert acc_npu >= acc_fp32 - 0.01, (acc_npu, acc_fp32)


def test_missing_litert_names_the_extra(cnn_compiled, imx93_library, tmp_path, monkeypatch):
    from edgecc.runtime import load, load_any, npu

    path = tmp_path / "m.so"
    cnn_compiled.export(path)
    monkeypatch.setattr(npu, "_INTERPRETERS", {})
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(ToolchainError, match=r"needs LiteRT: pip install -e '\.\[npu\]'"):
        load(path)
    with pytest.raises(ToolchainError, match=r"needs LiteRT: pip install -e '\.\[npu\]'"):
        load_any(imx93_library)  # before any run under qemu
