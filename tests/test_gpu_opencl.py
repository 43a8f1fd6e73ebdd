"""GPU targets through OpenCL: schedules, thread binding, launches, and every kernel run on PoCL.

The tiny models are compiled for the Mali preset (`rk3588-gpu`: AArch64 host code + OpenCL C)
and the generic `opencl` target (x86-64 host), then run here by `edgecc.runtime.opencl`, whose
kernels run on PoCL through pyopencl (the `.[opencl]` extra and Debian's pocl-opencl-icd), and
compared with ONNX Runtime.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgecc
from edgecc.compare import compare_outputs
from edgecc.errors import ScheduleError
from edgecc.runtime import load, load_any
from edgecc.runtime.library_file import embedded_modules, library_device
from edgecc.runtime.opencl import OpenCLModule
from edgecc.targets import CudaTarget, MaliTarget, OpenCLTarget, get_target, list_presets, list_targets

DATA = Path(__file__).parent / "data"
MODELS = ["resnet_tiny", "mobilenetv2_tiny", "transformer_tiny"]


def _onnxruntime(model: str, inputs: dict) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(DATA / f"{model}.onnx"), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs)))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """model, target, precision -> (library path, CompiledModel), each compiled once."""
    cache: dict = {}
    folder = tmp_path_factory.mktemp("gpu")

    def build(model: str, target: str = "rk3588-gpu", precision: str = "fp32"):
        key = (model, target, precision)
        if key not in cache:
            options = {"precision": precision} if precision != "fp32" else {}  # CPU targets take none
            compiled = edgecc.compile(str(DATA / f"{model}.onnx"), target, target_options=options)
            path = folder / f"{model}-{target}-{precision}.so"
            compiled.export(path)
            cache[key] = (path, compiled)
        return cache[key]

    return build


# ----- targets ---------------------------------------------------------------------------------------
def test_gpu_targets_and_presets_are_listed_with_their_devices():
    assert {"cuda", "opencl", "mali"} <= set(list_targets())
    assert {"rk3588-gpu", "jetson-orin-gpu"} <= set(list_presets())
    mali = get_target("rk3588-gpu")
    assert isinstance(mali, MaliTarget) and mali.device_type == "opencl" and mali.schedule_rules == "gpu"
    assert mali.tvm_target_dict()["device"] == "mali"
    assert mali.tvm_target_dict()["host"]["mtriple"] == "aarch64-linux-gnu"
    assert isinstance(get_target("opencl"), OpenCLTarget) and get_target("opencl").host == "x86_64"
    orin = get_target("jetson-orin-gpu")
    assert isinstance(orin, CudaTarget) and (orin.arch, orin.host, orin.device_type) == ("sm_87", "aarch64", "cuda")
    assert get_target("cuda", arch="sm_90").tvm_target_dict()["arch"] == "sm_90"
    assert get_target("host").device_type == "cpu" and get_target("host").schedule_rules == "cpu"


@pytest.mark.parametrize("name, options, host, tag", [
    ("mali", {}, "aarch64", "mali-g610"),
    ("mali", {"host": "x86_64"}, "x86_64", "mali-g610-x86_64"),
    ("opencl", {}, "x86_64", "opencl-generic"),
    ("opencl", {"host": "aarch64"}, "aarch64", "opencl-generic-aarch64"),
    ("cuda", {"arch": "sm_87", "precision": "fp16"}, "x86_64", "cuda-sm_87-fp16"),
])
def test_gpu_hosts_default_to_the_familys_and_other_hosts_name_themselves_in_the_tag(name, options, host, tag):
    target = get_target(name, **options)
    assert (target.host, target.tag) == (host, tag)
    assert target.tvm_target_dict()["host"]["mtriple"] == f"{host}-linux-gnu"


@pytest.mark.parametrize("name", ["opencl", "mali", "cuda", "rk3588-gpu", "jetson-orin-gpu"])
def test_gpu_pipeline_ends_with_fusion_after_a_single_clean_up(name):
    from edgecc.passes import Fixpoint, opt_level_pipeline

    pipeline = opt_level_pipeline(2, get_target(name).passes(2))
    assert isinstance(pipeline[-2], Fixpoint) and {"fold-constants", "eliminate-dead-code"} <= {
        p.name for p in pipeline[-2].passes}
    assert pipeline[-1].name == "fuse"


@pytest.mark.parametrize("name, options, message", [
    ("cuda", {"arch": "sm_70"}, "cuda: unknown arch 'sm_70' (known: sm_80, sm_86, sm_87, sm_89, sm_90)"),
    ("mali", {"precision": "fp8"}, "mali: unknown precision 'fp8' (known: fp32, fp16)"),
    ("mali", {"gpu": "mali-t860"}, "mali: unknown gpu 'mali-t860'"),
    ("opencl", {"cpu": "cortex-a76"}, "opencl: --cpu names an AArch64 host CPU"),
    ("rk3588-gpu", {"arch": "sm_87"}, "target 'rk3588-gpu' takes no option 'arch' (its options: precision)"),
])
def test_bad_gpu_target_options_are_one_line_errors(name, options, message):
    with pytest.raises(edgecc.errors.TargetError) as info:
        get_target(name, **options)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


# ----- models on PoCL --------------------------------------------------------------------------------
@pytest.mark.parametrize("model", MODELS)
def test_models_on_the_mali_preset_run_on_pocl_and_match_onnxruntime(built, model):
    path, compiled = built(model)
    assert library_device(path) == "opencl"
    assert [m.kind for m in embedded_modules(path)] == ["relax.VMExecutable", "_lib", "opencl"]
    assert compiled.stats.fallbacks == [] and compiled.stats.scheduled_by.get("none", 0) == 0
    module = load_any(path)
    assert isinstance(module, OpenCLModule) and module.metadata["device"] == "opencl"
    inputs = module.random_inputs(seed=1)
    got = module.run(inputs)
    records = compare_outputs(got, _onnxruntime(model, inputs), rtol=1e-3, atol=1e-4)
    assert all(r.ok for r in records), records


def test_opencl_target_with_x86_host_runs_through_runtime_load(built):
    path, _ = built("transformer_tiny", "opencl")
    module = load(path)  # load() of an OpenCL library emulates it like load_any()
    assert isinstance(module, OpenCLModule)
    inputs = module.random_inputs(seed=2)
    records = compare_outputs(module.run(inputs), _onnxruntime("transformer_tiny", inputs), rtol=1e-3, atol=1e-4)
    assert all(r.ok for r in records), records
    for timing in (module.benchmark, module.profile):
        with pytest.raises(edgecc.errors.InputError, match="refused: emulating the OpenCL GPU"):
            timing(inputs)


@pytest.mark.parametrize("model", MODELS)
def test_fp16_kernels_run_on_pocl_with_their_error_reported(built, model):
    path32, _ = built(model)
    path16, compiled = built(model, precision="fp16")
    assert compiled.target.tag == "rk3588-gpu-fp16"
    module = load_any(path16)
    assert module.metadata["precision"] == "fp16" and module.half_emulated == ("cl_khr_fp16" not in
                                                                                 module.context.devices[0].extensions)
    inputs = module.random_inputs(seed=3)
    expected = _onnxruntime(model, inputs)
    got16 = module.run(inputs)
    got32 = load_any(path32).run(inputs)
    err16, err32 = _scaled_error(got16, expected), _scaled_error(got32, expected)
    print(f"{model}: max |error| / max |ONNX Runtime output|: fp16 {err16:.2e}, fp32 {err32:.2e}")
    assert err16 > err32  # the kernels really compute in half precision
    assert err16 < 1e-2  # and accumulate in float32 where it matters


def _scaled_error(got: dict, expected: dict) -> float:
    return max(float(np.abs(got[k] - v).max() / np.abs(v).max()) for k, v in expected.items())


# ----- schedules, thread binding and launches --------------------------------------------------------
def test_convolution_epilogues_stay_fused_in_one_launch(built):
    path, compiled = built("resnet_tiny")
    module = load_any(path)
    convs = [k["name"] for k in module.metadata["kernels"] if k["kind"] == "conv"]
    assert len(convs) >= 8
    rules = {k["kind"]: k["rule"] for k in module.metadata["kernels"]}
    assert rules["conv"] == "dlight.Matmul" and rules["matmul"].startswith("dlight.")
    for name in convs:
        launches = module.launches[name]["launches"]
        assert len(launches) == 1, (name, launches)  # bias, residual add and relu in the GEMM's kernel
        assert module.launches[name]["workspaces"] == []


def test_launch_sizes_come_from_the_thread_bindings(built):
    from edgecc.lower.plan import plan_kernels

    path, compiled = built("mobilenetv2_tiny")
    module = load_any(path)
    depthwise = [p.kernel for p in plan_kernels(compiled.graph) if p.kernel.kind == "depthwise_conv"]
    assert depthwise
    assert {k["rule"] for k in module.metadata["kernels"] if k["kind"] == "depthwise_conv"} == {
        "edgecc.thread_per_output"}
    for kernel in depthwise:
        (launch,) = module.launches[kernel.name]["launches"]
        elements = int(np.prod(kernel.outputs[0].type.shape))
        # one thread per output element: the blocks of 128 threads cover the output, the last one partly
        assert launch["block"] == [128, 1, 1] and launch["grid"][1:] == [1, 1]
        assert (launch["grid"][0] - 1) * 128 < elements <= launch["grid"][0] * 128
        assert module.launches[kernel.name]["writes"] == [len(kernel.args)]  # its one output


def test_a_kernel_without_thread_binding_is_an_error_naming_it():
    with pytest.raises(ScheduleError) as info:
        edgecc.compile(str(DATA / "resnet_tiny.onnx"), "rk3588-gpu", schedules="none")
    message = str(info.value)
    assert "without thread binding" in message and "k0_conv" in message and "\n" not in message


def test_unbound_blocks_finds_the_loop_nests_left_on_the_host():
    import tvm
    from tvm import te

    from edgecc.lower.device import unbound_blocks

    a = te.placeholder((64,), name="a")
    b = te.compute((64,), lambda i: a[i] * 2.0, name="b")
    func = te.create_prim_func([a, b])
    assert unbound_blocks(func) == ["b"]
    sch = tvm.s_tir.Schedule(func)
    bx, tx = sch.split(sch.get_loops(sch.get_sblock("b"))[0], [None, 32])
    sch.bind(bx, "blockIdx.x")
    sch.bind(tx, "threadIdx.x")
    assert unbound_blocks(sch.mod["main"]) == []


# ----- the CLI ------------------------------------------------------------------------------------
def _edgecc(*args, env=None):
    return subprocess.run([sys.executable, "-m", "edgecc", *map(str, args)], capture_output=True, text=True,
                          env=env, check=False)


def test_cli_runs_an_opencl_library_and_says_it_emulates(built):
    path, _ = built("resnet_tiny")
    done = _edgecc("run", path, "--compare-onnxruntime", DATA / "resnet_tiny.onnx", "--rtol", "1e-3")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("emulating the OpenCL GPU") == 1
    assert "yes" in done.stdout


def test_cli_unknown_arch_is_one_line_exit_2():
    done = _edgecc("compile", DATA / "resnet_tiny.onnx", "--target", "cuda", "--arch", "sm_70", "-o", "x.so")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "edgecc: error: cuda: unknown arch 'sm_70' (known: sm_80, sm_86, sm_87, sm_89, sm_90)"]


def test_missing_pocl_is_one_line_exit_2(built, tmp_path):
    import os

    path, _ = built("resnet_tiny")
    env = dict(os.environ, OCL_ICD_VENDORS=str(tmp_path))  # an ICD loader that finds no platform
    done = _edgecc("run", path, env=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs the PoCL OpenCL platform" in lines[0] and "pocl-opencl-icd" in lines[0]


def test_missing_pyopencl_is_one_line_exit_2(built, tmp_path):
    import os

    path, _ = built("resnet_tiny")
    (tmp_path / "pyopencl.py").write_text("raise ImportError('pyopencl is not installed')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    done = _edgecc("run", path, env=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs pyopencl and PoCL" in lines[0]


def test_runner_for_an_opencl_target_is_one_line_exit_2(tmp_path):
    done = _edgecc("runner", "--target", "rk3588-gpu", "-o", tmp_path / "deploy")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no OpenCL runtime" in lines[0] and "USE_OPENCL=ON" in lines[0]
    assert not (tmp_path / "deploy").exists()


def test_a_cpu_library_embeds_no_device_code(built):
    path, _ = built("resnet_tiny", "host")
    assert [m.kind for m in embedded_modules(path)] == ["relax.VMExecutable", "_lib"]
    assert library_device(path) == "cpu"
