"""Default CPU schedules for the integer kernels (kinds `qconv` and `qdense`).

The float rules of `cpu.py`, sized for the int32 accumulators: a tile of output columns x channel
vectors of int32 lanes, the int8 x int8 products summed into it with the reduction loops outside,
the requantizing epilogue computed from the registers, rows in parallel when the kernel is large
enough to pay for waking the thread pool. Plain-layout integer convolutions get the generic rule.
"""

from __future__ import annotations

from . import register_rule
from .cpu import _divisor_tile, _find, _generic, _schedule, _schedule_gemm, schedule_nchwc_conv

ACC = "int32"
#: below this many multiply-accumulates a kernel runs on one core: waking the thread pool costs
#: more than the work (8x8 images at batch 1)
PARALLEL_MIN_MACS = 1 << 20


@register_rule("qconv")
def schedule_qconv(kernel, target):
    data = kernel.args[0].type.dtype if kernel.args else None
    if _has_anchor(kernel, "qconv2d_NCHWc_pairs") and data in ("int8", "uint8"):
        from .x86_int8 import pmaddwd_intrin

        return schedule_nchwc_conv(kernel, target, ("qconv2d_NCHWc_pairs",), ACC, PARALLEL_MIN_MACS,
                                   pair_intrin=pmaddwd_intrin(data))
    return schedule_nchwc_conv(kernel, target, ("qconv2d_NCHWc", "qdepthwise_conv2d_NCHWc"), ACC, PARALLEL_MIN_MACS)


def _has_anchor(kernel, name: str) -> bool:
    return _find(_schedule(kernel), (name,)) is not None


@register_rule("qdense")
def schedule_qdense(kernel, target):
    lanes = target.lanes(ACC)
    weight = kernel.args[1].type if len(kernel.args) > 1 else None
    if weight is not None and weight.rank == 3:
        return _schedule_gemm(kernel, target, "qdense_pack", int(weight.shape[2]), PARALLEL_MIN_MACS)
    n = kernel.outputs[0].type.shape[-1] if kernel.outputs and kernel.outputs[0].type.rank else 1
    block = _divisor_tile(n, (2 * lanes, lanes))
    if block == 1:
        return _generic(kernel, target, _schedule(kernel))
    return _schedule_gemm(kernel, target, "qdense", block, PARALLEL_MIN_MACS)
