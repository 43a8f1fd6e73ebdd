"""The target interface: everything edgecc needs to know to compile for one kind of hardware.

A target answers: which TVM target to generate code for, how to link the shared library (host
or cross toolchain), which data layout and SIMD width the default schedules should use, which
extra passes to run, and how a built library can be run here (natively, under an emulator, or
not at all). Its backend members say where the kernels run (`device_type`: the CPU, a CUDA or an
OpenCL GPU), which rule set schedules them (`schedule_rules`), in which precision, and what
surrounds the build (`build_context`). Presets are named configurations of a target family
(`rpi4` is `arm-cpu` with a Cortex-A72; `rk3588-gpu` is `mali` with a Mali-G610).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Target", "CpuTarget"]


@dataclass
class Target:
    """Base class of targets. Subclasses set `family` and implement `tvm_target`."""

    family: str = field(init=False, default="")
    description: str = field(init=False, default="")
    #: the NPU that takes the regions it supports (`edgecc.targets.npu.NpuBackend`); None: no NPU
    npu_backend = None

    @property
    def tag(self) -> str:
        """Names the hardware configuration; tuning logs are kept per tag."""
        raise NotImplementedError

    def tvm_target_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def tvm_target(self):
        import tvm

        return tvm.target.Target(self.tvm_target_dict())

    def for_graph(self, graph) -> Target:
        """This target as it should build `graph` (code generation options that pay off only for
        some models); most targets are the same for every graph."""
        return self

    # --- policy used by passes and schedules ---------------------------------------------
    @property
    def preferred_layout(self) -> str | None:
        """Data layout for convolutions: `NCHWc` (blocked by the SIMD width), `NHWC`, or None."""
        return None

    @property
    def vector_bytes(self) -> int:
        """SIMD register width in bytes (32 for AVX2, 16 for NEON)."""
        return 16

    @property
    def num_cores(self) -> int:
        return 1

    def lanes(self, dtype: str = "float32") -> int:
        import numpy as np

        return max(1, self.vector_bytes // np.dtype(dtype).itemsize)

    def passes(self, opt_level: int) -> list[str]:
        """Target passes inserted at opt level 2 and up (layout, fusion, ...)."""
        return []

    def has_feature(self, name: str) -> bool:
        """Whether the generated code may use instruction-set feature `name` (LLVM's spelling,
        e.g. avx512vnni, avxvnni, dotprod)."""
        return False

    @property
    def int8_dot_channels(self) -> int:
        """Input channels one integer multiply-add instruction sums per output lane in int8
        convolutions (4: x86 vpdpbusd; 2: x86 vpmaddwd; 1: none). Convolution weights then
        keep that many input channels innermost (`OIHW{b/g}i{b'}o{g}i`)."""
        return 1

    @property
    def int8_narrow_dot_channels(self) -> int:
        """`int8_dot_channels` for 7-bit weights (all within [-64, 64]): 4 on x86 AVX2, whose
        vpmaddubsw cannot saturate its int16 pair sums with such weights."""
        return self.int8_dot_channels

    @property
    def int8_weight_pairs(self) -> bool:
        """Whether int8 convolutions multiply-add input channels in pairs (x86 vpmaddwd), which
        wants their weights with channel pairs innermost (`OIHW{b/2}i{b'}o2i`)."""
        return False

    # --- backend: the rule set, build and runtime device lowering and loading use ------------
    @property
    def device_type(self) -> str:
        """Where the kernels run: "cpu" (host code only), "cuda" or "opencl" (device kernels
        launched by host code). Lowering picks its GPU build steps and the runtime its way of
        running a library by it."""
        return "cpu"

    @property
    def schedule_rules(self) -> str:
        """The rule set of `edgecc.lower.schedules` that schedules this target's kernels ("cpu" or "gpu")."""
        return "cpu"

    @property
    def precision(self) -> str:
        """Float precision of the kernels: "fp32", or "fp16" (float32 inputs and outputs)."""
        return "fp32"

    def build_context(self):
        """A context manager entered around `tvm.compile` (toolchain environment); none by default."""
        import contextlib

        return contextlib.nullcontext()

    # --- building and running ------------------------------------------------------------
    def check_toolchain(self) -> None:
        """Raise ToolchainError when something the target needs to link is missing."""

    def export_library(self, executable, path: str) -> None:
        executable.export_library(path)

    @property
    def runs_here(self) -> bool:
        """Whether a library built for this target can run natively on this machine."""
        return False

    def deploy_runner(self) -> tuple[str, str]:
        """What `edgecc runner` builds for this target's board: (CPU architecture: aarch64, armv7
        or x86_64; device the kernels run on: cpu or cuda). TargetError says why there is none."""
        from edgecc.errors import TargetError

        raise TargetError("the deploy runner is built for ARM targets and CUDA GPUs "
                          "(on this machine, `edgecc run` runs a library directly)")

    def describe(self) -> dict[str, Any]:
        return {"family": self.family, "tag": self.tag, "tvm_target": self.tvm_target_dict()}


@dataclass
class CpuTarget(Target):
    """Common ground of CPU targets: LLVM code, NCHWc layout blocked by the SIMD width."""

    @property
    def preferred_layout(self) -> str | None:
        return "NCHWc"

    def passes(self, opt_level: int) -> list[str]:
        if opt_level < 2:
            return []
        return ["convert-layout", "winograd", "fold-constants", "eliminate-dead-code", "fuse"]

