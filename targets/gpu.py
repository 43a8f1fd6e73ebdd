"""GPU targets: host code for a CPU plus device kernels, for NVIDIA GPUs (CUDA) and OpenCL GPUs.

A GPU target compiles the model's control flow (the Relax VM and the kernel launches) for its
host CPU, x86-64 or AArch64, and every kernel for the GPU. Its kernels are scheduled by the GPU
rule set of `edgecc.lower.schedules` (TVM's DLight rules, edgecc's own where they are weak) and
every kernel must be bound to GPU threads: lowering refuses a kernel left on the host.

- `cuda`: x86-64 host, cubins for `--arch` (sm_80, sm_86, sm_87, sm_89, sm_90);
- `opencl`: x86-64 host, OpenCL C kernels;
- `mali`: AArch64 host, OpenCL C kernels for Arm Mali GPUs;
- presets `rk3588-gpu` (Mali-G610 on Cortex-A76 hosts) and `jetson-orin-gpu` (sm_87, Cortex-A78AE).

`precision="fp16"` computes in half precision (inputs and outputs stay float32). Convolutions keep
NCHW: the GPU rules map them to implicit GEMMs, so no layout pass runs. A model's symbolic
dimensions (batch, sequence length) stay symbolic, as on CPU targets: the GPU rules take run-time
extents (docs/targets/gpu.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from edgecc.errors import TargetError

from .arm import ArmCpuTarget
from .base import Target

__all__ = ["GPU_PRESETS", "PRECISIONS", "CudaTarget", "GpuPreset", "GpuTarget", "MaliTarget", "OpenCLTarget",
           "gpu_preset"]

PRECISIONS = ("fp32", "fp16")
HOSTS = ("x86_64", "aarch64")


@dataclass
class GpuTarget(Target):
    """Common ground of GPU targets: a host CPU (`host`: x86_64 or aarch64, default the family's
    `default_host`; `cpu`: its LLVM CPU name for aarch64) and the kernels' `precision`."""

    host: str | None = None
    cpu: str | None = None
    precision: str = "fp32"
    preset: str | None = None
    _host_cpu: ArmCpuTarget | None = field(init=False, repr=False, default=None)
    #: the family name (`edgecc targets`) and the host it compiles for unless told otherwise
    FAMILY: ClassVar[str] = "gpu"
    default_host: ClassVar[str] = "x86_64"

    def __post_init__(self):
        self.family = self.FAMILY
        self.host = self.host or self.default_host
        if self.host not in HOSTS:
            raise TargetError(f"{self.family}: unknown host '{self.host}' (known: {', '.join(HOSTS)})")
        if self.precision not in PRECISIONS:
            raise TargetError(f"{self.family}: unknown precision '{self.precision}' (known: {', '.join(PRECISIONS)})")
        if self.host == "aarch64":
            self._host_cpu = ArmCpuTarget(cpu=self.cpu, arch="aarch64")
        elif self.cpu is not None:
            raise TargetError(f"{self.family}: --cpu names an AArch64 host CPU; this target's host is x86-64")

    # --- identity ------------------------------------------------------------------------------
    @property
    def device_name(self) -> str:
        """The GPU in the tag (`sm_87`, `mali-g610`, ...)."""
        raise NotImplementedError

    @property
    def tag(self) -> str:
        if self.preset:
            base = self.preset
        else:
            name = self.device_name
            base = name if name.startswith(self.family) else f"{self.family}-{name}"
            base += "" if self.host == self.default_host else f"-{self.host}"
        return base + ("-fp16" if self.precision == "fp16" else "")

    def host_target_dict(self) -> dict[str, Any]:
        if self._host_cpu is not None:
            return {k: v for k, v in self._host_cpu.tvm_target_dict().items() if k != "num-cores"}
        return {"kind": "llvm", "mtriple": "x86_64-linux-gnu"}

    def device_target_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def tvm_target_dict(self) -> dict[str, Any]:
        return {**self.device_target_dict(), "host": self.host_target_dict()}

    # --- policy --------------------------------------------------------------------------------
    @property
    def schedule_rules(self) -> str:
        return "gpu"

    @property
    def max_threads_per_block(self) -> int:
        return 256

    def passes(self, opt_level: int) -> list[str]:
        """Fusion only: the -O2 pipeline's clean-up already ran, and convolutions keep NCHW. A 1x1
        conv and the stride-2 depthwise conv it feeds stay two kernels (their fused kind is a CPU
        cache schedule; the GPU rules take each on its own)."""
        if opt_level < 2:
            return []
        return ["fuse{pointwise-depthwise=false}"]

    # --- building and running ------------------------------------------------------------------
    def check_toolchain(self) -> None:
        if self._host_cpu is not None:
            self._host_cpu.check_toolchain()

    def export_library(self, executable, path: str) -> None:
        self.check_toolchain()
        if self._host_cpu is not None:
            executable.export_library(path, fcompile=self._host_cpu.fcompile())
        else:
            executable.export_library(path)

    @property
    def runs_here(self) -> bool:
        """Device kernels never run natively here: OpenCL libraries run emulated (`edgecc.runtime`)."""
        return False

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(device=self.device_type, gpu=self.device_name, host=self.host, precision=self.precision,
                    preset=self.preset)
        if self._host_cpu is not None:
            info.update(cpu=self._host_cpu.cpu, linker=self._host_cpu.isa.gcc)
        return info


@dataclass
class OpenCLTarget(GpuTarget):
    """Any OpenCL GPU, x86-64 host unless told otherwise."""

    FAMILY: ClassVar[str] = "opencl"

    def __post_init__(self):
        super().__post_init__()
        self.description = f"OpenCL GPU kernels, {self.host} host, {self.precision}"

    @property
    def device_type(self) -> str:
        return "opencl"

    @property
    def device_name(self) -> str:
        return "generic"

    def device_target_dict(self) -> dict[str, Any]:
        return {"kind": "opencl", "max_num_threads": self.max_threads_per_block}

    def deploy_runner(self) -> tuple[str, str]:
        raise TargetError("the apache-tvm wheels have no OpenCL runtime; build TVM's runtime with USE_OPENCL=ON "
                          "on the board and the runner against it (docs/targets/gpu.md)")


#: Mali GPUs edgecc knows -> description
MALI_GPUS = {
    "mali-g610": "Arm Mali-G610 (Valhall; RK3588)",
    "mali-g78": "Arm Mali-G78 (Valhall)",
    "mali-g52": "Arm Mali-G52 (Bifrost)",
}


@dataclass
class MaliTarget(OpenCLTarget):
    """An Arm Mali GPU through OpenCL, AArch64 host (`gpu` names the Mali model)."""

    gpu: str = "mali-g610"
    FAMILY: ClassVar[str] = "mali"
    default_host: ClassVar[str] = "aarch64"

    def __post_init__(self):
        if self.gpu not in MALI_GPUS:
            raise TargetError(f"mali: unknown gpu '{self.gpu}' (known: {', '.join(MALI_GPUS)})")
        super().__post_init__()
        self.description = f"{MALI_GPUS[self.gpu]} through OpenCL, {self.host} host, {self.precision}"

    @property
    def device_name(self) -> str:
        return self.gpu

    def device_target_dict(self) -> dict[str, Any]:
        return {"kind": "opencl", "device": "mali", "max_num_threads": self.max_threads_per_block}


@dataclass
class CudaTarget(GpuTarget):
    """An NVIDIA GPU: cubins for `arch` (sm_80, sm_86, sm_87, sm_89, sm_90), x86-64 host unless told
    otherwise. Building needs the `.[cuda]` extra (NVRTC); `build_context` provides it."""

    arch: str = "sm_80"
    FAMILY: ClassVar[str] = "cuda"

    def __post_init__(self):
        from .cuda_toolchain import check_arch

        check_arch(self.arch)
        super().__post_init__()
        self.description = f"NVIDIA GPU {self.arch} (CUDA), {self.host} host, {self.precision}"

    @property
    def device_type(self) -> str:
        return "cuda"

    @property
    def device_name(self) -> str:
        return self.arch

    @property
    def max_threads_per_block(self) -> int:
        return 1024

    def device_target_dict(self) -> dict[str, Any]:
        return {"kind": "cuda", "arch": self.arch, "max_num_threads": self.max_threads_per_block}

    def check_toolchain(self) -> None:
        from .cuda_toolchain import find_wheels

        super().check_toolchain()
        find_wheels()

    def build_context(self):
        """NVRTC from the `.[cuda]` wheels compiles the kernels to cubins (`cuda_toolchain`)."""
        from .cuda_toolchain import nvrtc_build

        return nvrtc_build()

    def export_library(self, executable, path: str) -> None:
        """Export, then check the library holds cubins for `arch` and no CUDA source."""
        from .cuda_toolchain import check_library_cubins

        super().export_library(executable, path)
        check_library_cubins(path, self.arch)

    def deploy_runner(self) -> tuple[str, str]:
        return self.host, "cuda"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "arch": self.arch}


@dataclass(frozen=True)
class GpuPreset:
    """A board's GPU: the target class and its fixed settings."""

    name: str
    factory: type[GpuTarget]
    settings: dict
    description: str


GPU_PRESETS = {p.name: p for p in [
    GpuPreset("rk3588-gpu", MaliTarget, {"gpu": "mali-g610", "host": "aarch64", "cpu": "cortex-a76"},
              "Rockchip RK3588 GPU: Mali-G610 MP4 through OpenCL, Cortex-A76 host code (AArch64)"),
    GpuPreset("jetson-orin-gpu", CudaTarget, {"arch": "sm_87", "host": "aarch64", "cpu": "cortex-a78ae"},
              "NVIDIA Jetson Orin GPU: Ampere sm_87 (CUDA), Cortex-A78AE host code (AArch64)"),
]}


def gpu_preset(name: str):
    """A factory for `get_target(name, precision=...)`; the board's GPU and host are fixed, so
    precision is its only option."""
    spec = GPU_PRESETS[name]

    def make(precision: str = "fp32") -> GpuTarget:
        return spec.factory(precision=precision, preset=name, **spec.settings)

    make.__doc__ = spec.description
    return make
