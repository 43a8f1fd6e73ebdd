"""Declared ranges of ONNX attributes and input ranks, checked before a converter runs.

A converter declares what its op's definition allows; the check runs before the converter
computes or allocates anything, and a node outside the definition is a one-line ModelError
naming the node, the attribute and the allowed range:

    @converter("ReverseSequence", since=10, checks={"time_axis": axis(), "batch_axis": axis()},
               ranks={0: (2, None)})

Attribute types and required attributes are checked against the ONNX schema before this
(`edgecc.frontend.onnx_schema`); a check here sees values of the declared type, and only the
attributes the node sets (defaults are valid by definition).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from edgecc.errors import ModelError
from edgecc.ir.ops import attr_checks
from edgecc.ir.limits import current_limits

__all__ = ["Check", "axis", "axes", "count", "at_least", "one_of", "per_spatial_axis", "pads", "check_node",
           "check_new_tensor", "with_checks"]

Rank = int | tuple[int, int | None]


#: one attribute's allowed values: check(value, input ranks) says what is wrong with it, or None
Check = Callable[[object, Sequence[int | None]], str | None]


def _rank_of(ranks, index: int) -> int | None:
    return ranks[index] if index < len(ranks) else None


def axis(input: int = 0, extra: int = 0, end: bool = False) -> Check:  # noqa: A002 - ONNX's word
    """An axis of input `input` (counting from the end when negative); `extra` more axes where
    the op inserts axes (OneHot), and with `end` the position after the last axis (Flatten)."""

    def problem(value, ranks):
        rank = _rank_of(ranks, input)
        if rank is None:
            return None
        low, high = -(rank + extra), rank + extra - 1 + int(end)
        if low <= value <= max(high, 0):
            return None
        return f"must be in {low}..{max(high, 0)} for input {input} of rank {rank}"

    return problem


def axes(input: int = 0, extra: int = 0) -> Check:  # noqa: A002
    """A list of distinct axes of input `input`."""
    one = axis(input, extra)

    def problem(values, ranks):
        for value in values:
            found = one(value, ranks)
            if found is not None:
                return f"has {value}, which {found}"
        rank = _rank_of(ranks, input)
        if rank is not None and len({v % (rank + extra) for v in values}) != len(values):
            return "repeats an axis"
        return None

    return problem


def count(low: int = 1, limit: str | None = None) -> Check:
    """An integer of at least `low` (1: a positive count), and at most the current limit `limit`."""

    def problem(value, ranks):
        if value < low:
            return f"must be at least {low}"
        if limit is not None and value > getattr(current_limits(), limit):
            bound = getattr(current_limits(), limit)
            return f"must be at most {bound} (the '{limit}' limit; raise it with --limit {limit}=N)"
        return None

    return problem


def at_least(low: float, *, each: bool = False) -> Check:
    """A number (or, with `each`, every number of a list) of at least `low`; NaN never is."""
    check = attr_checks.at_least(low)

    def problem(value, ranks):
        values = tuple(value) if each else value
        message = check(values)
        if message is None or not each:
            return message
        return f"{message} (has {next(v for v in values if not v >= low)})"

    return problem


def one_of(*choices) -> Check:
    """One of `choices`."""
    check = attr_checks.one_of(*choices)

    def problem(value, ranks):
        return check(value)

    return problem


def per_spatial_axis(input: int = 0, low: int = 1) -> Check:  # noqa: A002
    """One integer of at least `low` per spatial axis of input `input` (its rank minus 2)."""

    def problem(values, ranks):
        rank = _rank_of(ranks, input)
        if rank is not None and len(values) != rank - 2:
            return f"needs {rank - 2} values (one per spatial axis of input {input}), has {len(values)}"
        if any(v < low for v in values):
            return f"needs values of at least {low}"
        return None

    return problem


def pads(input: int = 0) -> Check:  # noqa: A002
    """Begin and end pads of every spatial axis of input `input`, none negative."""

    def problem(values, ranks):
        rank = _rank_of(ranks, input)
        if rank is not None and len(values) != 2 * (rank - 2):
            return f"needs {2 * (rank - 2)} values (begin and end of each spatial axis), has {len(values)}"
        if any(v < 0 for v in values):
            return "needs values of at least 0"
        return None

    return problem


def _rank_problem(rank: int, want: Rank) -> str | None:
    low, high = (want, want) if isinstance(want, int) else want
    if rank >= low and (high is None or rank <= high):
        return None
    if low == high:
        return f"must have rank {low}"
    return f"must have rank at least {low}" if high is None else f"must have rank {low}..{high}"


def check_node(ctx, inputs, attrs, checks: Mapping[str, Check], ranks: Mapping[int, Rank]) -> None:
    """ModelError naming the node and the first input or attribute outside its definition."""
    present = [None if v is None else v.type.rank for v in inputs]
    for index, want in ranks.items():
        if index < len(present) and present[index] is not None:
            found = _rank_problem(present[index], want)
            if found is not None:
                raise ModelError(f"{ctx.where}: input {index} has shape {inputs[index].shape}; it {found}")
    for name, check in checks.items():
        if name in attrs:
            found = check(attrs[name], present)
            if found is not None:
                raise ModelError(f"{ctx.where}: attribute {name}={_show(attrs[name])} {found}")


def _show(value) -> str:
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"[{', '.join(map(str, value[:8]))}, ...] ({len(value)} values)"
    return repr(list(value)) if isinstance(value, tuple) else repr(value)


def with_checks(fn, checks: Mapping[str, Check] | None, ranks: Mapping[int, Rank] | None):
    """`fn` with its node checked first (`fn` itself when nothing is declared)."""
    if not checks and not ranks:
        return fn
    checks, ranks = dict(checks or {}), dict(ranks or {})

    def checked(ctx, inputs, attrs):
        check_node(ctx, inputs, attrs, checks, ranks)
        return fn(ctx, inputs, attrs)

    checked.__name__, checked.__qualname__, checked.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
    checked.__wrapped__ = fn
    checked.checks, checked.ranks = checks, ranks
    return checked


def check_new_tensor(ctx, shape, dtype: str, what: str) -> tuple:
    """The shape of a tensor a converter is about to make from the model's numbers (ints, or Dims
    of a shape computed from symbolic shapes), checked first: ModelError for a negative dimension,
    LimitError beyond the `tensor_bytes` limit (a symbolic size at the bounds of its variables)."""
    import math

    from edgecc.ir.dims import Dim, format_shape
    from edgecc.ir.limits import check_tensor_bytes
    from edgecc.ir.types import np_dtype

    shape = tuple(d if isinstance(d, Dim) else int(d) for d in shape)
    if any(d < 0 for d in shape):
        raise ModelError(f"{ctx.where}: {what} {format_shape(shape)} has a negative dimension")
    check_tensor_bytes(f"{ctx.where}: {what} {format_shape(shape)}", math.prod(shape) * np_dtype(dtype).itemsize,
                       getattr(ctx, "dim_bounds", None))
    return shape
