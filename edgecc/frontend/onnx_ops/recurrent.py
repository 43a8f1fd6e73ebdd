"""Converters for the recurrent layers RNN, GRU and LSTM, unrolled over the static sequence."""

from __future__ import annotations

import numpy as np

from edgecc.ir.dims import Dim, UndecidableDim
from edgecc.ir.types import np_dtype

from . import converter
from .checks import count, one_of
from ._util import cast, optional_input, scalar, stack, take


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


def _zeros(ctx, shape, dtype: str, name: str):
    """A zero initial state: a constant, or a fill when the batch is symbolic."""
    if any(isinstance(d, Dim) for d in shape):
        return ctx.emit("full", shape=shape, value=0.0, dtype=dtype)
    return ctx.const(np.zeros(shape, np_dtype(dtype)), name)

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
        alpha = scalar(ctx, values["alpha"], x.dtype, "alpha")
        beta = scalar(ctx, values["beta"], x.dtype, "beta")
        if key == "Affine":
            return ctx.emit("add", ctx.emit("mul", x, alpha), beta)
        return ctx.emit("mul", alpha, ctx.emit("tanh", ctx.emit("mul", x, beta)))

    per_direction = len(names) // directions
    return apply, per_direction


def _rnn(ctx, inputs, attrs):
    kind = ctx.node.op_type
    gates = _RNN_GATES[kind]
    x, w, r = inputs[:3]
    b, lengths, h0 = optional_input(inputs, 3), optional_input(inputs, 4), optional_input(inputs, 5)
    c0, peephole = (optional_input(inputs, 6), optional_input(inputs, 7)) if kind == "LSTM" else (None, None)
    layout = attrs.get("layout", 0)
    if layout:
        x = ctx.emit("transpose", x, perm=(1, 0, 2))
        h0 = None if h0 is None else ctx.emit("transpose", h0, perm=(1, 0, 2))
        c0 = None if c0 is None else ctx.emit("transpose", c0, perm=(1, 0, 2))
    steps, batch, _ = x.shape
    if isinstance(steps, Dim):
        raise UndecidableDim(f"{kind} is unrolled over its sequence, whose length {steps} is symbolic; "
                             f"fix it with --input-shape")
    hidden = attrs.get("hidden_size") or r.shape[-1]
    if hidden != r.shape[-1]:
        raise ctx.fail(f"attribute hidden_size={hidden} but the recurrence weights have {r.shape[-1]} columns")
    valid_at = None
    if lengths is not None:  # steps past a sequence's length keep its state and output zeros
        from edgecc.ir import static_value

        known = static_value(lengths)
        if known is None or not np.all(known == steps):
            lengths = ctx.emit("reshape", cast(ctx, lengths, "int64"), shape=(batch, 1))

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
        return take(ctx, value, 0, d)

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
        h = direction_slice(h0, d) if h0 is not None else _zeros(ctx, (batch, hidden), dtype, "h0")
        c = direction_slice(c0, d) if c0 is not None else _zeros(ctx, (batch, hidden), dtype, "c0")
        p = direction_slice(peephole, d) if peephole is not None else None
        order = range(steps) if name == "forward" else range(steps - 1, -1, -1)
        outs = []
        for t in order:
            h_prev, c_prev = h, c
            xt = take(ctx, x_proj, 0, t)
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
                one = scalar(ctx, 1, dtype, "one")
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
                        f_g = ctx.emit("sub", scalar(ctx, 1, dtype, "one"), i_g)
                    else:
                        f_g = act(0, clipped(f_g))
                    c = ctx.emit("add", ctx.emit("mul", f_g, c), ctx.emit("mul", i_g, act(1, clipped(c_g))))
                    if p is not None:
                        o_g = ctx.emit("add", o_g, ctx.emit("mul", gate(p, 1), c))
                    h = ctx.emit("mul", act(0, clipped(o_g)), act(2, c))
            if valid_at is not None:
                valid = valid_at(t)
                outs.append(ctx.emit("where", valid, h, scalar(ctx, 0, dtype, "zero")))
                h = ctx.emit("where", valid, h, h_prev)
                c = ctx.emit("where", valid, c, c_prev)
            else:
                outs.append(h)
        if name == "reverse":
            outs = outs[::-1]
        ys.append(stack(ctx, outs, 0))  # (S, B, H)
        hs.append(h)
        cs.append(c)
    y = stack(ctx, ys, 1)  # (S, D, B, H)
    y_h = stack(ctx, hs, 0)
    y_c = stack(ctx, cs, 0)
    if layout:
        y = ctx.emit("transpose", y, perm=(2, 0, 1, 3))
        y_h = ctx.emit("transpose", y_h, perm=(1, 0, 2))
        y_c = ctx.emit("transpose", y_c, perm=(1, 0, 2))
    return [y, y_h, y_c] if kind == "LSTM" else [y, y_h]


def gate_range(ctx, value, start: int, end: int):
    """value[..., start:end]."""
    return ctx.emit("slice", value, starts=(start,), ends=(end,), axes=(value.type.rank - 1,))


#: the input is (steps, batch, features), or (batch, steps, features) with layout=1
_RNN_CHECKS = {"checks": {"hidden_size": count(), "layout": one_of(0, 1)}, "ranks": {0: 3, 1: 3, 2: 3}}
converter("RNN", since=7, **_RNN_CHECKS)(_rnn)
converter("GRU", since=7, **_RNN_CHECKS)(_rnn)
converter("LSTM", since=7, **_RNN_CHECKS)(_rnn)
