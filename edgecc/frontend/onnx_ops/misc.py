"""Converters for OneHot, Trilu and Einsum."""

from __future__ import annotations

from . import converter


@converter("OneHot")
def _one_hot(ctx, inputs, attrs):
    depth = int(ctx.static(inputs[1], "depth").reshape(-1)[0])
    return ctx.emit("one_hot", inputs[0], inputs[2], depth=depth, axis=attrs.get("axis", -1))


@converter("Trilu")
def _trilu(ctx, inputs, attrs):
    k = 0
    if len(inputs) > 1 and inputs[1] is not None:
        k = int(ctx.static(inputs[1], "k").reshape(-1)[0])
    return ctx.emit("trilu", inputs[0], upper=attrs.get("upper", 1), k=k)


@converter("Einsum")
def _einsum(ctx, inputs, attrs):
    return ctx.emit("einsum", *inputs, equation=attrs["equation"])
