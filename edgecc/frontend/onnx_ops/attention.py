"""Converters for transformer attention: Attention, RotaryEmbedding and TensorScatter (KV-cache updates)."""

from __future__ import annotations

import numpy as np

from edgecc.ir.dims import Dim, UndecidableDim
from edgecc.ir.types import np_dtype

from ..onnx import onnx_dtype
from . import converter
from .checks import count
from ._util import cast, optional_input, scalar


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
        # with a symbolic length every term is a run-time one (index grids from `_positions`)
        symbolic = isinstance(sq, Dim) or isinstance(skv, Dim)
        self.static = None if symbolic else np.zeros((sq, skv), dtype=np_dtype(dtype))
        self.terms: list = []

    def where(self, allowed, shape=None):
        """A term: 0 where `allowed` (a bool Value or array), -inf elsewhere."""
        npd = np_dtype(self.dtype)
        if isinstance(allowed, np.ndarray):
            self.static = self.static + np.where(allowed, npd.type(0), npd.type(-np.inf)).astype(npd)
            return
        ctx = self.ctx
        term = ctx.emit("where", allowed, scalar(ctx, 0, self.dtype), scalar(ctx, -np.inf, self.dtype))
        if shape is not None:
            term = ctx.emit("reshape", term, shape=shape)
        self.terms.append(term)

    def value(self):
        """The bias as a Value (None when it is all zeros); built once."""
        if not hasattr(self, "_value"):
            ctx = self.ctx
            acc = ctx.const(self.static, "attn_bias") if self.static is not None and self.static.any() else None
            for term in self.terms:
                acc = term if acc is None else ctx.emit("add", acc, term)
            self._value = acc
        return self._value

    def fully_masked_rows(self):
        """Rows the bias masks entirely: a bool array, a bool Value, or None when there are none."""
        ctx = self.ctx
        if not self.terms:
            if self.static is None:
                return None
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
            bias.terms.append(cast(ctx, mask, dtype))
    per_batch = nonpad is not None and past == 0
    if bias.static is None:
        return _symbolic_attention_bias(ctx, attrs, nonpad, per_batch, bias, batch, sq, skv, past)
    i = np.arange(sq).reshape(sq, 1)
    j = np.arange(skv).reshape(1, skv)
    offsets = None
    if per_batch:  # the key frontier of each batch: nonpad_kv_seqlen - q_len
        offsets = ctx.emit("reshape", cast(ctx, nonpad, "int64"), shape=(batch, 1, 1))
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
                         ctx.emit("reshape", cast(ctx, nonpad, "int64"), shape=(batch, 1)))
        bias.where(valid, shape=(batch, 1, 1, skv))
    return bias


def _positions(ctx, n, shape):
    """0, 1, ..., n-1 (n may be symbolic) as an int64 Value of `shape`."""
    ones = ctx.emit("full", shape=(n,), value=1, dtype="int64")
    return ctx.emit("reshape", ctx.emit("cumsum", ones, axis=0, exclusive=1), shape=shape)


def _symbolic_attention_bias(ctx, attrs, nonpad, per_batch: bool, bias: _Bias, batch, sq, skv, past) -> _Bias:
    """The causal, window and padding terms over symbolic lengths, from run-time index grids."""
    causal = attrs.get("is_causal", 0)
    left, right = attrs.get("left_window_size", -1), attrs.get("right_window_size", -1)
    if per_batch and (causal or left >= 0 or right >= 0):
        raise UndecidableDim(f"a causal or windowed mask with nonpad_kv_seqlen over a symbolic length {sq} "
                             f"is not supported")
    if isinstance(past, Dim) and (causal or left >= 0 or right >= 0):
        raise UndecidableDim(f"a causal or windowed mask after a past of symbolic length {past} is not supported")
    if not (causal or left >= 0 or right >= 0 or nonpad is not None):
        return bias
    j = _positions(ctx, skv, (1, skv))
    if causal or left >= 0 or right >= 0:
        i = _positions(ctx, sq, (sq, 1))
        query = ctx.emit("add", i, ctx.const(np.array(past, np.int64), "past")) if past else i
        diff = ctx.emit("sub", query, j)  # query position - key position
        zero = ctx.const(np.array(0, np.int64), "zero")
        if causal:
            bias.where(ctx.emit("greater_equal", diff, zero))
        if left >= 0:
            bias.where(ctx.emit("less_equal", diff, ctx.const(np.array(left, np.int64), "left")))
        if right >= 0:
            bias.where(ctx.emit("greater_equal", diff, ctx.const(np.array(-right, np.int64), "right")))
    if nonpad is not None:
        valid = ctx.emit("less", j, ctx.emit("reshape", cast(ctx, nonpad, "int64"), shape=(batch, 1)))
        bias.where(valid, shape=(batch, 1, 1, skv))
    return bias


@converter("Attention", since=23, checks={"q_num_heads": count(), "kv_num_heads": count()},
           ranks={0: (3, 4), 1: (3, 4), 2: (3, 4)})
def _attention(ctx, inputs, attrs):
    q, k, v = inputs[:3]
    mask, past_k, past_v, nonpad = (optional_input(inputs, i) for i in (3, 4, 5, 6))
    dtype = q.dtype
    if not q.type.rank == k.type.rank == v.type.rank:
        raise ctx.fail(f"Q, K and V differ in rank ({q.type.rank}, {k.type.rank}, {v.type.rank})")
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
    root = scalar(ctx, np.sqrt(scale), dtype, "scale")  # applied to Q and K both, as the reference
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
        cap = scalar(ctx, softcap, dtype, "softcap")
        qk = ctx.emit("mul", ctx.emit("tanh", ctx.emit("div", qk, cap)), cap)
    bias_value = bias.value()
    scores = qk if bias_value is None else ctx.emit("add", qk, bias_value)
    mode = attrs.get("qk_matmul_output_mode", 0)
    qk_out = scores if mode == 2 else qk
    precision = attrs.get("softmax_precision")
    if precision:
        scores = cast(ctx, scores, onnx_dtype(precision))
    probs = ctx.emit("softmax", scores, axis=-1)
    masked = bias.fully_masked_rows()
    if masked is not None:  # a row with no key to attend gives zeros, not NaN
        if isinstance(masked, np.ndarray):
            masked = ctx.const(masked, "masked_rows")
        probs = ctx.emit("where", masked, scalar(ctx, 0, probs.dtype), probs)
    if mode == 3:
        qk_out = probs
    qk_out = cast(ctx, qk_out, dtype)
    y = ctx.emit("matmul", cast(ctx, probs, dtype), v)
    if rank3:
        y = ctx.emit("transpose", y, perm=(0, 2, 1, 3))
        y = ctx.emit("reshape", y, shape=(batch, sq, q_heads * y.shape[3]))
    return [y, present_k, present_v, qk_out]


@converter("RotaryEmbedding", since=23, checks={"num_heads": count(), "rotary_embedding_dim": count(0)},
           ranks={0: (3, 4)})
def _rotary_embedding(ctx, inputs, attrs):
    x, cos, sin, position_ids = inputs[0], inputs[1], inputs[2], optional_input(inputs, 3)
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


@converter("TensorScatter", since=24)
def _tensor_scatter(ctx, inputs, attrs):
    """present[b, ..., p, ...] = update[b, ..., p - write_index[b], ...] where that index is inside the
    update (modulo the cache length in circular mode), else past[b, ..., p, ...]."""
    past, update, write = inputs[0], inputs[1], optional_input(inputs, 2)
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
        start = ctx.emit("reshape", cast(ctx, write, "int64"), shape=tuple(batch_shape))
        offset = ctx.emit("sub", position, start)
    if attrs.get("mode", "linear") == "circular":
        offset = ctx.emit("mod", offset, ctx.const(np.array(length, np.int64), "length"))
    inside = ctx.emit("logical_and", ctx.emit("greater_equal", offset, ctx.const(np.array(0, np.int64), "zero")),
                      ctx.emit("less", offset, ctx.const(np.array(count, np.int64), "count")))
    index_shape = list(past.shape)
    index = ctx.emit("expand", ctx.emit("clip", offset, min=0, max=count - 1), shape=tuple(index_shape))
    taken = ctx.emit("gather_elements", update, index, axis=axis)
    return ctx.emit("where", inside, taken, past)
