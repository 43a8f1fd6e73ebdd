"""x86 int8 dot products for the integer convolutions: AVX2's vpmaddwd as a tensor intrinsic.

    C[i] += A[0] * B[i, 0] + A[1] * B[i, 1]      i < 8;  A: 2 data values, B: 8 x 2 weights

A pair of 8-bit data values (int8 or uint8) is widened to int16 and broadcast; eight output
channels' weight pairs (int8, `OIHW{b/2}i{b'}o2i` weights) are widened to int16; one vpmaddwd
multiplies the sixteen pairs and adds each pair into eight int32 lanes, which are added to the
accumulator. Products of 8-bit values fit in 16 bits and a pair's sum in 17, so unlike vpmaddubsw
nothing saturates: the results are exact integer arithmetic.

VNNI (AVX-512 VNNI, or AVX-VNNI on AVX2 cores) has vpdpbusd, which sums four uint8 x int8
products into each int32 lane without saturation:

    C[i] += A[0] * B[i, 0] + ... + A[3] * B[i, 3]      i < lanes;  A: 4 uint8, B: lanes x 4 int8

with `OIHW{b/4}i{b'}o4i` weights; 512-bit registers give 16 lanes, 256- and 128-bit ones 8 and 4.
int8 data is moved to uint8 by the kernel (x + 128, see `edgecc.lower.te_ops.quant`).

AVX2 without VNNI computes the same four-product sums in two steps: vpmaddubsw multiplies the
uint8 x int8 pairs and adds each pair into a saturating int16, vpmaddwd by ones adds the two
int16 of each lane into int32. With 7-bit weights (within [-64, 64], ONNX Runtime's
reduce_range) a pair sum is at most 255 x 64 x 2 = 32640, so nothing saturates and the result
is again exact; `passes/convert-layout` gives such weights groups of four only when they fit.
"""

from __future__ import annotations

from .dot_desc import dot_desc

__all__ = ["VNNI_LANES", "pmaddubsw_intrin", "pmaddwd_intrin", "quad_intrin", "register_metaschedule_intrinsics",
           "vpdpbusd_intrin", "vnni_lanes"]

#: int32 lanes of vpdpbusd by register width
VNNI_LANES = (16, 8, 4)

_REGISTERED: dict[str, str] = {}


def pmaddwd_intrin(data_dtype: str) -> str:
    """The name of the registered intrinsic for int8 or uint8 data (registered on first use)."""
    if data_dtype not in _REGISTERED:
        name = f"edgecc_x86_pmaddwd_8x2_{data_dtype}"
        from tvm.s_tir import TensorIntrin

        desc, impl = _make(data_dtype)
        TensorIntrin.register(name, desc, impl, override=True)
        _REGISTERED[data_dtype] = name
    return _REGISTERED[data_dtype]


def _make(data_dtype: str):
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def impl(A: T.Buffer((2,), data_dtype, offset_factor=1), B: T.Buffer((8, 2), "int8", offset_factor=1),
             C: T.Buffer((8,), "int32", offset_factor=1)):
        with T.sblock("root"):
            T.reads(C[0:8], A[0:2], B[0:8, 0:2])
            T.writes(C[0:8])
            pair = T.reinterpret(T.cast(A.vload([0], f"{data_dtype}x2"), "int16x2"), dtype="int32")
            data = T.reinterpret(T.broadcast(pair, 8), dtype="int16x16")
            weights = T.cast(B.vload([0, 0], "int8x16"), "int16x16")
            C[T.ramp(T.int32(0), 1, 8)] = C[T.ramp(T.int32(0), 1, 8)] + T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.x86.avx2.pmadd.wd"), data, weights, dtype="int32x8")

    return dot_desc(data_dtype, 8, 2), impl


def vnni_lanes(target, out_block: int) -> int:
    """The widest vpdpbusd (16, 8 or 4 int32 lanes) the target has that divides `out_block`;
    0 when none does."""
    widest = target.lanes("int32") if target.has_feature("avx512vnni") else min(target.lanes("int32"), 8)
    return next((n for n in VNNI_LANES if n <= widest and out_block % n == 0), 0)


def quad_intrin(target, out_block: int) -> tuple[str, int]:
    """(intrinsic name, int32 lanes) for a convolution with groups of four input channels:
    vpdpbusd with VNNI, else vpmaddubsw + vpmaddwd (8 lanes) with AVX2. Raises when neither fits."""
    if target.has_feature("avx512vnni") or target.has_feature("avxvnni"):
        lanes = vnni_lanes(target, out_block)
        if lanes:
            return vpdpbusd_intrin(lanes), lanes
    elif target.has_feature("avx2") and out_block % 8 == 0:
        return pmaddubsw_intrin(), 8
    raise ValueError(f"the target has no four-channel dot product for an output block of {out_block}")


def pmaddubsw_intrin() -> str:
    """The name of the registered vpmaddubsw + vpmaddwd intrinsic (8 int32 lanes, AVX2)."""
    name = "edgecc_x86_pmaddubsw_8x4"
    if name not in _REGISTERED:
        from tvm.s_tir import TensorIntrin

        TensorIntrin.register(name, dot_desc("uint8", 8, 4), _make_pmaddubsw(), override=True)
        _REGISTERED[name] = name
    return name


def _make_pmaddubsw():
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def impl(A: T.Buffer((4,), "uint8", offset_factor=1), B: T.Buffer((8, 4), "int8", offset_factor=1),
             C: T.Buffer((8,), "int32", offset_factor=1)):
        with T.sblock("root"):
            T.reads(C[0:8], A[0:4], B[0:8, 0:4])
            T.writes(C[0:8])
            quad = T.reinterpret(A.vload([0], "uint8x4"), dtype="int32")
            pairs = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.x86.avx2.pmadd.ub.sw"),
                T.reinterpret(T.broadcast(quad, 8), dtype="uint8x32"), B.vload([0, 0], "int8x32"), dtype="int16x16")
            C[T.ramp(T.int32(0), 1, 8)] = C[T.ramp(T.int32(0), 1, 8)] + T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.x86.avx2.pmadd.wd"), pairs, T.broadcast(T.int16(1), 16),
                dtype="int32x8")

    return impl


def vpdpbusd_intrin(lanes: int, name: str | None = None) -> str:
    """The name of the registered vpdpbusd intrinsic with `lanes` int32 lanes (16, 8 or 4),
    registered on first use (under `name` when given)."""
    name = name or f"edgecc_x86_vpdpbusd_{lanes}x4"
    if name not in _REGISTERED:
        from tvm.s_tir import TensorIntrin

        TensorIntrin.register(name, *_make_vnni(lanes), override=True)
        _REGISTERED[name] = name
    return name


def _make_vnni(lanes: int):
    from tvm.script import tirx as T

    nbytes = 4 * lanes
    llvm_name = f"llvm.x86.avx512.vpdpbusd.{32 * lanes}"  # VEX-encoded with AVX-VNNI alone

    @T.prim_func(s_tir=True)
    def impl(A: T.Buffer((4,), "uint8", offset_factor=1), B: T.Buffer((lanes, 4), "int8", offset_factor=1),
             C: T.Buffer((lanes,), "int32", offset_factor=1)):
        with T.sblock("root"):
            T.reads(C[0:lanes], A[0:4], B[0:lanes, 0:4])
            T.writes(C[0:lanes])
            quad = T.reinterpret(A.vload([0], "uint8x4"), dtype="int32")
            C[T.ramp(T.int32(0), 1, lanes)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id(llvm_name), C.vload([0], f"int32x{lanes}"),
                T.reinterpret(T.broadcast(quad, lanes), dtype=f"uint8x{nbytes}"),
                B.vload([0, 0], f"int8x{nbytes}"), dtype=f"int32x{lanes}")

    return dot_desc("uint8", lanes, 4), impl


#: the tensor intrinsic MetaSchedule's default rules for an AVX-512 VNNI target look up by name
METASCHEDULE_VNNI = "dot_16x4_vnni"


def register_metaschedule_intrinsics(target) -> None:
    """Register the intrinsics MetaSchedule's default rules want for `target`'s CPU, and only
    those: `dot_16x4_vnni` (vpdpbusd on 16 lanes) on AVX-512 VNNI. The definition is TVM's, with
    the i8-vector operands of the vpdpbusd intrinsic of the bundled LLVM. Importing
    `tvm.s_tir.tensor_intrin` instead would register them all at a cost of tens of seconds."""
    if getattr(target, "has_feature", lambda name: False)("avx512vnni"):
        vpdpbusd_intrin(16, METASCHEDULE_VNNI)
