"""fold-batch-norm: fold inference batch normalization into the preceding Conv or MatMul.

    batch_norm(conv(x, W, b))        -> conv(x, W * s, (b - mean) * s + beta)
    batch_norm(add(matmul(x, W), c)) -> add(matmul(x, W * s), (c - mean) * s + beta)
    batch_norm(matmul(x, W))         -> add(matmul(x, W * s), -mean * s + beta)
    batch_norm(x) elsewhere          -> add(mul(x, s), beta - mean * s)

with s = scale / sqrt(var + eps). Weights and parameters must be constants and the conv or matmul
must have no other reader. Run before fusion and layout passes (they do not handle batch_norm).
"""

from __future__ import annotations

import numpy as np

from edgecc.ir import Graph

from .base import Pass, PassContext, register_pass
from .rewrite import Builder, Match, MatchResult, RewriteRule, any_, apply_rewrites, const, op


def _bn_scale_shift(m: Match, node):
    eps = node.attrs["epsilon"]
    s = m["scale"].astype(np.float64) / np.sqrt(m["var"].astype(np.float64) + eps)
    shift = m["beta"].astype(np.float64) - m["mean"].astype(np.float64) * s
    return s, shift


def _bn(inner):
    return op("batch_norm", inner, const("scale"), const("beta"), const("mean"), const("var"), name="bn")


class FoldIntoConv(RewriteRule):
    pattern = _bn(op("conv", name="conv", single_use=True, any_inputs=True))

    def check(self, m):
        conv, bn = m.node("conv"), m.node("bn")
        if conv.attrs["layout"] not in (None, "NCHW", "NCW", "NCDHW") or conv.attrs["kernel_layout"]:
            return MatchResult.fail("conv is not in a plain channels-first layout")
        if bn.attrs["axis"] != 1:
            return MatchResult.fail(f"batch_norm normalizes axis {bn.attrs['axis']}, not the channel axis")
        if conv.inputs[1].const is None or (conv.inputs[2] is not None and conv.inputs[2].const is None):
            return MatchResult.fail("conv weight or bias is not constant")
        return MatchResult.ok()

    def rewrite(self, b: Builder, m):
        conv, bn = m.node("conv"), m.node("bn")
        s, shift = _bn_scale_shift(m, bn)
        w = conv.inputs[1].const
        bias = conv.inputs[2].const if conv.inputs[2] is not None else np.zeros(w.shape[0], w.dtype)
        w2 = (w * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)
        b2 = (bias * s + shift).astype(w.dtype)
        return b("conv", conv.inputs[0], b.const(w2, conv.inputs[1].name + ".bn"), b.const(b2, "bias.bn"),
                 name=conv.name, **conv.attrs)


def _matmul_rule_check(m, has_bias: bool):
    bn = m.node("bn")
    out = bn.inputs[0].type
    if bn.attrs["axis"] % out.rank != out.rank - 1:
        return "batch_norm does not normalize the matmul's last axis"
    if m["w"].ndim != 2:
        return "matmul weight is not a matrix"
    return None


class FoldIntoMatMulAdd(RewriteRule):
    pattern = _bn(op("add", op("matmul", any_("x"), const("w"), name="mm", single_use=True), const("c"),
                     name="add", single_use=True))

    def check(self, m):
        return MatchResult(_matmul_rule_check(m, True))

    def rewrite(self, b: Builder, m):
        s, shift = _bn_scale_shift(m, m.node("bn"))
        w = m["w"]
        mm = b("matmul", m.value("x"), b.const((w * s[None, :]).astype(w.dtype), "weight.bn"))
        c = np.broadcast_to(m["c"], s.shape) if m["c"].size == 1 else m["c"]
        return b("add", mm, b.const((c * s + shift).astype(w.dtype), "bias.bn"))


class FoldIntoMatMul(RewriteRule):
    pattern = _bn(op("matmul", any_("x"), const("w"), name="mm", single_use=True))

    def check(self, m):
        return MatchResult(_matmul_rule_check(m, False))

    def rewrite(self, b: Builder, m):
        s, shift = _bn_scale_shift(m, m.node("bn"))
        w = m["w"]
        mm = b("matmul", m.value("x"), b.const((w * s[None, :]).astype(w.dtype), "weight.bn"))
        return b("add", mm, b.const(shift.astype(w.dtype), "bias.bn"))


class DecomposeBatchNorm(RewriteRule):
    pattern = _bn(any_("x"))

    def rewrite(self, b: Builder, m):
        bn = m.node("bn")
        x = m.value("x")
        s, shift = _bn_scale_shift(m, bn)
        shape = [1] * x.type.rank
        shape[bn.attrs["axis"] % x.type.rank] = -1
        dtype = x.type.dtype
        scaled = b("mul", x, b.const(s.reshape(shape).astype(dtype), "bn.scale"))
        return b("add", scaled, b.const(shift.reshape(shape).astype(dtype), "bn.shift"))


@register_pass
class FoldBatchNorm(Pass):
    """Fold batch_norm into the conv/matmul before it, or decompose it into mul and add."""

    name = "fold-batch-norm"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        rules = [FoldIntoConv(), FoldIntoMatMulAdd(), FoldIntoMatMul(), DecomposeBatchNorm()]
        changed = apply_rewrites(graph, rules, ctx)
        if changed:
            graph.remove_unused_constants()
        return changed
