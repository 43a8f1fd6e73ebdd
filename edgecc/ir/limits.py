"""Limits on what a model may ask a compile for.

A model file is untrusted input: a single attribute can ask for billions of outputs, a tensor
larger than the machine, or a loop unrolled forever. Each `Limits` field bounds one such request;
exceeding it is a `LimitError` (one line naming the limit and how to raise it), never an
out-of-memory kill. Constant folding is the exception: a fold over its limits is skipped, the
node stays and runs in the compiled library.

The compile (`edgecc.driver`) makes its limits current with `use_limits`; the frontend, type
inference and folding read them with `current_limits()` (the defaults when none are set).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace

from edgecc.errors import LimitError

__all__ = ["Limits", "LIMIT_HELP", "current_limits", "use_limits", "parse_limit", "check_tensor_bytes",
           "check_count"]


@dataclass(frozen=True)
class Limits:
    """What one compile may ask for (each raised with `--limit NAME=VALUE`)."""

    outputs: int = 4096  # outputs of one node (Split, TopK ...) and of the graph
    tensor_bytes: int = 1 << 30  # bytes of any one tensor: inputs, constants, intermediate results
    unroll: int = 4096  # iterations a Loop or Scan is unrolled to
    fold_bytes: int = 64 << 20  # bytes a constant fold may read and write; larger folds are skipped
    fold_work: int = 1 << 28  # multiply-adds (or elements) of one constant fold; larger folds are skipped

    def with_values(self, values: dict[str, int]) -> Limits:
        """A copy with some limits changed; LimitError for unknown names or non-positive values."""
        known = {f.name for f in fields(self)}
        for name, value in values.items():
            if name not in known:
                raise LimitError(f"unknown limit '{name}' (known: {', '.join(sorted(known))})")
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise LimitError(f"limit {name} must be a positive integer, got {value!r}")
        return replace(self, **values)


#: one line per limit, for `--help` and the docs
LIMIT_HELP = {
    "outputs": "outputs of one node or of the graph",
    "tensor_bytes": "bytes of any one tensor",
    "unroll": "iterations of an unrolled Loop or Scan",
    "fold_bytes": "bytes one constant fold may touch (larger folds are left to run time)",
    "fold_work": "work of one constant fold (larger folds are left to run time)",
}

_SUFFIXES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_limit(text: str) -> tuple[str, int]:
    """'NAME=VALUE' (VALUE an integer, optionally with a k/m/g/t binary suffix) -> (name, value)."""
    name, sep, raw = text.partition("=")
    name = name.strip().replace("-", "_")
    raw = raw.strip().lower()
    scale = _SUFFIXES.get(raw[-1:], 1)
    digits = raw[:-1] if scale != 1 else raw
    if not sep or not name or not digits.isdigit():
        raise LimitError(f"--limit takes NAME=VALUE with a positive integer VALUE, got '{text}'")
    if name not in LIMIT_HELP:
        raise LimitError(f"unknown limit '{name}' (known: {', '.join(sorted(LIMIT_HELP))})")
    return name, int(digits) * scale


_CURRENT: contextvars.ContextVar[Limits] = contextvars.ContextVar("edgecc_limits", default=Limits())


def current_limits() -> Limits:
    """The limits of the compile in progress (the defaults outside one)."""
    return _CURRENT.get()


@contextmanager
def use_limits(limits: Limits | None) -> Iterator[Limits]:
    """Make `limits` current for the block (None keeps the current ones)."""
    if limits is None:
        yield current_limits()
        return
    token = _CURRENT.set(limits)
    try:
        yield limits
    finally:
        _CURRENT.reset(token)


def check_count(what: str, count: int, limit_name: str = "outputs") -> None:
    """LimitError when `count` exceeds the current limit `limit_name`."""
    limit = getattr(current_limits(), limit_name)
    if count > limit:
        raise LimitError(f"{what}: {count} exceeds the limit of {limit} {LIMIT_HELP[limit_name]} "
                         f"(raise it with --limit {limit_name}=N)")


def check_tensor_bytes(what: str, nbytes, bounds=None) -> None:
    """LimitError when one tensor of `nbytes` bytes exceeds the current `tensor_bytes` limit.
    A symbolic size is checked at the upper bounds of its variables (`bounds`: {var: (lo, hi)}),
    and not at all when one of them has no upper bound."""
    from .dims import Dim, upper_bound

    if isinstance(nbytes, Dim):
        nbytes = upper_bound(nbytes, bounds or {})
        if nbytes is None:
            return
        what += " at the largest allowed sizes"
    limit = current_limits().tensor_bytes
    if nbytes > limit:
        raise LimitError(f"{what}: a tensor of {nbytes} bytes exceeds the limit of {limit} bytes "
                         f"(raise it with --limit tensor_bytes=N)")
