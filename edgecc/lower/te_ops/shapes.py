"""Shapes inside TE lowerings, static or symbolic.

A kernel built from a graph with symbolic dimensions (`edgecc.ir.dims.Dim`) has one int64
`tirx.Var` per size variable; `build_kernel` makes them and sets them for the lowerings with
`dim_env(...)`. A lowering turns an IR shape into TE extents with `te_shape(value.type.shape)`
and reads a TE tensor's extents with `shape_of(t)`: plain ints where the extent is a constant
(so a fixed-size kernel is built exactly as before), TIR expressions where it is not.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping

__all__ = ["bare_vars", "dim_env", "extent", "is_one", "is_zero", "reshape", "shape_of", "te_shape"]

_DIM_ENV: contextvars.ContextVar[Mapping[str, object]] = contextvars.ContextVar("edgecc_dim_env", default={})


@contextlib.contextmanager
def dim_env(env: Mapping[str, object]) -> Iterator[None]:
    """Size variable name -> tirx.Var for the lowerings run inside the block."""
    token = _DIM_ENV.set(env)
    try:
        yield
    finally:
        _DIM_ENV.reset(token)


def extent(d):
    """One IR dimension (int or Dim) as a TE extent: an int, or an int64 expression in the kernel's
    vars (a TE extent passes through)."""
    import tvm
    from tvm import tirx

    from edgecc.ir.dims import Dim, evaluate_dim

    if not isinstance(d, Dim):
        return d if isinstance(d, tvm.ir.expr.Expr) and not isinstance(d, tirx.IntImm) else int(d)

    expr = evaluate_dim(d, _DIM_ENV.get(), floordiv=tirx.floordiv)
    return tvm.sym.Analyzer().simplify(expr) if not isinstance(expr, int) else expr


def te_shape(shape) -> tuple:
    """An IR shape as TE extents (ints stay ints)."""
    return tuple(extent(d) for d in shape)


def shape_of(t) -> tuple:
    """A TE tensor's extents: ints where constant, TIR expressions where symbolic."""
    from tvm import tirx

    return tuple(int(d) if isinstance(d, (int, tirx.IntImm)) else d for d in t.shape)


def bare_vars(shape) -> set[str]:
    """The size variables that are, by themselves, a dimension of an IR shape (a buffer of that
    shape binds them)."""
    from edgecc.ir.dims import Dim

    out: set[str] = set()
    for d in shape:
        if isinstance(d, Dim) and len(d.vars) == 1:
            var = next(iter(d.vars))
            if d == Dim.var(var):
                out.add(var)
    return out


def is_zero(d) -> bool:
    """Whether an extent is the constant 0 (a symbolic extent is at least 1)."""
    from tvm import tirx

    return (isinstance(d, int) and d == 0) or (isinstance(d, tirx.IntImm) and d.value == 0)


def is_one(d) -> bool:
    """Whether an extent is the constant 1 (a symbolic extent never is: it does not broadcast)."""
    from tvm import tirx

    return (isinstance(d, int) and d == 1) or (isinstance(d, tirx.IntImm) and d.value == 1)


def same_extent(a, b) -> bool:
    """Whether two extents (ints or TIR expressions) are provably equal."""
    import tvm

    if isinstance(a, int) and isinstance(b, int):
        return a == b
    return bool(tvm.sym.Analyzer().can_prove_equal(a, b))


def reshape(x, shape):
    """`x` reshaped (row-major) to `shape` (TE extents, static or symbolic). The leading and trailing
    axes the two shapes share are indexed directly and only the axes between go through a flat
    offset, so splitting a hidden axis into heads ([batch, seq, 256] -> [batch, seq, 4, 64])
    reads x[b, s, h * 64 + d], without the division and remainder by `seq` and `batch` per
    element that a fully flattened index needs."""
    from tvm import te, tirx

    src, dst = shape_of(x), tuple(shape)
    lead = 0
    while lead < min(len(src), len(dst)) and same_extent(src[lead], dst[lead]):
        lead += 1
    trail = 0
    while trail < min(len(src), len(dst)) - lead and same_extent(src[-1 - trail], dst[-1 - trail]):
        trail += 1
    src_mid, dst_mid = src[lead:len(src) - trail], dst[lead:len(dst) - trail]

    def index(*idx):
        flat = 0
        for i, d in zip(idx[lead:len(dst) - trail], dst_mid):
            flat = flat * d + i
        coords = []
        for k, d in enumerate(reversed(src_mid)):
            outermost = k == len(src_mid) - 1
            coords.append(flat if outermost else tirx.floormod(flat, d))
            flat = tirx.floordiv(flat, d)
        return x(*idx[:lead], *reversed(coords), *idx[len(dst) - trail:])

    return te.compute(dst, index, name="T_reshape", tag="injective")
