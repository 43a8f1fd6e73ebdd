"""Depthwise int8 convolutions on AVX-512 VBMI + VNNI: each window row one vpermb and one vpdpbusd.

    C[i] += A[0, i] * B[i, 0] + ... + A[3, i] * B[i, 3]      i < b;  A: 4 pixels x b uint8 channels

A depthwise qconv over uint8 NCHW{b}c data lowered in quads (`te_ops.quant.depthwise_in_quads`)
sums, per window row, four consecutive pixels times each channel's four weights of that row (the
taps past a 3-wide window weigh 0). The four pixels are 4 x b contiguous bytes: one or two 64-byte
loads, and a byte permutation (vpermb, vpermt2b) gathers each channel's four bytes into one int32
lane, the operand vpdpbusd multiplies by the channel's weight quad. A 3x3 window then takes three
permutations and three dot products per 16 output channels, where the float32 form converted and
multiplied each tap (MobileNetV2's ten depthwise kernels, 2 threads, quiet machine: 0.74 ->
0.41 ms; the whole int8 model 1.72 -> 1.38 ms minimum, against 2.74 ms for float32).
"""

from __future__ import annotations

from .cpu import _extent, _find, inline_all_but, output_block
from .knobs import Knob, Knobs

__all__ = ["quad_depthwise_applies", "quad_depthwise_knobs", "schedule_quad_depthwise"]

#: what the rule's instructions need: vpermb/vpermt2b on 512-bit registers, vpdpbusd on them
#: (any such CPU has 32 vector registers, whatever vector width the target prefers)
FEATURES = ("avx512bw", "avx512vbmi", "avx512vnni")
#: int32 lanes of one vpdpbusd on 512-bit registers
LANES = 16
#: channel blocks whose quads come from one or two 64-byte loads
BLOCKS = (16, 32)
#: accumulator vectors of a register tile (of 32 zmm registers: the rest hold the weight quads,
#: the permutation indices and the loaded pixels)
TILE_VECTORS = 16
#: output rows of a register tile: neighbouring rows share the permuted quads of the input rows
#: they have in common (MobileNetV2's 112x112x32 layer, 2 threads: 0.049 ms with one row, 0.044
#: with two, 0.041 with four; its 56x56x144 layer 0.055, 0.052, 0.049 ms)
TILE_ROWS = 4

_REGISTERED: dict[int, str] = {}


def quad_depthwise_applies(kernel, target) -> bool:
    """Whether `kernel` is a single blocked depthwise qconv this rule takes: a static kernel on a
    target with FEATURES, b of 16 or 32 channels, and uint8 data whose window rows fit a quad
    (`quad_depthwise_fits`)."""
    from edgecc.lower.te_ops.quant import quad_depthwise_fits

    if not all(target.has_feature(f) for f in FEATURES) or kernel.symbolic:
        return False
    if len(kernel.body) != 1 or kernel.body[0].op != "qconv" or (kernel.body[0].attrs["group"] or 1) == 1:
        return False
    data = kernel.body[0].inputs[0].type
    if data.rank != 5 or int(data.shape[4]) not in BLOCKS:
        return False
    return quad_depthwise_fits(kernel.body[0])


def schedule_quad_depthwise(kernel, target, knobs: dict | None = None):
    """The kernel lowered in quads and scheduled: each parallel task a few output rows of one
    channel block (`rows_per_task`), its padded input rows copied first; a register tile of
    output rows x columns x b channels, every window row of every pixel one call of the quad
    intrinsic, all unrolled, so the tile's rows share the permuted quads of the input rows they
    have in common. `knobs` (see `quad_depthwise_knobs`) override the rows per task and the tile."""
    import tvm

    from edgecc.lower.kernels import build_kernel
    from edgecc.lower.te_ops.quant import depthwise_in_quads

    with depthwise_in_quads():
        func = build_kernel(kernel.body[0], kernel.name).func
    sch = tvm.s_tir.Schedule(func)
    conv = _find(sch, ("qdepthwise_conv2d_NCHWc_quads",))
    pad, quads = _find(sch, ("pad",)), _find(sch, ("weight_quads",))
    inline_all_but(sch, [conv, pad, quads])
    out, conv = output_block(sch, conv)
    n, oc, oh, ow, ob = sch.get_loops(out)
    knobs = {**_default_knobs(kernel, target), **(knobs or {})}
    oh_o, oh_i = sch.split(oh, [None, knobs["rows"]])
    oh_io, oh_ii = sch.split(oh_i, [None, knobs["tile_rows"]])
    ow_o, ow_i = sch.split(ow, [None, knobs["columns"]])
    sch.reorder(n, oc, oh_o, oh_io, ow_o, oh_ii, ow_i, ob)
    task = sch.fuse(n, oc, oh_o)
    sch.parallel(task)
    sch.vectorize(ob)
    sch.compute_at(conv, ow_o)
    sch.compute_at(pad, task)
    _schedule_padding(sch, pad, _extent(sch, ob))
    *tile, channels, window_rows, _ = sch.get_loops(conv)[3:]  # (a tile of one row or column has no loop for it)
    sch.reorder(window_rows, *tile, channels)
    for loop in (window_rows, *tile):
        sch.unroll(loop)
    init = sch.decompose_reduction(conv, window_rows)
    sch.vectorize(sch.get_loops(init)[-1])
    sch.tensorize(channels, quad_intrin(_extent(sch, ob)))
    _schedule_quads(sch, quads)
    return sch.mod["main"]


def _schedule_padding(sch, pad, block: int) -> None:
    """A task's padded input rows, the channel block a vector. With 16-channel blocks the zero
    point is written first and the image copied without a bound check per pixel (MobileNetV2's
    56x56x144 layers, 2 threads: 0.050 -> 0.044 and 0.019 -> 0.016 ms); 32-channel blocks keep
    one pass, which measured faster for them (its 112x112x32 layer 0.043 ms, 0.046 in two)."""
    rows = sch.get_loops(pad)[1]
    blocks = [pad]
    if block == LANES and sch.can_decompose_padding(pad, rows):
        blocks.append(sch.decompose_padding(pad, rows))
    for part in blocks:
        sch.vectorize(sch.get_loops(part)[-1])


def _default_knobs(kernel, target) -> dict:
    _, blocks, height, width, block = (int(d) for d in kernel.outputs[0].type.shape)
    rows = rows_per_task(height, blocks, target.num_cores)
    tile_rows = _largest_divisor(rows, TILE_ROWS)
    return {"rows": rows, "tile_rows": tile_rows,
            "columns": _largest_divisor(width, TILE_VECTORS // (block // LANES) // tile_rows)}


def quad_depthwise_knobs(kernel, target) -> Knobs:
    """Output rows per parallel task, and output rows and columns of the register tile (divisors
    of the height up to MAX_ROWS, of the task's rows and of the width, at most TILE_VECTORS
    accumulators): the knobs of `schedule_quad_depthwise`."""
    _, blocks, height, width, block = (int(d) for d in kernel.outputs[0].type.shape)
    default = _default_knobs(kernel, target)
    vectors = block // LANES
    return Knobs(kernel.kind, (Knob("rows", _divisors(height, MAX_ROWS), default["rows"]),
                               Knob("tile_rows", _divisors(height, MAX_ROWS), default["tile_rows"]),
                               Knob("columns", _divisors(width, TILE_VECTORS // vectors), default["columns"])),
                 allowed=lambda p: (p["rows"] % p["tile_rows"] == 0
                                    and p["tile_rows"] * p["columns"] * vectors <= TILE_VECTORS),
                 shape={"channels": blocks * block, "height": height, "width": width, "block": block,
                        "cores": target.num_cores})


def _divisors(n: int, most: int) -> tuple[int, ...]:
    return tuple(d for d in range(1, min(n, most) + 1) if n % d == 0)


#: most output rows of one parallel task: its kh - 1 extra padded input rows are copied once for
#: all of them
MAX_ROWS = 8
#: parallel tasks per core a kernel keeps at least, where its rows allow
TASKS_PER_CORE = 4


def rows_per_task(height: int, blocks: int, cores: int) -> int:
    """Output rows per parallel task: the largest divisor of the height up to MAX_ROWS that
    leaves TASKS_PER_CORE tasks per core (blocks x height / rows of them), else 1."""
    return max((r for r in _divisors(height, MAX_ROWS) if blocks * height // r >= TASKS_PER_CORE * cores),
               default=1)


def _largest_divisor(n: int, most: int) -> int:
    return max(_divisors(n, most))


def _schedule_quads(sch, block) -> None:
    """The (C/b, kh, 4, b) weight quads: the taps unrolled (the zeros past the window are then
    stores of a constant), the channels a vector."""
    *_, taps, channels = sch.get_loops(block)
    sch.unroll(taps)
    sch.vectorize(channels)


def quad_intrin(block: int) -> str:
    """The name of the registered quad intrinsic for `block` channels (registered on first use)."""
    if block not in _REGISTERED:
        from tvm.s_tir import TensorIntrin

        name = f"edgecc_x86_depthwise_quads_{block}"
        TensorIntrin.register(name, *_make(block), override=True)
        _REGISTERED[block] = name
    return _REGISTERED[block]


def _permutation(block: int, vector: int) -> list[int]:
    """Byte indices into the 4 x `block` loaded bytes that put the four pixels' bytes of channel
    16 x `vector` + i into int32 lane i."""
    return [q * block + LANES * vector + i for i in range(LANES) for q in range(4)]


def _make(block: int):
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def desc(A: T.Buffer((4, block), "uint8", offset_factor=1), B: T.Buffer((4, block), "int8", offset_factor=1),
             C: T.Buffer((block,), "int32", offset_factor=1)):
        with T.sblock("root"):
            T.reads(C[0:block], A[0:4, 0:block], B[0:4, 0:block])
            T.writes(C[0:block])
            for i in T.serial(0, block):
                for q in T.serial(0, 4):
                    with T.sblock("update"):
                        vi, vq = T.axis.remap("SR", [i, q])
                        C[vi] = C[vi] + T.cast(A[vq, vi], "int32") * T.cast(B[vq, vi], "int32")

    return desc, (_impl16 if block == 16 else _impl32)()


_VPDPBUSD = "llvm.x86.avx512.vpdpbusd.512"


def _impl16():
    from tvm.script import tirx as T

    order = _permutation(16, 0)

    @T.prim_func(s_tir=True)
    def impl(A: T.Buffer((4, 16), "uint8", offset_factor=1), B: T.Buffer((4, 16), "int8", offset_factor=1),
             C: T.Buffer((16,), "int32", offset_factor=1)):
        with T.sblock("root"):
            T.reads(C[0:16], A[0:4, 0:16], B[0:4, 0:16])
            T.writes(C[0:16])
            pixels: T.uint8x64 = A.vload([0, 0], "uint8x64")
            weights: T.int8x64 = B.vload([0, 0], "int8x64")
            C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id(_VPDPBUSD), C.vload([0], "int32x16"), T.Shuffle([pixels], order),
                T.Shuffle([weights], order), dtype="int32x16")

    return impl


def _impl32():
    from tvm.script import tirx as T

    low, high = _permutation(32, 0), _permutation(32, 1)

    @T.prim_func(s_tir=True)
    def impl(A: T.Buffer((4, 32), "uint8", offset_factor=1), B: T.Buffer((4, 32), "int8", offset_factor=1),
             C: T.Buffer((32,), "int32", offset_factor=1)):
        with T.sblock("root"):
            T.reads(C[0:32], A[0:4, 0:32], B[0:4, 0:32])
            T.writes(C[0:32])
            first: T.uint8x64 = A.vload([0, 0], "uint8x64")
            second: T.uint8x64 = A.vload([2, 0], "uint8x64")
            w_first: T.int8x64 = B.vload([0, 0], "int8x64")
            w_second: T.int8x64 = B.vload([2, 0], "int8x64")
            C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id(_VPDPBUSD), C.vload([0], "int32x16"), T.Shuffle([first, second], low),
                T.Shuffle([w_first, w_second], low), dtype="int32x16")
            C[T.ramp(T.int32(16), 1, 16)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id(_VPDPBUSD), C.vload([16], "int32x16"), T.Shuffle([first, second], high),
                T.Shuffle([w_first, w_second], high), dtype="int32x16")

    return impl
