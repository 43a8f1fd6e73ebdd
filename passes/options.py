"""Pass option values in pipeline strings: parsed by the option's type annotation, and printed
back so that `parse_option(format_option(v), T) == v`.

    bool          true|false (also 1|0, yes|no, on|off)
    int, float    Python literals
    str           the text as written
    Literal[...]  one of its values (strings compare without case)
    X | None      `none`, or an X
    tuple[X, ...], list[X], tuple[X, Y]   items separated by ':' (empty text: no items)
"""

from __future__ import annotations

import types
import typing
from typing import Any

__all__ = ["parse_option", "format_option", "NONE_TEXT", "ITEM_SEPARATOR"]

#: how a pipeline string writes None, booleans, and the separator of sequence items
NONE_TEXT = "none"
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
ITEM_SEPARATOR = ":"


def parse_option(text: str, annotation: Any) -> Any:
    """The value of `text` for an option annotated `annotation`; ValueError saying what was expected.

    bool (true/false), int, float, str, Literal[...] (one of its values), X | None ("none"),
    tuple[X, ...] / list[X] / tuple[X, Y] (items separated by ':', empty for none).
    """
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        others = [a for a in args if a is not type(None)]
        if len(others) != len(args) and text.strip().lower() == NONE_TEXT:
            return None
        if len(others) != 1:
            raise TypeError(f"option type {annotation} is not supported (one type or None)")
        return parse_option(text, others[0])
    if origin is typing.Literal:
        for choice in args:
            if text == str(choice) or (isinstance(choice, str) and text.lower() == choice.lower()):
                return choice
        raise ValueError("expected one of " + ", ".join(str(a) for a in args))
    if origin in (tuple, list) or annotation in (tuple, list):
        return _parse_sequence(text, origin or annotation, args)
    if annotation is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError("expected true or false")
    if annotation in (int, float):
        try:
            return annotation(text)
        except ValueError:
            raise ValueError(f"expected {'an integer' if annotation is int else 'a number'}") from None
    if annotation is str:
        return text
    raise TypeError(f"option type {annotation} is not supported")


def _parse_sequence(text: str, origin: type, args: tuple) -> tuple | list:
    items = [t for t in text.split(ITEM_SEPARATOR)] if text.strip() else []
    if origin is tuple and args and args[-1] is not Ellipsis:  # fixed length: tuple[int, int]
        if len(items) != len(args):
            raise ValueError(f"expected {len(args)} items separated by '{ITEM_SEPARATOR}'")
        kinds = list(args)
    else:
        kinds = [args[0] if args else str] * len(items)
    try:
        values = [parse_option(t.strip(), kind) for t, kind in zip(items, kinds)]
    except ValueError as exc:
        raise ValueError(f"{exc} for each item separated by '{ITEM_SEPARATOR}'") from None
    return tuple(values) if origin is tuple else values


def format_option(value: Any) -> str:
    """The text `parse_option` reads back as `value`."""
    if value is None:
        return NONE_TEXT
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ITEM_SEPARATOR.join(format_option(v) for v in value)
    return str(value)
