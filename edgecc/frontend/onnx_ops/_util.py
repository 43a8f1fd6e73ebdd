"""Helpers the ONNX converters share: optional inputs, constants, casts, taking and stacking slices."""

from __future__ import annotations

import numpy as np

from edgecc.ir.types import np_dtype


def optional_input(inputs, i):
    """The i-th input, or None when it is absent."""
    return inputs[i] if len(inputs) > i else None


def scalar(ctx, value, dtype: str, name: str = "c"):
    """A 0-d constant of `dtype`."""
    return ctx.const(np.array(value, dtype=np_dtype(dtype)), name)


def cast(ctx, x, dtype: str):
    """x as `dtype`, with no cast when it already is."""
    return x if x.dtype == dtype else ctx.emit("cast", x, to=dtype)


def take(ctx, x, axis: int, index: int):
    """x[..., index, ...] along `axis`, with that axis dropped."""
    part = ctx.emit("slice", x, starts=(index,), ends=(index + 1,), axes=(axis,))
    shape = x.shape[:axis] + x.shape[axis + 1:]
    return ctx.emit("reshape", part, shape=shape)


def stack(ctx, values, axis: int):
    """The values (of one shape) stacked along a new axis `axis`."""
    shape = values[0].shape
    parts = [ctx.emit("reshape", v, shape=shape[:axis] + (1,) + shape[axis:]) for v in values]
    return parts[0] if len(parts) == 1 else ctx.emit("concat", *parts, axis=axis)
