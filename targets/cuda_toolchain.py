"""The CUDA toolchain: NVRTC from PyPI wheels, a build-time driver stub, and cubin checks.

`tvm.compile` turns CUDA kernels into cubins (through NVRTC's Python binding) only while TVM's
CUDA module library, `tvm/lib/libtvm_runtime_cuda.so`, is loaded. That library links the NVIDIA
driver (`libcuda.so.1`) and the CUDA 13 runtime (`libcudart.so.13`); where either is missing TVM
skips it at import and a CUDA build silently keeps CUDA C source. `nvrtc_build()` wraps a build:
it checks the `.[cuda]` wheels, loads the runtime and the driver (on a machine without one, a stub
compiled from `cuda_stub.c` with the host C compiler into the edgecc cache folder), then the CUDA
module library, and points NVRTC at the wheels' headers for the build only.

The `.[cuda]` extra holds: `cuda-bindings` 12 (NVRTC's binding), `nvidia-cuda-nvrtc-cu12`, the
CUDA 12.9 runtime and CCCL headers NVRTC compiles against, `nvidia-cuda-nvcc-cu12` (`ptxas`), and
`nvidia-cuda-runtime` 13 (the `libcudart.so.13` the CUDA module library links).

Also here: the architectures edgecc builds for, the cubins embedded in a built library (ELF
`e_machine` 190, the SM version in the low byte of `e_flags`), PTX of a build's CUDA source
assembled with `ptxas`, and why CUDA code cannot run on this machine.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from edgecc._files import atomic_output, cache_root
from edgecc.errors import TargetError, ToolchainError

__all__ = [
    "CUDA_ARCHES",
    "CUDA_RUNTIME",
    "Cubin",
    "CudaWheels",
    "INSTALL_HINT",
    "assemble_ptx",
    "check_arch",
    "check_library_cubins",
    "cuda_driver_problem",
    "cuda_source_to_ptx",
    "driver_stub",
    "embedded_cubins",
    "find_wheels",
    "generated_cuda_source",
    "library_cubins",
    "load_cuda_module_library",
    "nvrtc_build",
    "prepare_cuda_run",
]

#: architectures edgecc builds cubins for -> the GPUs that have it
CUDA_ARCHES = {
    "sm_80": "Ampere data-centre GPUs (A100, A30)",
    "sm_86": "Ampere GeForce and workstation GPUs (RTX 30, A10, A40)",
    "sm_87": "Jetson Orin (AGX, NX, Nano)",
    "sm_89": "Ada Lovelace (RTX 40, L4, L40)",
    "sm_90": "Hopper (H100, H200, GH200)",
}
#: the CUDA runtime TVM's CUDA module library links (apache-tvm 0.27 wheels); a board needs it too
CUDA_RUNTIME = "libcudart.so.13"
INSTALL_HINT = "pip install 'edgecc[cuda]' (in a checkout: pip install -e '.[cuda]')"
EM_CUDA = 190  # ELF e_machine of NVIDIA cubins
CUDA_ERROR_STUB_LIBRARY = 34

_loaded: list[ctypes.CDLL] = []  # libraries loaded here stay loaded for the process's lifetime


def check_arch(arch: str) -> str:
    """`arch` if edgecc builds for it, else a TargetError naming the known ones."""
    if arch not in CUDA_ARCHES:
        raise TargetError(f"cuda: unknown arch '{arch}' (known: {', '.join(CUDA_ARCHES)})")
    return arch


# --- the wheels ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class CudaWheels:
    """Where the `.[cuda]` wheels put what a build needs."""

    runtime_root: Path  # CUDA 12.9 runtime headers: NVRTC's CUDA_PATH
    cccl_include: Path  # cuda/std headers the generated code includes
    ptxas: Path


def _package_dir(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ModuleNotFoundError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _bindings_major() -> int | None:
    try:
        return int(metadata.version("cuda-bindings").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return None


def _holds(folder: Path | None, pattern: str) -> bool:
    return folder is not None and any(folder.glob(pattern))


def find_wheels() -> CudaWheels:
    """The wheels' folders, or one ToolchainError naming every missing package."""
    nvrtc = _package_dir("nvidia.cuda_nvrtc")
    runtime = _package_dir("nvidia.cuda_runtime")
    cccl = _package_dir("nvidia.cuda_cccl")
    nvcc = _package_dir("nvidia.cuda_nvcc")
    missing = [package for package, ok in [
        ("cuda-bindings<13", _bindings_major() == 12),
        ("nvidia-cuda-nvrtc-cu12", _holds(nvrtc, "lib/libnvrtc.so.12*")),
        ("nvidia-cuda-runtime-cu12==12.9.*", _holds(runtime, "include/cuda_runtime.h")),
        ("nvidia-cuda-cccl-cu12==12.9.*", _holds(cccl, "include/cuda/std")),
        ("nvidia-cuda-nvcc-cu12", _holds(nvcc, "bin/ptxas")),
    ] if not ok]
    if missing:
        raise ToolchainError(f"CUDA builds need NVRTC and the CUDA headers from the CUDA wheels; missing: "
                             f"{', '.join(missing)}; install them with {INSTALL_HINT}")
    return CudaWheels(runtime, cccl / "include", nvcc / "bin" / "ptxas")


# --- loading TVM's CUDA module library -------------------------------------------------------------
def driver_stub() -> Path:
    """The stub `libcuda.so.1`, compiled from `cuda_stub.c` into the cache folder when missing."""
    source = Path(__file__).with_name("cuda_stub.c")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    stub = cache_root() / "cuda-stub" / digest / "libcuda.so.1"
    if stub.is_file():
        return stub
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise ToolchainError("no NVIDIA driver here and no C compiler (cc) to build edgecc's libcuda.so.1 "
                             "stub for CUDA builds; install gcc")
    stub.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(stub, mode=0o755) as tmp:
        cmd = [compiler, "-shared", "-fPIC", "-O2", "-Wl,-soname,libcuda.so.1", "-o", tmp, str(source)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["no output"])[0]
            raise ToolchainError(f"building the libcuda.so.1 stub with {compiler} failed: {first}")
    return stub


def _load_global(path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    _loaded.append(lib)
    return lib


def _load_cudart() -> None:
    """Load libcudart.so.13 from the loader's path, else from the nvidia-cuda-runtime 13 wheel."""
    try:
        _load_global(CUDA_RUNTIME)
        return
    except OSError:
        pass
    wheel = _package_dir("nvidia.cu13")
    candidate = wheel / "lib" / CUDA_RUNTIME if wheel else None
    if candidate is None or not candidate.is_file():
        raise ToolchainError(f"TVM's CUDA support needs the CUDA 13 runtime ({CUDA_RUNTIME}); install it with "
                             f"{INSTALL_HINT}")
    _load_global(str(candidate))


def _load_driver(stub_allowed: bool) -> None:
    """Load the NVIDIA driver; where there is none, the stub (for builds) or a ToolchainError."""
    try:
        _load_global("libcuda.so.1")
        return
    except OSError:
        if not stub_allowed:
            raise ToolchainError("no NVIDIA driver on this machine (libcuda.so.1 not found)") from None
    _load_global(str(driver_stub()))


def _cuda_module_registered() -> bool:
    import tvm

    return tvm.get_global_func("ffi.Module.create.cuda", allow_missing=True) is not None


def load_cuda_module_library(stub_allowed: bool = True) -> None:
    """Make TVM's CUDA module library available in this process (idempotent).

    `stub_allowed`: without an NVIDIA driver, load the build stub in its place (enough to build,
    never to run); else such a machine is a ToolchainError.
    """
    import tvm

    if _cuda_module_registered():
        return
    _load_cudart()
    _load_driver(stub_allowed)
    library = Path(tvm.__file__).parent / "lib" / "libtvm_runtime_cuda.so"
    try:
        _loaded.append(ctypes.CDLL(str(library), mode=ctypes.RTLD_LOCAL))
    except OSError as exc:
        raise ToolchainError(f"TVM's CUDA module library {library} does not load: {str(exc).splitlines()[0]}") from None
    if not _cuda_module_registered():
        raise ToolchainError(f"{library} loaded but registered no CUDA module (apache-tvm built without CUDA?)")


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def nvrtc_build() -> Iterator[CudaWheels]:
    """Around `tvm.compile` of a CUDA target (inside `with target:`, which gives NVRTC the arch):
    CUDA kernels become cubins compiled by NVRTC against the wheels' headers, or a ToolchainError
    says in one line what is missing."""
    wheels = find_wheels()
    load_cuda_module_library(stub_allowed=True)
    extra = " ".join(filter(None, [f"-I{wheels.cccl_include}", os.environ.get("TVM_CUDA_NVRTC_EXTRA_OPTS")]))
    with _environment({"TVM_CUDA_COMPILE_MODE": "nvrtc", "CUDA_PATH": str(wheels.runtime_root),
                       "TVM_CUDA_NVRTC_EXTRA_OPTS": extra}):
        yield wheels


# --- what a build produced --------------------------------------------------------------------------
@dataclass(frozen=True)
class Cubin:
    """A cubin found in a library: its architecture and bytes."""

    arch: str  # sm_87
    offset: int  # where it starts in the library file
    data: bytes


def _cubin_at(data: bytes, pos: int) -> Cubin | None:
    header = data[pos:pos + 64]
    if len(header) < 64 or header[4] != 2 or header[5] != 1:  # ELF64, little-endian
        return None
    if int.from_bytes(header[18:20], "little") != EM_CUDA:
        return None
    flags = int.from_bytes(header[48:52], "little")
    section_table = int.from_bytes(header[40:48], "little")
    entry_size, entries = int.from_bytes(header[58:60], "little"), int.from_bytes(header[60:62], "little")
    end = pos + section_table + entry_size * entries
    if end > len(data):
        return None
    return Cubin(f"sm_{flags & 0xFF}", pos, data[pos:end])


def embedded_cubins(data: bytes) -> list[Cubin]:
    """The cubins (CUDA ELF images) inside `data`, a library file's bytes, in file order."""
    found, pos = [], data.find(b"\x7fELF", 1)
    while pos >= 0:
        cubin = _cubin_at(data, pos)
        if cubin is not None:
            found.append(cubin)
        pos = data.find(b"\x7fELF", pos + (len(cubin.data) if cubin else 4))
    return found


def library_cubins(path: str | os.PathLike) -> list[Cubin]:
    """The cubins embedded in the library at `path` (empty for a CPU library)."""
    return embedded_cubins(Path(path).read_bytes())


def check_library_cubins(path: str | os.PathLike, arch: str) -> list[Cubin]:
    """The cubins of a library built for `arch`; ToolchainError when it holds none (TVM kept CUDA
    source) or holds cubins for another architecture."""
    cubins = library_cubins(path)
    if not cubins:
        raise ToolchainError(f"{path}: the CUDA build kept no cubin (TVM's CUDA module library was not loaded)")
    other = sorted({c.arch for c in cubins} - {arch})
    if other:
        raise ToolchainError(f"{path}: holds cubins for {', '.join(other)}, expected {arch}")
    return cubins


def generated_cuda_source(executable) -> str:
    """The CUDA C source of the kernels in a build's `tvm.compile` result (kept in memory only)."""
    pending, sources = [executable.mod], []
    while pending:
        module = pending.pop()
        if module.kind == "cuda":
            sources.append(module.inspect_source("cuda"))
        pending.extend(module.imports)
    if not sources:
        raise ToolchainError("the build holds no CUDA module")
    return "\n".join(sources)


def cuda_source_to_ptx(source: str, arch: str) -> str:
    """PTX of CUDA C `source` (a build's generated kernels) for `arch`, compiled by NVRTC."""
    from tvm.support import nvcc

    with nvrtc_build():
        return bytes(nvcc.compile_cuda(source, target_format="ptx", arch=check_arch(arch), compiler="nvrtc")).decode()


def assemble_ptx(ptx: str, arch: str) -> bytes:
    """The cubin `ptxas` (from the nvcc wheel) assembles from `ptx` for `arch`; ToolchainError on failure."""
    ptxas = find_wheels().ptxas
    with tempfile.TemporaryDirectory(prefix="edgecc-ptxas-") as tmp:
        source, out = Path(tmp) / "kernels.ptx", Path(tmp) / "kernels.cubin"
        source.write_text(ptx)
        done = subprocess.run([str(ptxas), f"-arch={check_arch(arch)}", str(source), "-o", str(out)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["no output"])[0]
            raise ToolchainError(f"ptxas could not assemble the PTX for {arch}: {first}")
        return out.read_bytes()


# --- running -----------------------------------------------------------------------------------------
def cuda_driver_problem() -> str | None:
    """Why CUDA kernels cannot run on this machine, in a few words; None when they can."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no NVIDIA driver (libcuda.so.1 not found)"
    if hasattr(driver, "edgecc_cuda_stub"):
        return "no NVIDIA driver (only edgecc's build-time libcuda.so.1 stub is loaded)"
    status = driver.cuInit(0)
    if status != 0:
        return f"the NVIDIA driver reports no usable GPU (cuInit error {status})"
    count = ctypes.c_int(0)
    if driver.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value < 1:
        return "no NVIDIA GPU (the driver counts none)"
    return None


def prepare_cuda_run(path: str | os.PathLike) -> bool:
    """Before loading the library at `path`: whether it holds CUDA kernels, and if so make TVM's
    CUDA module library ready with the real driver, or raise a ToolchainError saying in one line
    what this machine lacks."""
    cubins = library_cubins(path)
    if not cubins:
        return False
    problem = cuda_driver_problem()
    if problem is not None:
        raise ToolchainError(f"{os.fspath(path)}: CUDA library ({cubins[0].arch} cubins) needs an NVIDIA GPU to run: "
                             f"{problem}")
    load_cuda_module_library(stub_allowed=False)
    return True
