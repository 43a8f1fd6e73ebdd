"""CUDA builds on a machine without an NVIDIA GPU: real cubins from NVRTC (the `.[cuda]` wheels),
their architecture read from the library, their PTX assembled by ptxas, and one-line refusals for
what is missing (an NVRTC wheel, a GPU) or unknown (an arch)."""

from __future__ import annotations

import ctypes
import ctypes.util
import subprocess
import sys

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
    (device_module,) = executable.mod.imports
    ptx = cuda.cuda_source_to_ptx(device_module.inspect_source("cuda"), arch)
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
