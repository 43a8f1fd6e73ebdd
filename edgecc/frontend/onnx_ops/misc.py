"""Converters for OneHot, Trilu, Einsum and Det."""

from __future__ import annotations

import numpy as np

from edgecc.ir.dims import Dim

from . import converter
from ._util import cast, scalar
from .checks import axis
from .tensor import as_int64, emit_dynamic, runtime


@converter("OneHot", checks={"axis": axis(extra=1)})
def _one_hot(ctx, inputs, attrs):
    if runtime(inputs[1]):
        depth = ctx.emit("reshape", as_int64(ctx, inputs[1], "depth"), shape=(1,))
        return emit_dynamic(ctx, "dyn_one_hot", cast(ctx, inputs[0], "int64"), depth, inputs[2],
                            rank=inputs[0].type.rank + 1, axis=attrs.get("axis", -1))
    depth = int(ctx.static(inputs[1], "depth").reshape(-1)[0])
    return ctx.emit("one_hot", inputs[0], inputs[2], depth=depth, axis=attrs.get("axis", -1))


@converter("Trilu")
def _trilu(ctx, inputs, attrs):
    k = 0
    if len(inputs) > 1 and inputs[1] is not None:
        if runtime(inputs[1]):
            return _trilu_runtime_k(ctx, inputs[0], inputs[1], attrs.get("upper", 1))
        k = int(ctx.static(inputs[1], "k").reshape(-1)[0])
    return ctx.emit("trilu", inputs[0], upper=attrs.get("upper", 1), k=k)


def _trilu_runtime_k(ctx, x, k, upper: int):
    """Trilu with k known at run time: x where column - row >= k (upper) or <= k (lower), else 0."""
    rows, cols = x.shape[-2:]
    if isinstance(rows, Dim) or isinstance(cols, Dim):
        raise ctx.unsupported("a run-time k with symbolic matrix sizes")
    offset = np.arange(cols, dtype=np.int64)[None, :] - np.arange(rows, dtype=np.int64)[:, None]
    k = ctx.emit("reshape", as_int64(ctx, k, "k"), shape=())
    keep = ctx.emit("greater_equal" if upper else "less_equal", ctx.const(offset, "diagonal_offset"), k)
    return ctx.emit("where", keep, x, scalar(ctx, 0, x.dtype))


@converter("Einsum")
def _einsum(ctx, inputs, attrs):
    return ctx.emit("einsum", *inputs, equation=attrs["equation"])


@converter("Det", since=11)
def _det(ctx, inputs, attrs):
    """The Leibniz sum over permutations; matrices up to 4x4."""
    import itertools

    x = inputs[0]
    n = x.shape[-1]
    if x.type.rank < 2 or x.shape[-2] != n:
        raise ctx.fail(f"Det takes square matrices, got shape {x.shape}")
    if n > 4:
        raise ctx.unsupported(f"{n}x{n} matrices (at most 4x4)")
    lead = x.shape[:-2]
    axes = (x.type.rank - 2, x.type.rank - 1)

    def element(i, j):
        return ctx.emit("reshape", ctx.emit("slice", x, starts=(i, j), ends=(i + 1, j + 1), axes=axes), shape=lead)

    rows = [[element(i, j) for j in range(n)] for i in range(n)]
    total = None
    for perm in itertools.permutations(range(n)):
        term = rows[0][perm[0]]
        for i in range(1, n):
            term = ctx.emit("mul", term, rows[i][perm[i]])
        inversions = sum(1 for a in range(n) for b in range(a + 1, n) if perm[a] > perm[b])
        if total is None:
            total = term if inversions % 2 == 0 else ctx.emit("neg", term)
        else:
            total = ctx.emit("sub" if inversions % 2 else "add", total, term)
    return total
