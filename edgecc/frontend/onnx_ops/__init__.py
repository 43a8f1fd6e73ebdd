"""ONNX op converters, looked up by (domain, op type) and op version.

A converter is `fn(ctx, inputs, attrs) -> Value | list[Value]`, registered with
`@converter("Conv", since=11)`: it serves every definition of the op from version `since` until
another converter is registered with a later `since`.
"""

from __future__ import annotations

from collections.abc import Callable

from .checks import with_checks

__all__ = ["converter", "find_converter", "supported_ops"]

Converter = Callable

_CONVERTERS: dict[tuple[str, str], list[tuple[int, Converter]]] = {}


def converter(*op_types: str, since: int = 1, domain: str = "", checks=None, ranks=None):
    """Register a converter for op types from op version `since` on.

    `checks` maps attribute names to their allowed values and `ranks` input indices to their
    allowed rank (an int, or (low, high or None)); both are checked before the converter runs
    (`edgecc.frontend.onnx_ops.checks`).
    """

    def deco(fn: Converter) -> Converter:
        checked = with_checks(fn, checks, ranks)
        for op_type in op_types:
            entries = _CONVERTERS.setdefault((domain, op_type), [])
            entries.append((since, checked))
            entries.sort(key=lambda e: e[0])
        return fn

    return deco


def _op_version(op_type: str, domain: str, opset: int) -> int | None:
    import onnx.defs

    try:
        return onnx.defs.get_schema(op_type, opset, domain).since_version
    except Exception:  # noqa: BLE001 - onnx raises SchemaError for unknown ops
        return None


def find_converter(op_type: str, domain: str, opset: int) -> tuple[Converter | None, int | None]:
    """The converter for this op in this opset, and the op's version (None when unknown)."""
    _load()
    entries = _CONVERTERS.get((domain, op_type))
    if not entries:
        return None, None
    version = _op_version(op_type, domain, opset) if domain in ("", "ai.onnx") else opset
    if version is None:
        return None, None
    chosen = None
    for since, fn in entries:
        if since <= version:
            chosen = fn
    return chosen, version


def supported_ops() -> dict[str, list[int]]:
    """op type -> the op versions at which edgecc's converters start (default domain)."""
    _load()
    return {op: [s for s, _ in entries] for (dom, op), entries in sorted(_CONVERTERS.items()) if dom == ""}


_LOADED = False


def _load() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        from . import (  # noqa: F401  (registration)
            attention, control_flow, elementwise, image, misc, ml, nn, normalization, quant, recurrent, reduce, signal,
            tensor, training,
        )
