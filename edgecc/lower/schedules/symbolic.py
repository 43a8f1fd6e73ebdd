"""Default CPU schedules for kernels with symbolic extents: the "symbolic" rule set.

The CPU rules (`cpu.py`) size their tiles from static extents. A kernel with a size variable in
its shapes (a batch or sequence length known only at run time) comes here instead; its static
axes are tiled and vectorized as there, its symbolic ones split with guards:

- elementwise and other kernels: outer loops fused and parallel, a static innermost loop
  vectorized;
- row reductions (softmax, layer norm, pooling): every stage computed per row, rows parallel,
  a reduction along the innermost axis in vector lanes (a symbolic softmax axis over whole
  groups, its last, partial group guarded);
- dense and matmul: the CPU rule's register tile, `GEMM_ROWS` rows x vector columns (the
  packed weights' block for dense). A symbolic row count (and symbolic columns: attention scores) is padded to
  whole tiles (`pad_einsum`): the reduction runs the unguarded tile of the fixed-size kernel on
  padded copies of the inputs, and only the output's rows (columns) carry guards;
- NCHW{b}c convolutions with a symbolic batch: the CPU rule's register tile over the static
  image axes, (batch, channel block, row) fused and parallel.
- Winograd convolutions with a symbolic batch: the CPU rule's transforms, the batched GEMM's
  (symbolic) tile axis split with a guard.

A kernel with a size known only from a tensor's values (`kernel.runtime_sizes`: NonZero's count,
a run-time Reshape; such a size may be 0) gets the "runtime_sizes" set: the outermost loop
parallel, a static innermost loop vectorized, no loops fused (a fused loop's index is divided by
the inner extents).

Fixed-size kernels never reach these rules (`Scheduler` routes on `kernel.symbolic`).
"""

from __future__ import annotations

from . import register_rule
from .cpu import accumulator_registers, inline_all_but, output_block, schedule_blocks

RULES_NAME = "symbolic"

#: rows of a matrix product's register tile (the symbolic axis, padded or split with a guard): 6
#: rows x 2 vectors of accumulators fit AVX2's 12 and AVX-512's 24. Symbolic BERT encoder, 2
#: threads, against 4 rows: 1 x 128 tokens 4.25 -> 4.07 ms, 2 x 64 3.92 -> 3.60 ms, 1 x 5 0.51 ->
#: 0.45 ms. With 8 rows (the fixed-size rule's AVX-512 tile) LLVM kept the 16 accumulators in
#: memory, a store per accumulator in every reduction step, when it compiled the whole model (not
#: when it compiled the kernel alone): the model ran 1.6x slower.
GEMM_ROWS = 6


def _static(sch, loop) -> int | None:
    """A loop's extent when it is a constant, else None."""
    from tvm import tirx

    extent = sch.get(loop).extent
    return int(extent.value) if isinstance(extent, tirx.IntImm) else None


def _blocks(sch):
    return list(sch.get_child_blocks(sch.get_sblock("root", func_name="main")))


def _find(sch, names: tuple[str, ...]):
    for block in _blocks(sch):
        if sch.get(block).name_hint in names:
            return block
    return None


def _is_output(sch, block) -> bool:
    params = sch.mod["main"].params
    return any(w.source.same_as(p) for w in sch.get(block).writes for p in params)


def _has_reduction(sch, block) -> bool:
    from tvm.tirx import IterVar

    return any(iv.iter_type == IterVar.CommReduce for iv in sch.get(block).iter_vars)


def _lanes(kernel, target) -> int:
    return target.lanes(kernel.outputs[0].type.dtype if kernel.outputs else "float32")


def _vector_tile(extent: int | None, lanes: int) -> int:
    if extent is None:
        return 1
    for tile in (lanes * 4, lanes * 2, lanes):
        if tile <= extent and extent % tile == 0:
            return tile
    return 1


def _parallel_and_vectorize(sch, block, lanes: int) -> None:
    """Outer loops fused and parallel; a static innermost loop holding whole vectors vectorized."""
    loops = sch.get_loops(block)
    if not loops:
        return
    vec = _vector_tile(_static(sch, loops[-1]), lanes)
    outer = loops[:-1]
    if vec > 1:
        _, inner = sch.split(loops[-1], [None, vec])
        sch.vectorize(inner)
    elif not outer:
        outer = loops
    if outer:
        sch.parallel(sch.fuse(*outer) if len(outer) > 1 else outer[0])


def _parallel_rows(sch, block) -> None:
    """Parallelize the leading spatial loops of a reduction block."""
    from tvm.tirx import IterVar

    spatial = []
    for loop, iv in zip(sch.get_loops(block), sch.get(block).iter_vars):
        if iv.iter_type != IterVar.DataPar:
            break
        spatial.append(loop)
    if spatial:
        sch.parallel(sch.fuse(*spatial) if len(spatial) > 1 else spatial[0])


def _generic(kernel, target, sch):
    return schedule_blocks(sch, _lanes(kernel, target), _parallel_rows, _parallel_and_vectorize)


def _schedule(kernel):
    import tvm

    return tvm.s_tir.Schedule(kernel.func)


def _outermost_parallel(sch, block, lanes: int | None = None) -> None:
    """The outermost loop parallel (when spatial), a static innermost loop vectorized; nothing fused."""
    from tvm.tirx import IterVar

    loops = sch.get_loops(block)
    if not loops:
        return
    if lanes is not None and len(loops) > 1:
        vec = _vector_tile(_static(sch, loops[-1]), lanes)
        if vec > 1:
            sch.vectorize(sch.split(loops[-1], [None, vec])[1])
    if sch.get(block).iter_vars[0].iter_type == IterVar.DataPar:
        sch.parallel(loops[0])


def _has_opaque_block(sch) -> bool:
    """Whether a top-level block has no iteration variables (a TE extern: TOPI's sort, NMS, scan);
    inlining its producers would leave it reading buffers that are never written. A function
    without a root block (a scan) counts as one."""
    try:
        blocks = _blocks(sch)
    except Exception:  # noqa: BLE001 - no root block to schedule under
        return True
    return any(not sch.get(block).iter_vars for block in blocks)


@register_rule("*", rules="runtime_sizes")
def schedule_runtime_sizes(kernel, target):
    """Kernels with opaque (extern) blocks stay as generated."""
    sch = _schedule(kernel)
    if _has_opaque_block(sch):
        return sch.mod["main"]
    return schedule_blocks(sch, _lanes(kernel, target), _outermost_parallel, _outermost_parallel)


@register_rule("injective", "*", rules=RULES_NAME)
def schedule_generic(kernel, target):
    """Kernels with opaque (extern) blocks stay as generated."""
    sch = _schedule(kernel)
    return sch.mod["main"] if _has_opaque_block(sch) else _generic(kernel, target, sch)


@register_rule("reduction", "pool", rules=RULES_NAME)
def schedule_rows(kernel, target):
    """Row reductions: `reduction.schedule_rows_in_lanes`, the static rule's schedule, every row
    loop in parallel. A symbolic softmax axis (attention over the sequence) comes rounded up to
    whole groups from its lowering; its step loop is partitioned at build time into unguarded
    vectors and a guarded scalar tail (BERT encoder with symbolic batch and length, at 1 x 128,
    2 threads: its softmax 1.01 -> 0.18 ms, as fast as the fixed-size kernel's)."""
    from .reduction import schedule_rows_in_lanes

    return schedule_rows_in_lanes(kernel, target, _generic, lambda sch, row, out: True)


@register_rule("dense", rules=RULES_NAME)
def schedule_dense(kernel, target):
    weight = kernel.args[1].type if len(kernel.args) > 1 else None
    block = weight.shape[2] if weight is not None and weight.rank == 3 else None  # packed (N/b, K, b)
    return _schedule_gemm(kernel, target, "dense_pack", block)


@register_rule("matmul", rules=RULES_NAME)
def schedule_matmul(kernel, target):
    return _schedule_gemm(kernel, target, "matmul")


def _schedule_gemm(kernel, target, anchor_name: str, block: int | None = None):
    """The CPU rule's register tile (`cpu._schedule_gemm`): `GEMM_ROWS` rows x `block` columns (the
    packed weights' block) or whole vectors. A static row count that is a multiple of the tile: the
    CPU rule itself. Otherwise rows (and symbolic columns) padded to whole tiles: `_padded_gemm`."""
    from .cpu import _schedule_gemm as cpu_gemm

    shape = kernel.outputs[0].type.shape if kernel.outputs else ()
    if len(shape) < 2:
        return _generic(kernel, target, _schedule(kernel))
    rows, n = shape[-2], shape[-1]
    lanes = _lanes(kernel, target)
    if not isinstance(n, int):
        return _padded_gemm(kernel, target, anchor_name, 2 * lanes, pad_columns=True) or \
            _gemm_whole_rows(kernel, target, anchor_name)
    cols = block or min(_vector_tile(n, lanes), 2 * lanes)
    if cols == 1:
        return _generic(kernel, target, _schedule(kernel))
    if isinstance(rows, int) and rows % GEMM_ROWS == 0:
        return cpu_gemm(kernel, target, anchor_name, cols, knobs={"rows": GEMM_ROWS, "cols": cols, "unroll": True})
    columns_first = kernel.kind == "dense" and n // cols >= target.num_cores
    return _padded_gemm(kernel, target, anchor_name, cols, columns_first=columns_first) or \
        cpu_gemm(kernel, target, anchor_name, cols, knobs={"rows": 1, "cols": cols, "unroll": True})


def _pad_tile(sch, anchor, rows: int, cols: int) -> dict[str, bool] | None:
    """Pad the anchor's rows (and columns) to whole `rows` x `cols` tiles (`pad_einsum`): the anchor
    then computes whole tiles from padded copies of its inputs (zeros past the end) into a padded
    buffer, of which the kernel's output takes what exists. Reads indexed by expressions (packed
    weights: `w[j // b, k, j % b]`) are padded through a `reindex` copy, inlined back afterwards.
    Returns {padded copy's block name: whether it is indexed by rows}, or None where the anchor is
    no padded einsum."""
    from tvm import tirx
    from tvm.s_tir.schedule import ScheduleError

    block = sch.get(anchor)
    row_var = block.iter_vars[-3].var  # (batch..., rows, columns, reduction)
    by_rows = {f"{r.source.name}_pad": any(d.min.same_as(row_var) for d in r.region) for r in block.reads}
    try:
        for i, region in enumerate(block.reads):
            plain = all(isinstance(d.min, (tirx.Var, tirx.IntImm)) for d in region.region)
            if not plain and not any(region.source.same_as(w.source) for w in block.writes):
                sch.reindex(anchor, ("read", i))
        sch.pad_einsum(anchor, [1] * (len(block.iter_vars) - 3) + [rows, cols, 1])
    except ScheduleError:
        return None
    for b in _blocks(sch):
        if sch.get(b).name_hint.endswith("_reindex"):
            sch.compute_inline(b)
    copies = [sch.get(b).name_hint for b in sch.get_producers(anchor)]
    return {name: by_rows.get(name, True) for name in copies if name in by_rows}


def _padded_gemm(kernel, target, anchor_name: str, cols: int, pad_columns: bool = False,
                 columns_first: bool = False):
    """Rows of symbolic count (and, with `pad_columns`, columns) padded to whole tiles, so the
    reduction runs the CPU rule's unguarded register tile (`GEMM_ROWS` rows unrolled x `cols`
    vectorized columns, accumulators in registers); only the output carries guards, outside the
    reduction. Each parallel task (batch, row tile and a group of up to 4 static column tiles)
    first copies its rows of the row-indexed inputs; column-indexed inputs are padded once, before
    the tasks. With `columns_first` (a dense layer's packed weights), each task takes one column
    tile for every row tile instead, so its block of weights stays in cache while the rows pass
    (the fixed-size rule's "columns" order, `cpu.gemm_order`), and the rows are padded once,
    before the tasks (BERT encoder with symbolic batch and length at 1 x 128, 2 threads, 4 calls
    each: its 1024 -> 256 dense 1.59 -> 1.24 ms, 256 -> 1024 1.54 -> 1.14 ms; fixed-size kernels
    1.22 and 1.07 ms). None where the anchor is no einsum `pad_einsum` can pad.

    BERT encoder at seq 128, 1 thread, min of 12-15 interleaved runs on a loaded 2-core host
    (fixed-size kernel / this / one guarded row per tile before): QKV dense 0.096 / 0.100 / 0.45 ms,
    attention-weighted values 0.051 / 0.056 / 0.112 ms, attention scores (symbolic columns) 0.050 /
    0.079 / 0.18 ms (whole rows updated per reduction step)."""
    sch = _schedule(kernel)
    anchor = _find(sch, (anchor_name,))
    if anchor is None:
        return None
    copies = _pad_tile(sch, anchor, GEMM_ROWS, cols if pad_columns else 1)
    if copies is None:
        return None
    anchor = _find(sch, (anchor_name,))
    inline_all_but(sch, [anchor] + [_find(sch, (name,)) for name in copies])
    out, anchor = output_block(sch, anchor)
    loops = sch.get_loops(out)
    batch, rows, columns = loops[:-2], loops[-2], loops[-1]
    m_o, m_i = sch.split(rows, [None, GEMM_ROWS])  # guarded per row: the output only
    n_o, n_i = sch.split(columns, [None, cols])
    tiles = _static(sch, n_o) or 1
    per_group = max(k for k in (4, 3, 2, 1) if tiles % k == 0)
    if columns_first:
        sch.reorder(*batch, n_o, m_o, m_i, n_i)
        task, tile = sch.fuse(*batch, n_o), m_o
        copies = {name: False for name in copies}  # every row is read by every task: padded before
    elif tiles > per_group:
        n_g, tile = sch.split(n_o, [tiles // per_group, None])
        sch.reorder(*batch, m_o, n_g, tile, m_i, n_i)
        task = sch.fuse(*batch, m_o, n_g)
    else:
        sch.reorder(*batch, m_o, n_o, m_i, n_i)
        task, tile = sch.fuse(*batch, m_o), n_o
    sch.parallel(task)
    if not pad_columns:  # (a column guard per lane: the loop is left to LLVM)
        sch.vectorize(n_i)
    sch.compute_at(anchor, tile)  # one register tile (m_i x n_i) per iteration
    inner = sch.get_loops(anchor)[2:]
    spatial, reduction = inner[:-1], inner[-1:]
    sch.reorder(*reduction, *spatial)
    for loop in spatial[:-1]:
        sch.unroll(loop)
    sch.vectorize(spatial[-1])
    sch.decompose_reduction(anchor, reduction[0])
    for name, by_rows in copies.items():
        _schedule_padded_copy(sch, _find(sch, (name,)), task if by_rows else None, _lanes(kernel, target))
    return sch.mod["main"]


def _schedule_padded_copy(sch, block, task, lanes: int) -> None:
    """A padded input copy: inside each parallel task (`task`), its innermost loop vectorized when
    static; else before the tasks, its outer loops parallel."""
    if task is not None:
        sch.compute_at(block, task)
        innermost = sch.get_loops(block)[-1]
        vec = _vector_tile(_static(sch, innermost), lanes)
        if vec > 1:
            sch.vectorize(sch.split(innermost, [None, vec])[1])
        return
    outer = sch.get_loops(block)[:-1]
    if outer:
        sch.parallel(sch.fuse(*outer) if len(outer) > 1 else outer[0])


def _gemm_whole_rows(kernel, target, anchor_name: str):
    """Columns of symbolic count where padding does not apply: a `GEMM_ROWS`-row tile per parallel
    task, each reduction step updating whole rows, so the contiguous column loop carries no guard
    and LLVM vectorizes it."""
    sch = _schedule(kernel)
    anchor = _find(sch, (anchor_name,))
    if anchor is None:
        return _generic(kernel, target, sch)
    inline_all_but(sch, [anchor])
    out, anchor = output_block(sch, anchor)
    loops = sch.get_loops(out)
    batch, rows = loops[:-2], loops[-2]
    m_o, _ = sch.split(rows, [None, GEMM_ROWS])  # guarded per row, not per column
    par = sch.fuse(*batch, m_o)
    sch.parallel(par)
    sch.compute_at(anchor, par)
    m_i, col, reduction = sch.get_loops(anchor)[1:]
    sch.reorder(reduction, m_i, col)
    sch.unroll(m_i)
    sch.decompose_reduction(anchor, reduction)
    return sch.mod["main"]


@register_rule("conv", "depthwise_conv", rules=RULES_NAME)
def schedule_conv(kernel, target):
    """NCHW{b}c convolution with a symbolic batch: the CPU rule (its register tile covers the
    static image axes); with a symbolic image size, the generic schedule."""
    from .cpu import schedule_nchwc_conv

    shape = kernel.outputs[0].type.shape if kernel.outputs else ()
    if len(shape) != 5 or not all(isinstance(d, int) for d in shape[1:]):
        return _generic(kernel, target, _schedule(kernel))
    return schedule_nchwc_conv(kernel, target, ("conv2d_NCHWc", "depthwise_conv2d_NCHWc"))


@register_rule("winograd_conv", rules=RULES_NAME)
def schedule_winograd_conv(kernel, target):
    """Winograd convolution with a symbolic batch: the CPU rule's transforms; the batched GEMM's
    tile count (batch x tiles per image) is symbolic, so its register tile is split with a guard."""
    from . import winograd

    sch = _schedule(kernel)
    stages = [_find(sch, (name,)) for name in winograd._STAGES]
    if any(b is None for b in stages[1:]):
        return _generic(kernel, target, sch)
    alpha = _static(sch, sch.get_loops(stages[2])[0])
    inline_all_but(sch, [b for b in stages if b is not None])
    winograd._epilogue_into_output(sch)
    if stages[0] is not None:
        pn, pc, ph, _, pb = sch.get_loops(_find(sch, ("pad",)))
        sch.parallel(sch.fuse(pn, pc, ph))
        sch.vectorize(pb)
    winograd._schedule_input_transform(sch, _find(sch, ("winograd_input",)))
    ob = _static(sch, sch.get_loops(stages[3])[4])
    tile = max(accumulator_registers(target) // max(ob // min(target.lanes("float32"), ob), 1), 1)
    winograd._schedule_gemm(sch, _find(sch, ("winograd_gemm",)), target, tile)  # P split with a guard
    winograd._schedule_output_transform(sch, _find(sch, ("winograd_output",)), alpha - 2)
    return sch.mod["main"]
