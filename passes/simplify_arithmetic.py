"""simplify-arithmetic: algebraic identities and chains of data-movement ops.

    add(x, 0), sub(x, 0), mul(x, 1), div(x, 1)  -> x     (when the constant does not broadcast x)
    mul(mul(x, c1), c2)                         -> mul(x, c1 * c2)
    add(add(x, c1), c2)                         -> add(x, c1 + c2)
    neg(neg(x))                                 -> x
    reshape(reshape(x))                         -> reshape(x)
    transpose(transpose(x, p), q)               -> transpose(x, p[q])

Safe anywhere; run after shape chains are constants.
"""

from __future__ import annotations

import numpy as np

from edgecc.ir import Graph

from .base import Pass, PassContext, register_pass
from .rewrite import Builder, MatchResult, RewriteRule, any_, apply_rewrites, const, op


def _keeps_shape(m) -> str | None:
    x, out = m.value("x"), m.value("root")
    if x.type.shape != out.type.shape or x.type.dtype != out.type.dtype:
        return "the constant broadcasts x to another shape"
    return None


def _identity_rule(op_name: str, neutral: float):
    class Rule(RewriteRule):
        pattern = op(op_name, any_("x"), const("c", lambda a: a.size > 0 and bool(np.all(a == neutral))), name="root")

        def check(self, m):
            return MatchResult(_keeps_shape(m))

        def rewrite(self, b: Builder, m):
            return m.value("x")

    Rule.__name__ = f"{op_name.title()}Neutral"
    return Rule()


def _chain_rule(op_name: str, combine):
    class Rule(RewriteRule):
        pattern = op(op_name, op(op_name, any_("x"), const("c1"), single_use=True), const("c2"), name="root")

        def check(self, m):
            if m["c1"].dtype != m["c2"].dtype:
                return MatchResult.fail("constants differ in dtype")
            return MatchResult.ok()

        def rewrite(self, b: Builder, m):
            return b(op_name, m.value("x"), b.const(combine(m["c1"], m["c2"]), "folded"))

    Rule.__name__ = f"{op_name.title()}Chain"
    return Rule()


class DoubleNeg(RewriteRule):
    pattern = op("neg", op("neg", any_("x")))

    def rewrite(self, b, m):
        return m.value("x")


class ReshapeChain(RewriteRule):
    pattern = op("reshape", op("reshape", any_("x")), name="root")

    def rewrite(self, b, m):
        out = m.value("root").type
        if m.value("x").type.shape == out.shape:
            return m.value("x")
        return b("reshape", m.value("x"), shape=out.shape)


class TransposeChain(RewriteRule):
    pattern = op("transpose", op("transpose", any_("x"), name="inner"), name="root")

    def rewrite(self, b, m):
        p = m.node("inner").attrs["perm"]
        q = m.node("root").attrs["perm"]
        perm = tuple(p[i] for i in q)
        if perm == tuple(range(len(perm))):
            return m.value("x")
        return b("transpose", m.value("x"), perm=perm)


@register_pass
class SimplifyArithmetic(Pass):
    """Remove neutral arithmetic and merge chains of reshapes, transposes and constant ops."""

    name = "simplify-arithmetic"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        rules = [
            _identity_rule("add", 0), _identity_rule("sub", 0),
            _identity_rule("mul", 1), _identity_rule("div", 1),
            _chain_rule("mul", np.multiply), _chain_rule("add", np.add),
            DoubleNeg(), ReshapeChain(), TransposeChain(),
        ]
        changed = apply_rewrites(graph, rules, ctx)
        if changed:
            graph.remove_unused_constants()
        return changed
