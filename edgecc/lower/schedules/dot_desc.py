"""The description every integer dot-product tensor intrinsic shares (x86 `x86_int8`, AArch64
`arm_int8`):

    C[i] += A[0] * B[i, 0] + ... + A[g-1] * B[i, g-1]      i < lanes

A: g data values (int8 or uint8), B: lanes x g int8 weights, C: lanes int32 accumulators.
Tensorization matches a kernel's innermost loops against it; each instruction set supplies its
own implementation with the same buffers.
"""

from __future__ import annotations

__all__ = ["dot_desc"]


def dot_desc(data_dtype: str, lanes: int, group: int):
    """The TVMScript description of a `lanes` x `group` dot product on `data_dtype` data."""
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def desc(A: T.Buffer((group,), data_dtype, offset_factor=1), B: T.Buffer((lanes, group), "int8", offset_factor=1),
             C: T.Buffer((lanes,), "int32", offset_factor=1)):
        with T.sblock("root"):
            T.reads(C[0:lanes], A[0:group], B[0:lanes, 0:group])
            T.writes(C[0:lanes])
            for i in T.serial(0, lanes):
                for k in T.serial(0, group):
                    with T.sblock("update"):
                        vi, vk = T.axis.remap("SR", [i, k])
                        C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")

    return desc
