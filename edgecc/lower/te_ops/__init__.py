"""Op lowerings: each IR op's computation as TVM tensor expressions (TE).

A lowering is `fn(node, inputs: list[te.Tensor]) -> list[te.Tensor]`, registered with
`@lowering("conv")`. Kernels are built by composing the lowerings of the nodes they contain.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["lowering", "get_lowering", "lowered_ops"]

_LOWERINGS: dict[str, Callable] = {}


def lowering(*ops: str):
    def deco(fn):
        for op in ops:
            if op in _LOWERINGS:
                raise ValueError(f"lowering for {op} registered twice")
            _LOWERINGS[op] = fn
        return fn

    return deco


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
