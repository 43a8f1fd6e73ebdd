"""Default CPU schedules for the integer kernels (kinds `qconv` and `qdense`).

The same register tiling as the float rules in `cpu.py`, sized for the int32 accumulators: a tile
of output columns x channel vectors of int32 lanes, the int8 x int8 products summed into it with
the reduction loops outside, the requantizing epilogue computed from the registers, rows in
parallel. Plain-layout integer convolutions (no blocked layout) get the generic rule.
"""

from __future__ import annotations

from . import register_rule
from .cpu import (
    _divisor_tile,
    _extent,
    _find,
    _generic,
    _schedule,
    _work,
    inline_all_but,
    output_block,
    schedule_nchwc_conv,
)

ACC = "int32"
#: below this many multiply-accumulates a kernel runs on one core: waking the thread pool costs
#: more than the work (8x8 images at batch 1)
PARALLEL_MIN_MACS = 1 << 20


def _parallel(sch, loop, work: int) -> None:
    if work >= PARALLEL_MIN_MACS:
        sch.parallel(loop)


@register_rule("qconv")
def schedule_qconv(kernel, target):
    return schedule_nchwc_conv(kernel, target, ("qconv2d_NCHWc", "qdepthwise_conv2d_NCHWc"), ACC, PARALLEL_MIN_MACS)


@register_rule("qdense")
def schedule_qdense(kernel, target):
    lanes = target.lanes(ACC)
    weight = kernel.args[1].type if len(kernel.args) > 1 else None
    if weight is not None and weight.rank == 3:
        return _schedule_qgemm(kernel, "qdense_pack", int(weight.shape[2]))
    n = kernel.outputs[0].type.shape[-1] if kernel.outputs and kernel.outputs[0].type.rank else 1
    block = _divisor_tile(n, (2 * lanes, lanes))
    if block == 1:
        return _generic(kernel, target, _schedule(kernel))
    return _schedule_qgemm(kernel, "qdense", block)


def _schedule_qgemm(kernel, anchor_name: str, n_block: int):
    """Output rows x columns tiled (4 x n_block) with int32 accumulators in registers."""
    sch = _schedule(kernel)
    anchor = _find(sch, (anchor_name,))
    if anchor is None:
        raise ValueError(f"no {anchor_name} block")
    work = _work(sch, anchor)
    inline_all_but(sch, [anchor])
    out, anchor = output_block(sch, anchor)
    loops = sch.get_loops(out)
    if len(loops) < 2:
        raise ValueError("gemm rule needs rows and columns")
    batch, rows, cols = loops[:-2], loops[-2], loops[-1]
    mi = _divisor_tile(_extent(sch, rows), (4, 2))
    m_o, m_i = sch.split(rows, [None, mi])
    n_o, n_i = sch.split(cols, [None, n_block])
    sch.reorder(*batch, m_o, n_o, m_i, n_i)
    outer = sch.fuse(*batch, m_o, n_o)  # split first, then fuse: bindings stay quasi-affine
    _parallel(sch, outer, work)
    sch.vectorize(n_i)
    sch.compute_at(anchor, outer)
    inner = sch.get_loops(anchor)[1:]
    spatial, reduction = inner[:-1], inner[-1:]
    sch.reorder(*reduction, *spatial)
    for loop in spatial[:-1]:
        sch.unroll(loop)
    sch.vectorize(spatial[-1])
    sch.decompose_reduction(anchor, reduction[0])
    return sch.mod["main"]
