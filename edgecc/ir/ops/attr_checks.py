"""Checks of attribute values, declared with an attribute: `Attr("int", 1, check=at_least(1))`.

A check takes the value and returns what is wrong with it, or None; `OpDef.infer` runs them.
"""

from __future__ import annotations

__all__ = ["at_least", "one_of"]


def at_least(low: int):
    """Attribute check: a number (or each of a tuple of numbers) of at least `low`; NaN never is."""

    def check(value):
        values = value if isinstance(value, tuple) else (value,)
        return None if all(v >= low for v in values) else f"must be at least {low}"

    return check


def one_of(*choices):
    """Attribute check: one of `choices`."""

    def check(value):
        return None if value in choices else f"must be one of {', '.join(map(repr, choices))}"

    return check
