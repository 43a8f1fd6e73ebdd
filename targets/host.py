"""The host x86-64 CPU (the machine edgecc runs on), through LLVM."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from .base import CpuTarget

__all__ = ["HostTarget", "host_cpu_features"]


@lru_cache(maxsize=None)
def host_cpu_name() -> str:
    from tvm.target import codegen

    return codegen.llvm_get_system_cpu()


@lru_cache(maxsize=None)
def host_cpu_features() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


@lru_cache(maxsize=None)
def llvm_cpu_features(cpu: str) -> frozenset[str]:
    """LLVM's feature names (avx2, avx512vnni, avxvnni, ...) of the CPU model `cpu`."""
    import tvm
    from tvm.target import codegen

    return frozenset(str(f) for f in codegen.llvm_get_cpu_features(tvm.target.Target({"kind": "llvm", "mcpu": cpu})))


@dataclass
class HostTarget(CpuTarget):
    """The CPU of this machine; `cpu` overrides the detected LLVM CPU name."""

    cpu: str | None = None
    threads: int | None = None

    def __post_init__(self):
        self.family = "host"
        self.description = "this machine's x86-64 CPU (LLVM, detected features)"

    @property
    def mcpu(self) -> str:
        return self.cpu or host_cpu_name()

    @property
    def tag(self) -> str:
        return f"x86_64-{self.mcpu}"

    @property
    def vector_bytes(self) -> int:
        """64 with AVX-512, 32 with AVX2, else 16: from the code's CPU (`cpu`, else this machine's),
        so `--cpu znver4` on any machine builds what a Zen 4 host builds for itself."""
        if self.has_feature("avx512f"):
            return 64
        return 32 if self.has_feature("avx2") else 16

    @property
    def num_cores(self) -> int:
        return self.threads or len(os.sched_getaffinity(0))

    @property
    def vector_registers(self) -> int:
        return 32 if self.vector_bytes == 64 else 16

    def has_feature(self, name: str) -> bool:
        """Whether the code's CPU has instruction-set feature `name` (LLVM's spelling): the
        explicit `cpu`'s features, else this machine's."""
        if self.cpu is not None:
            return name in llvm_cpu_features(self.cpu)
        return name in {f.replace("_", "") for f in host_cpu_features()}

    @property
    def int8_dot_channels(self) -> int:
        if self.has_feature("avx512vnni") or self.has_feature("avxvnni"):
            return 4  # vpdpbusd: four u8 x s8 products per int32 lane
        return 2 if self.has_feature("avx2") else 1  # vpmaddwd: two int16 products per lane

    @property
    def int8_narrow_dot_channels(self) -> int:
        return 4 if self.has_feature("avx2") else self.int8_dot_channels  # vpmaddubsw + vpmaddwd

    def passes(self, opt_level: int) -> list[str]:
        """The CPU passes, led on AVX2 CPUs by `shift-to-uint8` (their dot products take uint8
        data, so int8 activations are stored moved by 128 rather than moved in each kernel) and,
        with VNNI, `pad-conv-channels` (a 3-channel stem gets a fourth for vpdpbusd)."""
        passes = super().passes(opt_level)
        if passes and self.int8_dot_channels == 4:
            passes = ["pad-conv-channels", *passes]
        if passes and self.int8_narrow_dot_channels == 4:
            passes = ["shift-to-uint8", *passes]
        return passes

    @property
    def int8_weight_pairs(self) -> bool:
        return self.int8_dot_channels == 2

    def tvm_target_dict(self):
        """LLVM for this CPU; on AVX-512 CPUs with LLVM's preference for 256-bit vectors turned off.

        The schedules plan whole 512-bit vectors. With the preference on, LLVM splits integer
        requantizing epilogues into 256-bit halves (MobileNetV2's 16 -> 96 channel int8 1x1 conv:
        0.41 -> 0.21 ms at full width) and lowers the zeroing of each conv tile's accumulators
        (1 KB) as a call to memset (MobileNetV2 fp32, 2 threads: 3.05 -> 2.94 ms minimum; ResNet-18
        8.95 -> 8.71 ms)."""
        target = {"kind": "llvm", "mcpu": self.mcpu, "num-cores": self.num_cores}
        if self.vector_bytes == 64:
            target["mattr"] = ["-prefer-256-bit"]
        return target

    @property
    def runs_here(self) -> bool:
        return True
