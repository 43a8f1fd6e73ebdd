"""Converters for the ONNX ops beyond the core set.

Most build the op out of other IR ops: attention, normalizations (RMS, Lp, group, mean-variance),
the losses, Swish/SwiGLU, rotary embeddings, signal processing (DFT, STFT,
windows, mel weights), recurrent layers (RNN, GRU, LSTM, unrolled over the static sequence),
control flow (If inlined or selected, Scan and Loop unrolled), optimizer steps and a few ai.onnx.ml
ops. CumProd, BitCast, GridSample, Col2Im, RoiAlign and DeformConv have IR ops of their own
(`edgecc.ir.ops.extra`). Each follows the op's reference implementation in `onnx.reference`.
"""

from __future__ import annotations

import numpy as np

from edgecc.ir.types import np_dtype

from ..onnx import onnx_dtype
from . import converter


def _opt(inputs, i):
    return inputs[i] if len(inputs) > i else None


def _scalar(ctx, value, dtype: str, name: str = "c"):
    return ctx.const(np.array(value, dtype=np_dtype(dtype)), name)


def _cast(ctx, x, dtype: str):
    return x if x.dtype == dtype else ctx.emit("cast", x, to=dtype)


def _is_float(dtype: str) -> bool:
    return dtype.startswith(("float", "bfloat"))


# ----- attention ---------------------------------------------------------------------------
def _split_heads(ctx, x, heads: int):
    """(B, S, H*D) -> (B, H, S, D)."""
    b, s, hidden = x.shape
    if hidden % heads:
        raise ctx.fail(f"hidden size {hidden} is not a multiple of {heads} heads")
    x = ctx.emit("reshape", x, shape=(b, s, heads, hidden // heads))
    return ctx.emit("transpose", x, perm=(0, 2, 1, 3))


def _repeat_heads(ctx, x, reps: int):
    """(B, H, S, D) -> (B, H*reps, S, D), each head repeated in place: h0, h0, h1, h1, ..."""
    b, h, s, d = x.shape
    x = ctx.emit("reshape", x, shape=(b, h, 1, s, d))
    x = ctx.emit("expand", x, shape=(b, h, reps, s, d))
    return ctx.emit("reshape", x, shape=(b, h * reps, s, d))


class _Bias:
    """The additive attention bias: a constant part and run-time terms, each 0 or -inf (or a
    float mask's values)."""

    def __init__(self, ctx, dtype: str, sq: int, skv: int):
        self.ctx, self.dtype = ctx, dtype
        self.static = np.zeros((sq, skv), dtype=np_dtype(dtype))
        self.terms: list = []

    def where(self, allowed, shape=None):
        """A term: 0 where `allowed` (a bool Value or array), -inf elsewhere."""
        npd = np_dtype(self.dtype)
        if isinstance(allowed, np.ndarray):
            self.static = self.static + np.where(allowed, npd.type(0), npd.type(-np.inf)).astype(npd)
            return
        ctx = self.ctx
        term = ctx.emit("where", allowed, _scalar(ctx, 0, self.dtype), _scalar(ctx, -np.inf, self.dtype))
        if shape is not None:
            term = ctx.emit("reshape", term, shape=shape)
        self.terms.append(term)

    def value(self):
        """The bias as a Value (None when it is all zeros); built once."""
        if not hasattr(self, "_value"):
            ctx = self.ctx
            acc = ctx.const(self.static, "attn_bias") if self.static.any() else None
            for term in self.terms:
                acc = term if acc is None else ctx.emit("add", acc, term)
            self._value = acc
        return self._value

    def fully_masked_rows(self):
        """Rows the bias masks entirely: a bool array, a bool Value, or None when there are none."""
        ctx = self.ctx
        if not self.terms:
            rows = np.isneginf(self.static.max(axis=-1, keepdims=True))
            return rows if rows.any() else None
        # count the attendable keys of each row (0/1 flags, so no reduction identity is involved)
        open_keys = ctx.emit("logical_not", ctx.emit("isinf", self.value(), detect_positive=0, detect_negative=1))
        count = ctx.emit("reduce_sum", ctx.emit("cast", open_keys, to="float32"), axes=(-1,), keepdims=1)
        return ctx.emit("equal", count, ctx.const(np.array(0, np.float32), "zero"))


def _attention_bias(ctx, attrs, mask, nonpad, batch: int, sq: int, skv: int, past: int, dtype: str) -> _Bias:
    bias = _Bias(ctx, dtype, sq, skv)
    if mask is not None:
        missing = skv - mask.shape[-1]
        if missing > 0:  # a mask shorter than the keys masks the rest
            fill = False if mask.dtype == "bool" else -np.inf
            pad = ctx.const(np.full(mask.shape[:-1] + (missing,), fill, dtype=np_dtype(mask.dtype)), "mask_pad")
            mask = ctx.emit("concat", mask, pad, axis=-1)
        if mask.dtype == "bool":
            bias.where(mask)
        else:
            bias.terms.append(_cast(ctx, mask, dtype))
    i = np.arange(sq).reshape(sq, 1)
    j = np.arange(skv).reshape(1, skv)
    per_batch = nonpad is not None and past == 0
    offsets = None
    if per_batch:  # the key frontier of each batch: nonpad_kv_seqlen - q_len
        offsets = ctx.emit("reshape", _cast(ctx, nonpad, "int64"), shape=(batch, 1, 1))
        offsets = ctx.emit("add", offsets, ctx.const(i - sq, "query_index"))
    if attrs.get("is_causal", 0):
        if per_batch:
            allowed = ctx.emit("less_equal", ctx.const(j, "key_index"), offsets)
            bias.where(allowed, shape=(batch, 1, sq, skv))
        else:
            bias.where(j <= i + past)
    left, right = attrs.get("left_window_size", -1), attrs.get("right_window_size", -1)
    if left >= 0 or right >= 0:
        if per_batch:
            diff = ctx.emit("sub", offsets, ctx.const(j, "key_index"))
            allowed = None
            if left >= 0:
                allowed = ctx.emit("less_equal", diff, ctx.const(np.array(left, np.int64), "left"))
            if right >= 0:
                ok = ctx.emit("greater_equal", diff, ctx.const(np.array(-right, np.int64), "right"))
                allowed = ok if allowed is None else ctx.emit("logical_and", allowed, ok)
            bias.where(allowed, shape=(batch, 1, sq, skv))
        else:
            diff = i + past - j
            allowed = np.ones(diff.shape, dtype=bool)
            if left >= 0:
                allowed &= diff <= left
            if right >= 0:
                allowed &= -diff <= right
            bias.where(allowed)
    if nonpad is not None:
        valid = ctx.emit("less", ctx.const(j.reshape(1, skv), "key_index"),
                         ctx.emit("reshape", _cast(ctx, nonpad, "int64"), shape=(batch, 1)))
        bias.where(valid, shape=(batch, 1, 1, skv))
    return bias


@converter("Attention", since=23)
def _attention(ctx, inputs, attrs):
    q, k, v = inputs[:3]
    mask, past_k, past_v, nonpad = (_opt(inputs, i) for i in (3, 4, 5, 6))
    dtype = q.dtype
    rank3 = q.type.rank == 3
    if rank3:
        q_heads, kv_heads = attrs.get("q_num_heads"), attrs.get("kv_num_heads")
        if not q_heads or not kv_heads:
            raise ctx.fail("3-D inputs need the q_num_heads and kv_num_heads attributes")
        q, k, v = _split_heads(ctx, q, q_heads), _split_heads(ctx, k, kv_heads), _split_heads(ctx, v, kv_heads)
    if q.type.rank != 4 or k.type.rank != 4 or v.type.rank != 4:
        raise ctx.fail("Q, K and V must all be 3-D or all be 4-D")
    batch, q_heads, sq, head_size = q.shape
    scale = attrs.get("scale")
    if scale is None:
        scale = 1 / np.sqrt(head_size)
    root = _scalar(ctx, np.sqrt(scale), dtype, "scale")  # applied to Q and K both, as the reference
    past = 0
    if past_k is not None:
        past = past_k.shape[2]
        k = ctx.emit("concat", past_k, k, axis=2)
        v = ctx.emit("concat", past_v, v, axis=2)
    present_k, present_v = k, v
    skv = k.shape[2]
    bias = _attention_bias(ctx, attrs, mask, nonpad, batch, sq, skv, past, dtype)
    kv_heads = k.shape[1]
    if q_heads != kv_heads and q_heads % kv_heads == 0:
        k = _repeat_heads(ctx, k, q_heads // kv_heads)
        v = _repeat_heads(ctx, v, q_heads // kv_heads)
    kt = ctx.emit("transpose", ctx.emit("mul", k, root), perm=(0, 1, 3, 2))
    qk = ctx.emit("matmul", ctx.emit("mul", q, root), kt)
    softcap = attrs.get("softcap", 0.0)
    if softcap and softcap > 0:
        cap = _scalar(ctx, softcap, dtype, "softcap")
        qk = ctx.emit("mul", ctx.emit("tanh", ctx.emit("div", qk, cap)), cap)
    bias_value = bias.value()
    scores = qk if bias_value is None else ctx.emit("add", qk, bias_value)
    mode = attrs.get("qk_matmul_output_mode", 0)
    qk_out = scores if mode == 2 else qk
    precision = attrs.get("softmax_precision")
    if precision:
        scores = _cast(ctx, scores, onnx_dtype(precision))
    probs = ctx.emit("softmax", scores, axis=-1)
    masked = bias.fully_masked_rows()
    if masked is not None:  # a row with no key to attend gives zeros, not NaN
        if isinstance(masked, np.ndarray):
            masked = ctx.const(masked, "masked_rows")
        probs = ctx.emit("where", masked, _scalar(ctx, 0, probs.dtype), probs)
    if mode == 3:
        qk_out = probs
    qk_out = _cast(ctx, qk_out, dtype)
    y = ctx.emit("matmul", _cast(ctx, probs, dtype), v)
    if rank3:
        y = ctx.emit("transpose", y, perm=(0, 2, 1, 3))
        y = ctx.emit("reshape", y, shape=(batch, sq, q_heads * y.shape[3]))
    return [y, present_k, present_v, qk_out]


# ----- normalizations -----------------------------------------------------------------------
def _norm_axes(ctx, axis: int, rank: int) -> tuple[int, ...]:
    if not -rank <= axis < rank:
        raise ctx.fail(f"axis {axis} is out of range for rank {rank}")
    return tuple(range(axis % rank, rank))


@converter("RMSNormalization", since=23)
def _rms_normalization(ctx, inputs, attrs):
    x, scale = inputs[0], inputs[1]
    if attrs.get("stash_type", 1) != 1:
        raise ctx.unsupported("stash_type other than float32")
    axes = _norm_axes(ctx, attrs.get("axis", -1), x.type.rank)
    eps = _scalar(ctx, attrs.get("epsilon", 1e-5), x.dtype, "epsilon")
    square = ctx.emit("pow", x, _scalar(ctx, 2, x.dtype, "two"))
    mean_square = ctx.emit("reduce_mean", square, axes=axes, keepdims=1)
    rms = ctx.emit("sqrt", ctx.emit("add", mean_square, eps))
    y = ctx.emit("mul", x, ctx.emit("reciprocal", rms))
    return ctx.emit("mul", y, scale)


@converter("LpNormalization", since=1)
def _lp_normalization(ctx, inputs, attrs):
    x = inputs[0]
    p, axis = attrs.get("p", 2), attrs.get("axis", -1)
    if p not in (1, 2):
        raise ctx.unsupported(f"p={p}")
    axes = (axis % x.type.rank,)
    norm = ctx.emit("reduce_l1" if p == 1 else "reduce_l2", x, axes=axes, keepdims=1)
    zero = _scalar(ctx, 0, x.dtype, "zero")
    y = ctx.emit("div", x, norm)
    return ctx.emit("where", ctx.emit("equal", norm, zero), zero, y)


@converter("MeanVarianceNormalization", since=9)
def _mean_variance_normalization(ctx, inputs, attrs):
    x = inputs[0]
    axes = tuple(a % x.type.rank for a in attrs.get("axes", (0, 2, 3)))
    mean = ctx.emit("reduce_mean", x, axes=axes, keepdims=1)
    mean_of_square = ctx.emit("reduce_mean", ctx.emit("mul", x, x), axes=axes, keepdims=1)
    variance = ctx.emit("sub", mean_of_square, ctx.emit("mul", mean, mean))
    std = ctx.emit("sqrt", ctx.emit("add", variance, _scalar(ctx, 1e-9, x.dtype, "epsilon")))
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
    eps = _scalar(ctx, attrs.get("epsilon", 1e-5), x.dtype, "epsilon")
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


@converter("GroupNormalization", since=18)
def _group_normalization_18(ctx, inputs, attrs):
    return _group_norm(ctx, inputs, attrs, per_channel=False)


@converter("GroupNormalization", since=21)
def _group_normalization(ctx, inputs, attrs):
    return _group_norm(ctx, inputs, attrs, per_channel=True)


# ----- losses -------------------------------------------------------------------------------
def _nll(ctx, log_prob, target, weight, attrs, *, plain_mean_at_minus_one: bool):
    """-log_prob[n, target[n, ...], ...], weighted and reduced as NegativeLogLikelihoodLoss.

    `plain_mean_at_minus_one`: without weights and with ignore_index -1, NegativeLogLikelihoodLoss's
    reference averages over every element, the ignored ones included; SoftmaxCrossEntropyLoss's
    averages over the others only.
    """
    dtype = log_prob.dtype
    classes = log_prob.shape[1]
    ignore = attrs.get("ignore_index")
    reduction = attrs.get("reduction", "mean")
    target = _cast(ctx, target, "int64")
    index = ctx.emit("clip", target, min=0, max=classes - 1)
    column = ctx.emit("reshape", index, shape=(target.shape[0], 1, *target.shape[1:]))
    picked = ctx.emit("gather_elements", log_prob, column, axis=1)
    loss = ctx.emit("neg", ctx.emit("reshape", picked, shape=target.shape))
    zero = _scalar(ctx, 0, dtype, "zero")
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
        weights = ctx.emit("where", ignored, zero, _scalar(ctx, 1, dtype, "one"))
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
    x, target, weight = inputs[0], inputs[1], _opt(inputs, 2)
    if x.type.rank < 2:
        raise ctx.fail("the input must have a class axis (rank 2 or more)")
    return _nll(ctx, x, target, weight, attrs, plain_mean_at_minus_one=True)


@converter("SoftmaxCrossEntropyLoss", since=12)
def _softmax_cross_entropy_loss(ctx, inputs, attrs):
    x, target, weight = inputs[0], inputs[1], _opt(inputs, 2)
    if x.type.rank < 2:
        raise ctx.fail("the scores must have a class axis (rank 2 or more)")
    log_prob = ctx.emit("log_softmax", x, axis=1)
    loss = _nll(ctx, log_prob, target, weight, attrs, plain_mean_at_minus_one=False)
    return [loss, log_prob]


# ----- activations --------------------------------------------------------------------------
def _swish(ctx, x, alpha: float):
    gate = ctx.emit("sigmoid", x if alpha == 1.0 else ctx.emit("mul", x, _scalar(ctx, alpha, x.dtype, "alpha")))
    return ctx.emit("mul", x, gate)


@converter("Swish", since=24)
def _swish_op(ctx, inputs, attrs):
    return _swish(ctx, inputs[0], attrs.get("alpha", 1.0))


@converter("SwiGLU", since=28)
def _swiglu(ctx, inputs, attrs):
    a, b = inputs[:2]
    if a.shape != b.shape:
        raise ctx.fail(f"A and B differ in shape ({a.shape} and {b.shape})")
    return ctx.emit("mul", _swish(ctx, a, attrs.get("alpha", 1.0)), b)


# ----- rotary embedding ---------------------------------------------------------------------
@converter("RotaryEmbedding", since=23)
def _rotary_embedding(ctx, inputs, attrs):
    x, cos, sin, position_ids = inputs[0], inputs[1], inputs[2], _opt(inputs, 3)
    rank = x.type.rank
    if rank == 4:  # (B, H, S, D) -> (B, S, H, D)
        x = ctx.emit("transpose", x, perm=(0, 2, 1, 3))
    elif rank == 3:
        heads = attrs.get("num_heads")
        if not heads:
            raise ctx.fail("3-D input needs the num_heads attribute")
        b, s, hidden = x.shape
        x = ctx.emit("reshape", x, shape=(b, s, heads, hidden // heads))
    else:
        raise ctx.fail(f"input of rank {rank}; RotaryEmbedding takes 3-D or 4-D")
    b, s, h, d = x.shape
    rot = attrs.get("rotary_embedding_dim", 0) or d
    half = rot // 2
    if position_ids is not None:
        cos = ctx.emit("gather", cos, position_ids, axis=0)
        sin = ctx.emit("gather", sin, position_ids, axis=0)
    if cos.shape[-1] != half or sin.shape[-1] != half:
        raise ctx.fail(f"the caches' last dimension must be rotary_embedding_dim/2 = {half}")
    cos = ctx.emit("reshape", cos, shape=(*cos.shape[:-1], 1, half))
    sin = ctx.emit("reshape", sin, shape=(*sin.shape[:-1], 1, half))
    rotate = x if rot == d else ctx.emit("slice", x, starts=(0,), ends=(rot,), axes=(3,))
    if attrs.get("interleaved", 0):
        pairs = ctx.emit("reshape", rotate, shape=(b, s, h, half, 2))
        x1 = ctx.emit("reshape", ctx.emit("slice", pairs, starts=(0,), ends=(1,), axes=(4,)), shape=(b, s, h, half))
        x2 = ctx.emit("reshape", ctx.emit("slice", pairs, starts=(1,), ends=(2,), axes=(4,)), shape=(b, s, h, half))
    else:
        x1 = ctx.emit("slice", rotate, starts=(0,), ends=(half,), axes=(3,))
        x2 = ctx.emit("slice", rotate, starts=(half,), ends=(rot,), axes=(3,))
    real = ctx.emit("sub", ctx.emit("mul", cos, x1), ctx.emit("mul", sin, x2))
    imag = ctx.emit("add", ctx.emit("mul", sin, x1), ctx.emit("mul", cos, x2))
    if attrs.get("interleaved", 0):
        real = ctx.emit("reshape", real, shape=(b, s, h, half, 1))
        imag = ctx.emit("reshape", imag, shape=(b, s, h, half, 1))
        rotated = ctx.emit("reshape", ctx.emit("concat", real, imag, axis=4), shape=(b, s, h, rot))
    else:
        rotated = ctx.emit("concat", real, imag, axis=3)
    if rot != d:
        rotated = ctx.emit("concat", rotated, ctx.emit("slice", x, starts=(rot,), ends=(d,), axes=(3,)), axis=3)
    if rank == 4:
        return ctx.emit("transpose", rotated, perm=(0, 2, 1, 3))
    return ctx.emit("reshape", rotated, shape=inputs[0].shape)


# ----- window functions ---------------------------------------------------------------------
def _window(kind: str):
    def convert(ctx, inputs, attrs):
        size = int(ctx.static(inputs[0], "the window size").reshape(-1)[0])
        dtype = onnx_dtype(attrs.get("output_datatype", 1))
        periodic = attrs.get("periodic", 1)
        n = np.arange(size, dtype=np.float64)
        span = size if periodic else size - 1
        with np.errstate(all="ignore"):
            if kind == "hann":
                w = np.sin(n * np.pi / span) ** 2
            elif kind == "hamming":
                alpha = 25.0 / 46.0
                w = alpha - np.cos(n * np.pi * 2 / span) * (1 - alpha)
            else:
                w = 0.42 - 0.5 * np.cos(n * np.pi * 2 / span) + 0.08 * np.cos(n * np.pi * 4 / span)
        return ctx.const(w.astype(np_dtype(dtype)), ctx.node.output[0])

    return convert


converter("HannWindow", since=17)(_window("hann"))
converter("HammingWindow", since=17)(_window("hamming"))
converter("BlackmanWindow", since=17)(_window("blackman"))


# ----- shape-static data movement -----------------------------------------------------------
@converter("CenterCropPad", since=18)
def _center_crop_pad(ctx, inputs, attrs):
    x = inputs[0]
    rank = x.type.rank
    target = [int(v) for v in ctx.static(inputs[1], "the shape").reshape(-1)]
    axes = [a % rank for a in attrs.get("axes", range(rank))]
    if len(axes) != len(target):
        raise ctx.fail(f"{len(target)} sizes for {len(axes)} axes")
    starts, ends, crop_axes = [], [], []
    pads = [0] * (2 * rank)
    for axis, size in zip(axes, target):
        dim = x.shape[axis]
        if size < dim:
            begin = (dim - size) // 2
            starts.append(begin)
            ends.append(begin + size)
            crop_axes.append(axis)
        elif size > dim:
            before = (size - dim) // 2
            pads[axis], pads[axis + rank] = before, size - dim - before
    if crop_axes:
        x = ctx.emit("slice", x, starts=tuple(starts), ends=tuple(ends), axes=tuple(crop_axes))
    if any(pads):
        x = ctx.emit("pad", x, pads=tuple(pads), mode="constant", value=0.0)
    return x if x is not inputs[0] else ctx.emit("identity", x)


@converter("Compress", since=9)
def _compress(ctx, inputs, attrs):
    x = inputs[0]
    condition = ctx.static(inputs[1], "the condition").reshape(-1).astype(bool)
    axis = attrs.get("axis")
    if axis is None:
        x = ctx.emit("reshape", x, shape=(x.type.size,))
        axis = 0
    axis %= x.type.rank
    indices = np.nonzero(condition[: x.shape[axis]])[0].astype(np.int64)
    return ctx.emit("gather", x, ctx.const(indices, "indices"), axis=axis)


@converter("ReverseSequence", since=10)
def _reverse_sequence(ctx, inputs, attrs):
    x, lengths = inputs[0], _cast(ctx, inputs[1], "int64")
    time_axis, batch_axis = attrs.get("time_axis", 0), attrs.get("batch_axis", 1)
    steps, batch = x.shape[time_axis], x.shape[batch_axis]
    t_shape = [1] * x.type.rank
    t_shape[time_axis] = steps
    b_shape = [1] * x.type.rank
    b_shape[batch_axis] = batch
    t = ctx.const(np.arange(steps, dtype=np.int64).reshape(t_shape), "time_index")
    n = ctx.emit("reshape", lengths, shape=tuple(b_shape))
    reversed_t = ctx.emit("sub", ctx.emit("sub", n, ctx.const(np.array(1, np.int64), "one")), t)
    index = ctx.emit("expand", ctx.emit("where", ctx.emit("less", t, n), reversed_t, t), shape=x.shape)
    return ctx.emit("gather_elements", x, index, axis=time_axis)


# ----- signal processing --------------------------------------------------------------------
def _dft_matrices(n_in: int, length: int, bins: int):
    """cos and sin of the DFT kernel as (n_in, bins) float64 matrices; inputs past `length` drop."""
    n = np.arange(n_in).reshape(-1, 1)
    k = np.arange(bins).reshape(1, -1)
    angle = 2 * np.pi * ((n * k) % length) / length
    keep = (n < length).astype(np.float64)
    return np.cos(angle) * keep, np.sin(angle) * keep


def _dft(ctx, x, axis: int, length: int | None, inverse: bool, onesided: bool):
    """DFT of x (..., 1) real or (..., 2) complex along `axis`; the result is (..., 2) (or (..., 1) for
    the one-sided inverse), computed in float64 by matrix products."""
    rank = x.type.rank
    axis %= rank
    if axis == rank - 1:
        raise ctx.fail("the DFT axis cannot be the last (real/imaginary) axis")
    dtype = x.dtype
    n_in = x.shape[axis]
    if length is None:
        length = 2 * (n_in - 1) if inverse and onesided else n_in
    perm = [d for d in range(rank - 1) if d != axis] + [axis, rank - 1]
    moved = ctx.emit("transpose", _cast(ctx, x, "float64"), perm=tuple(perm))
    lead = tuple(moved.shape[:-2])
    parts = []
    for i in range(x.shape[-1]):
        part = ctx.emit("slice", moved, starts=(i,), ends=(i + 1,), axes=(rank - 1,))
        parts.append(ctx.emit("reshape", part, shape=(*lead, n_in)))
    real = parts[0]
    imag = parts[1] if len(parts) > 1 else None

    def product(value, matrix, name):
        return ctx.emit("matmul", value, ctx.const(matrix, name))

    if inverse and onesided:  # irfft: Hermitian spectrum in, real signal out
        bins = min(n_in, length // 2 + 1)
        weight = np.full(bins, 2.0)
        weight[0] = 1.0
        if length % 2 == 0 and bins == length // 2 + 1:
            weight[-1] = 1.0
        k = np.arange(bins).reshape(-1, 1)
        m = np.arange(length).reshape(1, -1)
        angle = 2 * np.pi * ((k * m) % length) / length
        cos = np.cos(angle) * weight.reshape(-1, 1) / length
        sin = -np.sin(angle) * weight.reshape(-1, 1) / length
        sin[0] = 0.0
        if length % 2 == 0 and bins == length // 2 + 1:
            sin[-1] = 0.0
        if n_in > bins:
            real = ctx.emit("slice", real, starts=(0,), ends=(bins,), axes=(len(lead),))
            imag = None if imag is None else ctx.emit("slice", imag, starts=(0,), ends=(bins,), axes=(len(lead),))
        out = product(real, cos, "idft_cos")
        if imag is not None:
            out = ctx.emit("add", out, product(imag, sin, "idft_sin"))
        outs = [out]
    else:
        bins = length // 2 + 1 if onesided else length
        cos, sin = _dft_matrices(n_in, length, bins)
        sign = 1.0 if inverse else -1.0
        scale = 1.0 / length if inverse else 1.0
        cos, sin = cos * scale, sin * scale * sign
        out_real = product(real, cos, "dft_cos")
        out_imag = product(real, sin, "dft_sin")
        if imag is not None:  # (a + ib)(c + is) = ac - bs + i(as + bc)
            out_real = ctx.emit("sub", out_real, product(imag, sin, "dft_sin"))
            out_imag = ctx.emit("add", out_imag, product(imag, cos, "dft_cos"))
        outs = [out_real, out_imag]
    outs = [ctx.emit("reshape", o, shape=(*o.shape, 1)) for o in outs]
    result = outs[0] if len(outs) == 1 else ctx.emit("concat", *outs, axis=-1)
    inverse_perm = [0] * rank
    for i, p in enumerate(perm):
        inverse_perm[p] = i
    return _cast(ctx, ctx.emit("transpose", result, perm=tuple(inverse_perm)), dtype)


@converter("DFT", since=17)
def _dft_17(ctx, inputs, attrs):
    length = _opt(inputs, 1)
    length = None if length is None else int(ctx.static(length, "dft_length").reshape(-1)[0])
    return _dft(ctx, inputs[0], attrs.get("axis", 1), length, bool(attrs.get("inverse", 0)),
                bool(attrs.get("onesided", 0)))


@converter("DFT", since=20)
def _dft_20(ctx, inputs, attrs):
    length, axis = _opt(inputs, 1), _opt(inputs, 2)
    length = None if length is None else int(ctx.static(length, "dft_length").reshape(-1)[0])
    axis = -2 if axis is None else int(ctx.static(axis, "axis").reshape(-1)[0])
    return _dft(ctx, inputs[0], axis, length, bool(attrs.get("inverse", 0)), bool(attrs.get("onesided", 0)))


@converter("MelWeightMatrix", since=17)
def _mel_weight_matrix(ctx, inputs, attrs):
    bins_, length, rate = (int(ctx.static(v, w).reshape(-1)[0]) for v, w in
                           zip(inputs[:3], ("num_mel_bins", "dft_length", "sample_rate")))
    lower, upper = (float(ctx.static(v, w).reshape(-1)[0]) for v, w in
                    zip(inputs[3:5], ("lower_edge_hertz", "upper_edge_hertz")))
    spectrogram_bins = length // 2 + 1
    points = np.arange(0, bins_ + 2)
    low_mel = 2595 * np.log1p(lower / 700) / np.log(10)
    high_mel = 2595 * np.log1p(upper / 700) / np.log(10)
    step = (high_mel - low_mel) / points.shape[0]
    hertz = 700 * np.expm1((points * step + low_mel) / 2595 * np.log(10))
    edges = (((length + 1) * hertz) // rate).astype(int)
    out = np.zeros((spectrogram_bins, bins_))
    for i in range(bins_):
        left, center, right = edges[i], edges[i + 1], edges[i + 2]
        if center == left:
            out[center, i] = 1
        else:
            for j in range(left, center + 1):
                out[j, i] = (j - left) / (center - left)
        for j in range(center, right):
            out[j, i] = (right - j) / (right - center)
    dtype = onnx_dtype(attrs.get("output_datatype", 1))
    return ctx.const(out.astype(np_dtype(dtype)), ctx.node.output[0])


@converter("AffineGrid", since=20)
def _affine_grid(ctx, inputs, attrs):
    theta = inputs[0]
    size = [int(v) for v in ctx.static(inputs[1], "the size").reshape(-1)]
    spatial = size[2:]
    if len(spatial) not in (2, 3):
        raise ctx.fail(f"size {size}: AffineGrid makes 2-D or 3-D grids")
    align = attrs.get("align_corners", 0)
    axes = []
    for dim in spatial:
        if align:
            axes.append(np.linspace(-1.0, 1.0, dim) if dim > 1 else np.array([-1.0]))
        else:
            axes.append((np.arange(dim) * 2.0 + 1.0) / dim - 1.0)
    mesh = np.meshgrid(*axes, indexing="ij")
    coords = [m.reshape(-1) for m in reversed(mesh)]  # x (width) first
    base = np.stack(coords + [np.ones_like(coords[0])], axis=0)  # (dims + 1, points)
    grid = ctx.emit("matmul", theta, ctx.const(base.astype(np_dtype(theta.dtype)), "base_grid"))
    grid = ctx.emit("transpose", grid, perm=(0, 2, 1))
    return ctx.emit("reshape", grid, shape=(size[0], *spatial, len(spatial)))


# ----- ai.onnx.ml -----------------------------------------------------------------------------
@converter("Binarizer", domain="ai.onnx.ml")
def _binarizer(ctx, inputs, attrs):
    x = inputs[0]
    above = ctx.emit("greater", x, _scalar(ctx, attrs.get("threshold", 0.0), x.dtype, "threshold"))
    return ctx.emit("cast", above, to=x.dtype)


@converter("ArrayFeatureExtractor", domain="ai.onnx.ml")
def _array_feature_extractor(ctx, inputs, attrs):
    x, indices = inputs[0], inputs[1]
    if indices.type.rank != 1:
        indices = ctx.emit("reshape", indices, shape=(indices.type.size,))
    return ctx.emit("gather", x, indices, axis=x.type.rank - 1)


# ----- ai.onnx.preview.training: optimizer steps ----------------------------------------------
def _training_groups(inputs, per_tensor: int):
    """(r, t, [(x, g, ...), ...]) from the optimizers' flat input list."""
    r, t = inputs[0], inputs[1]
    n = (len(inputs) - 2) // per_tensor
    return r, t, [tuple(inputs[2 + n * j + i] for j in range(per_tensor)) for i in range(n)]


def _f(ctx, value, like):
    return _scalar(ctx, value, like.dtype, "coefficient")


@converter("Adagrad", domain="ai.onnx.preview.training")
def _adagrad(ctx, inputs, attrs):
    r, t, groups = _training_groups(inputs, 3)
    decay, eps, norm = attrs.get("decay_factor", 0.0), attrs.get("epsilon", 0.0), attrs.get("norm_coefficient", 0.0)
    tf = _cast(ctx, t, r.dtype)
    rate = ctx.emit("div", r, ctx.emit("add", _f(ctx, 1.0, r), ctx.emit("mul", tf, _f(ctx, decay, r))))
    xs, hs = [], []
    for x, g, h in groups:
        g = ctx.emit("add", ctx.emit("mul", _f(ctx, norm, x), x), g)
        h_new = ctx.emit("add", h, ctx.emit("mul", g, g))
        denom = ctx.emit("add", ctx.emit("sqrt", h_new), _f(ctx, eps, x))
        xs.append(ctx.emit("sub", x, ctx.emit("div", ctx.emit("mul", _cast(ctx, rate, x.dtype), g), denom)))
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
        xs.append(ctx.emit("sub", x, ctx.emit("mul", _cast(ctx, r, x.dtype), step)))
        vs.append(v_new)
    return xs + vs


@converter("Adam", domain="ai.onnx.preview.training")
def _adam(ctx, inputs, attrs):
    r, t, groups = _training_groups(inputs, 4)
    alpha, beta = attrs.get("alpha", 0.9), attrs.get("beta", 0.999)
    eps, norm = attrs.get("epsilon", 0.0), attrs.get("norm_coefficient", 0.0)
    post = attrs.get("norm_coefficient_post", 0.0)
    tf = _cast(ctx, t, r.dtype)
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
        x_new = ctx.emit("sub", x, ctx.emit("mul", _cast(ctx, rate, x.dtype), ctx.emit("div", v_new, denom)))
        xs.append(ctx.emit("mul", _f(ctx, 1 - post, x), x_new))
        vs.append(v_new)
        hs.append(h_new)
    return xs + vs + hs


# ----- ops with their own IR op (edgecc.ir.ops.extra) ---------------------------------------
@converter("CumProd", since=26)
def _cumprod(ctx, inputs, attrs):
    axis = int(ctx.static(inputs[1], "axis").reshape(-1)[0])
    return ctx.emit("cumprod", inputs[0], axis=axis, exclusive=attrs.get("exclusive", 0),
                    reverse=attrs.get("reverse", 0))


@converter("BitCast", since=26)
def _bitcast(ctx, inputs, attrs):
    to = onnx_dtype(attrs["to"])
    from edgecc.ir import DTYPES

    if to not in DTYPES:
        raise ctx.unsupported(f"element type {to}")
    return ctx.emit("bitcast", inputs[0], to=to)


@converter("GridSample", since=16)
def _grid_sample(ctx, inputs, attrs):
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(attrs.get("mode", "linear"), attrs.get("mode", "linear"))
    if mode == "cubic" and inputs[0].type.rank == 5:
        raise ctx.unsupported("cubic sampling of volumes")
    return ctx.emit("grid_sample", inputs[0], inputs[1], mode=mode,
                    padding_mode=attrs.get("padding_mode", "zeros"), align_corners=attrs.get("align_corners", 0))


# ----- control flow: inlined or unrolled ------------------------------------------------------
@converter("If", since=1)
def _if(ctx, inputs, attrs):
    """A branch known at compile time is inlined; otherwise both branches run and `where` picks,
    which needs outputs of one shape and type on both sides."""
    from edgecc.ir import static_value

    cond = static_value(inputs[0])
    if cond is not None:
        branch = attrs["then_branch"] if bool(cond.reshape(-1)[0]) else attrs["else_branch"]
        return ctx.convert_subgraph(branch, {})
    then_out = ctx.convert_subgraph(attrs["then_branch"], {})
    else_out = ctx.convert_subgraph(attrs["else_branch"], {})
    flag = ctx.emit("reshape", inputs[0], shape=())
    outs = []
    for a, b in zip(then_out, else_out):
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ctx.unsupported(f"a run-time condition with branches of different types ({a.type} and {b.type})")
        outs.append(ctx.emit("where", flag, a, b))
    return outs


def _take(ctx, x, axis: int, index: int):
    """x[..., index, ...] along `axis`, with that axis dropped."""
    part = ctx.emit("slice", x, starts=(index,), ends=(index + 1,), axes=(axis,))
    shape = x.shape[:axis] + x.shape[axis + 1:]
    return ctx.emit("reshape", part, shape=shape)


def _stack(ctx, values, axis: int):
    shape = values[0].shape
    parts = [ctx.emit("reshape", v, shape=shape[:axis] + (1,) + shape[axis:]) for v in values]
    return parts[0] if len(parts) == 1 else ctx.emit("concat", *parts, axis=axis)


#: the most iterations a Scan or Loop is unrolled to
MAX_UNROLL = 4096


@converter("Scan", since=9)
def _scan(ctx, inputs, attrs):
    body = attrs["body"]
    n_scan = attrs["num_scan_inputs"]
    states, scans = list(inputs[:len(inputs) - n_scan]), list(inputs[len(inputs) - n_scan:])
    in_axes = list(attrs.get("scan_input_axes", [0] * n_scan))
    in_dirs = list(attrs.get("scan_input_directions", [0] * n_scan))
    n_out = len(body.output) - len(states)
    out_axes = list(attrs.get("scan_output_axes", [0] * n_out))
    out_dirs = list(attrs.get("scan_output_directions", [0] * n_out))
    in_axes = [a % x.type.rank for a, x in zip(in_axes, scans)]
    steps = scans[0].shape[in_axes[0]]
    if any(x.shape[a] != steps for x, a in zip(scans, in_axes)):
        raise ctx.fail("scan inputs differ in length")
    if steps > MAX_UNROLL:
        raise ctx.unsupported(f"{steps} iterations (at most {MAX_UNROLL} are unrolled)")
    names = [i.name for i in body.input]
    collected = [[] for _ in range(n_out)]
    for t in range(steps):
        bound = dict(zip(names, states))
        for name, x, axis, reverse in zip(names[len(states):], scans, in_axes, in_dirs):
            bound[name] = _take(ctx, x, axis, steps - 1 - t if reverse else t)
        outs = ctx.convert_subgraph(body, bound)
        states = outs[:len(states)]
        for acc, value in zip(collected, outs[len(states):]):
            acc.append(value)
    results = list(states)
    for acc, axis, reverse in zip(collected, out_axes, out_dirs):
        if not acc:
            raise ctx.unsupported("a scan of length 0")
        if reverse:
            acc = acc[::-1]
        results.append(_stack(ctx, acc, axis % (acc[0].type.rank + 1)))
    return results


@converter("Loop", since=1)
def _loop(ctx, inputs, attrs):
    """Unrolled: the trip count and every condition must be known at compile time."""
    from edgecc.ir import static_value

    body = attrs["body"]
    trip = static_value(inputs[0]) if inputs[0] is not None else None
    cond = inputs[1] if len(inputs) > 1 else None
    carried = list(inputs[2:])
    if inputs[0] is not None and trip is None:
        raise ctx.fail("the trip count must be known at compile time")
    limit = int(trip.reshape(-1)[0]) if trip is not None else None
    names = [i.name for i in body.input]
    n_scan = len(body.output) - 1 - len(carried)
    collected = [[] for _ in range(n_scan)]
    i = 0
    while True:
        if limit is not None and i >= limit:
            break
        if cond is not None:
            flag = static_value(cond)
            if flag is None:
                raise ctx.fail("the loop condition must be known at compile time")
            if not bool(flag.reshape(-1)[0]):
                break
        if i >= MAX_UNROLL:
            raise ctx.unsupported(f"more than {MAX_UNROLL} iterations")
        bound = {names[0]: ctx.const(np.array(i, np.int64), "iteration")}
        if len(names) > 1:
            bound[names[1]] = cond if cond is not None else ctx.const(np.array(True), "cond")
        bound.update(zip(names[2:], carried))
        outs = ctx.convert_subgraph(body, bound)
        cond = outs[0]
        carried = outs[1:1 + len(carried)]
        for acc, value in zip(collected, outs[1 + len(carried):]):
            acc.append(value)
        i += 1
    results = list(carried)
    for acc in collected:
        if not acc:
            raise ctx.unsupported("a loop that runs no iteration and has scan outputs")
        results.append(_stack(ctx, acc, 0))
    return results


# ----- recurrent layers, unrolled over the (static) sequence ---------------------------------
_RNN_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
_RNN_DEFAULT_ACTIVATIONS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}
#: activation -> (IR op or None, attributes that take alpha/beta in order, their ONNX defaults)
_RNN_ACTIVATIONS = {
    "Relu": ("relu", (), ()), "Tanh": ("tanh", (), ()), "Sigmoid": ("sigmoid", (), ()),
    "Softsign": ("softsign", (), ()), "Softplus": ("softplus", (), ()),
    "LeakyRelu": ("leaky_relu", ("alpha",), (0.01,)), "ThresholdedRelu": ("thresholded_relu", ("alpha",), (1.0,)),
    "Elu": ("elu", ("alpha",), (1.0,)), "HardSigmoid": ("hard_sigmoid", ("alpha", "beta"), (0.2, 0.5)),
    "Affine": (None, ("alpha", "beta"), (1.0, 0.0)), "ScaledTanh": (None, ("alpha", "beta"), (1.0, 1.0)),
}


def _rnn_activations(ctx, attrs, kind: str, directions: int):
    names = list(attrs.get("activations", _RNN_DEFAULT_ACTIVATIONS[kind] * directions))
    alphas = list(attrs.get("activation_alpha", []))
    betas = list(attrs.get("activation_beta", []))
    fns = []
    for name in names:
        key = next((k for k in _RNN_ACTIVATIONS if k.lower() == name.lower()), None)
        if key is None:
            raise ctx.unsupported(f"activation {name}")
        op, params, defaults = _RNN_ACTIVATIONS[key]
        values = {}
        for param, default in zip(params, defaults):
            source = alphas if param == "alpha" else betas
            values[param] = source.pop(0) if source else default
        fns.append((key, op, values))

    def apply(index, x):
        key, op, values = fns[index]
        if op is not None:
            return ctx.emit(op, x, **values)
        alpha = _scalar(ctx, values["alpha"], x.dtype, "alpha")
        beta = _scalar(ctx, values["beta"], x.dtype, "beta")
        if key == "Affine":
            return ctx.emit("add", ctx.emit("mul", x, alpha), beta)
        return ctx.emit("mul", alpha, ctx.emit("tanh", ctx.emit("mul", x, beta)))

    per_direction = len(names) // directions
    return apply, per_direction


def _rnn(ctx, inputs, attrs):
    kind = ctx.node.op_type
    gates = _RNN_GATES[kind]
    x, w, r = inputs[:3]
    b, lengths, h0 = _opt(inputs, 3), _opt(inputs, 4), _opt(inputs, 5)
    c0, peephole = (_opt(inputs, 6), _opt(inputs, 7)) if kind == "LSTM" else (None, None)
    layout = attrs.get("layout", 0)
    if layout:
        x = ctx.emit("transpose", x, perm=(1, 0, 2))
        h0 = None if h0 is None else ctx.emit("transpose", h0, perm=(1, 0, 2))
        c0 = None if c0 is None else ctx.emit("transpose", c0, perm=(1, 0, 2))
    steps, batch, _ = x.shape
    hidden = attrs.get("hidden_size") or r.shape[-1]
    valid_at = None
    if lengths is not None:  # steps past a sequence's length keep its state and output zeros
        from edgecc.ir import static_value

        known = static_value(lengths)
        if known is None or not np.all(known == steps):
            lengths = ctx.emit("reshape", _cast(ctx, lengths, "int64"), shape=(batch, 1))

            def valid_at(t):
                return ctx.emit("less", ctx.const(np.array(t, np.int64), "step"), lengths)
    direction = attrs.get("direction", "forward")
    directions = ["forward", "reverse"] if direction == "bidirectional" else [direction]
    activation, per_dir = _rnn_activations(ctx, attrs, kind, len(directions))
    clip = attrs.get("clip")
    dtype = x.dtype

    def gate(value, i):
        return ctx.emit("slice", value, starts=(i * hidden,), ends=((i + 1) * hidden,), axes=(value.type.rank - 1,))

    def clipped(value):
        return value if clip is None else ctx.emit("clip", value, min=-clip, max=clip)

    def direction_slice(value, d):
        return _take(ctx, value, 0, d)

    ys, hs, cs = [], [], []
    for d, name in enumerate(directions):
        act = (lambda i, v, _d=d: activation(_d * per_dir + i, v))
        w_t = ctx.emit("transpose", direction_slice(w, d), perm=(1, 0))
        r_t = ctx.emit("transpose", direction_slice(r, d), perm=(1, 0))
        x_proj = ctx.emit("matmul", x, w_t)  # (S, B, gates*H)
        r_bias = None
        if b is not None:
            bias = direction_slice(b, d)
            x_proj = ctx.emit("add", x_proj, gate_range(ctx, bias, 0, gates * hidden))
            r_bias = gate_range(ctx, bias, gates * hidden, 2 * gates * hidden)
        h = direction_slice(h0, d) if h0 is not None else ctx.const(np.zeros((batch, hidden), np_dtype(dtype)), "h0")
        c = direction_slice(c0, d) if c0 is not None else ctx.const(np.zeros((batch, hidden), np_dtype(dtype)), "c0")
        p = direction_slice(peephole, d) if peephole is not None else None
        order = range(steps) if name == "forward" else range(steps - 1, -1, -1)
        outs = []
        for t in order:
            h_prev, c_prev = h, c
            xt = _take(ctx, x_proj, 0, t)
            if kind == "GRU":
                rz_r = gate_range(ctx, r_t, 0, 2 * hidden)
                pre = ctx.emit("add", gate_range(ctx, xt, 0, 2 * hidden), ctx.emit("matmul", h, rz_r))
                if r_bias is not None:
                    pre = ctx.emit("add", pre, gate_range(ctx, r_bias, 0, 2 * hidden))
                z = act(0, clipped(gate(pre, 0)))
                reset = act(0, clipped(gate(pre, 1)))
                r_h = gate_range(ctx, r_t, 2 * hidden, 3 * hidden)
                rb_h = None if r_bias is None else gate(r_bias, 2)
                if attrs.get("linear_before_reset", 0):
                    inner = ctx.emit("matmul", h, r_h)
                    if rb_h is not None:
                        inner = ctx.emit("add", inner, rb_h)
                    cand = ctx.emit("add", gate(xt, 2), ctx.emit("mul", reset, inner))
                else:
                    cand = ctx.emit("add", gate(xt, 2), ctx.emit("matmul", ctx.emit("mul", reset, h), r_h))
                    if rb_h is not None:
                        cand = ctx.emit("add", cand, rb_h)
                cand = act(1, clipped(cand))
                one = _scalar(ctx, 1, dtype, "one")
                h = ctx.emit("add", ctx.emit("mul", ctx.emit("sub", one, z), cand), ctx.emit("mul", z, h))
            else:
                pre = ctx.emit("add", xt, ctx.emit("matmul", h, r_t))
                if r_bias is not None:
                    pre = ctx.emit("add", pre, r_bias)
                if kind == "RNN":
                    h = act(0, clipped(pre))
                else:
                    i_g, o_g, f_g, c_g = (gate(pre, k) for k in range(4))
                    if p is not None:
                        i_g = ctx.emit("add", i_g, ctx.emit("mul", gate(p, 0), c))
                        f_g = ctx.emit("add", f_g, ctx.emit("mul", gate(p, 2), c))
                    i_g = act(0, clipped(i_g))
                    if attrs.get("input_forget", 0):
                        f_g = ctx.emit("sub", _scalar(ctx, 1, dtype, "one"), i_g)
                    else:
                        f_g = act(0, clipped(f_g))
                    c = ctx.emit("add", ctx.emit("mul", f_g, c), ctx.emit("mul", i_g, act(1, clipped(c_g))))
                    if p is not None:
                        o_g = ctx.emit("add", o_g, ctx.emit("mul", gate(p, 1), c))
                    h = ctx.emit("mul", act(0, clipped(o_g)), act(2, c))
            if valid_at is not None:
                valid = valid_at(t)
                outs.append(ctx.emit("where", valid, h, _scalar(ctx, 0, dtype, "zero")))
                h = ctx.emit("where", valid, h, h_prev)
                c = ctx.emit("where", valid, c, c_prev)
            else:
                outs.append(h)
        if name == "reverse":
            outs = outs[::-1]
        ys.append(_stack(ctx, outs, 0))  # (S, B, H)
        hs.append(h)
        cs.append(c)
    y = _stack(ctx, ys, 1)  # (S, D, B, H)
    y_h = _stack(ctx, hs, 0)
    y_c = _stack(ctx, cs, 0)
    if layout:
        y = ctx.emit("transpose", y, perm=(2, 0, 1, 3))
        y_h = ctx.emit("transpose", y_h, perm=(1, 0, 2))
        y_c = ctx.emit("transpose", y_c, perm=(1, 0, 2))
    return [y, y_h, y_c] if kind == "LSTM" else [y, y_h]


def gate_range(ctx, value, start: int, end: int):
    """value[..., start:end]."""
    return ctx.emit("slice", value, starts=(start,), ends=(end,), axes=(value.type.rank - 1,))


converter("RNN", since=7)(_rnn)
converter("GRU", since=7)(_rnn)
converter("LSTM", since=7)(_rnn)


# ----- caches, unpooling, determinants ------------------------------------------------------
@converter("TensorScatter", since=24)
def _tensor_scatter(ctx, inputs, attrs):
    """present[b, ..., p, ...] = update[b, ..., p - write_index[b], ...] where that index is inside the
    update (modulo the cache length in circular mode), else past[b, ..., p, ...]."""
    past, update, write = inputs[0], inputs[1], _opt(inputs, 2)
    rank = past.type.rank
    axis = attrs.get("axis", -2) % rank
    length, count = past.shape[axis], update.shape[axis]
    position_shape = [1] * rank
    position_shape[axis] = length
    position = ctx.const(np.arange(length, dtype=np.int64).reshape(position_shape), "position")
    if write is None:
        offset = position
    else:
        batch_shape = [1] * rank
        batch_shape[0] = past.shape[0]
        start = ctx.emit("reshape", _cast(ctx, write, "int64"), shape=tuple(batch_shape))
        offset = ctx.emit("sub", position, start)
    if attrs.get("mode", "linear") == "circular":
        offset = ctx.emit("mod", offset, ctx.const(np.array(length, np.int64), "length"))
    inside = ctx.emit("logical_and", ctx.emit("greater_equal", offset, ctx.const(np.array(0, np.int64), "zero")),
                      ctx.emit("less", offset, ctx.const(np.array(count, np.int64), "count")))
    index_shape = list(past.shape)
    index = ctx.emit("expand", ctx.emit("clip", offset, min=0, max=count - 1), shape=tuple(index_shape))
    taken = ctx.emit("gather_elements", update, index, axis=axis)
    return ctx.emit("where", inside, taken, past)


@converter("MaxUnpool", since=9)
def _max_unpool(ctx, inputs, attrs):
    x, indices, output_shape = inputs[0], inputs[1], _opt(inputs, 2)
    kernel = list(attrs["kernel_shape"])
    spatial = len(kernel)
    strides = list(attrs.get("strides", [1] * spatial))
    pads = list(attrs.get("pads", [0] * 2 * spatial))
    inferred = [x.shape[0], x.shape[1]] + [
        (x.shape[d + 2] - 1) * strides[d] - (pads[d] + pads[spatial + d]) + kernel[d] for d in range(spatial)]
    total = int(np.prod(inferred))
    flat = ctx.const(np.zeros(total, dtype=np_dtype(x.dtype)), "unpooled")
    y = ctx.emit("scatter_elements", flat, ctx.emit("reshape", _cast(ctx, indices, "int64"), shape=(x.type.size,)),
                 ctx.emit("reshape", x, shape=(x.type.size,)), axis=0)
    y = ctx.emit("reshape", y, shape=tuple(inferred))
    if output_shape is not None:
        shape = [int(v) for v in ctx.static(output_shape, "output_shape").reshape(-1)]
        extra = [0] * len(shape) + [s - i for s, i in zip(shape, inferred)]
        if any(e < 0 for e in extra):
            raise ctx.fail(f"output_shape {shape} is smaller than the unpooled shape {inferred}")
        if any(extra):
            y = ctx.emit("pad", y, pads=tuple(extra), mode="constant", value=0.0)
    return y


@converter("Det", since=11)
def _det(ctx, inputs, attrs):
    """The Leibniz sum over permutations; matrices up to 4x4."""
    import itertools

    x = inputs[0]
    n = x.shape[-1]
    if x.type.rank < 2 or x.shape[-2] != n:
        raise ctx.fail(f"Det takes square matrices, got shape {x.shape}")
    if n > 4:
        raise ctx.unsupported(f"{n}x{n} matrices (at most 4x4)")
    lead = x.shape[:-2]
    axes = (x.type.rank - 2, x.type.rank - 1)

    def element(i, j):
        return ctx.emit("reshape", ctx.emit("slice", x, starts=(i, j), ends=(i + 1, j + 1), axes=axes), shape=lead)

    rows = [[element(i, j) for j in range(n)] for i in range(n)]
    total = None
    for perm in itertools.permutations(range(n)):
        term = rows[0][perm[0]]
        for i in range(1, n):
            term = ctx.emit("mul", term, rows[i][perm[i]])
        inversions = sum(1 for a in range(n) for b in range(a + 1, n) if perm[a] > perm[b])
        if total is None:
            total = term if inversions % 2 == 0 else ctx.emit("neg", term)
        else:
            total = ctx.emit("sub" if inversions % 2 else "add", total, term)
    return total


@converter("STFT", since=17)
def _stft(ctx, inputs, attrs):
    signal, step, window, frame_length = inputs[0], inputs[1], _opt(inputs, 2), _opt(inputs, 3)
    step = int(ctx.static(step, "frame_step").reshape(-1)[0])
    if frame_length is not None:
        length = int(ctx.static(frame_length, "frame_length").reshape(-1)[0])
    else:
        length = window.shape[0] if window is not None else signal.shape[-2]
    frames = 1 + (signal.shape[-2] - length) // step
    index = (np.arange(frames) * step).reshape(-1, 1) + np.arange(length).reshape(1, -1)
    framed = ctx.emit("gather", signal, ctx.const(index.astype(np.int64), "frame_index"), axis=1)  # (B, F, L, C)
    if window is not None:
        framed = ctx.emit("mul", framed, ctx.emit("reshape", window, shape=(length, 1)))
    return _dft(ctx, framed, 2, length, False, bool(attrs.get("onesided", 1)))


# ----- optional tensors (a present optional is its tensor) -------------------------------------
@converter("OptionalHasElement", since=15)
def _optional_has_element(ctx, inputs, attrs):
    present = bool(inputs) and inputs[0] is not None
    return ctx.const(np.array(present), ctx.node.output[0])


@converter("OptionalGetElement", "Optional", since=15)
def _optional_get_element(ctx, inputs, attrs):
    if not inputs or inputs[0] is None:
        raise ctx.unsupported("an empty optional")
    return ctx.emit("identity", inputs[0])


@converter("Col2Im", since=18)
def _col2im(ctx, inputs, attrs):
    image = [int(v) for v in ctx.static(inputs[1], "image_shape").reshape(-1)]
    block = [int(v) for v in ctx.static(inputs[2], "block_shape").reshape(-1)]
    return ctx.emit("col2im", inputs[0], image_shape=image, block_shape=block, strides=attrs.get("strides"),
                    dilations=attrs.get("dilations"), pads=attrs.get("pads"))


def _roi_align(default_mode: str):
    def convert(ctx, inputs, attrs):
        mode = attrs.get("coordinate_transformation_mode", default_mode)
        if mode not in ("half_pixel", "output_half_pixel"):
            raise ctx.unsupported(f"coordinate_transformation_mode={mode}")
        return ctx.emit("roi_align", inputs[0], inputs[1], _cast(ctx, inputs[2], "int64"),
                        mode=attrs.get("mode", "avg"), output_height=attrs.get("output_height", 1),
                        output_width=attrs.get("output_width", 1), sampling_ratio=attrs.get("sampling_ratio", 0),
                        spatial_scale=attrs.get("spatial_scale", 1.0), half_pixel=int(mode == "half_pixel"))

    return convert


converter("RoiAlign", since=10)(_roi_align("output_half_pixel"))
converter("RoiAlign", since=16)(_roi_align("half_pixel"))


@converter("DeformConv", since=19)
def _deform_conv(ctx, inputs, attrs):
    x, w, offset, bias, mask = inputs[0], inputs[1], inputs[2], _opt(inputs, 3), _opt(inputs, 4)
    if x.type.rank != 4:
        raise ctx.unsupported(f"{x.type.rank - 2}-D deformable convolution")
    return ctx.emit("deform_conv", x, w, offset, bias, mask, strides=attrs.get("strides"), pads=attrs.get("pads"),
                    dilations=attrs.get("dilations"), group=attrs.get("group", 1),
                    offset_group=attrs.get("offset_group", 1))


@converter("TfIdfVectorizer", since=9)
def _tfidf_vectorizer(ctx, inputs, attrs):
    """n-gram counts of an integer sequence against a static pool: for each pool n-gram and skip
    distance, an equality test per n-gram element on shifted slices, summed over positions."""
    x = inputs[0]
    if "pool_int64s" not in attrs:
        raise ctx.unsupported("string pools")
    pool = list(attrs["pool_int64s"])
    counts = list(attrs["ngram_counts"])
    indexes = list(attrs["ngram_indexes"])
    low, high = attrs["min_gram_length"], attrs["max_gram_length"]
    max_skip = attrs["max_skip_count"]
    mode = attrs["mode"]
    weights = attrs.get("weights")
    if x.type.rank not in (1, 2):
        raise ctx.fail(f"input of rank {x.type.rank}; TfIdfVectorizer takes [C] or [B, C]")
    rows = x if x.type.rank == 2 else ctx.emit("reshape", x, shape=(1, x.shape[0]))
    length = rows.shape[1]
    grams = []  # (n-gram, its id)
    gram_id = 0
    for size, start in enumerate(counts, start=1):
        end = counts[size] if size < len(counts) else len(pool)
        for k in range((end - start) // size):
            if low <= size <= high:
                grams.append((pool[start + k * size: start + (k + 1) * size], gram_id))
            gram_id += 1
    out_size = max(indexes) + 1
    columns = [None] * out_size
    zero_col = ctx.const(np.zeros((rows.shape[0], 1), np.float32), "zero")
    for gram, gid in grams:
        size = len(gram)
        total = None
        for distance in range(1, (max_skip + 2) if size > 1 else 2):
            span = (size - 1) * distance
            if span >= length:
                continue
            match = None
            for j, value in enumerate(gram):
                part = ctx.emit("slice", rows, starts=(j * distance,), ends=(length - span + j * distance,), axes=(1,))
                eq = ctx.emit("equal", part, ctx.const(np.array(value, dtype=np_dtype(rows.dtype)), "gram"))
                match = eq if match is None else ctx.emit("logical_and", match, eq)
            hits = ctx.emit("reduce_sum", ctx.emit("cast", match, to="float32"), axes=(1,), keepdims=1)
            total = hits if total is None else ctx.emit("add", total, hits)
        column = total if total is not None else zero_col
        index = indexes[gid]
        columns[index] = column if columns[index] is None else ctx.emit("add", columns[index], column)
    columns = [c if c is not None else zero_col for c in columns]
    y = columns[0] if len(columns) == 1 else ctx.emit("concat", *columns, axis=1)
    if mode in ("IDF", "TFIDF"):
        w = np.asarray(weights if weights else [1.0] * out_size, np.float32).reshape(1, -1)
        if mode == "IDF":
            present = ctx.emit("greater", y, ctx.const(np.array(0, np.float32), "zero"))
            y = ctx.emit("where", present, ctx.const(w, "weights"), ctx.const(np.array(0, np.float32), "zero"))
        elif weights:
            y = ctx.emit("mul", y, ctx.const(w, "weights"))
    elif mode != "TF":
        raise ctx.fail(f"unknown mode {mode}")
    return y if x.type.rank == 2 else ctx.emit("reshape", y, shape=(out_size,))
