"""Run an OpenCL library's kernels on this machine: PoCL through pyopencl.

TVM's wheels carry no OpenCL runtime, and a Mali library's host code is AArch64, so the library
is not loaded as a whole. Its own parts are: the Relax VM executable (call order, constants,
memory plan) runs in TVM's VM here on the CPU, and every kernel it calls is a Python function
that runs the library's OpenCL kernels on PoCL (the `pocl-opencl-icd` package), with the grid
and block sizes from the kernels' thread bindings and the temporary buffers they need (both in
the library's metadata, `launches`), copying the kernel's tensors to the OpenCL device and the
ones it writes back. A library with symbolic dimensions has grid sizes, temporary buffer sizes
and scalar kernel arguments that are size expressions (`edgecc.lower.device`): they are
evaluated at each call from the shapes of the tensors the VM passes. It proves the schedules,
the OpenCL code and the memory plan; it says nothing about speed, so `benchmark` refuses.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping

import numpy as np

from edgecc.errors import EdgeccError, InputError, ToolchainError

from .library_file import embedded_modules, opencl_source
from .specs import LibrarySpecs

__all__ = ["EMULATION_NOTE", "OpenCLModule", "half_as_rounded_float", "opencl_device", "uses_half"]

EMULATION_NOTE = "emulating the OpenCL GPU: every kernel of the library runs on PoCL (pyopencl) on the CPU"
_INSTALL = "apt-get install pocl-opencl-icd; pip install pyopencl (or pip install -e '.[opencl]')"
#: kernel names registered as TVM global functions by OpenCL modules of this process
_REGISTERED: set[str] = set()


def opencl_device():
    """(pyopencl module, context, queue) on PoCL, or ToolchainError saying what to install."""
    try:
        import pyopencl as cl
    except ImportError:
        raise ToolchainError(f"running an OpenCL library here needs pyopencl and PoCL: {_INSTALL}") from None
    try:
        platforms = cl.get_platforms()
    except cl.Error:
        platforms = []
    pocl = [p for p in platforms if "Portable Computing Language" in p.name or "pocl" in p.name.lower()]
    if not pocl:
        raise ToolchainError(f"running an OpenCL library here needs the PoCL OpenCL platform, found "
                             f"{', '.join(p.name for p in platforms) or 'none'}: {_INSTALL}")
    context = cl.Context(pocl[0].get_devices())
    return cl, context, cl.CommandQueue(context)


class OpenCLModule(LibrarySpecs):
    """An OpenCL library (any host CPU) run through its VM here and its kernels on PoCL."""

    emulated = True
    emulation_note = EMULATION_NOTE
    half_emulated = False  # fp16 kernels run with half values held in float (`half_as_rounded_float`)

    def __init__(self, path: str | os.PathLike, threads: int | None = None):
        import tvm
        from tvm import relax

        self.path = os.fspath(path)
        self.threads = threads
        modules = {m.kind: m for m in embedded_modules(self.path)}
        if "opencl" not in modules or "relax.VMExecutable" not in modules:
            raise InputError(f"{self.path}: not an OpenCL library built by edgecc")
        self.cl, self.context, self.queue = opencl_device()
        program = opencl_source(modules["opencl"], self.path)
        self.arg_counts = program.arg_counts
        self.program = self._build(program.source)
        self._kernels: dict[str, object] = {}  # device function -> pyopencl kernel, retrieved once
        executable = tvm.get_global_func("ffi.Module.load_from_bytes.relax.VMExecutable")(
            modules["relax.VMExecutable"].data)
        for name in _kernel_names(executable):
            tvm.register_global_func(name, self._kernel_function(name), override=True)
            _REGISTERED.add(name)
        self._vm = relax.VirtualMachine(executable, tvm.cpu())
        self.metadata = json.loads(str(self._vm["edgecc_metadata"]()))
        self.shape_functions = self.metadata.get("shape_functions", {})
        self.inputs = self.metadata["inputs"]
        self.outputs = self.metadata["outputs"]
        self.launches = self.metadata.get("launches")
        if not self.launches:
            raise InputError(f"{self.path}: the library's metadata has no kernel launches; recompile it")
        self._check_launches()

    def _build(self, source: str):
        if uses_half(source) and not self._device_has_half():
            source = half_as_rounded_float(source)
            self.half_emulated = True
            self.emulation_note = (f"{EMULATION_NOTE}; PoCL here has no cl_khr_fp16, so the fp16 values are "
                                   f"rounded to half and held in float")
        try:
            return self.cl.Program(self.context, source).build()
        except self.cl.Error as exc:
            raise EdgeccError(f"{self.path}: PoCL cannot compile the library's OpenCL code: "
                              f"{str(exc).strip().splitlines()[0]}") from None

    def _device_has_half(self) -> bool:
        return "cl_khr_fp16" in self.context.devices[0].extensions

    def _check_launches(self) -> None:
        """Every launch names a kernel of the program with its number of arguments."""
        for kernel, table in self.launches.items():
            for launch in table["launches"]:
                expected = self.arg_counts.get(launch["function"])
                if expected != len(launch["args"]):
                    raise InputError(f"{self.path}: kernel {kernel} launches {launch['function']} with "
                                     f"{len(launch['args'])} arguments; the OpenCL program has {expected}")

    def _kernel_function(self, name: str):
        def run_kernel(*tensors):
            if name in self.shape_functions:
                self._run_shape_function(name, tensors[0])
            else:
                self._launch(name, tensors)

        return run_kernel

    def _run_shape_function(self, name: str, heap) -> None:
        """The VM's host shape function `name`: its stores into the shape heap, in order."""
        spec = self.shape_functions[name]
        values = heap.numpy()
        if values.shape != (spec["heap"],):
            raise EdgeccError(f"{self.path}: shape function {name} expects a shape heap of {spec['heap']} "
                              f"sizes, the VM passed {values.shape}")
        size = _SizeEvaluator([], values)
        for slot, expr in spec["stores"]:
            values[slot] = size(expr)
        heap.copyfrom(values)

    def _launch(self, name: str, tensors) -> None:
        """Copy the kernel's tensors in, run its launches in order, copy the written tensors back."""
        cl = self.cl
        table = self.launches[name]
        flags = cl.mem_flags
        hosts = [t.numpy() if hasattr(t, "numpy") else t for t in tensors]  # tensors, or scalar sizes
        size = _SizeEvaluator(hosts)
        buffers = [None if not isinstance(h, np.ndarray) else
                   cl.Buffer(self.context, flags.READ_WRITE | flags.COPY_HOST_PTR, hostbuf=h) if h.nbytes
                   else cl.Buffer(self.context, flags.READ_WRITE, 1) for h in hosts]
        workspaces = [cl.Buffer(self.context, flags.READ_WRITE, max(size(ws["bytes"]), 1))
                      for ws in table["workspaces"]]
        for launch in table["launches"]:
            args = [_launch_argument(ref, buffers, workspaces, size) for ref in launch["args"]]
            block = tuple(size(b) for b in launch["block"])
            grid = tuple(size(g) * b for g, b in zip(launch["grid"], block))
            self._kernel(launch["function"])(self.queue, grid, block, *args)
        for index in table["writes"]:
            cl.enqueue_copy(self.queue, hosts[index], buffers[index])
        self.queue.finish()
        for index in table["writes"]:
            tensors[index].copyfrom(hosts[index])

    def _kernel(self, function: str):
        kernel = self._kernels.get(function)
        if kernel is None:
            kernel = self._kernels[function] = self.cl.Kernel(self.program, function)
        return kernel

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; returns output name -> numpy array."""
        import tvm

        arrays = [tvm.runtime.tensor(a) for a in self.check_inputs(inputs)]
        out = self._vm["main"](*arrays)
        results = [out] if len(self.outputs) == 1 else list(out)
        return {spec["name"]: r.numpy() for spec, r in zip(self.outputs, results)}

    def benchmark(self, inputs, repeat: int = 20, warmup: int = 3):
        self.refuse_emulated_timing("benchmark")

    def profile(self, inputs, repeat: int = 10):
        self.refuse_emulated_timing("profile")


def _launch_argument(ref: list, buffers: list, workspaces: list, size):
    """A launch argument of the table (`edgecc.lower.device`) for one call: a tensor's device
    buffer, a temporary buffer, or a scalar of its dtype."""
    kind = ref[0]
    if kind == "param":
        return buffers[ref[1]]
    if kind == "workspace":
        return workspaces[ref[1]]
    return np.dtype(ref[1]).type(size(ref[2]))


class _SizeEvaluator:
    """Evaluates the launch table's size expressions for one call's tensors (numpy arrays, scalars)."""

    _OPS = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
            "div": lambda a, b: abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1),
            "mod": lambda a, b: a - abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1) * b,
            "floordiv": lambda a, b: a // b, "floormod": lambda a, b: a % b, "min": min, "max": max}

    def __init__(self, values: list, heap: np.ndarray | None = None):
        self.values = values
        self.heap = heap  # a shape function's shape heap

    def __call__(self, expr) -> int:
        if isinstance(expr, int):
            return expr
        head = expr[0]
        if head == "shape":
            return int(self.values[expr[1]].shape[expr[2]])
        if head == "offset":  # every tensor is copied to a buffer of its own
            return 0
        if head == "param":
            return int(self.values[expr[1]])
        if head == "heap":
            return int(self.heap[expr[1]])
        return int(self._OPS[head](self(expr[1]), self(expr[2])))


def _kernel_names(executable) -> list[str]:
    """The functions the VM calls that it does not find in TVM (the library's kernels)."""
    import tvm

    names = re.findall(r"^@(\S+) packed_func;", executable["as_text"](), flags=re.MULTILINE)
    return [n for n in names if n in _REGISTERED or tvm.get_global_func(n, allow_missing=True) is None]


_HALF_PRAGMA = re.compile(r"#ifdef cl_khr_fp16\n.*?#endif\n", re.DOTALL)
_ROUND_HALF = """
inline float edgecc_round_half(float x) { ushort h; vstore_half_rte(x, 0, (half*)&h); return vload_half(0, (half*)&h); }
"""


def uses_half(source: str) -> bool:
    return "cl_khr_fp16" in source


def half_as_rounded_float(source: str) -> str:
    """OpenCL C of fp16 kernels for a device without half arithmetic (PoCL on most CPUs): every
    conversion to half rounds to the nearest half value (vstore_half_rte, a core function) and
    half values are then held in float. Arithmetic between half values runs in float, so results
    can differ from a GPU's by the rounding of those intermediate steps."""
    if re.search(r"convert_half\d|\bhalf\d", source):
        raise EdgeccError("the library's fp16 kernels use half vectors, which the half emulation does not handle")
    source = _HALF_PRAGMA.sub("", source, count=0)
    source = source.replace("convert_half(", "edgecc_round_half(")
    source = re.sub(r"\(half\)", "(float)", source)
    source = re.sub(r"\bhalf\b", "float", source)
    return _ROUND_HALF + source
