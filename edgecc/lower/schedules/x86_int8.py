"""x86 int8 dot products for the integer convolutions: AVX2's vpmaddwd as a tensor intrinsic.

    C[i] += A[0] * B[i, 0] + A[1] * B[i, 1]      i < 8;  A: 2 data values, B: 8 x 2 weights

A pair of 8-bit data values (int8 or uint8) is widened to int16 and broadcast; eight output
channels' weight pairs (int8, `OIHW{b/2}i{b'}o2i` weights) are widened to int16; one vpmaddwd
multiplies the sixteen pairs and adds each pair into eight int32 lanes, which are added to the
accumulator. Products of 8-bit values fit in 16 bits and a pair's sum in 17, so unlike vpmaddubsw
nothing saturates: the results are exact integer arithmetic.
"""

from __future__ import annotations

__all__ = ["pmaddwd_intrin"]

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
    def desc(A: T.Buffer((2,), data_dtype, offset_factor=1), B: T.Buffer((8, 2), "int8", offset_factor=1),
             C: T.Buffer((8,), "int32", offset_factor=1)):
        with T.sblock("root"):
            T.reads(C[0:8], A[0:2], B[0:8, 0:2])
            T.writes(C[0:8])
            for i in T.serial(0, 8):
                for k in T.serial(0, 2):
                    with T.sblock("update"):
                        vi, vk = T.axis.remap("SR", [i, k])
                        C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")

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

    return desc, impl
