"""CUDA builds on a machine without an NVIDIA GPU: real cubins from NVRTC (the `.[cuda]` wheels),
their architecture read from the library, their PTX assembled by ptxas, and one-line refusals for
what is missing (an NVRTC wheel, a GPU) or unknown (an arch)."""

from __future__ import annotations

import ctypes
import ctypes.util
import subprocess
import sys
from pathlib import Path

import pytest

from edgecc.errors import TargetError, ToolchainError
from edgecc.targets import cuda_toolchain as cuda

#: e_flags low byte of a cubin per architecture (the SM version)
SM_FLAGS = {"sm_87": 0x57, "sm_90": 0x5A}


def _vector_add_kernel():
    """A one-kernel IRModule bound to CUDA blocks and threads."""
    import tvm
    from tvm import te

    a = te.placeholder((4096,), "float32", name="a")
    b = te.compute((4096,), lambda i: a[i] * 2.0 + 1.0, name="b")
    sch = tvm.s_tir.Schedule(te.create_prim_func([a, b]))
    (loop,) = sch.get_loops(sch.get_sblock("b"))
    blocks, threads = sch.split(loop, [None, 256])
    sch.bind(blocks, "blockIdx.x")
    sch.bind(threads, "threadIdx.x")
    return tvm.IRModule({"main": sch.mod["main"]})


def _build(arch: str):
    import tvm

    target = tvm.target.Target({"kind": "cuda", "arch": arch, "host": {"kind": "llvm"}})
    with target, cuda.nvrtc_build():
        return tvm.compile(_vector_add_kernel(), target=target)


@pytest.fixture(scope="module", params=sorted(SM_FLAGS))
def kernel_library(request, tmp_path_factory):
    """(arch, executable, path of its exported library)."""
    arch = request.param
    executable = _build(arch)
    path = tmp_path_factory.mktemp(arch) / "vector_add.so"
    executable.export_library(str(path))
    return arch, executable, path


def test_library_holds_a_cubin_of_the_requested_arch(kernel_library):
    arch, _, path = kernel_library
    cubins = cuda.check_library_cubins(path, arch)
    assert [c.arch for c in cubins] == [arch]
    header = cubins[0].data[:64]
    assert int.from_bytes(header[18:20], "little") == 190  # EM_CUDA
    assert header[48] == SM_FLAGS[arch]
    assert b"__global__" not in path.read_bytes()  # no CUDA C source left to compile at load time


def test_generated_ptx_assembles_with_ptxas(kernel_library):
    arch, executable, _ = kernel_library
    ptx = cuda.cuda_source_to_ptx(cuda.generated_cuda_source(executable), arch)
    assert f".target {arch}" in ptx
    cubin = cuda.assemble_ptx(ptx, arch)
    assert [c.arch for c in cuda.embedded_cubins(b"\0" + cubin)] == [arch]


def test_ptxas_rejects_broken_ptx():
    with pytest.raises(ToolchainError, match="ptxas could not assemble the PTX for sm_87"):
        cuda.assemble_ptx(".version 8.0\n.target sm_87\n.address_size 64\nnot an instruction;\n", "sm_87")


def test_library_with_cubins_of_another_arch_is_refused(kernel_library):
    arch, _, path = kernel_library
    other = "sm_80"
    with pytest.raises(ToolchainError, match=f"holds cubins for {arch}, expected {other}"):
        cuda.check_library_cubins(path, other)


def test_cpu_library_has_no_cubins(tmp_path):
    path = tmp_path / "host.so"
    path.write_bytes(b"\x7fELF" + bytes(60))
    assert cuda.library_cubins(path) == []
    with pytest.raises(ToolchainError, match="kept no cubin"):
        cuda.check_library_cubins(path, "sm_87")


def test_driver_stub_is_built_from_the_shipped_source(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECC_CACHE", str(tmp_path))
    stub = cuda.driver_stub()
    assert stub.is_relative_to(tmp_path) and stub.name == "libcuda.so.1"
    out = subprocess.run(["readelf", "-d", str(stub)], capture_output=True, text=True, check=True).stdout
    assert "Library soname: [libcuda.so.1]" in out
    lib = ctypes.CDLL(str(stub))
    assert lib.cuModuleLoadData(None, None) == cuda.CUDA_ERROR_STUB_LIBRARY
    assert cuda.driver_stub() == stub  # built once


def test_unknown_arch_is_one_line():
    with pytest.raises(TargetError) as info:
        cuda.check_arch("sm_75")
    assert str(info.value) == "cuda: unknown arch 'sm_75' (known: sm_80, sm_86, sm_87, sm_89, sm_90)"


def test_missing_nvrtc_wheel_is_one_line(monkeypatch):
    real = cuda._package_dir
    monkeypatch.setattr(cuda, "_package_dir", lambda name: None if name == "nvidia.cuda_nvrtc" else real(name))
    with pytest.raises(ToolchainError) as info:
        with cuda.nvrtc_build():
            pass
    message = str(info.value)
    assert "\n" not in message
    assert "missing: nvidia-cuda-nvrtc-cu12;" in message and "pip install -e '.[cuda]'" in message


@pytest.mark.skipif(ctypes.util.find_library("cuda") is not None, reason="this machine has an NVIDIA driver")
def test_cuda_library_without_a_gpu_is_one_line(kernel_library):
    """`edgecc run` in a fresh process (no driver, no stub loaded): exit 2 and one line naming what is missing."""
    _, _, path = kernel_library
    done = subprocess.run([sys.executable, "-m", "edgecc", "run", str(path)], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"edgecc: error: {path}: CUDA library ({kernel_library[0]} cubins) needs an NVIDIA GPU to run: "
        "no NVIDIA driver (libcuda.so.1 not found)"]


def test_stub_is_never_taken_for_a_gpu(kernel_library):
    """In this process the build stub is loaded: loading the library still says there is no driver."""
    from edgecc.runtime import load

    _, _, path = kernel_library
    with pytest.raises(ToolchainError, match="only edgecc's build-time libcuda.so.1 stub is loaded"):
        load(path)


# ----- the tiny models, compiled for every CUDA target ------------------------------------------------
DATA = Path(__file__).parent / "data"
MODELS = ("resnet_tiny", "mobilenetv2_tiny", "transformer_tiny")
#: (target name, options, the arch its cubins must have, the host CPU of its library)
CUDA_TARGETS = {
    "cuda-sm_87": ("cuda", {"arch": "sm_87"}, "sm_87", "x86_64"),
    "cuda-sm_90": ("cuda", {"arch": "sm_90"}, "sm_90", "x86_64"),
    "jetson-orin-gpu": ("jetson-orin-gpu", {}, "sm_87", "aarch64"),
}


@pytest.fixture(scope="module", params=[(m, t) for m in MODELS for t in CUDA_TARGETS], ids="-".join)
def compiled_model(request, tmp_path_factory):
    """(arch, host, CompiledModel, library path) of one tiny model for one CUDA target."""
    import edgecc

    model, key = request.param
    target, options, arch, host = CUDA_TARGETS[key]
    compiled = edgecc.compile(str(DATA / f"{model}.onnx"), target=target, target_options=options)
    path = tmp_path_factory.mktemp(f"{model}-{key}") / f"{model}.so"
    compiled.export(path)
    return arch, host, compiled, path


def test_model_library_holds_cubins_of_the_target_arch(compiled_model):
    from edgecc.runtime.module import library_arch

    arch, host, compiled, path = compiled_model
    assert library_arch(str(path)) == host
    assert compiled.stats.fallbacks == []
    cubins = cuda.check_library_cubins(path, arch)
    assert all(c.data[48] == int(arch[3:]) for c in cubins)  # e_flags low byte: the SM version


def test_model_kernels_assemble_with_ptxas(compiled_model):
    arch, _, compiled, _ = compiled_model
    source = cuda.generated_cuda_source(compiled.executable)
    kernels = source.count("extern \"C\" __global__")
    assert kernels >= len(compiled.stats.kernel_table)
    cubin = cuda.assemble_ptx(cuda.cuda_source_to_ptx(source, arch), arch)
    assert [c.arch for c in cuda.embedded_cubins(b"\0" + cubin)] == [arch]


def test_unknown_arch_on_the_command_line_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "edgecc", "compile", str(DATA / "resnet_tiny.onnx"), "--target", "cuda",
                           "--arch", "sm_75", "-o", str(tmp_path / "m.so")], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "edgecc: error: cuda: unknown arch 'sm_75' (known: sm_80, sm_86, sm_87, sm_89, sm_90)"]
    assert not (tmp_path / "m.so").exists()


# ----- deploy runner -----------------------------------------------------------------------------------
@pytest.mark.parametrize("arch, machine", [("x86_64", 62), ("aarch64", 183)])
def test_cuda_deploy_folder_carries_tvms_cuda_runtime(arch, machine, tmp_path):
    from edgecc.runtime.deploy import deploy_folder

    out = deploy_folder(arch, tmp_path / "deploy", device="cuda")
    assert sorted(p.name for p in out.iterdir()) == [
        "edgecc-runner", "libtvm_ffi.so", "libtvm_runtime.so", "libtvm_runtime_cuda.so"]
    header = (out / "edgecc-runner").read_bytes()[:20]
    assert int.from_bytes(header[18:20], "little") == machine
    needed = subprocess.run(["readelf", "-d", str(out / "libtvm_runtime_cuda.so")], capture_output=True, text=True,
                            check=True).stdout
    assert f"[{cuda.CUDA_RUNTIME}]" in needed and "[libcuda.so.1]" in needed


@pytest.mark.skipif(ctypes.util.find_library("cuda") is not None, reason="this machine has an NVIDIA driver")
def test_runner_without_the_driver_says_what_is_missing(kernel_library, tmp_path):
    from edgecc.runtime.deploy import deploy_folder

    out = deploy_folder("x86_64", tmp_path / "deploy", device="cuda")
    done = subprocess.run([str(out / "edgecc-runner"), str(kernel_library[2])], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "edgecc-runner: error: cannot load libtvm_runtime_cuda.so: libcuda.so.1: cannot open shared object file: "
        "No such file or directory"]


# ----- tools/gpu_check.py: what runs without a GPU ------------------------------------------------------
GPU_CHECK = Path(__file__).parents[1] / "tools" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check_package(tmp_path_factory):
    """A `gpu_check.py package` folder for sm_90 holding the tiny ResNet (exported by torch)."""
    out = tmp_path_factory.mktemp("gpu-check")
    done = subprocess.run([sys.executable, str(GPU_CHECK), "package", str(out), "--arch", "sm_90",
                           "--models", "resnet_tiny"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out


def _measure_without_tvm(folder, tmp_path, nvidia_smi_line: str | None):
    """Run the package's own copy of gpu_check.py `measure` where importing TVM or edgecc fails,
    with a stand-in nvidia-smi printing `nvidia_smi_line` (None: no nvidia-smi on PATH)."""
    import os

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if nvidia_smi_line is not None:
        smi = bin_dir / "nvidia-smi"
        smi.write_text(f"#!/bin/sh\necho '{nvidia_smi_line}'\n")
        smi.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    code = ("import runpy, sys; sys.modules['tvm'] = sys.modules['edgecc'] = None; "
            f"sys.argv = ['gpu_check.py', 'measure', {str(folder)!r}, '--repeat', '2']; "
            f"runpy.run_path({str(folder / 'gpu_check.py')!r}, run_name='__main__')")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)


def test_gpu_check_package_holds_what_the_gpu_machine_needs(gpu_check_package):
    import json

    import numpy as np
    import onnxruntime as ort

    manifest = json.loads((gpu_check_package / "manifest.json").read_text())
    assert manifest["arch"] == "sm_90" and manifest["runner"] == "deploy/edgecc-runner"
    (entry,) = manifest["models"]
    assert [c.arch for c in cuda.library_cubins(gpu_check_package / entry["library"])] == ["sm_90"]
    assert sorted(p.name for p in (gpu_check_package / "deploy").iterdir()) == [
        "edgecc-runner", "libtvm_ffi.so", "libtvm_runtime.so", "libtvm_runtime_cuda.so"]
    assert (gpu_check_package / "model_zoo.py").is_file() and (gpu_check_package / "gpu_check.py").is_file()
    feeds = {name: np.load(gpu_check_package / file) for name, file in entry["inputs"].items()}
    (output,) = ort.InferenceSession(str(gpu_check_package / entry["onnx"])).run(None, feeds)
    assert output.shape == (1, 10) and np.isfinite(output).all()


def test_gpu_check_measure_without_a_gpu_is_one_line(gpu_check_package, tmp_path):
    done = _measure_without_tvm(gpu_check_package, tmp_path, None)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["gpu_check: error: no NVIDIA GPU here (nvidia-smi not found)"]


def test_gpu_check_measure_refuses_a_gpu_of_another_arch(gpu_check_package, tmp_path):
    done = _measure_without_tvm(gpu_check_package, tmp_path, "NVIDIA Jetson AGX Orin, 8.7")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"gpu_check: error: {gpu_check_package} was compiled for sm_90, this GPU (NVIDIA Jetson AGX Orin) is sm_87"]


@pytest.mark.skipif(ctypes.util.find_library("cuda") is not None, reason="this machine has an NVIDIA driver")
def test_gpu_check_measure_goes_through_the_deploy_runner(gpu_check_package, tmp_path):
    """Without TVM and with a GPU that nvidia-smi claims: the check reaches the runner, which needs the driver."""
    done = _measure_without_tvm(gpu_check_package, tmp_path, "NVIDIA H200, 9.0")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "gpu_check: error: resnet_tiny_sm_90.so: the runner failed: edgecc-runner: error: cannot load "
        "libtvm_runtime_cuda.so: libcuda.so.1: cannot open shared object file: No such file or directory"]


def test_compile_without_the_nvrtc_wheel_is_one_line(tmp_path):
    """The CLI in a process where the NVRTC wheel cannot be imported: exit 2 before any work."""
    out = tmp_path / "m.so"
    code = ("import sys; sys.modules['nvidia.cuda_nvrtc'] = None; from edgecc.cli import main; "
            f"sys.exit(main(['compile', {str(DATA / 'resnet_tiny.onnx')!r}, '--target', 'jetson-orin-gpu', "
            f"'-o', {str(out)!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "edgecc: error: CUDA builds need NVRTC and the CUDA headers from the CUDA wheels; missing: "
        "nvidia-cuda-nvrtc-cu12; install them with pip install 'edgecc[cuda]' (in a checkout: pip install -e '.[cuda]')"]
    assert not out.exists()


def test_cuda_build_refuses_kernels_without_thread_binding():
    """Unscheduled kernels would compile silently into host code: the CUDA build names them instead."""
    import edgecc
    from edgecc.errors import ScheduleError

    with pytest.raises(ScheduleError) as info:
        edgecc.compile(str(DATA / "resnet_tiny.onnx"), target="cuda", target_options={"arch": "sm_87"},
                       schedules="none")
    message = str(info.value)
    assert message.startswith("a GPU library cannot hold kernels without thread binding: k0_conv (")
    assert "\n" not in message


def test_runner_command_builds_the_cuda_deploy_folder(tmp_path):
    done = subprocess.run([sys.executable, "-m", "edgecc", "runner", "--target", "cuda", "-o", str(tmp_path / "deploy")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (f"wrote {tmp_path / 'deploy'}: edgecc-runner, libtvm_ffi.so, libtvm_runtime.so, "
                        "libtvm_runtime_cuda.so")
    assert lines[1] == ("the board needs the NVIDIA driver (libcuda.so.1) and the CUDA 13 runtime (libcudart.so.13) "
                        "on its library path")
