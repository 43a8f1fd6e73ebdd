"""Lowerings of one_hot, trilu and einsum."""

from __future__ import annotations

import numpy as np
from tvm import te, tirx

from edgecc.ir.ops.misc import parse_einsum

from . import lowering
from .elementwise import dtype_of
from .shapes import extent, is_zero, te_shape

HALF_TYPES = ("float16", "bfloat16")


@lowering("one_hot")
def _lower_one_hot(node, ins):
    indices, values = ins
    depth = node.attrs["depth"]
    rank = len(indices.shape) + 1
    axis = node.attrs["axis"] % rank
    vshape = [int(d) for d in values.shape]
    off, on = (values(*(int(i) for i in np.unravel_index(k, vshape))) for k in (0, 1))

    def body(*idx):
        i = indices(*idx[:axis], *idx[axis + 1:])
        if not dtype_of(i).startswith(("int", "uint")):
            i = i.astype("int64")
        if dtype_of(i).startswith("int"):
            i = tirx.Select(i < tirx.const(0, dtype_of(i)), i + tirx.const(depth, dtype_of(i)), i)
        return tirx.Select(i == idx[axis].astype(dtype_of(i)), on, off)

    return [te.compute(te_shape(node.output.type.shape), body, name="one_hot")]


@lowering("trilu")
def _lower_trilu(node, ins):
    x = ins[0]
    k, upper = node.attrs["k"], bool(node.attrs["upper"])
    zero = tirx.const(0, str(x.dtype)) if str(x.dtype) != "bool" else tirx.const(False, "bool")

    def body(*idx):
        diff = idx[-1] - idx[-2]
        keep = diff >= k if upper else diff <= k
        return tirx.Select(keep, x(*idx), zero)

    return [te.compute(tuple(x.shape), body, name="trilu")]


@lowering("einsum")
def _lower_einsum(node, ins):
    dims_of = [v.type.shape for v in node.inputs]  # ints, and Dims where sizes are symbolic
    terms, out, dims = parse_einsum(node.attrs["equation"], dims_of)
    sizes = {c: extent(d) for c, d in dims.items()}
    dtype = str(ins[0].dtype)
    acc = "float32" if dtype in HALF_TYPES else dtype
    summed = [c for c in sizes if c not in out]
    if any(is_zero(sizes[c]) for c in summed):  # a sum of nothing (TIR would never run its init)
        return [te.compute(tuple(sizes[c] for c in out), lambda *i: tirx.const(0, dtype), name="einsum")]

    def body(*idx):
        letters = dict(zip(out, idx))
        axes = [te.reduce_axis((0, sizes[c]), name=f"r_{c}") for c in summed]
        letters.update((c, r.var) for c, r in zip(summed, axes))
        product = None
        for t, term, shape in zip(ins, terms, dims_of):
            # an operand's size-1 axis broadcasts against the letter's size
            value = t(*(0 if (isinstance(d, int) and d == 1 and dims[c] != 1) else letters[c]
                        for c, d in zip(term, shape)))
            value = value.astype(acc)
            product = value if product is None else product * value
        return te.sum(product, axis=axes) if axes else product

    result = te.compute(tuple(sizes[c] for c in out), body, name="einsum")
    if acc == dtype:
        return [result]
    return [te.compute(result.shape, lambda *i: result(*i).astype(dtype), name="einsum_cast")]
