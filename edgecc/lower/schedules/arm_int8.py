"""AArch64 int8 dot products for the integer convolutions and dense layers: `sdot` as a tensor
intrinsic.

ARMv8.2's dot-product extension (`dotprod`: Cortex-A55, A76, A78) sums four int8 x int8
products into each of four int32 lanes of a 128-bit register:

    C[i] += A[0] * B[i, 0] + ... + A[3] * B[i, 3]      i < 4;  A: 4 int8, B: 4 x 4 int8

so the weights edgecc packs for x86 vpdpbusd (`OIHW{b/4}i{b'}o4i`, qdense (N/b, K/4, b, 4))
feed it 4 output channels at a time. The integer kernels give the dot product uint8 data
(`edgecc.lower.te_ops.quant` moves int8 data to uint8 for vpdpbusd), and ARM has no
uint8 x int8 instruction before `i8mm` (usdot). The intrinsic therefore computes the uint8 x
int8 sum exactly from signed products: with a' = a - 128 (the byte's top bit flipped),

    sum(a * b) = sum(a' * b) + 128 * sum(b) = sdot(C, a', b) - sdot(0, -128, b),

a second sdot whose operands do not depend on the data, so the compiler computes it once per
weight vector and reuses it across the columns of a register tile.
"""

from __future__ import annotations

from .dot_desc import dot_desc

__all__ = ["SDOT_LANES", "has_dot_product", "sdot_intrin"]

#: int32 lanes of one 128-bit sdot
SDOT_LANES = 4

_REGISTERED: set[str] = set()


def has_dot_product(target) -> bool:
    """Whether `target` is an AArch64 CPU with the dot-product extension (from its features,
    never the host's)."""
    return getattr(target, "arch", None) == "aarch64" and target.has_feature("dotprod")


def sdot_intrin() -> str:
    """The name of the registered uint8 x int8 -> int32 (4 lanes) intrinsic built on sdot,
    registered on first use."""
    name = "edgecc_aarch64_sdot_u8s8_4x4"
    if name not in _REGISTERED:
        from tvm.s_tir import TensorIntrin

        TensorIntrin.register(name, *_make_sdot(), override=True)
        _REGISTERED.add(name)
    return name


def _make_sdot():
    from tvm.script import tirx as T

    sdot = "llvm.aarch64.neon.sdot.v4i32.v16i8"
    top_bits = -0x7F7F7F80  # 0x80808080 as int32: flips the sign bit of each of the four bytes

    @T.prim_func(s_tir=True)
    def impl(A: T.Buffer((4,), "uint8", offset_factor=1), B: T.Buffer((4, 4), "int8", offset_factor=1),
             C: T.Buffer((4,), "int32", offset_factor=1)):
        with T.sblock("root"):
            T.reads(C[0:4], A[0:4], B[0:4, 0:4])
            T.writes(C[0:4])
            quad = T.bitwise_xor(T.reinterpret(A.vload([0], "uint8x4"), dtype="int32"), T.int32(top_bits))
            data = T.reinterpret(T.broadcast(quad, 4), dtype="int8x16")
            weights = B.vload([0, 0], "int8x16")
            shifted = T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id(sdot), C.vload([0], "int32x4"), data,
                                              weights, dtype="int32x4")
            offset = T.call_llvm_pure_intrin(T.llvm_lookup_intrinsic_id(sdot), T.broadcast(T.int32(0), 4),
                                             T.broadcast(T.int8(-128), 16), weights, dtype="int32x4")
            C[T.ramp(T.int32(0), 1, 4)] = shifted - offset

    return dot_desc("uint8", SDOT_LANES, 4), impl
