"""Default CPU schedules for the integer kernels (kinds `qconv` and `qdense`).

The float rules of `cpu.py`, sized for the int32 accumulators: a tile of output columns x channel
vectors of int32 lanes, the 8-bit products summed into it with the reduction loops outside, the
requantizing epilogue computed from the registers, rows in parallel when the kernel is large
enough to pay for waking the thread pool.

Convolutions whose weights keep groups of input channels innermost get a dot-product
instruction as a tensor intrinsic: groups of four with vpdpbusd (x86 VNNI), vpmaddubsw +
vpmaddwd (x86 AVX2, 7-bit weights) or sdot (AArch64 dotprod, `arm_int8`), pairs with vpmaddwd
(x86 AVX2; other targets schedule pairs like the plain blocked convolution). Their register
tile always divides the output, so every tile is a full one. qdense with (N/b, K/4, b, 4)
weights gets the same four-product instruction (`schedule_dot_dense`). Depthwise convolutions
over uint8 data take vpdpbusd too on AVX-512 targets with vpermb (`x86_depthwise_int8`).
Plain-layout integer convolutions get the generic rule.
"""

from __future__ import annotations

import math

from . import register_rule
from .cpu import (_divisor_tile, _extent, _find, _generic, _parallel_and_vectorize_flat, _schedule,
                  _schedule_blocked_copy, _schedule_gemm, _work, accumulator_registers, conv_knobs,
                  divisor_multiples, gemm_knobs, inline_all_but, output_block, schedule_nchwc_conv)
from .knobs import register_knobs
from .x86_depthwise_int8 import quad_depthwise_applies, quad_depthwise_knobs, schedule_quad_depthwise

ACC = "int32"
#: below this many multiply-accumulates a kernel runs on one core: waking the thread pool costs
#: more than the work (8x8 images at batch 1)
PARALLEL_MIN_MACS = 1 << 20
#: a [K, N] qdense with at most this many rows reads each weight row once, whole (a classifier
#: at batch 1: 0.55 -> 0.20 ms for MobileNetV2's 1280 x 1000, in the whole model)
FEW_ROWS = 4
#: column vectors of a dense tile kept in registers (unrolled); wider tiles loop over them
MAX_UNROLLED_VECTORS = 8


@register_rule("qconv")
def schedule_qconv(kernel, target, knobs: dict | None = None):
    dot = _dot_product(kernel, target)
    if dot is not None:
        return schedule_dot_conv(kernel, target, *dot)
    if quad_depthwise_applies(kernel, target):
        return schedule_quad_depthwise(kernel, target, knobs)
    anchors = ("qconv2d_NCHWc", "qconv2d_NCHWc_pairs", "qdepthwise_conv2d_NCHWc")
    return schedule_nchwc_conv(kernel, target, anchors, ACC, PARALLEL_MIN_MACS, knobs=knobs)


@register_knobs("qconv")
def qconv_knobs(kernel, target):
    """The blocked convolution's knobs (`conv_knobs`) for qconv kernels without a dot-product
    instruction (depthwise, the stem), the quad rule's rows and columns for the depthwise
    kernels it takes (`quad_depthwise_knobs`); None for the other tensorized ones, whose tile
    follows the instruction."""
    if _dot_product(kernel, target) is not None:
        return None
    if quad_depthwise_applies(kernel, target):
        return quad_depthwise_knobs(kernel, target)
    return conv_knobs(kernel, target, ACC)


def _dot_product(kernel, target) -> tuple[str, str, int] | None:
    """(anchor block, intrinsic, int32 lanes) when the kernel's input-channel groups meet a
    dot-product instruction of the target, else None."""
    sch = _schedule(kernel)
    if _find(sch, ("qconv2d_NCHWc_quads",)) is not None:
        return ("qconv2d_NCHWc_quads", *quad_intrin(target, _out_block(kernel)))
    data = kernel.args[0].type.dtype if kernel.args else None
    if _find(sch, ("qconv2d_NCHWc_pairs",)) is not None and data in ("int8", "uint8") and target.has_feature("avx2"):
        from .x86_int8 import pmaddwd_intrin

        return "qconv2d_NCHWc_pairs", pmaddwd_intrin(data), 8
    return None


def quad_intrin(target, out_block: int) -> tuple[str, int]:
    """(intrinsic name, int32 lanes) of the target's four-product uint8 x int8 dot product:
    sdot on AArch64 with dotprod, else the x86 choice (`x86_int8.quad_intrin`). Raises when the
    target has none that fits `out_block` output channels."""
    from .arm_int8 import SDOT_LANES, has_dot_product, sdot_intrin

    if has_dot_product(target):
        if out_block % SDOT_LANES:
            raise ValueError(f"sdot needs output blocks of a multiple of {SDOT_LANES}, not {out_block}")
        return sdot_intrin(), SDOT_LANES
    from .x86_int8 import quad_intrin as x86_quad_intrin

    return x86_quad_intrin(target, out_block)


def _out_block(kernel) -> int:
    return int(kernel.outputs[0].type.shape[-1])


def dot_tiling(width: int, block: int, lanes: int, registers: int) -> tuple[int, int]:
    """(output columns per tile, channel vectors per tile) for a tensorized convolution: the
    tile divides the output row exactly, holds at most `registers` accumulator vectors and,
    where possible, at least 4 columns (fewer channel vectors make room for more columns)."""
    most = block // lanes
    for vectors in (v for v in range(most, 0, -1) if most % v == 0):
        tile = _largest_divisor(width, max(registers // vectors, 1))
        if tile >= 4 or tile == width:
            return tile, vectors
    return _largest_divisor(width, registers), 1


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def schedule_dot_conv(kernel, target, anchor_name: str, intrin: str, lanes: int):
    """Register-tiled NCHW{b}c convolution whose innermost reduction (a group of input channels)
    and `lanes` output channels are one call of the tensor intrinsic `intrin`."""
    sch = _schedule(kernel)
    conv = _find(sch, (anchor_name,))
    staged = [_find(sch, (name,)) for name in ("pad", "data_offset", "weight_offset")]
    inline_all_but(sch, [conv] + [b for b in staged if b is not None])
    out, conv = output_block(sch, conv)
    parallel = _work(sch, conv) >= PARALLEL_MIN_MACS
    if staged[0] is not None:  # padded (and uint8) copy of the data first
        _schedule_blocked_copy(sch, _find(sch, ("pad",)), parallel)
    if staged[2] is not None:
        _schedule_weight_offset(sch, intrin, lanes)
    n, oc, oh, ow, ob = sch.get_loops(out)
    width, block = int(sch.get(ow).extent), int(sch.get(ob).extent)
    tile, vectors = dot_tiling(width, block, lanes, accumulator_registers(target))
    ob_o, ob_i = sch.split(ob, [None, vectors * lanes])
    ow_o, ow_i = sch.split(ow, [None, tile])
    sch.reorder(n, oc, oh, ob_o, ow_o, ow_i, ob_i)
    rows = sch.fuse(n, oc, oh)
    if parallel:
        sch.parallel(rows)
    sch.vectorize(ob_i)
    sch.compute_at(conv, sch.get_loops(out)[2])  # inside the tile of columns
    inner = sch.get_loops(conv)[3:]
    columns, channels, reduction = inner[0], inner[1], inner[2:]
    group, reduction = reduction[-1], reduction[:-1]
    vec_o, vec_i = sch.split(channels, [None, lanes])
    sch.reorder(*reduction, columns, vec_o, vec_i, group)
    sch.unroll(columns)
    sch.unroll(vec_o)
    init = sch.decompose_reduction(conv, reduction[0])
    sch.vectorize(sch.get_loops(init)[-1])
    sch.tensorize(vec_i, intrin)
    return sch.mod["main"]


def _schedule_weight_offset(sch, intrin: str, lanes: int) -> None:
    """The [O/ob, ob] sums of 128 x weights with the same dot-product intrinsic."""
    block = _find(sch, ("weight_offset",))
    oc, o, *reduction = sch.get_loops(block)
    group, reduction = reduction[-1], reduction[:-1]
    o_o, o_i = sch.split(o, [None, lanes])
    sch.reorder(oc, o_o, *reduction, o_i, group)
    init = sch.decompose_reduction(block, reduction[0])
    sch.vectorize(sch.get_loops(init)[-1])
    sch.tensorize(o_i, intrin)


@register_rule("qdense")
def schedule_qdense(kernel, target, knobs: dict | None = None):
    lanes = target.lanes(ACC)
    weight = kernel.args[1].type if len(kernel.args) > 1 else None
    if weight is not None and weight.rank == 4:
        if getattr(target, "int8_narrow_dot_channels", 1) != 4:  # convert-layout packs quads for these only
            return _generic(kernel, target, _schedule(kernel))
        intrin, lanes = quad_intrin(target, int(weight.shape[2]))  # x86 AVX2: 7-bit weights, vpmaddubsw
        return schedule_dot_dense(kernel, target, intrin, lanes)
    if weight is not None and weight.rank == 3:
        return _schedule_gemm(kernel, target, "qdense_pack", int(weight.shape[2]), PARALLEL_MIN_MACS, knobs=knobs)
    n = kernel.outputs[0].type.shape[-1] if kernel.outputs and kernel.outputs[0].type.rank else 1
    block = _column_block(n, lanes)
    if block < 4:
        return _generic(kernel, target, _schedule(kernel))
    vector = _divisor_tile(block, (lanes, lanes // 2, lanes // 4))
    shape = kernel.outputs[0].type.shape
    if all(isinstance(d, int) for d in shape) and math.prod(shape[:-1]) <= FEW_ROWS:
        block = _streaming_block(n, vector, target.num_cores if n * math.prod(shape[:-1]) * int(
            kernel.args[1].type.shape[0]) >= PARALLEL_MIN_MACS else 1)
    return schedule_plain_qdense(kernel, target, block, vector)


def _streaming_block(n: int, vector: int, cores: int) -> int:
    """Columns per tile of a qdense with few rows: long pieces of each weight row, so the weights
    stream (all n on one core), or the widest whole-vector divisor of n that leaves each core a
    tile (1000 classes on 2 cores: 5 tiles of 200, where one tile of 1000 ran on one core)."""
    fits = divisor_multiples(n, vector, n // cores)
    return max(fits) if cores > 1 and fits else n


@register_knobs("qdense")
def qdense_knobs(kernel, target):
    """The packed (N/b, K, b) product's tile knobs (`gemm_knobs`); None for the other weight
    layouts, whose tile follows the dot-product instruction or the column count."""
    weight = kernel.args[1].type if len(kernel.args) > 1 else None
    if weight is None or weight.rank != 3:
        return None
    return gemm_knobs(kernel, target, int(weight.shape[2]))


def _column_block(n: int, lanes: int) -> int:
    """Output columns per tile of a plain [K, N] qdense: two or one whole vectors where they
    divide N, else the widest multiple of a half vector dividing N up to four vectors, so each
    row of the weight is read in whole cache lines (1000 classes on 16 lanes: 40 columns)."""
    block = _divisor_tile(n, (2 * lanes, lanes))
    if block > 1:
        return block
    for step in (lanes // 2, lanes // 4):
        fits = divisor_multiples(n, step, 4 * lanes)
        if fits:
            return max(fits)
    return 1


def schedule_plain_qdense(kernel, target, block: int, vector: int):
    """qdense with [K, N] weights: output rows x `block` columns tiled as whole vectors of
    `vector` int32 lanes (never one odd-width vector, which LLVM scalarizes; unrolled into
    registers up to MAX_UNROLLED_VECTORS), the reduction outside the tile, tiles in parallel for
    large kernels."""
    sch = _schedule(kernel)
    dense = _find(sch, ("qdense",))
    inline_all_but(sch, [dense])
    out, dense = output_block(sch, dense)
    _tile_dense(sch, out, dense, block, vector, _work(sch, dense) >= PARALLEL_MIN_MACS)
    return sch.mod["main"]


def schedule_dot_dense(kernel, target, intrin: str, lanes: int):
    """qdense with (N/b, K/4, b, 4) weights: output rows x b columns tiled in registers, each
    group of four rows of the weight times `lanes` columns one call of the tensor intrinsic
    `intrin`; the uint8 copy of int8 data is made first, rows in parallel for large kernels."""
    sch = _schedule(kernel)
    dense = _find(sch, ("qdense_quads",))
    staged = [_find(sch, (name,)) for name in ("data_uint8", "data_offset", "weight_offset")]
    inline_all_but(sch, [dense] + [b for b in staged if b is not None])
    out, dense = output_block(sch, dense)
    parallel = _work(sch, dense) >= PARALLEL_MIN_MACS
    if staged[0] is not None:
        copy = _find(sch, ("data_uint8",))
        if parallel:
            _parallel_and_vectorize_flat(sch, copy, target.lanes("int8"))
        else:
            sch.vectorize(sch.fuse(*sch.get_loops(copy)))
    if staged[2] is not None:
        _schedule_weight_offset(sch, intrin, lanes)
    block = int(kernel.args[1].type.shape[2])
    _tile_dense(sch, out, dense, block, lanes, parallel, intrin)
    return sch.mod["main"]


def _tile_dense(sch, out, dense, block: int, vector: int, parallel: bool, intrin: str | None = None) -> None:
    """Tile a dense output (rows x `block` columns, in parallel when `parallel`) and compute the
    product block `dense` inside each tile: its reduction outside the tile's unrolled rows and
    column vectors, each `vector` of columns vectorized, or with `intrin` tensorized together with
    the innermost reduction (the group of four rows)."""
    *batch, rows, cols = sch.get_loops(out)
    m_o, m_i = sch.split(rows, [None, _divisor_tile(_extent(sch, rows), (4, 2))])
    n_o, n_i = sch.split(cols, [None, block])
    sch.reorder(*batch, m_o, n_o, m_i, n_i)
    par = sch.fuse(*batch, m_o, n_o)
    if parallel:
        sch.parallel(par)
    sch.vectorize(sch.split(n_i, [None, vector])[1])
    sch.compute_at(dense, par)
    loops = sch.get_loops(dense)[1:]
    reductions = 1 if intrin is None else 2
    *spatial, columns = loops[:-reductions]
    reduction = loops[-reductions:]
    vec_o, vec_i = sch.split(columns, [None, vector])
    sch.reorder(reduction[0], *spatial, vec_o, vec_i, *reduction[1:])
    for loop in (*spatial, vec_o) if _extent(sch, vec_o) <= MAX_UNROLLED_VECTORS else spatial:
        sch.unroll(loop)
    if intrin is None:
        sch.vectorize(vec_i)
    init = sch.decompose_reduction(dense, reduction[0])
    sch.vectorize(sch.get_loops(init)[-1])
    if intrin is not None:
        sch.tensorize(vec_i, intrin)
