"""Converters for training ops: the losses and the ai.onnx.preview.training optimizer steps."""

from __future__ import annotations

import numpy as np

from edgecc.ir.types import np_dtype

from . import converter
from ._util import cast, optional_input, scalar


def _nll(ctx, log_prob, target, weight, attrs, *, plain_mean_at_minus_one: bool):
    """-log_prob[n, target[n, ...], ...], weighted and reduced as NegativeLogLikelihoodLoss.

    `plain_mean_at_minus_one`: without weights and with ignore_index -1, NegativeLogLikelihoodLoss's
    reference averages over every element, the ignored ones included; SoftmaxCrossEntropyLoss's
    averages over the others only.
    """
    if target.shape != log_prob.shape[:1] + log_prob.shape[2:]:
        raise ctx.fail(f"the target has shape {target.shape}; scores of shape {log_prob.shape} need "
                       f"{log_prob.shape[:1] + log_prob.shape[2:]} (the scores without their class axis)")
    dtype = log_prob.dtype
    classes = log_prob.shape[1]
    ignore = attrs.get("ignore_index")
    reduction = attrs.get("reduction", "mean")
    target = cast(ctx, target, "int64")
    index = ctx.emit("clip", target, min=0, max=classes - 1)
    column = ctx.emit("reshape", index, shape=(target.shape[0], 1, *target.shape[1:]))
    picked = ctx.emit("gather_elements", log_prob, column, axis=1)
    loss = ctx.emit("neg", ctx.emit("reshape", picked, shape=target.shape))
    zero = scalar(ctx, 0, dtype, "zero")
    ignored = None
    if ignore is not None:
        ignored = ctx.emit("equal", target, ctx.const(np.array(ignore, np.int64), "ignore_index"))
        loss = ctx.emit("where", ignored, zero, loss)
    weights = None
    if weight is not None:
        weights = ctx.emit("gather", weight, index, axis=0)
        if ignored is not None:
            weights = ctx.emit("where", ignored, zero, weights)
    elif ignored is not None and (ignore != -1 or not plain_mean_at_minus_one):
        weights = ctx.emit("where", ignored, zero, scalar(ctx, 1, dtype, "one"))
    if weights is not None:
        loss = ctx.emit("mul", weights, loss)
        if reduction == "mean":
            total = ctx.emit("reduce_sum", loss, keepdims=0)
            return ctx.emit("div", total, ctx.emit("reduce_sum", weights, keepdims=0))
    if reduction == "mean":
        return ctx.emit("reduce_mean", loss, keepdims=0)
    if reduction == "sum":
        return ctx.emit("reduce_sum", loss, keepdims=0)
    if reduction != "none":
        raise ctx.fail(f"unknown reduction '{reduction}'")
    return loss


@converter("NegativeLogLikelihoodLoss", since=12)
def _negative_log_likelihood_loss(ctx, inputs, attrs):
    x, target, weight = inputs[0], inputs[1], optional_input(inputs, 2)
    if x.type.rank < 2:
        raise ctx.fail("the input must have a class axis (rank 2 or more)")
    return _nll(ctx, x, target, weight, attrs, plain_mean_at_minus_one=True)


@converter("SoftmaxCrossEntropyLoss", since=12)
def _softmax_cross_entropy_loss(ctx, inputs, attrs):
    x, target, weight = inputs[0], inputs[1], optional_input(inputs, 2)
    if x.type.rank < 2:
        raise ctx.fail("the scores must have a class axis (rank 2 or more)")
    log_prob = ctx.emit("log_softmax", x, axis=1)
    loss = _nll(ctx, log_prob, target, weight, attrs, plain_mean_at_minus_one=False)
    return [loss, log_prob]


def _training_groups(inputs, per_tensor: int):
    """(r, t, [(x, g, ...), ...]) from the optimizers' flat input list."""
    r, t = inputs[0], inputs[1]
    n = (len(inputs) - 2) // per_tensor
    return r, t, [tuple(inputs[2 + n * j + i] for j in range(per_tensor)) for i in range(n)]


def _f(ctx, value, like):
    return scalar(ctx, value, like.dtype, "coefficient")


@converter("Adagrad", domain="ai.onnx.preview.training")
def _adagrad(ctx, inputs, attrs):
    r, t, groups = _training_groups(inputs, 3)
    decay, eps, norm = attrs.get("decay_factor", 0.0), attrs.get("epsilon", 0.0), attrs.get("norm_coefficient", 0.0)
    tf = cast(ctx, t, r.dtype)
    rate = ctx.emit("div", r, ctx.emit("add", _f(ctx, 1.0, r), ctx.emit("mul", tf, _f(ctx, decay, r))))
    xs, hs = [], []
    for x, g, h in groups:
        g = ctx.emit("add", ctx.emit("mul", _f(ctx, norm, x), x), g)
        h_new = ctx.emit("add", h, ctx.emit("mul", g, g))
        denom = ctx.emit("add", ctx.emit("sqrt", h_new), _f(ctx, eps, x))
        xs.append(ctx.emit("sub", x, ctx.emit("div", ctx.emit("mul", cast(ctx, rate, x.dtype), g), denom)))
        hs.append(h_new)
    return xs + hs


@converter("Momentum", domain="ai.onnx.preview.training")
def _momentum(ctx, inputs, attrs):
    r, t, groups = _training_groups(inputs, 3)
    alpha, beta, norm = attrs["alpha"], attrs["beta"], attrs["norm_coefficient"]
    nesterov = attrs.get("mode", "standard") == "nesterov"
    first = ctx.emit("greater", t, ctx.const(np.array(0, dtype=np_dtype(t.dtype)), "zero"))
    xs, vs = [], []
    for x, g, v in groups:
        g = ctx.emit("add", ctx.emit("mul", _f(ctx, norm, x), x), g)
        b = ctx.emit("where", first, _f(ctx, beta, x), _f(ctx, 1.0, x))
        v_new = ctx.emit("add", ctx.emit("mul", _f(ctx, alpha, x), v), ctx.emit("mul", b, g))
        step = ctx.emit("add", g, ctx.emit("mul", _f(ctx, alpha, x), v_new)) if nesterov else v_new
        xs.append(ctx.emit("sub", x, ctx.emit("mul", cast(ctx, r, x.dtype), step)))
        vs.append(v_new)
    return xs + vs


@converter("Adam", domain="ai.onnx.preview.training")
def _adam(ctx, inputs, attrs):
    r, t, groups = _training_groups(inputs, 4)
    alpha, beta = attrs.get("alpha", 0.9), attrs.get("beta", 0.999)
    eps, norm = attrs.get("epsilon", 0.0), attrs.get("norm_coefficient", 0.0)
    post = attrs.get("norm_coefficient_post", 0.0)
    tf = cast(ctx, t, r.dtype)
    one = _f(ctx, 1.0, r)
    correction = ctx.emit("div", ctx.emit("sqrt", ctx.emit("sub", one, ctx.emit("pow", _f(ctx, beta, r), tf))),
                          ctx.emit("sub", one, ctx.emit("pow", _f(ctx, alpha, r), tf)))
    positive = ctx.emit("greater", t, ctx.const(np.array(0, dtype=np_dtype(t.dtype)), "zero"))
    rate = ctx.emit("where", positive, ctx.emit("mul", r, correction), r)
    xs, vs, hs = [], [], []
    for x, g, v, h in groups:
        g = ctx.emit("add", ctx.emit("mul", _f(ctx, norm, x), x), g)
        v_new = ctx.emit("add", ctx.emit("mul", _f(ctx, alpha, x), v), ctx.emit("mul", _f(ctx, 1 - alpha, x), g))
        h_new = ctx.emit("add", ctx.emit("mul", _f(ctx, beta, x), h),
                         ctx.emit("mul", _f(ctx, 1 - beta, x), ctx.emit("mul", g, g)))
        denom = ctx.emit("add", ctx.emit("sqrt", h_new), _f(ctx, eps, x))
        x_new = ctx.emit("sub", x, ctx.emit("mul", cast(ctx, rate, x.dtype), ctx.emit("div", v_new, denom)))
        xs.append(ctx.emit("mul", _f(ctx, 1 - post, x), x_new))
        vs.append(v_new)
        hs.append(h_new)
    return xs + vs + hs
