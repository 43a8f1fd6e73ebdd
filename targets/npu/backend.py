"""The NPU backend interface and the target mixin that gives a CPU target an NPU."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["CompiledRegion", "NpuBackend", "NpuTarget", "RegionRejected"]


class RegionRejected(Exception):
    """The NPU compiler (or the writer of its input) cannot take a region; the message says why.
    The partitioning pass then keeps the region's ops on the CPU."""


@dataclass
class CompiledRegion:
    """One region compiled for the NPU.

    `reference` is the region as an int8 TFLite flatbuffer before the NPU compiler (what runs on
    this machine, on LiteRT); `npu_model` what the NPU compiler made of it (for the board);
    `estimates` the compiler's performance estimate (e.g. Vela: cycles_npu, sram_kib, dram_kib,
    npu_ms, accelerator); `nhwc_inputs`/`nhwc_outputs` say which tensors the models take as NHWC.
    """

    backend: str
    ops: list[str]
    macs: int
    reference: bytes
    npu_model: bytes
    estimates: dict[str, Any] = field(default_factory=dict)
    nhwc_inputs: list[bool] = field(default_factory=list)
    nhwc_outputs: list[bool] = field(default_factory=list)


class NpuBackend:
    """What the partitioning pass and the build need from an NPU compiler."""

    name = ""
    #: the exception compile_region raises for a region it refuses (the pass catches it by this name)
    Rejected = RegionRejected

    def support(self, node) -> str | None:
        """None when the NPU can run `node` (an IR node of a quantized graph), else why not."""
        raise NotImplementedError

    def compile_region(self, body, name: str, outer_users=None) -> CompiledRegion:
        """Compile a region (its body graph); RegionRejected when the NPU compiler refuses it.
        `outer_users` maps the id of each body output to the outer graph's values it stands for
        (their readers may know its quantization)."""
        raise NotImplementedError

    def check_tools(self) -> None:
        """Raise ToolchainError (one line naming what to install) when the compiler is missing."""


class NpuTarget:
    """Mixin for a CPU target class that gains an NPU: `partition-npu` runs before the CPU passes."""

    npu_backend: NpuBackend

    def passes(self, opt_level: int) -> list[str]:
        if opt_level < 2:  # lower-qdq, which makes the integer ops the NPU takes, runs at -O2
            from edgecc.errors import TargetError

            raise TargetError(f"target '{self.family}': NPU partitioning needs -O2 (the default), got -O{opt_level}")
        return ["partition-npu", *super().passes(opt_level)]  # type: ignore[misc]

    def check_toolchain(self) -> None:
        super().check_toolchain()  # type: ignore[misc]
        self.npu_backend.check_tools()
