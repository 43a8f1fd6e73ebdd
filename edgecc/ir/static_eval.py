"""Static evaluation: the value of a tensor when it follows from constants and shapes.

Used by type inference of ops whose result shape depends on another tensor's contents
(for example a Reshape fed by a Shape -> Gather -> Concat chain) and by folding passes.

A shape vector computed from a symbolic shape is known at compile time as a formula: its value
is a numpy array of dtype object holding ints and `Dim`s (`[batch, seq, 4, 16]`), and arrays
without a Dim are plain integer arrays. Such a value is never a constant of the graph (passes
must not fold it into one); `static_dims` reads it as a tuple of ints and Dims.
"""

from __future__ import annotations

import numpy as np

from .dims import Dim, has_dims
from .graph import Value
from .limits import current_limits
from .ops import Trait, get_op

__all__ = ["static_value", "static_dims", "is_symbolic_value", "fold_node", "within_fold_limits"]

_KEY = "static_value"
_UNKNOWN = object()


def within_fold_limits(node) -> bool:
    """Whether folding `node` stays within the current limits' `fold_bytes` (inputs and outputs)
    and `fold_work` (multiply-adds of a contraction, else elements touched)."""
    limits = current_limits()
    values = list(_read_inputs(node)) + list(node.outputs)
    if not all(v.type.is_static for v in values):
        return False
    if sum(v.type.nbytes for v in values) > limits.fold_bytes:
        return False
    return fold_work(node) <= limits.fold_work


def _read_inputs(node):
    """The inputs whose contents folding `node` reads (none for ops on shapes)."""
    if get_op(node.op).has(Trait.SHAPE):
        return []
    return [v for v in node.inputs if v is not None]


def fold_work(node) -> int:
    """An upper bound of the work of evaluating `node` with numpy: for an op that heads a fusion
    group (convolution, matrix products, pooling) each output element may read all of its largest
    input; other ops touch each element of their inputs and outputs about once."""
    sizes = [v.type.size for v in _read_inputs(node)]
    out = sum(o.type.size for o in node.outputs)
    if get_op(node.op).has(Trait.ANCHOR):
        return out * max(sizes, default=1)
    return sum(sizes) + out


def fold_node(node, inputs: list) -> list[np.ndarray] | None:
    """Evaluate a node with numpy from its input arrays (None entries for unknown inputs)."""
    opdef = get_op(node.op)
    if opdef.fold_fn is None:
        return None
    if not opdef.has(Trait.SHAPE) and any(a is None for v, a in zip(node.inputs, inputs) if v is not None):
        return None
    try:
        with np.errstate(all="ignore"):
            return opdef.fold(node, inputs)
    except (ValueError, TypeError, IndexError, ZeroDivisionError, OverflowError):
        return None


def static_value(value: Value | None, max_elements: int = 1 << 16) -> np.ndarray | None:
    """The contents of `value` if they are known at compile time, else None.

    Only tensors of at most `max_elements` elements are evaluated; results are cached on the value.
    """
    if value is None:
        return None
    if value.const is not None:
        return value.const
    stack = [value]
    while stack:
        v = stack[-1]
        if _KEY in v.scratch or v.const is not None:
            stack.pop()
            continue
        node = v.producer
        if (node is None or not v.type.is_static or v.type.size > max_elements or get_op(node.op).fold_fn is None
                or not within_fold_limits(node)):
            v.scratch[_KEY] = _UNKNOWN
            stack.pop()
            continue
        shape_op = get_op(node.op).has(Trait.SHAPE)
        pending = [
            i for i in node.inputs
            if i is not None and i.const is None and _KEY not in i.scratch and not shape_op
        ]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        arrays = None if shape_op else [_known(i) for i in node.inputs]
        results = fold_node(node, arrays if arrays is not None else [None] * len(node.inputs))
        for out, res in zip(node.outputs, results or [None] * len(node.outputs)):
            out.scratch[_KEY] = _UNKNOWN if res is None else res
    got = value.scratch.get(_KEY, _UNKNOWN)
    return None if got is _UNKNOWN else got


def static_dims(value: Value | None) -> tuple | None:
    """The compile-time contents of a 0-d or 1-d integer tensor as a tuple of ints and Dims (a
    shape vector computed from symbolic shapes), or None when it depends on run-time data."""
    data = static_value(value)
    if data is None or data.ndim > 1 or not (data.dtype == object or np.issubdtype(data.dtype, np.integer)):
        return None
    return tuple(v if isinstance(v, Dim) else int(v) for v in data.reshape(-1))


def is_symbolic_value(data) -> bool:
    """Whether a static value holds symbolic dimensions (and so cannot become a constant)."""
    return has_dims(data)


def _known(v: Value | None):
    if v is None:
        return None
    if v.const is not None:
        return v.const
    got = v.scratch.get(_KEY, _UNKNOWN)
    return None if got is _UNKNOWN else got
