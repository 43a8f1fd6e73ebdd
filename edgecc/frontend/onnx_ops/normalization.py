"""Converters for RMSNormalization, LpNormalization, MeanVarianceNormalization and GroupNormalization."""

from __future__ import annotations

from . import converter
from .checks import axes, axis, count, one_of
from ._util import scalar


def _norm_axes(ctx, axis: int, rank: int) -> tuple[int, ...]:
    if not -rank <= axis < rank:
        raise ctx.fail(f"axis {axis} is out of range for rank {rank}")
    return tuple(range(axis % rank, rank))


@converter("RMSNormalization", since=23, checks={"axis": axis()})
def _rms_normalization(ctx, inputs, attrs):
    x, scale = inputs[0], inputs[1]
    if attrs.get("stash_type", 1) != 1:
        raise ctx.unsupported("stash_type other than float32")
    axes = _norm_axes(ctx, attrs.get("axis", -1), x.type.rank)
    eps = scalar(ctx, attrs.get("epsilon", 1e-5), x.dtype, "epsilon")
    square = ctx.emit("pow", x, scalar(ctx, 2, x.dtype, "two"))
    mean_square = ctx.emit("reduce_mean", square, axes=axes, keepdims=1)
    rms = ctx.emit("sqrt", ctx.emit("add", mean_square, eps))
    y = ctx.emit("mul", x, ctx.emit("reciprocal", rms))
    return ctx.emit("mul", y, scale)


@converter("LpNormalization", since=1, checks={"axis": axis(), "p": one_of(1, 2)})
def _lp_normalization(ctx, inputs, attrs):
    x = inputs[0]
    p, axis = attrs.get("p", 2), attrs.get("axis", -1)
    if p not in (1, 2):
        raise ctx.unsupported(f"p={p}")
    axes = (axis % x.type.rank,)
    norm = ctx.emit("reduce_l1" if p == 1 else "reduce_l2", x, axes=axes, keepdims=1)
    zero = scalar(ctx, 0, x.dtype, "zero")
    y = ctx.emit("div", x, norm)
    return ctx.emit("where", ctx.emit("equal", norm, zero), zero, y)


@converter("MeanVarianceNormalization", since=9, checks={"axes": axes()})
def _mean_variance_normalization(ctx, inputs, attrs):
    x = inputs[0]
    axes = tuple(a % x.type.rank for a in attrs.get("axes", (0, 2, 3)))
    mean = ctx.emit("reduce_mean", x, axes=axes, keepdims=1)
    mean_of_square = ctx.emit("reduce_mean", ctx.emit("mul", x, x), axes=axes, keepdims=1)
    variance = ctx.emit("sub", mean_of_square, ctx.emit("mul", mean, mean))
    std = ctx.emit("sqrt", ctx.emit("add", variance, scalar(ctx, 1e-9, x.dtype, "epsilon")))
    return ctx.emit("div", ctx.emit("sub", x, mean), std)


def _group_norm(ctx, inputs, attrs, per_channel: bool):
    x, scale, bias = inputs[:3]
    groups = attrs["num_groups"]
    n, c = x.shape[:2]
    if c % groups:
        raise ctx.fail(f"{c} channels do not split into {groups} groups")
    if attrs.get("stash_type", 1) != 1:
        raise ctx.unsupported("stash_type other than float32")
    grouped = ctx.emit("reshape", x, shape=(n, groups, x.type.size // (n * groups)))
    mean = ctx.emit("reduce_mean", grouped, axes=(2,), keepdims=1)
    centered = ctx.emit("sub", grouped, mean)
    variance = ctx.emit("reduce_mean", ctx.emit("mul", centered, centered), axes=(2,), keepdims=1)
    eps = scalar(ctx, attrs.get("epsilon", 1e-5), x.dtype, "epsilon")
    normalized = ctx.emit("div", centered, ctx.emit("sqrt", ctx.emit("add", variance, eps)))
    y = ctx.emit("reshape", normalized, shape=x.shape)
    spatial = (1,) * (x.type.rank - 2)
    if per_channel:
        scale = ctx.emit("reshape", scale, shape=(c, *spatial))
        bias = ctx.emit("reshape", bias, shape=(c, *spatial))
    else:  # opset 18: one scale and bias per group
        scale = ctx.emit("reshape", ctx.emit("expand", ctx.emit("reshape", scale, shape=(groups, 1)),
                                             shape=(groups, c // groups)), shape=(c, *spatial))
        bias = ctx.emit("reshape", ctx.emit("expand", ctx.emit("reshape", bias, shape=(groups, 1)),
                                            shape=(groups, c // groups)), shape=(c, *spatial))
    return ctx.emit("add", ctx.emit("mul", y, scale), bias)


@converter("GroupNormalization", since=18, checks={"num_groups": count()}, ranks={0: (3, None)})
def _group_normalization_18(ctx, inputs, attrs):
    return _group_norm(ctx, inputs, attrs, per_channel=False)


@converter("GroupNormalization", since=21, checks={"num_groups": count()}, ranks={0: (3, None)})
def _group_normalization(ctx, inputs, attrs):
    return _group_norm(ctx, inputs, attrs, per_channel=True)
