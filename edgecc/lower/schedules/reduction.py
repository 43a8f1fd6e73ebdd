"""The CPU rule for row reductions (softmax, layer_norm, reduce_*, pooling): rows in parallel, each
row's reductions computed inside it in vector lanes.

A reduction along the innermost axis of its input is split into one partial result per vector lane
(`rfactor`): the lanes accumulate whole vectors and are combined once per row, instead of one
scalar chain per row that LLVM may not reorder. Partial sums in lanes change the order of the
additions, so a sum may differ from the sequential one by rounding only. The output stage of the
row is vectorized as well (BERT encoder, 2 threads, alone: its attention softmax 0.163 -> 0.053
ms, its layer norm 0.032 -> 0.005 ms).
"""

from __future__ import annotations

import numpy as np

from . import register_rule
from .cpu import (
    PARALLEL_MIN_ELEMENTS,
    _blocks,
    _extent,
    _generic,
    _has_reduction,
    _is_output,
    _name,
    _out_dtype,
    _schedule,
    inline_all_but,
)


@register_rule("reduction", "pool")
def schedule_reduction(kernel, target):
    """Row-parallel reductions: every stage computed inside the output's row loop, reductions
    along the innermost axis in vector lanes, the row's output vectorized."""
    return schedule_rows_in_lanes(kernel, target, _generic, _worth_parallel)


def schedule_rows_in_lanes(kernel, target, fallback, parallel) -> object:
    """The row rule for static and symbolic kernels alike: every stage computed inside the
    output's row loop, which runs in parallel where `parallel(sch, row, out)` says so;
    reductions along the innermost axis in vector lanes (`_lane_partials`); a static row's output
    written in whole vectors. `fallback(kernel, target, sch)` schedules a kernel with several
    outputs or no rows."""
    sch = _schedule(kernel)
    outputs = [b for b in _blocks(sch) if _is_output(sch, b)]
    rows = _row_loops(kernel)
    if len(outputs) != 1 or not rows:
        return fallback(kernel, target, sch)
    inline_all_but(sch, [b for b in _blocks(sch) if _has_reduction(sch, b)])
    out = outputs[0]
    lanes = target.lanes(_out_dtype(kernel))
    inner = [b for b in _blocks(sch) if not _is_output(sch, b) and _has_reduction(sch, b)]
    in_lanes = [name for name in (_lane_partials(sch, block, lanes) for block in inner) if name]
    loops = sch.get_loops(out)
    row = sch.fuse(*loops[:rows]) if rows > 1 else loops[0]
    for block in reversed([b for b in _blocks(sch) if not _is_output(sch, b)]):
        sch.compute_at(block, row)
    if parallel(sch, row, out):
        sch.parallel(row)
    for name in in_lanes:
        _vectorize_partials(sch, sch.get_sblock(name))
    if not _has_reduction(sch, out):
        _vectorize_row(sch, out, lanes)
    return sch.mod["main"]


def _worth_parallel(sch, row, out) -> bool:
    """Whether a static kernel's rows are many enough, and it large enough, to run in parallel."""
    total = int(np.prod([_extent(sch, lp) for lp in sch.get_loops(out)]))
    return _extent(sch, row) > 1 and total >= PARALLEL_MIN_ELEMENTS


def _row_loops(kernel) -> int:
    """How many leading output loops index independent rows: all but the innermost (none for a
    vector or a scalar)."""
    rank = len(kernel.outputs[0].type.shape)
    return rank - 1 if rank > 1 else 0


def _lane_partials(sch, block, lanes: int) -> str | None:
    """Split a reduction along the innermost axis of what it reads into `lanes` partial results
    (`rfactor`); the name of the block computing them, or None where it does not apply (the
    axis holds fewer than two vectors or not whole ones)."""
    from tvm.s_tir.schedule import ScheduleError
    from tvm.tirx import IterVar

    iter_vars = sch.get(block).iter_vars
    reduced = [iv for iv in iter_vars if iv.iter_type == IterVar.CommReduce]
    if len(reduced) != 1 or not iter_vars[-1].same_as(reduced[0]):
        return None
    loop = sch.get_loops(block)[-1]
    if not _whole_vectors(sch.get(loop).extent, lanes) or not _reads_innermost(sch.get(block), reduced[0].var):
        return None
    _, lane = sch.split(loop, [None, lanes])
    try:
        return _name(sch, sch.rfactor(lane, len(iter_vars) - 1))
    except ScheduleError:  # not a reducer rfactor knows (e.g. an argmin's index): left scalar
        return None


def _whole_vectors(extent, lanes: int) -> bool:
    """Whether a loop of `extent` splits into whole vectors: a static one into at least two, a
    symbolic one (a softmax axis rounded up to whole groups by its lowering) into any number."""
    from tvm.sym import Analyzer
    from tvm.tirx import IntImm, floormod

    if isinstance(extent, IntImm):
        return extent.value % lanes == 0 and extent.value >= 2 * lanes
    return Analyzer().can_prove_equal(floormod(extent, lanes), 0)


def _reads_innermost(block, var) -> bool:
    """Whether the reduced variable indexes only the innermost axis of every buffer the block reads
    with it (so that its lanes load contiguous memory)."""
    from tvm.tirx.analysis import undefined_vars

    def uses(expr) -> bool:
        return any(v.same_as(var) for v in undefined_vars(expr))

    for region in block.reads:
        ranges = list(region.region)
        if any(uses(r.min) for r in ranges[:-1]):
            return False
    return True


def _vectorize_partials(sch, rf) -> None:
    """The lane loop of an `rfactor` block innermost and vectorized, its initialization hoisted. A
    symbolic step loop is marked for loop partition: its guarded last steps (`likely` conditions)
    go to a scalar tail, the others run unguarded vectors."""
    from tvm.tirx import IntImm

    *_, lane, step = sch.get_loops(rf)
    sch.reorder(step, lane)
    if not isinstance(sch.get(step).extent, IntImm):
        sch.annotate(step, "pragma_loop_partition_hint", 1)
    sch.vectorize(lane)
    sch.decompose_reduction(rf, step)


def _vectorize_row(sch, out, lanes: int) -> None:
    """The output's innermost loop split into whole vectors, vectorized (where it holds whole ones)."""
    from tvm.tirx import IntImm

    inner = sch.get_loops(out)[-1]
    if not isinstance(sch.get(inner).extent, IntImm):
        return
    if _extent(sch, inner) % lanes == 0 and _extent(sch, inner) >= lanes:
        _, vector = sch.split(inner, [None, lanes])
        sch.vectorize(vector)
