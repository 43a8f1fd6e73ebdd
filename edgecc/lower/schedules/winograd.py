"""Default schedule of winograd_conv kernels (blocks from edgecc/lower/te_ops/winograd.py).

Each stage runs in parallel over its own outer loops:
- the padded copy: rows in parallel, the channel block vectorized;
- the input transform: per (channel block, tile), its rows stage computed into a local buffer,
  all entries unrolled (their coefficients fold to constants), the channel block the vector;
- the batched GEMM: per (a, b, output block), a register tile of `tile` tiles x the output
  channel block, accumulated over the input channels like the NCHW{b}c conv's register tile;
- the output transform: per output tile, likewise, its m x m pixels unrolled; the group's bias,
  activation and residual add are inlined into it.
"""

from __future__ import annotations

from . import register_rule
from .cpu import (_blocks, _extent, _find, _is_output, _name, _schedule, _schedule_blocked_copy, _weight_buffer,
                  accumulator_registers, conv_tiling, inline_all_but)
from .knobs import Knob, Knobs, register_knobs

_STAGES = ("pad", "winograd_input_rows", "winograd_input", "winograd_gemm", "winograd_output_rows",
           "winograd_output")


@register_rule("winograd_conv")
def schedule_winograd_conv(kernel, target, tile: int | None = None, knobs: dict | None = None):
    """The default rule; `tile` or `knobs={"tile": ...}` (see `winograd_knobs`) override the GEMM's
    register tile (tiles per accumulator row), `knobs={"prefetch": False}` leaves out the GEMM's
    prefetch of the next block of weights."""
    tile = (knobs or {}).get("tile", tile)
    sch = _schedule(kernel)
    stages = [_find(sch, (name,)) for name in _STAGES]
    if any(b is None for b in stages[1:]):  # everything but the padding is always there
        raise ValueError("not a winograd_conv kernel")
    alpha = _extent(sch, sch.get_loops(stages[2])[0])
    inline_all_but(sch, [b for b in stages if b is not None])
    _epilogue_into_output(sch)
    if stages[0] is not None:
        _schedule_blocked_copy(sch, _find(sch, ("pad",)))
    _schedule_input_transform(sch, _find(sch, ("winograd_input",)))
    prefetch = _schedule_gemm(sch, _find(sch, ("winograd_gemm",)), target, tile)
    _schedule_output_transform(sch, _find(sch, ("winograd_output",)), alpha - 2)
    if prefetch is None or not (knobs or {}).get("prefetch", True):
        return sch.mod["main"]
    from .prefetch import prefetch_next_block

    return prefetch_next_block(sch.mod["main"], *prefetch)


@register_knobs("winograd_conv")
def winograd_knobs(kernel, target) -> Knobs:
    """The batched GEMM's register tile: Winograd tiles per accumulator row (the rows of one
    output channel block stay in registers while the input channels are summed); whether each
    task prefetches its share of the next task's weights."""
    sch = _schedule(kernel)
    gemm = _find(sch, ("winograd_gemm",))
    if gemm is None:
        raise ValueError("not a winograd_conv kernel")
    alpha, _, _, tiles, ob = (_extent(sch, loop) for loop in sch.get_loops(gemm)[:5])
    lanes = min(target.lanes("float32"), ob)
    registers = accumulator_registers(target)
    default, vectors = conv_tiling(tiles, ob, lanes, registers)
    return Knobs(kernel.kind, (Knob("tile", tuple(range(2, min(tiles, registers) + 1)), default),
                               Knob("prefetch", (True, False), True)),
                 allowed=lambda p: p["tile"] * vectors <= registers,
                 shape={"alpha": alpha, "tiles": tiles, "block": ob, "lanes": lanes, "cores": target.num_cores})


def _epilogue_into_output(sch) -> None:
    """Bias, activation, residual add: computed where the output transform writes each pixel."""
    for block in _blocks(sch):
        if _is_output(sch, block) and _name(sch, block) != "winograd_output":
            sch.reverse_compute_inline(block)


def _schedule_input_transform(sch, block) -> None:
    """Per (channel block, tile): B^T d into a small local buffer, then (B^T d) B."""
    a, b, c, p, i = sch.get_loops(block)
    sch.reorder(c, p, a, b, i)
    tile = sch.fuse(c, p)
    sch.parallel(tile)
    _unrolled_entries(sch, block)
    rows = _find(sch, ("winograd_input_rows",))
    sch.compute_at(rows, tile)
    _unrolled_entries(sch, rows)


def _unrolled_entries(sch, block) -> None:
    """The two entry loops right above the innermost (vector) loop unrolled; that loop vectorized."""
    *_, first, second, vector = sch.get_loops(block)
    sch.unroll(first)
    sch.unroll(second)
    sch.vectorize(vector)


def _schedule_gemm(sch, block, target, tile: int | None):
    """(a, b, O/ob, P, ob) = sum over (C/ib, ib): accumulators for `tile` tiles x ob in registers
    (None: the register tile `conv_tiling` picks for P tiles).

    Consecutive parallel tasks share one (a, b, output block) of weights (C/ib x ib x ob floats,
    32 KiB for 256 channels); inside a model they come from memory. Returns the arguments of
    `prefetch_next_block` by which each task prefetches its share of the next task's weights,
    spread over its input channel blocks (None for a kernel without a channel block loop)."""
    copy = sch.cache_write(block, 0, "local")
    a, b, o, p, j = sch.get_loops(copy)
    ob = _extent(sch, j)
    lanes = min(target.lanes("float32"), ob)
    if tile is None:  # the tile count is read only here: callers with a symbolic tile axis pass a tile
        tile, _ = conv_tiling(_extent(sch, p), ob, lanes, accumulator_registers(target))
    p_o, p_i = sch.split(p, [None, tile])
    sch.reorder(a, b, o, p_o, p_i, j)
    extents = [sch.get(loop).extent for loop in (a, b, o, p_o)]  # symbolic tile counts: no prefetch
    outer = sch.fuse(a, b, o, p_o)
    sch.parallel(outer)
    sch.vectorize(j)
    sch.compute_at(block, outer)
    (p_i, j), reduction = sch.get_loops(block)[1:3], sch.get_loops(block)[3:]  # unit channel loops are dropped
    j_o, j_i = sch.split(j, [None, lanes])
    sch.reorder(*reduction, p_i, j_o, j_i)
    sch.unroll(p_i)
    sch.unroll(j_o)
    sch.vectorize(j_i)
    # one input channel leaves no reduction loop: the initial zero goes above the tile's loops
    sch.decompose_reduction(block, reduction[0] if reduction else p_i)
    weight = _weight_buffer(sch, block)
    if not reduction or weight is None or not all(isinstance(e, int) or hasattr(e, "value") for e in extents):
        return None
    return _next_weights(sch.get(outer).loop_var, [int(e) for e in extents], sch.get(reduction[0]).loop_var,
                         _extent(sch, reduction[0]), weight)


def _next_weights(task, extents: list[int], channel_block, channel_blocks: int, weight) -> tuple:
    """`prefetch_next_block` arguments: task `task` of the GEMM (a, b, o, p_o fused) prefetches, at
    each input channel block, its share of the weights of the next (a, b, o)."""
    from tvm import tirx

    from .prefetch import unflatten

    alpha, _, blocks, chunks = extents
    following = tirx.min(task // chunks + 1, alpha * alpha * blocks - 1)
    uses = [(task % chunks, chunks), (channel_block, channel_blocks)]
    return channel_block, weight, unflatten(following, [alpha, alpha, blocks]), 3, uses


def _schedule_output_transform(sch, block, m: int) -> None:
    n, o, y, x, j = sch.get_loops(block)
    y_o, y_i = sch.split(y, [None, m])
    x_o, x_i = sch.split(x, [None, m])
    sch.reorder(n, o, y_o, x_o, y_i, x_i, j)
    sch.parallel(sch.fuse(n, o, y_o))
    _unrolled_entries(sch, block)
    rows = _find(sch, ("winograd_output_rows",))
    sch.compute_at(rows, x_o)
    _unrolled_entries(sch, rows)
