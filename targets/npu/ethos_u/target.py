"""Targets with an Ethos-U: this machine's CPU + an Ethos-U (`ethos-u`), and the i.MX 93 board."""

from __future__ import annotations

from dataclasses import dataclass

from ...arm import ArmCpuTarget
from ...host import HostTarget
from ..backend import NpuTarget
from .backend import EthosUBackend

__all__ = ["EthosUHostTarget", "Imx93NpuTarget"]


@dataclass
class EthosUHostTarget(NpuTarget, HostTarget):
    """This machine's x86-64 CPU plus an Ethos-U (`accelerator`, a Vela configuration): NPU
    regions run on LiteRT here, the rest natively."""

    accelerator: str = "ethos-u65-256"

    def __post_init__(self):
        super().__post_init__()
        self.npu_backend = EthosUBackend(self.accelerator)
        self.family = "ethos-u"
        self.description = f"this machine's x86-64 CPU + {self.accelerator} (NPU regions on LiteRT here)"

    @property
    def tag(self) -> str:
        return f"{super().tag}+{self.accelerator}"


@dataclass
class Imx93NpuTarget(NpuTarget, ArmCpuTarget):
    """NXP i.MX 93: Cortex-A55 cores for the CPU part, an Ethos-U65-256 for the NPU regions."""

    accelerator: str = "ethos-u65-256"

    def __post_init__(self):
        super().__post_init__()
        self.npu_backend = EthosUBackend(self.accelerator)
        self.description = f"NXP i.MX 93: 2x Cortex-A55 + {self.accelerator}"

    @property
    def tag(self) -> str:
        return f"imx93-npu+{self.accelerator}"


def imx93_npu(cpu: str | None = None, threads: int | None = None, features=None,
              accelerator: str = "ethos-u65-256") -> Imx93NpuTarget:
    return Imx93NpuTarget(cpu=cpu or "cortex-a55", arch="aarch64", features=features, threads=threads,
                          preset="imx93", accelerator=accelerator)
