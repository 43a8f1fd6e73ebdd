"""The Ethos-U backend: support table + TFLite writer + Vela, behind `NpuBackend`."""

from __future__ import annotations

from edgecc.errors import TargetError

from ..backend import CompiledRegion, NpuBackend
from .support import unsupported_reason
from .vela import ACCELERATORS, NPU_CLOCK_HZ, check_vela, run_vela

__all__ = ["EthosUBackend"]


def region_macs(body) -> int:
    """Multiply-accumulates of the region's convolutions and dense layers."""
    from edgecc.ir.ops.nn import macs

    return sum(macs(n) for n in body.nodes)


class EthosUBackend(NpuBackend):
    name = "ethos-u"

    def __init__(self, accelerator: str = "ethos-u65-256"):
        if accelerator not in ACCELERATORS:
            raise TargetError(f"ethos-u: unknown accelerator '{accelerator}' (known: {', '.join(ACCELERATORS)})")
        self.accelerator = accelerator

    def support(self, node) -> str | None:
        return unsupported_reason(node)

    def check_tools(self) -> None:
        check_vela()

    def compile_region(self, body, name: str, outer_users=None) -> CompiledRegion:
        from .tflite import region_to_tflite

        reference = region_to_tflite(body, name, outer_users)
        npu_model, estimates = run_vela(reference, name, self.accelerator)
        clock = NPU_CLOCK_HZ[self.accelerator.rsplit("-", 1)[0]]
        if "cycles_npu" in estimates:
            estimates["npu_ms"] = estimates["cycles_npu"] / clock * 1e3
        estimates["accelerator"] = self.accelerator
        rank4 = lambda vs: [v.type.rank == 4 for v in vs]  # noqa: E731
        return CompiledRegion(self.name, [n.op for n in body.nodes], region_macs(body), reference, npu_model,
                              estimates, rank4(body.inputs), rank4(body.outputs))
