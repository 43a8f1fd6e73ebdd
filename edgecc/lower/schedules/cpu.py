"""Rule-based default schedules for CPU kernels (used when no tuning record exists).

One rule per fusion-group kind. Each rule inlines the group's cheap stages (padding, bias,
activations) into the stage that writes the output, tiles that output stage, parallelizes its
outer loops over the cores, vectorizes the innermost loop to the SIMD width, and computes the
heavy stage (conv, dense, reduction) inside the output tile so its accumulators stay in registers.
A rule that does not fit a kernel raises; the dispatcher then falls back to the generic rule,
and finally to the unscheduled kernel. Schedules never change what a kernel computes.
"""

from __future__ import annotations

import math

import numpy as np

from . import RuleDoesNotApply, register_rule
from .knobs import Knob, Knobs, register_knobs

#: below this many output elements a kernel runs on one core (threading costs more than it saves)
PARALLEL_MIN_ELEMENTS = 4096


# ----- helpers -------------------------------------------------------------------------------------
def _schedule(kernel):
    import tvm

    return tvm.s_tir.Schedule(kernel.func)


def _blocks(sch):
    return list(sch.get_child_blocks(sch.get_sblock("root", func_name="main")))


def _name(sch, block) -> str:
    return sch.get(block).name_hint


def _find(sch, names: tuple[str, ...]):
    for block in _blocks(sch):
        if _name(sch, block) in names:
            return block
    return None


def _extent(sch, loop) -> int:
    return int(sch.get(loop).extent)


def _is_output(sch, block) -> bool:
    params = sch.mod["main"].params
    return any(w.source.same_as(p) for w in sch.get(block).writes for p in params)


def inline_all_but(sch, keep) -> None:
    """Inline every block except those in `keep` (and those that cannot be inlined)."""
    keep_names = {_name(sch, b) for b in keep}
    changed = True
    while changed:
        changed = False
        for block in _blocks(sch):
            name = _name(sch, block)
            if name in keep_names or _is_output(sch, block):
                continue
            for inline in (sch.compute_inline, sch.reverse_compute_inline):
                try:
                    inline(block)
                    changed = True
                    break
                except Exception:  # noqa: BLE001 - not inlinable here; try the next block
                    continue


def output_block(sch, anchor):
    """The block writing the kernel output that consumes `anchor` (a cache copy if anchor writes it)."""
    outputs = [b for b in _blocks(sch) if _is_output(sch, b)]
    if len(outputs) != 1:
        raise ValueError("rule handles single-output kernels")
    out = outputs[0]
    if _name(sch, out) == _name(sch, anchor):
        sch.cache_write(anchor, 0, "global")
        out = [b for b in _blocks(sch) if _is_output(sch, b)][0]
        anchor = _find(sch, (_name(sch, anchor),))
    return out, anchor


def _divisor_tile(extent: int, preferred: tuple[int, ...]) -> int:
    for t in preferred:
        if t <= extent and extent % t == 0:
            return t
    return 1


def _parallel_and_vectorize_flat(sch, block, lanes: int) -> None:
    """Outer loops fused and parallel; the innermost loop vectorized when it holds whole vectors.

    The loop nest keeps its shape (no flattening): indexing a flattened loop needs a division
    and a remainder per axis, which stops LLVM from vectorizing the loads.
    """
    loops = sch.get_loops(block)
    if not loops:
        return
    total = int(np.prod([_extent(sch, lp) for lp in loops]))
    inner = loops[-1]
    vec = _divisor_tile(_extent(sch, inner), (lanes * 4, lanes * 2, lanes))
    if vec > 1:
        _, inner_vec = sch.split(inner, [None, vec])
        sch.vectorize(inner_vec)
    outer = loops[:-1]
    if outer and total >= PARALLEL_MIN_ELEMENTS:
        sch.parallel(sch.fuse(*outer) if len(outer) > 1 else outer[0])
    elif not outer and vec > 1 and total >= PARALLEL_MIN_ELEMENTS:
        sch.parallel(sch.get_loops(block)[0])


# ----- conv2d in NCHW{b}c ---------------------------------------------------------------------------
#: vector registers a conv's accumulator tile may take (of 16 on AVX2 and ARMv7 NEON, leaving
#: room for the weight vectors and the broadcast input)
ACCUMULATOR_REGISTERS = 12


def accumulator_registers(target) -> int:
    """Accumulator budget for `target`: 12 of 16 SIMD registers, 24 of 32 (AArch64 NEON)."""
    registers = getattr(target, "vector_registers", 16)
    return ACCUMULATOR_REGISTERS if registers <= 16 else registers * 3 // 4


def conv_tiling(out_width: int, out_block: int, lanes: int,
                registers: int = ACCUMULATOR_REGISTERS) -> tuple[int, int]:
    """(output columns per tile, channel vectors per tile) for a register-resident accumulator
    of at most `registers` vectors."""
    vectors = max(out_block // lanes, 1)
    widest = max(registers // vectors, 1)
    tiles = [t for t in range(widest, 0, -1) if out_width % t == 0]
    if tiles and tiles[0] >= 4:
        return tiles[0], vectors
    if out_width > widest:  # no good divisor: the last tile of each row is partial
        return min(range(4, widest + 1), key=lambda t: (-(-out_width // t) * t - out_width, -t)), vectors
    return out_width, vectors


def _schedule_blocked_copy(sch, block, parallel: bool = True) -> None:
    """An (n, c, h, w, b) copy: rows in parallel, the channel block vectorized."""
    n, c, h, w, b = sch.get_loops(block)
    rows = sch.fuse(n, c, h)
    if parallel:
        sch.parallel(rows)
    sch.vectorize(b)


@register_rule("conv")
def schedule_conv(kernel, target, knobs: dict | None = None):
    order = (knobs or {}).get("order") or ("weights" if weights_first(kernel) else "outputs")
    if order == "weights":
        return schedule_weights_first_conv(kernel, target, knobs)
    return schedule_nchwc_conv(kernel, target, ("conv2d_NCHWc",), knobs=knobs)


def weights_first(kernel) -> bool:
    """Whether a static float conv runs weights first: where its weights outweigh its input, if it
    has a window (3x3, ...: ResNet's 14x14 and 7x7 layers, 2.4 to 9.4 MB of weights each) or is a
    1x1 conv that reduces the channels. Inside a model such a conv reads its weights from memory
    and half its input from the other core's cache, right after the conv that wrote it: ResNet-50's
    1024 -> 256 and 2048 -> 512 convs, 2 threads, each timed right after the conv before it: 0.390
    -> 0.355 and 0.401 -> 0.359 ms; in the whole model 2.44 -> 2.19 and 1.10 -> 0.97 ms for their
    calls. The 1x1 convs that widen the channels (256 -> 1024) ran slower weights first (2.32 ->
    2.52 ms), their few input channels giving each block of weights little to add up."""
    if kernel.kind != "conv" or kernel.symbolic or len(kernel.outputs[0].type.shape) != 5:
        return False
    weight = next((v.type for v in kernel.args if v.type.rank == 6), None)
    if weight is None or _rows_first(kernel):
        return False
    out_blocks, in_blocks, kh, kw, in_block, out_block = (int(d) for d in weight.shape)
    return (kh, kw) != (1, 1) or in_blocks * in_block > out_blocks * out_block


def schedule_weights_first_conv(kernel, target, knobs: dict | None = None):
    """A conv whose weights outweigh its input, weights first: each parallel task takes output
    channel blocks, and the input channel blocks are the outermost loop inside it, so each block
    of weights (3x3x32x32 floats: 36 KiB) is read from memory once and used for every output
    pixel before the next, instead of once per output row; the register tile (columns x channel
    vectors) adds into the task's outputs, which stay in cache (ResNet-18, 2 threads: 11.0 ->
    10.5 ms minimum; its 7x7x512 convs 1.00 -> 0.89 ms each, alone). While one block is in use,
    the next is prefetched (`prefetch.py`; knob `prefetch`): in a whole model the weights come
    from memory (ResNet-18's 7x7x512 convs: 1.5 -> 1.2 ms each in the model). `knobs` set the
    tile and the prefetch."""
    sch = _schedule(kernel)
    conv, pad = _find(sch, ("conv2d_NCHWc",)), _find(sch, ("pad",))
    inline_all_but(sch, [b for b in (conv, pad) if b is not None])
    out, conv = output_block(sch, conv)
    if pad is not None:
        _schedule_blocked_copy(sch, _find(sch, ("pad",)))
    n, oc, oh, ow, ob, ic, kh, kw, ib = sch.get_loops(conv)
    lanes = min(target.lanes(_out_dtype(kernel)), _extent(sch, ob))
    tile, vectors = conv_tiling(_extent(sch, ow), _extent(sch, ob), lanes, accumulator_registers(target))
    knobs = {"tile": tile, "vectors": vectors, "prefetch": True, **(knobs or {})}
    parts = row_parts(_extent(sch, oc), _extent(sch, oh), target.num_cores)
    oh_o, oh = sch.split(oh, [parts, None]) if parts > 1 else (None, oh)
    ow_o, ow_i = sch.split(ow, [None, knobs["tile"]])
    ob_o, ob_i = sch.split(ob, [None, knobs["vectors"] * lanes])
    outer = (n, oc) if oh_o is None else (n, oc, oh_o)
    sch.reorder(*outer, ic, oh, ob_o, ow_o, kh, kw, ib, ow_i, ob_i)
    # the iterations that use one input channel block of weights: rows, tiles, kh, kw
    window = [(sch.get(loop).loop_var, _extent(sch, loop)) for loop in (oh, ob_o, ow_o, kh, kw)]
    channel_blocks, in_blocks = _extent(sch, oc), _extent(sch, ic)
    ic_var, weight = sch.get(ic).loop_var, _weight_buffer(sch, conv)
    task = sch.fuse(*outer)
    sch.parallel(task)
    sch.unroll(ow_i)
    sch.vectorize(ob_i)
    sch.decompose_reduction(conv, ic)
    sch.reverse_compute_at(out, task)
    sch.vectorize(sch.get_loops(out)[-1])
    if not knobs["prefetch"]:
        return sch.mod["main"]
    from tvm import tirx

    from .prefetch import prefetch_next_block

    next_block = [sch.get(task).loop_var // parts % channel_blocks, tirx.min(ic_var + 1, in_blocks - 1)]
    return prefetch_next_block(sch.mod["main"], window[-1][0], weight, next_block, 4, window)


def row_parts(out_blocks: int, height: int, cores: int) -> int:
    """Parts of the output rows per task of a weights-first conv: 1 (a task per output channel
    block), or where the blocks do not divide among the cores, as many as make them divide
    (MobileNetV2's 7x7 960 -> 160 projection: 5 blocks on 2 cores ran 3:2; 10 tasks of 4 or 3
    rows run 18:17)."""
    parts = cores // math.gcd(out_blocks, cores)
    return parts if parts <= height else 1


def _weight_buffer(sch, block):
    """The block's blocked weights: the 6-d buffer it reads (a conv's OIHW{i}{o}, a Winograd
    GEMM's transformed weights); None when it reads none."""
    return next((r.source for r in sch.get(block).reads if len(r.source.shape) == 6), None)


@register_rule("depthwise_conv")
def schedule_depthwise_conv(kernel, target, knobs: dict | None = None):
    return schedule_nchwc_conv(kernel, target, ("depthwise_conv2d_NCHWc",), knobs=knobs)


@register_knobs("conv", "depthwise_conv")
def conv_knobs(kernel, target, acc_dtype: str | None = None) -> Knobs:
    """Register tile (output columns x channel vectors of `acc_dtype`, default the output's, x
    output channel blocks), unrolling of the tile, whether the parallel loop takes output rows
    (default) or only channel blocks, for a padded float depthwise convolution where it pads
    (`PAD_PLACES`), and for a float conv whether output tiles or weights come first (`order`,
    see `schedule_weights_first_conv`) and whether the next block of weights is prefetched
    (`prefetch`: weights first, or output tiles first in tasks of one channel block's rows): the
    knobs of `schedule_nchwc_conv`."""
    n, c, height, width, block = (int(d) for d in kernel.outputs[0].type.shape)
    lanes = min(target.lanes(acc_dtype or _out_dtype(kernel)), block)
    registers = accumulator_registers(target)
    tile, vectors = conv_tiling(width, block, lanes, registers)
    tiles = tuple(t for t in range(2, min(width, registers) + 1))
    splits = tuple(v for v in range(1, block // lanes + 1) if (block // lanes) % v == 0)
    blocks = tuple(b for b in (1, 2, 3, 4) if c % b == 0)

    pad = pad_place(kernel) if acc_dtype is None else None

    def allowed(p: dict) -> bool:
        return (p["tile"] * p["vectors"] * p["blocks"] <= registers
                and (p["blocks"] == 1 or not _flat_tiles(width, height, p["tile"]))
                and (p.get("pad") != "plane" or p["parallel"] == "channels")
                and (p.get("order") != "weights" or (p["blocks"] == 1 and p["unroll"]))  # (its own loops)
                and (not p.get("prefetch") or p.get("order") == "weights"
                     or _prefetches_by_rows(kernel, width, height, p)))

    knobs = (Knob("tile", tiles, tile), Knob("vectors", splits, vectors), Knob("blocks", blocks, 1),
             Knob("unroll", (True, False), True),
             Knob("parallel", ("rows", "channels"), "channels" if pad == "plane" else "rows"))
    if pad is not None:
        knobs += (Knob("pad", PAD_PLACES, pad),)
    if kernel.kind == "conv" and acc_dtype is None and not kernel.symbolic:
        first = weights_first(kernel)
        by_rows = _prefetches_by_rows(kernel, width, height, {k.name: k.default for k in knobs})
        knobs += (Knob("order", ("outputs", "weights"), "weights" if first else "outputs"),
                  Knob("prefetch", (True, False), first or by_rows))
    return Knobs(kernel.kind, knobs, allowed=allowed,
                 shape={"channels": c * block, "height": height, "width": width, "block": block,
                        "lanes": lanes, "cores": target.num_cores})


def _work(sch, block) -> int:
    """Iterations of a block's loop nest (multiply-adds for a reduction)."""
    n = 1
    for loop in sch.get_loops(block):
        n *= _extent(sch, loop)
    return n


def schedule_nchwc_conv(kernel, target, anchor_names, acc_dtype: str | None = None, min_parallel_work: int = 0,
                        knobs: dict | None = None):
    """Register-tiled NCHW{b}c convolution; output (n, c, h, w, b) computed tile by tile.

    The accumulator tile (output columns x channel vectors of `acc_dtype` lanes) stays in
    registers while the reduction loops run outside it; depthwise anchors (names containing
    "depthwise") unroll their window. Kernels with fewer than `min_parallel_work` multiply-adds
    stay on one core. `knobs` (see `conv_knobs`) override the tile, unrolling, parallel loop and
    prefetch: a float conv whose tasks take an output channel block's rows one after another
    prefetches the next block's weights (`_prefetch_next_channel_block`)."""
    sch = _schedule(kernel)
    conv = _find(sch, tuple(anchor_names))
    if conv is None:
        return _generic(kernel, target, sch)
    unroll_window = "depthwise" in sch.get(conv).name_hint
    pad = _find(sch, ("pad",))
    inline_all_but(sch, [conv] + ([pad] if pad is not None else []))
    out, conv = output_block(sch, conv)
    parallel = min_parallel_work <= 0 or _work(sch, conv) >= min_parallel_work  # (symbolic extents: no _work)
    default_pad = pad_place(kernel) if acc_dtype is None else None
    pad_at = (knobs or {}).get("pad", default_pad) or "copy"
    if pad is not None and pad_at == "copy":  # padded copy first: no bounds checks in the inner loop
        _schedule_blocked_copy(sch, _find(sch, ("pad",)), parallel)
    elif pad is not None and pad_at == "inline":  # a bounds check in each window read
        sch.compute_inline(_find(sch, ("pad",)))
    n, oc, oh, ow, ob = sch.get_loops(out)
    width, height = _extent(sch, ow), _extent(sch, oh)
    lanes = min(target.lanes(acc_dtype or _out_dtype(kernel)), _extent(sch, ob))
    tile, vectors = conv_tiling(width, _extent(sch, ob), lanes, accumulator_registers(target))
    knobs = {"tile": tile, "vectors": vectors, "blocks": 1, "unroll": True,
             "parallel": "channels" if pad_at == "plane" else "rows",
             "prefetch": kernel.kind == "conv" and acc_dtype is None, **(knobs or {})}
    tile, vectors, blocks, by_rows = knobs["tile"], knobs["vectors"], knobs["blocks"], knobs["parallel"] == "rows"
    prefetch = None  # (output channel blocks, tasks per block) where tasks prefetch the next block's weights
    if pad_at == "plane" and by_rows:
        raise ValueError("a padded plane per channel block needs the parallel loop over channel blocks")
    ob_o, ob_i = sch.split(ob, [None, vectors * lanes])
    if _flat_tiles(width, height, tile):
        # small images: tile the flattened rows x columns so no tile is partial
        if blocks > 1:
            raise ValueError("several channel blocks per tile need tiles of whole rows")
        sch.reorder(n, oc, ob_o, oh, ow, ob_i)
        pix_o, _ = sch.split(sch.fuse(oh, ow), [None, tile])
        rows, depth = (sch.fuse(n, oc, ob_o, pix_o), 1) if by_rows else (sch.fuse(n, oc, ob_o), 2)
    else:
        ow_o, ow_i = sch.split(ow, [None, tile])
        rows_first = by_rows and acc_dtype is None and _rows_first(kernel)
        if blocks > 1:  # the register tile spans `blocks` output channel blocks
            oc, oc_i = sch.split(oc, [None, blocks])
        task_rows = _divisor_tile(height, DEPTHWISE_TASK_ROWS) if pad_at == "rows" and by_rows else 1
        oh, oh_i = sch.split(oh, [None, task_rows]) if task_rows > 1 else (oh, None)
        outer = (n, oh, oc) if rows_first else (n, oc, oh)
        sch.reorder(*outer, *((oh_i,) if oh_i is not None else ()), ob_o, ow_o,
                    *((oc_i,) if blocks > 1 else ()), ow_i, ob_i)
        if knobs["prefetch"] and parallel and _prefetches_by_rows(kernel, width, height, knobs):
            prefetch = (_extent(sch, oc), _extent(sch, oh))
        rows, depth = (sch.fuse(*outer), 3 + (oh_i is not None)) if by_rows else (sch.fuse(n, oc), 4)
    if parallel:
        sch.parallel(rows)
    sch.vectorize(ob_i)
    sch.compute_at(conv, sch.get_loops(out)[depth - 1])
    inner = sch.get_loops(conv)[depth:]
    count = 3 if blocks > 1 else 2  # (channel blocks,) columns, channel vector
    spatial, reduction = inner[:count], inner[count:]
    sch.reorder(*reduction, *spatial)
    if unroll_window:
        for loop in reduction:
            sch.unroll(loop)
    for loop in spatial[:-1] if knobs["unroll"] else ():
        sch.unroll(loop)
    sch.vectorize(spatial[-1])
    sch.decompose_reduction(conv, reduction[0])
    if pad is not None and pad_at in ("rows", "plane"):  # the padded rows (or plane) a task reads
        pad = _find(sch, ("pad",))
        sch.compute_at(pad, sch.get_loops(out)[0])
        sch.vectorize(sch.get_loops(pad)[-1])
    if prefetch is None or not reduction:
        return sch.mod["main"]
    return _prefetch_next_channel_block(sch, rows, reduction[0], _weight_buffer(sch, conv), *prefetch)


def _prefetches_by_rows(kernel, width: int, height: int, knobs: dict) -> bool:
    """Whether `schedule_nchwc_conv` with `knobs` runs tasks that take one output channel block's
    rows in turn (rows in parallel, channel blocks before rows, one block and whole rows per
    tile), where each task can prefetch the next block's weights."""
    return (knobs["parallel"] == "rows" and knobs["blocks"] == 1 and not _rows_first(kernel)
            and not _flat_tiles(width, height, knobs["tile"]))


def _prefetch_next_channel_block(sch, task, channel_block, weight, out_blocks: int, tasks_per_block: int):
    """The conv with each parallel task (output channel block, then rows) prefetching, over its
    input channel blocks, its share of the next output channel block's weights."""
    from tvm import tirx

    from .prefetch import prefetch_next_block

    channel_blocks = _extent(sch, channel_block)
    task, channel_block = sch.get(task).loop_var, sch.get(channel_block).loop_var
    following = tirx.min(task // tasks_per_block % out_blocks + 1, out_blocks - 1)
    uses = [(task % tasks_per_block, tasks_per_block), (channel_block, channel_blocks)]
    return prefetch_next_block(sch.mod["main"], channel_block, weight, [following], 5, uses)


#: where a depthwise convolution pads its input: all of it first ("copy"), the input rows of each
#: output row inside the parallel loop ("rows"), each channel block's plane ("plane"), or nowhere,
#: a bounds check in each window read standing for the zeros ("inline")
PAD_PLACES = ("copy", "rows", "plane", "inline")
#: output pixels up to which a stride-1 depthwise convolution pads a whole plane per channel block
PLANE_PIXELS = 64
#: output rows per parallel task of a depthwise convolution that pads the rows it reads: each task
#: pads the input rows of its output rows once (a task per output row padded 3 input rows for it;
#: MobileNetV2, 2 threads: 3.17 -> 3.06 ms)
DEPTHWISE_TASK_ROWS = (4, 2)


def pad_place(kernel) -> str | None:
    """Where a static float conv pads its input by default (None where it has no padding or
    is not such a conv): a depthwise conv as `depthwise_pad_place` says; a conv on an image's
    few channels (`ROWS_PAD_CHANNELS`) whose parallel loop takes output rows first (`_rows_first`)
    and whose tasks' input rows overlap little (`ROWS_PAD_OVERLAP`), the input rows of each task
    inside the parallel loop ("rows"), where they stay in cache; other convs, a padded copy first.

    MobileNetV2's 3x3 stride-2 stem on 224x224x3, 2 threads, alone: 0.084 -> 0.080 ms with its
    rows padded by each task (9 input rows for 4 output rows); ResNet's 7x7 stride-2 stem was
    slower that way (0.61 -> 0.67 ms: 13 input rows for 4)."""
    if kernel.kind == "depthwise_conv":
        return depthwise_pad_place(kernel)
    conv = _padded_conv(kernel, "conv")
    if conv is None or conv.outputs[0].type.dtype != "float32":
        return None
    weight = conv.inputs[1].type.shape  # (blocked: O/o, I/i, KH, KW, i, o)
    if not _rows_first(kernel) or len(weight) != 6 or int(weight[1]) * int(weight[4]) > ROWS_PAD_CHANNELS:
        return None
    rows, stride = DEPTHWISE_TASK_ROWS[0], (conv.attrs["strides"] or (1, 1))[0]
    overlap = (int(weight[2]) + (rows - 1) * stride) / (rows * stride)
    return "rows" if overlap <= ROWS_PAD_OVERLAP else None


#: the most input rows a task of `DEPTHWISE_TASK_ROWS` output rows may pad, over the rows its
#: stride alone would take, for a conv's default to pad the rows of each task (`pad_place`)
ROWS_PAD_OVERLAP = 1.25
#: the most input channels of a conv whose default pads the rows of each task (`pad_place`): an
#: image's channels (ResNet's stride-2 3x3 conv on 56x56x64 was slower so: 0.381 -> 0.394 ms in
#: the model)
ROWS_PAD_CHANNELS = 4


def depthwise_pad_place(kernel) -> str | None:
    """Where a static float depthwise convolution pads its input by default (None for other kernels):
    nowhere ("inline"), a bounds check in each window read standing for the zeros; a 7x7 stride-1
    image, one padded plane per channel block ("plane").

    A padded copy of the whole input costs a write and a read of a tensor that no longer fits the
    cache at 56x56 and up (MobileNetV2's 112x112x96 stride-2 layer ran at 10 GFLOP/s); padding the
    rows a task reads inside the parallel loop ("rows") kept them in L1 (1.2x to 3.5x faster, 1
    thread), and the bounds checks are cheaper still: MobileNetV2's stride-2 28x28x192 and
    14x14x576 layers, 2 threads, alone: 0.0092 -> 0.0059 and 0.0082 -> 0.0046 ms. Its stride-1
    7x7x960 layers ran faster alone with the checks (0.0060 -> 0.0044 ms) but slower in the
    model (three calls, 0.050 -> 0.056 ms), so small stride-1 images keep the padded plane."""
    conv = _padded_conv(kernel, "depthwise_conv")
    if conv is None:
        return None
    _, _, height, width, _ = kernel.outputs[0].type.shape
    strides = conv.attrs["strides"] or (1, 1)
    return "plane" if max(strides) == 1 and height * width <= PLANE_PIXELS else "inline"


def _padded_conv(kernel, kind: str):
    """The conv node of a static `kind` kernel with a blocked (NCHW{b}c) output, where it pads
    its input; None otherwise."""
    if kernel.kind != kind or kernel.symbolic or len(kernel.outputs[0].type.shape) != 5:
        return None
    conv = next((n for n in kernel.body if n.op == "conv"), None)
    return conv if conv is not None and any(conv.attrs["pads"] or ()) else None


def _rows_first(kernel) -> bool:
    """Whether the parallel loop of a static float conv takes output rows before channel blocks:
    where its input outweighs its weights. Each core then reads only the input rows of its own
    output rows, which the kernel before wrote from the same core (MobileNetV2, 2 threads: 3.61 ->
    3.43 ms); where the weights are larger (ResNet's 7x7 layers), channel blocks first let each
    core read only its own weights (rows first there: ResNet-18 10.6 -> 12.8 ms)."""
    if kernel.symbolic:
        return False
    data = next((v.type for v in kernel.args if v.type.rank in (4, 5)), None)  # (4: a fused layout transform's input)
    weight = next((v.type for v in kernel.args if v.type.rank == 6), None)
    return data is not None and weight is not None and data.size >= weight.size


def _flat_tiles(width: int, height: int, tile: int) -> bool:
    """Whether the conv rule tiles the flattened rows x columns (no partial tile that way only)."""
    return bool(width % tile) and (width * height) % tile == 0


# ----- dense (packed weights) and batch matmul --------------------------------------------------
def _dense_block(kernel) -> int:
    return int(kernel.args[1].type.shape[2]) if len(kernel.args) > 1 and kernel.args[1].type.rank == 3 else 16


@register_rule("dense")
def schedule_dense(kernel, target, knobs: dict | None = None):
    return _schedule_gemm(kernel, target, "dense_pack", _dense_block(kernel), knobs=knobs)


def _matmul_block(kernel, target) -> int:
    lanes = target.lanes(_out_dtype(kernel))
    n = kernel.outputs[0].type.shape[-1] if kernel.outputs and kernel.outputs[0].type.rank else 1
    block = _divisor_tile(n, (2 * lanes, lanes, lanes // 2))  # half vectors: 1000 classes on 16 lanes
    return _widest_columns(n, block, lanes) if 4 <= block < lanes else block


def divisor_multiples(n: int, step: int, limit: int) -> tuple[int, ...]:
    """The multiples of `step` up to `limit` that divide `n` (column tiles of whole or half vectors)."""
    return tuple(b for b in range(step, limit + 1, step) if n % b == 0)


def _widest_columns(n: int, step: int, lanes: int) -> int:
    """Columns of a tile that takes `step`-wide vectors: the widest multiple of `step` dividing `n`
    up to 4 vectors, so each weight row is read in whole cache lines (1000 classes on 16 lanes:
    40 columns; a classifier at batch 1 read in 32-byte pieces ran 1.5x slower, 2 threads)."""
    return max(divisor_multiples(n, step, 4 * lanes))


@register_rule("matmul")
def schedule_matmul(kernel, target, knobs: dict | None = None):
    block = _matmul_block(kernel, target)
    if block < 4:
        raise RuleDoesNotApply(f"matmul with {kernel.outputs[0].type.shape[-1]} columns does not fit the vector width")
    return _schedule_gemm(kernel, target, "matmul", block, knobs=knobs)


@register_knobs("dense", "matmul")
def gemm_knobs(kernel, target, block: int | None = None) -> Knobs:
    """Register tile (rows x columns) of the output, unrolling of its rows, and which of row and
    column tiles the parallel loop takes first (`gemm_order`): the knobs of `_schedule_gemm` with
    the rule's column block `block` (default: the dense or matmul rule's)."""
    *_, m, n = (int(d) for d in kernel.outputs[0].type.shape)
    lanes = target.lanes(_out_dtype(kernel))
    if block is None:
        block = _dense_block(kernel) if kernel.kind == "dense" else _matmul_block(kernel, target)
    if block < 4:
        raise RuleDoesNotApply(f"matmul with {n} columns does not fit the vector width")
    registers = accumulator_registers(target)
    rows = tuple(r for r in (1, 2, 4, 8) if m % r == 0)
    cols = tuple(b for b in (lanes // 2, lanes, 2 * lanes, 4 * lanes) if b >= 4 and n % b == 0)
    if n % lanes and n % (lanes // 2) == 0:  # half vectors: their multiples up to 4 vectors
        cols = divisor_multiples(n, lanes // 2, 4 * lanes)
    return Knobs(kernel.kind, (Knob("rows", rows, gemm_rows(kernel, target, m, block)), Knob("cols", cols, block),
                               Knob("unroll", (True, False), True),
                               Knob("order", ("rows", "columns"), gemm_order(kernel))),
                 allowed=lambda p: p["rows"] * -(-p["cols"] // lanes) <= registers,
                 shape={"rows": m, "cols": n, "lanes": lanes, "cores": target.num_cores})


def gemm_rows(kernel, target, rows: int, cols: int) -> int:
    """Output rows of a matrix product's register tile: 8 for float32 where they divide the rows
    and 8 x `cols` accumulators fit the registers (AVX-512: 8 x 2 vectors of 24; BERT encoder's
    dense layers, 2 threads, in the model: 0.94 -> 0.84 and 1.21 -> 1.11 ms, the model 3.87 ->
    3.58 ms minimum), else 4 or 2 that divide them (integer kernels: 4)."""
    fits = 8 * -(-cols // target.lanes(_out_dtype(kernel))) <= accumulator_registers(target)
    preferred = (8, 4, 2) if _out_dtype(kernel) == "float32" and fits else (4, 2)
    return _divisor_tile(rows, preferred)


def gemm_order(kernel) -> str:
    """Which tiles the parallel loop of a matrix product takes first: "columns" where the weights
    (the second operand) outweigh the first operand, so each column block of weights is read once
    and used for every row tile while it is in cache; else "rows" (BERT encoder's 768x3072 dense
    layers at 128 tokens: 1.43 -> 1.18 ms, the model 4.96 -> 4.77 ms minimum, 2 threads)."""
    if kernel.symbolic or len(kernel.args) < 2:
        return "rows"
    first, second = (int(np.prod([int(d) for d in v.type.shape])) for v in kernel.args[:2])
    return "columns" if second > first else "rows"


def _schedule_gemm(kernel, target, anchor_name: str, n_block: int, min_parallel_work: int = 0,
                   knobs: dict | None = None):
    """Output rows x columns tiled (`gemm_rows` x n_block); accumulators in registers; row and
    column tiles in parallel, in the order `gemm_order` picks, unless the kernel has fewer than
    `min_parallel_work` multiply-adds. `knobs` (see `gemm_knobs`) override the tile, the unrolling
    and the order."""
    sch = _schedule(kernel)
    anchor = _find(sch, (anchor_name,))
    if anchor is None:
        raise ValueError(f"no {anchor_name} block")
    parallel = min_parallel_work <= 0 or _work(sch, anchor) >= min_parallel_work  # (symbolic extents: no _work)
    inline_all_but(sch, [anchor])
    out, anchor = output_block(sch, anchor)
    loops = sch.get_loops(out)
    if len(loops) < 2:
        raise ValueError("gemm rule needs rows and columns")
    batch, rows, cols = loops[:-2], loops[-2], loops[-1]
    knobs = {"cols": n_block, "unroll": True, "order": gemm_order(kernel), **(knobs or {})}
    if "rows" not in knobs:
        knobs["rows"] = gemm_rows(kernel, target, _extent(sch, rows), knobs["cols"])
    m_o, m_i = sch.split(rows, [None, knobs["rows"]])
    n_o, n_i = sch.split(cols, [None, knobs["cols"]])
    tiles = (n_o, m_o) if knobs["order"] == "columns" else (m_o, n_o)
    sch.reorder(*batch, *tiles, m_i, n_i)
    par = sch.fuse(*batch, *tiles)  # split first, then fuse: bindings stay quasi-affine
    if parallel:
        sch.parallel(par)
    lanes = target.lanes(_out_dtype(kernel))
    odd = knobs["cols"] % lanes and knobs["cols"] > lanes // 2  # never one odd-width vector: half vectors
    sch.vectorize(sch.split(n_i, [None, lanes // 2])[1] if odd else n_i)
    sch.compute_at(anchor, par)
    inner = sch.get_loops(anchor)[1:]
    spatial, reduction = inner[:-1], inner[-1:]
    sch.reorder(*reduction, *spatial)
    if odd:
        spatial = [*spatial[:-1], *sch.split(spatial[-1], [None, lanes // 2])]
    for loop in spatial[:-1] if knobs["unroll"] else ():
        sch.unroll(loop)
    sch.vectorize(spatial[-1])
    sch.decompose_reduction(anchor, reduction[0])
    return sch.mod["main"]


# ----- everything else ------------------------------------------------------------------------------
@register_rule("injective", "*")
def schedule_injective(kernel, target):
    return _generic(kernel, target, _schedule(kernel))


def _generic(kernel, target, sch):
    """Inline what can be inlined; parallelize and vectorize each remaining top-level block."""
    return schedule_blocks(sch, target.lanes(_out_dtype(kernel)))


def schedule_blocks(sch, lanes: int, reduction=None, flat=None):
    """Inline every block that can be inlined except reductions, then schedule each remaining
    top-level block: reductions by `reduction(sch, block)` (default: outer spatial loops in
    parallel), the others by `flat(sch, block, lanes)` (default: outer loops in parallel, the
    innermost vectorized). Returns the scheduled PrimFunc."""
    reduction = reduction or _parallel_outer_spatial
    flat = flat or _parallel_and_vectorize_flat
    inline_all_but(sch, [b for b in _blocks(sch) if _has_reduction(sch, b)])
    for block in _blocks(sch):
        if _has_reduction(sch, block):
            reduction(sch, block)
        else:
            flat(sch, block, lanes)
    return sch.mod["main"]


def _out_dtype(kernel) -> str:
    return kernel.outputs[0].type.dtype if kernel.outputs else "float32"


def _has_reduction(sch, block) -> bool:
    from tvm.tirx import IterVar

    return any(iv.iter_type == IterVar.CommReduce for iv in sch.get(block).iter_vars)


def _parallel_outer_spatial(sch, block) -> None:
    """Parallelize the leading spatial loops of a reduction block (rows are independent)."""
    from tvm.tirx import IterVar

    loops = sch.get_loops(block)
    spatial = []
    iter_vars = sch.get(block).iter_vars
    for loop, iv in zip(loops, iter_vars):
        if iv.iter_type != IterVar.DataPar:
            break
        spatial.append(loop)
    if not spatial:
        return
    fused = sch.fuse(*spatial) if len(spatial) > 1 else spatial[0]
    if _extent(sch, fused) > 1 and int(np.prod([_extent(sch, lp) for lp in sch.get_loops(block)])) >= PARALLEL_MIN_ELEMENTS:
        sch.parallel(fused)


# ----- a 1x1 conv feeding a stride-2 depthwise conv, in one kernel ---------------------------------
#: output rows of the depthwise conv per parallel task: the 1x1 conv computes 2 x rows + 1 input rows
#: for them (rows + 1/2 recomputed), kept in cache
POINTWISE_ROWS = (4, 2)


@register_rule("conv_depthwise")
def schedule_conv_depthwise(kernel, target):
    """A 1x1 conv and the stride-2 depthwise conv reading it: each parallel task takes a few
    output rows of one channel block; the 1x1 conv computes the input rows they read,
    register-tiled like the conv rule, its bias and activation applied to each tile as it is
    stored, into a buffer that stays in cache; the depthwise conv is tiled as by
    `schedule_nchwc_conv` and reads those rows unpadded, a bounds check in each window read
    standing for the zero padding (MobileNetV2's 112x112 16 -> 96 expansion with its stride-2
    layer, 2 threads, alone: 0.280 -> 0.224 ms against a padded copy of the rows)."""
    sch = _schedule(kernel)
    dw, pad, conv = (_find(sch, (name,)) for name in ("depthwise_conv2d_NCHWc", "pad", "conv2d_NCHWc"))
    if dw is None or pad is None or conv is None:
        raise ValueError("not a 1x1 conv feeding a padded depthwise conv")
    names = [_name(sch, b) for b in _blocks(sch)]
    epilogue = _producer_epilogue(names, "conv2d_NCHWc", "depthwise_conv2d_NCHWc")
    inline_all_but(sch, [dw, conv] + ([_find(sch, (epilogue,))] if epilogue else []))  # (the pad inlined)
    out, dw = output_block(sch, dw)
    n, oc, oh, ow, ob = sch.get_loops(out)
    lanes = min(target.lanes(_out_dtype(kernel)), _extent(sch, ob))
    registers = accumulator_registers(target)
    tile, vectors = conv_tiling(_extent(sch, ow), _extent(sch, ob), lanes, registers)
    oh_o, oh_i = sch.split(oh, [None, _divisor_tile(_extent(sch, oh), POINTWISE_ROWS)])
    ow_o, ow_i = sch.split(ow, [None, tile])
    ob_o, ob_i = sch.split(ob, [None, vectors * lanes])
    sch.reorder(n, oh_o, oc, oh_i, ob_o, ow_o, ow_i, ob_i)
    task = sch.fuse(n, oh_o, oc)  # rows first: each core reads the input rows of its own output rows
    sch.parallel(task)
    sch.vectorize(ob_i)
    sch.compute_at(dw, ow_o)
    ow_i, ob_i, *window = sch.get_loops(dw)[4:]
    _unrolled_window(sch, dw, ow_i, ob_i, window)
    _producer_rows(sch, _find(sch, ("conv2d_NCHWc",)), task, lanes, registers,
                   _find(sch, (epilogue,)) if epilogue else None)
    return sch.mod["main"]


def _unrolled_window(sch, dw, columns, channels, window) -> None:
    """A depthwise conv's register tile: the window loops outside the tile's columns, all
    unrolled, the channel vector innermost."""
    sch.reorder(*window, columns, channels)
    for loop in (*window, columns):
        sch.unroll(loop)
    sch.vectorize(channels)
    sch.decompose_reduction(dw, window[0])


def _tile_conv_rows(sch, conv, rows_columns_channels, reduction, lanes: int, registers: int):
    """Register tile of a conv computed row by row inside a task: columns x channel vectors
    (`conv_tiling`) in registers, the reduction outside the unrolled columns. Returns the loop
    over the tiles of a row."""
    y, x, o = rows_columns_channels
    tile, vectors = conv_tiling(_extent(sch, x), _extent(sch, o), lanes, registers)
    x_o, x_i = sch.split(x, [None, tile])
    o_o, o_i = sch.split(o, [None, vectors * lanes])
    sch.reorder(y, o_o, x_o, *reduction, x_i, o_i)
    sch.unroll(x_i)
    sch.vectorize(o_i)
    sch.decompose_reduction(conv, reduction[0])
    return x_o


# ----- a depthwise conv and the 1x1 conv reading it, in one kernel ---------------------------------
#: output rows per parallel task: the depthwise conv computes them for every channel, then the 1x1
#: conv (2 and 8 rows measured no different on MobileNetV2)
DEPTHWISE_POINTWISE_ROWS = (4, 2)


@register_rule("depthwise_pointwise", "conv_depthwise_pointwise")
def schedule_depthwise_pointwise(kernel, target):
    """A depthwise conv and the 1x1 conv reading it (for `conv_depthwise_pointwise` also the 1x1
    conv feeding it): each parallel task takes a few output rows; per channel block, the conv
    before computes the input rows the depthwise conv reads (rows that neighbouring tasks share
    are computed by both), its epilogue applied to each register tile as it is stored, and the
    depthwise conv computes the task's rows, its epilogue written from the register tile into a
    buffer that stays in cache; then the 1x1 conv computes the same rows of every output channel
    block from it, tiled as by `schedule_nchwc_conv` (MobileNetV2's 112x112x32 layer and its
    projection, 1 thread: 0.31 -> 0.27 ms; its 56x56x144 one: 0.38 -> 0.35 ms).

    The depthwise conv reads its input unpadded, a bounds check in each window read standing for
    the zero padding: copying the rows padded first cost a load and a store per input vector
    (MobileNetV2, 2 threads, alone: the 56x56x144 layer 0.158 -> 0.135 ms, the 112x112 expansion
    with its stride-2 layer 0.346 -> 0.294 ms).

    With a stride-1 depthwise conv, each task of 4 rows computes 6 rows of the conv before: taking
    MobileNetV2's 56x56x144 expansion in as well was slower (0.28 -> 0.30 ms for 2 threads; its
    stem conv with the first depthwise layer: 0.30 -> 0.30 ms), so `fuse` does not form it."""
    sch = _schedule(kernel)
    names = [_name(sch, b) for b in _blocks(sch)]
    convs = [n for n in names if n.startswith("conv2d_NCHWc")]
    depthwise = names.index("depthwise_conv2d_NCHWc") if "depthwise_conv2d_NCHWc" in names else None
    if depthwise is None or not convs or names.index(convs[-1]) < depthwise:
        raise ValueError("not a depthwise conv feeding a 1x1 conv")
    epilogue = names[depthwise + 1:names.index(convs[-1])]
    if not epilogue:
        raise ValueError("depthwise conv without an epilogue block to write its rows")
    producer_epilogue = _producer_epilogue(names, convs[0], names[depthwise]) if len(convs) > 1 else None
    stages = ("depthwise_conv2d_NCHWc", epilogue[-1], *convs, producer_epilogue)  # (the pad inlined)
    inline_all_but(sch, [b for b in (_find(sch, (name,)) for name in stages if name) if b is not None])
    out, projection = output_block(sch, _find(sch, (convs[-1],)))
    lanes, registers = target.lanes(_out_dtype(kernel)), accumulator_registers(target)
    task = _pointwise_rows(sch, out, projection, lanes, registers, target.num_cores)
    channel = _depthwise_rows(sch, task, lanes, registers, epilogue[-1])
    if len(convs) > 1:
        _producer_rows(sch, _find(sch, (convs[0],)), channel, lanes, registers,
                       _find(sch, (producer_epilogue,)) if producer_epilogue else None)
    return sch.mod["main"]


def task_rows(height: int, cores: int) -> int:
    """Output rows per task of a `depthwise_pointwise` kernel: the most of `DEPTHWISE_POINTWISE_ROWS`
    (or 1) that cut the height into a multiple of `cores` tasks, else the most that divide it
    (28 rows on 2 cores: 14 tasks of 2 rows, not 7 of 4 of which one core runs 4; MobileNetV2, 2
    threads: 2.83 -> 2.75 ms minimum, 3.20 -> 3.15 ms median)."""
    for rows in (*DEPTHWISE_POINTWISE_ROWS, 1):
        if height % rows == 0 and (height // rows) % cores == 0:
            return rows
    return _divisor_tile(height, DEPTHWISE_POINTWISE_ROWS)


def _pointwise_rows(sch, out, conv, lanes: int, registers: int, cores: int):
    """Tile the output of the 1x1 conv: parallel tasks of a few rows, register tiles inside. Output
    channel blocks of one vector share a tile (up to 3), so each input value broadcast feeds several
    (MobileNetV2's 144 -> 24 channel projection with 12-lane blocks: 0.202 -> 0.190 ms, 2 threads)."""
    n, oc, oh, ow, ob = sch.get_loops(out)
    lanes = min(lanes, _extent(sch, ob))
    blocks = next((b for b in (3, 2) if _extent(sch, ob) <= lanes and _extent(sch, oc) % b == 0), 1)
    tile, vectors = conv_tiling(_extent(sch, ow), _extent(sch, ob), lanes, registers // blocks)
    oh_o, oh_i = sch.split(oh, [None, task_rows(_extent(sch, oh), cores)])
    ow_o, ow_i = sch.split(ow, [None, tile])
    ob_o, ob_i = sch.split(ob, [None, vectors * lanes])
    oc_o, oc_i = sch.split(oc, [None, blocks])
    sch.reorder(n, oh_o, oc_o, oh_i, ob_o, ow_o, oc_i, ow_i, ob_i)
    task = sch.fuse(n, oh_o)
    sch.parallel(task)
    sch.vectorize(ob_i)
    sch.compute_at(conv, ow_o, preserve_unit_loops=True)
    below = sch.get_loops(conv)[5:]  # below task, oc_o, oh_i, ob_o, ow_o: n c h w b, reduction
    (_, block, _, column, vector), reduction = below[:5], below[5:]
    sch.reorder(*reduction, block, column, vector)
    sch.unroll(block)
    sch.unroll(column)
    sch.vectorize(vector)
    sch.decompose_reduction(conv, reduction[0])
    return task


def _depthwise_rows(sch, task, lanes: int, registers: int, dw_out_name: str):
    """The depthwise rows one task needs, every channel block, computed at the top of the task."""
    dw_out = _find(sch, (dw_out_name,))
    sch.compute_at(dw_out, task, preserve_unit_loops=True)
    _, c, y, x, b = sch.get_loops(dw_out)[1:]
    lanes = min(lanes, _extent(sch, b))
    tile, vectors = conv_tiling(_extent(sch, x), _extent(sch, b), lanes, registers)
    x_o, x_i = sch.split(x, [None, tile])
    b_o, b_i = sch.split(b, [None, vectors * lanes])
    sch.reorder(c, y, b_o, x_o, x_i, b_i)
    sch.vectorize(b_i)
    dw = _find(sch, ("depthwise_conv2d_NCHWc",))
    sch.compute_at(dw, x_o, preserve_unit_loops=True)
    below = sch.get_loops(dw)[6:]  # below task, n, c, y, b_o, x_o: n c h w b, window
    _unrolled_window(sch, dw, below[3], below[4], below[5:])
    return c


def _producer_epilogue(names: list[str], conv: str, depthwise: str) -> str | None:
    """The block that writes a fused 1x1 conv's rows for the depthwise conv reading them (its bias
    and activation): the last one between the two that is not the padding; None for none."""
    between = names[names.index(conv) + 1:names.index(depthwise)]
    return next((name for name in reversed(between) if name != "pad"), None)


def _producer_rows(sch, conv, channel, lanes: int, registers: int, epilogue=None) -> None:
    """The rows of one channel block the depthwise conv reads, computed by the conv before it
    under `channel`, the loop whose iteration fixes the channel block (the task's channel-block
    loop, or for `conv_depthwise` the parallel task itself), register-tiled, its `epilogue` block
    (bias, activation) applied to each register tile as it is stored."""
    if epilogue is not None:
        sch.compute_at(epilogue, channel, preserve_unit_loops=True)
    sch.compute_at(conv, channel, preserve_unit_loops=True)
    loops = sch.get_loops(conv)
    depth = 1 + next(i for i, loop in enumerate(loops) if sch.get(loop).same_as(sch.get(channel)))
    _, _, y, x, o, *reduction = loops[depth:]
    columns = _tile_conv_rows(sch, conv, (y, x, o), reduction, min(lanes, _extent(sch, o)), registers)
    if epilogue is not None:
        sch.reverse_compute_at(epilogue, columns, preserve_unit_loops=True)
        sch.vectorize(sch.get_loops(epilogue)[-1])
