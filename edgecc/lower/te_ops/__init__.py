"""Op lowerings: each IR op's computation as TVM tensor expressions (TE).

A lowering is `fn(node, inputs: list[te.Tensor]) -> list[te.Tensor]`, registered with
`@lowering("conv")`. Kernels are built by composing the lowerings of the nodes they contain.
Extents may be symbolic: read them with `shapes.shape_of(t)` and turn IR shapes into extents
with `shapes.te_shape(value.type.shape)`.

An op whose output sizes depend on input *values* also registers a shape function,
`@shape_function("nonzero")`: `fn(node, inputs) -> list[te.Tensor]`, one int64 tensor of shape
(rank,) per output holding its dimensions at run time (`edgecc.lower.symbolic` says how it is used).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["lowering", "get_lowering", "get_shape_function", "lowered_ops", "shape_function"]

_LOWERINGS: dict[str, Callable] = {}
_SHAPE_FUNCTIONS: dict[str, Callable] = {}


def _register(table: dict[str, Callable], what: str, ops: tuple[str, ...]):
    def deco(fn):
        for op in ops:
            if op in table:
                raise ValueError(f"{what} for {op} registered twice")
            table[op] = fn
        return fn

    return deco


def lowering(*ops: str):
    """Register the TE lowering of `ops`."""
    return _register(_LOWERINGS, "lowering", ops)


def shape_function(*ops: str):
    """Register the run-time shape function of `ops` (see the module docstring)."""
    return _register(_SHAPE_FUNCTIONS, "shape function", ops)


def get_shape_function(op: str) -> Callable | None:
    _load()
    return _SHAPE_FUNCTIONS.get(op)


def get_lowering(op: str) -> Callable | None:
    _load()
    return _LOWERINGS.get(op)


def lowered_ops() -> set[str]:
    _load()
    return set(_LOWERINGS)


_LOADED = False


def _load() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        from . import elementwise, nn, tensor, reduce, misc, packed, image, quant, winograd, dynamic  # noqa: F401  (registration)
