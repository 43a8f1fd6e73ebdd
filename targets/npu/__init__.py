"""NPU targets: a CPU target plus an NPU backend that takes the regions it supports.

The `partition-npu` pass asks the target's backend (`NpuTarget.npu_backend`) which ops it can
take (`NpuBackend.support`) and hands each region it forms to `NpuBackend.compile_region`; the
rest of the graph stays on the CPU and compiles as usual. A backend lives in its own folder
(`ethos_u/`): a support table, a writer of the NPU compiler's input, and the call of that compiler.
A second NPU is one more folder with a class implementing `NpuBackend`.
"""

from __future__ import annotations

from .backend import CompiledRegion, NpuBackend, NpuTarget, RegionRejected

__all__ = ["CompiledRegion", "NpuBackend", "NpuTarget", "RegionRejected"]
