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


def lowering(*ops: str):
    def deco(fn):
        for op in ops:
            if op in _LOWERINGS:
                raise ValueError(f"lowering for {op} registered twice")
            _LOWERINGS[op] = fn
        return fn

    return deco


def shape_function(*ops: str):
    """Register the run-time shape function of `ops` (see the module docstring)."""
    def deco(fn):
        for op in ops:
            if op in _SHAPE_FUNCTIONS:
                raise ValueError(f"shape function for {op} registered twice")
            _SHAPE_FUNCTIONS[op] = fn
        return fn

    return deco


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
        from . import elementwise, nn, tensor, reduce, misc, packed, image, quant, winograd  # noqa: F401  (registration)
