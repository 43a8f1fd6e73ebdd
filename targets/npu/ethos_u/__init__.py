"""Arm Ethos-U through Vela: the support table, the TFLite writer, the Vela call, the targets.

`EthosUBackend(accelerator)` implements `edgecc.targets.npu.NpuBackend`: a region becomes an int8
TFLite model (`tflite.py`), Vela compiles it for the accelerator configuration (`vela.py`), and
the region keeps both: the TFLite model runs on LiteRT on a machine without an Ethos-U, Vela's
model on the board.
"""

from __future__ import annotations

from .backend import EthosUBackend
from .target import EthosUHostTarget, Imx93NpuTarget

__all__ = ["EthosUBackend", "EthosUHostTarget", "Imx93NpuTarget"]
