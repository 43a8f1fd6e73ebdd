"""Load and run a library built by edgecc, with numpy in and out."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from edgecc.errors import InputError

__all__ = ["Module", "TimingResult", "check_inputs", "library_arch", "load", "load_any", "random_inputs"]


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


class LibrarySpecs:
    """Input and output names of a library, from its `inputs`/`outputs` metadata lists."""

    inputs: list[dict]
    outputs: list[dict]

    @property
    def input_names(self) -> list[str]:
        return [i["name"] for i in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [o["name"] for o in self.outputs]


class Module(LibrarySpecs):
    """A loaded model: `run({"input": array}) -> {"output": array}`."""

    def __init__(self, lib, path: str = "<memory>"):
        import tvm
        from tvm import relax

        self.path = path
        self._lib = lib
        self._vm = relax.VirtualMachine(lib, tvm.cpu())
        try:
            self.metadata = json.loads(str(self._vm["edgecc_metadata"]()))
        except Exception as exc:  # noqa: BLE001 - a library not built by edgecc
            raise InputError(f"{path}: not an edgecc library (no metadata: {exc})") from None
        self.inputs = self.metadata["inputs"]
        self.outputs = self.metadata["outputs"]
        self._main = self._vm["main"]


    def _arrays(self, inputs: Mapping[str, np.ndarray]):
        import tvm

        return [tvm.runtime.tensor(data) for data in check_inputs(self.path, self.inputs, inputs)]

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
        """Time `repeat` runs after `warmup` untimed ones (inputs already on the device)."""
        arrays = self._arrays(inputs)
        for _ in range(warmup):
            self._call(arrays)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            self._call(arrays)
            times.append(time.perf_counter() - start)
        return TimingResult(times)

    def random_inputs(self, seed: int = 0) -> dict[str, np.ndarray]:
        return random_inputs(self.inputs, seed)


def check_inputs(path: str, specs, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The inputs in the model's order, as C-contiguous arrays of its dtypes; InputError for
    missing or unknown names, wrong shapes and dtypes that do not cast safely."""
    names = [spec["name"] for spec in specs]
    missing = [n for n in names if n not in inputs]
    extra = sorted(set(inputs) - set(names))
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing input " + ", ".join(f"'{m}'" for m in missing))
        if extra:
            parts.append("unknown input " + ", ".join(f"'{e}'" for e in extra))
        raise InputError(f"{path}: {'; '.join(parts)} (the model takes {', '.join(names)})")
    arrays = []
    for spec in specs:
        data = np.asarray(inputs[spec["name"]])
        if tuple(data.shape) != tuple(spec["shape"]):
            raise InputError(f"input '{spec['name']}' has shape {tuple(data.shape)}, "
                             f"the model expects {tuple(spec['shape'])}")
        if str(data.dtype) != spec["dtype"]:
            if np.can_cast(data.dtype, spec["dtype"], casting="same_kind"):
                data = data.astype(spec["dtype"])
            else:
                raise InputError(f"input '{spec['name']}' has dtype {data.dtype}, the model expects {spec['dtype']}")
        arrays.append(np.require(data, requirements="C"))
    return arrays


def random_inputs(specs, seed: int = 0) -> dict[str, np.ndarray]:
    """Reproducible random inputs for input specs ({name, shape, dtype})."""
    rng = np.random.default_rng(seed)
    out = {}
    for spec in specs:
        dtype = np.dtype(spec["dtype"])
        shape = tuple(spec["shape"])
        if dtype == np.bool_:
            out[spec["name"]] = rng.random(shape) > 0.5
        elif np.issubdtype(dtype, np.integer):
            out[spec["name"]] = rng.integers(0, 10, size=shape).astype(dtype)
        else:
            out[spec["name"]] = rng.standard_normal(shape).astype(dtype)
    return out


def load(path: str | os.PathLike) -> Module:
    """Load a library written by `edgecc compile` (or `CompiledModel.export`)."""
    import tvm

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    try:
        lib = tvm.runtime.load_module(path)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{path}: cannot load the library ({str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})") from None
    return Module(lib, path)


ELF_MACHINES = {62: "x86_64", 183: "aarch64", 40: "arm"}


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


def load_any(path: str | os.PathLike):
    """Load a library for this machine, or one built for another CPU through its emulated runner."""
    import platform

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    arch = library_arch(path)
    if arch is None:
        raise InputError(f"{path}: not a shared library (no ELF header)")
    if arch == platform.machine() or (arch == "arm" and platform.machine().startswith("armv7")):
        return load(path)
    from .emulated import EmulatedModule

    return EmulatedModule(path, arch)
