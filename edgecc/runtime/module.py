"""Load and run a library built by edgecc, with numpy in and out."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edgecc.errors import InputError, ToolchainError

from .library_file import library_device
from .npu import ensure_region_function, register_regions
from .specs import LibrarySpecs, input_sizes, kernel_for_sizes
from .threads import pool_threads, use_threads

__all__ = ["Module", "TimingResult", "library_arch", "load", "load_any"]


@dataclass
class TimingResult:
    """Per-run latencies in seconds (after warm-up)."""

    times: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.times)

    @property
    def stdev(self) -> float:
        return statistics.stdev(self.times) if len(self.times) > 1 else 0.0

    def __str__(self) -> str:
        return (f"median {self.median * 1e3:.3f} ms, mean {self.mean * 1e3:.3f} ms, "
                f"stdev {self.stdev * 1e3:.3f} ms over {len(self.times)} runs")


class Module(LibrarySpecs):
    """A loaded model: `run({"input": array}) -> {"output": array}`.

    Its kernels run on `threads` threads of TVM's pool (None: every core this process may run
    on); `self.threads` is the number the pool really uses.
    """

    def __init__(self, lib, path: str = "<memory>", threads: int | None = None, device: str = "cpu"):
        from tvm import relax

        self.path = path
        self._lib = lib
        self.device = device  # where the kernels run ("cpu", "cuda"), as `library_device` tells
        self.threads = use_threads(threads)  # threads the kernels run on (None: every available core)
        ensure_region_function()  # a library with NPU regions calls it (edgecc.runtime.npu)
        try:
            self._vm = relax.VirtualMachine(lib, self._devices())
        except AttributeError:  # a shared library without a Relax VM executable
            raise InputError(f"{path}: not an edgecc library (no Relax VM executable)") from None
        try:
            self.metadata = json.loads(str(self._vm["edgecc_metadata"]()))
        except Exception as exc:  # noqa: BLE001 - a library not built by edgecc
            raise InputError(f"{path}: not an edgecc library (no metadata: {exc})") from None
        self.inputs = self.metadata["inputs"]
        self.outputs = self.metadata["outputs"]
        self._main = self._vm["main"]
        if "npu" in self.metadata:  # NPU regions: emulated here (edgecc.runtime.npu)
            self.emulation_note = register_regions(self.metadata["npu"])
            self.emulated = True  # its timings say nothing about the NPU: benchmark and profile refuse

    def _devices(self):
        """The VM's devices: the kernels' device, and the CPU for the host code."""
        import tvm

        return tvm.cpu() if self.device == "cpu" else [tvm.device(self.device), tvm.cpu()]

    def _arrays(self, inputs: Mapping[str, np.ndarray]):
        import tvm

        if pool_threads() != self.threads:  # the pool is per calling thread; another module may have set it
            use_threads(self.threads)
        device = tvm.device(self.device)
        return [tvm.runtime.tensor(data, device) for data in self.check_inputs(inputs)]

    def _call(self, arrays):
        out = self._main(*arrays)
        if len(self.outputs) == 1:
            return [out]
        return list(out)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; returns output name -> numpy array."""
        results = self._call(self._arrays(inputs))
        return {spec["name"]: r.numpy() for spec, r in zip(self.outputs, results)}

    def benchmark(self, inputs: Mapping[str, np.ndarray], repeat: int = 20, warmup: int = 3) -> TimingResult:
        """Time `repeat` runs after `warmup` untimed ones (inputs already on the device); InputError
        for a library with emulated parts."""
        self.refuse_emulated_timing("benchmark")
        arrays = self._arrays(inputs)
        for _ in range(warmup):
            self._call(arrays)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            self._call(arrays)
            times.append(time.perf_counter() - start)
        return TimingResult(times)

    def profile(self, inputs: Mapping[str, np.ndarray], repeat: int = 10):
        """Per-kernel times of `repeat` runs (`edgecc.runtime.profile.KernelProfile` records, slowest
        first). Needs a library whose metadata lists its kernels (edgecc 0.1 with `kernels`) and
        that runs all natively."""
        from tvm import relax

        from .profile import profile_vm

        self.refuse_emulated_timing("profile")
        kernels = self.metadata.get("kernels")
        if not kernels:
            raise InputError(f"{self.path}: the library's metadata lists no kernels; recompile it to profile it")
        vm = relax.VirtualMachine(self._lib, self._devices())  # instrumented apart from the one `run` uses
        arrays = self._arrays(inputs)
        sizes = input_sizes(self.inputs, [np.asarray(inputs[spec["name"]]) for spec in self.inputs])
        return profile_vm(vm, arrays, [kernel_for_sizes(k, sizes) for k in kernels], repeat)


def load(path: str | os.PathLike, threads: int | None = None) -> Module:
    """Load a library written by `edgecc compile` (or `CompiledModel.export`).

    Its kernels run on `threads` threads; None uses every core this process may run on. An
    OpenCL library runs emulated, its kernels on PoCL (`edgecc.runtime.opencl`); one built for
    another CPU, emulated as `load_any` runs it.
    """
    import tvm

    from edgecc.targets.cuda_toolchain import prepare_cuda_run

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    arch = library_arch(path)
    if arch is not None and not _native(arch):
        return load_any(path, threads)
    device = library_device(path)
    if device == "opencl":
        from .opencl import OpenCLModule

        return OpenCLModule(path, threads)
    if device == "cuda":  # the NVIDIA driver and TVM's CUDA runtime, or one line saying what is missing
        prepare_cuda_run(path)
    try:
        lib = tvm.runtime.load_module(path)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{path}: cannot load the library ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})") from None
    return Module(lib, path, threads, device)


ELF_MACHINES = {62: "x86_64", 183: "aarch64", 40: "arm"}


def _native(arch: str) -> bool:
    """Whether a library built for `arch` runs natively on this machine."""
    import platform

    return arch == platform.machine() or (arch == "arm" and platform.machine().startswith("armv7"))


def library_arch(path: str) -> str | None:
    """The CPU architecture a shared library was built for, from its ELF header."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(20)
    except OSError:
        return None
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    order = "little" if header[5] == 1 else "big"
    return ELF_MACHINES.get(int.from_bytes(header[18:20], order), "unknown")


def load_any(path: str | os.PathLike, threads: int | None = None, progress=None):
    """Load a library for this machine, one built for another CPU through its emulated runner, or
    an OpenCL library (for any host CPU) with its kernels on PoCL.

    `progress(message)` hears about one-time set-up of the emulated runner (downloading the
    board's TVM runtime, building the runner).
    """
    from edgecc.targets.cuda_toolchain import prepare_cuda_run

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    arch = library_arch(path)
    if arch is None:
        raise InputError(f"{path}: not a shared library (no ELF header)")
    device = library_device(path)
    if device == "opencl":
        from .opencl import OpenCLModule

        return OpenCLModule(path, threads)
    if device == "cuda":  # CUDA kernels run on this machine's GPU or nowhere here
        prepare_cuda_run(path)
    if _native(arch):
        return load(path, threads)
    if device == "cuda":
        raise ToolchainError(f"{path}: a CUDA library with {arch} host code runs on its board (edgecc runner), "
                             "not emulated here")
    from .emulated import EmulatedModule

    return EmulatedModule(path, arch, threads, progress)

