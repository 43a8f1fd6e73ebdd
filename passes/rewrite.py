"""Pattern rewriting: a pattern, a check that gives a reason when it rejects, and a rewrite.

    class MulByOne(RewriteRule):
        '''mul(x, 1) -> x'''
        pattern = op("mul", any_("x"), const("one"))
        def check(self, m):
            return MatchResult.ok() if np.all(m["one"] == 1) else MatchResult.fail("constant is not 1")
        def rewrite(self, b, m):
            return m.value("x")

`apply_rewrites(graph, rules, ctx)` applies rules greedily until none matches; each refusal of a
check is recorded as a remark (rule, node, reason) on the pass context.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgecc.ir import Graph, Node, Trait, Value, get_op, static_value

from .base import PassContext

__all__ = ["Pattern", "any_", "const", "op", "Match", "MatchResult", "RewriteRule", "Builder", "apply_rewrites"]


class Match(dict):
    """Bindings of a successful match: name -> Value (for `value()`), name -> array for constants."""

    def __init__(self):
        super().__init__()
        self.values: dict[str, Value] = {}
        self.nodes: dict[str, Node] = {}

    def value(self, name: str) -> Value:
        return self.values[name]

    def node(self, name: str) -> Node:
        return self.nodes[name]


class MatchResult:
    """A rule's verdict on a match: success (truthy), or a failure carrying its reason (falsy).

    `MatchResult.ok()`, `MatchResult.fail(reason)`, or `MatchResult(reason_or_none)` for a reason
    computed by a helper (None: success).
    """

    __slots__ = ("reason",)

    def __init__(self, reason: str | None = None):
        self.reason = reason

    @classmethod
    def ok(cls) -> MatchResult:
        return cls()

    @classmethod
    def fail(cls, reason: str) -> MatchResult:
        return cls(reason)

    def __bool__(self) -> bool:
        return self.reason is None

    def __repr__(self) -> str:
        return "MatchResult.ok()" if self else f"MatchResult.fail({self.reason!r})"


class Pattern:
    def match(self, value: Value | None, m: Match) -> bool:  # pragma: no cover - interface
        raise NotImplementedError


class _Any(Pattern):
    def __init__(self, name: str | None, predicate: Callable[[Value], bool] | None):
        self.name, self.predicate = name, predicate

    def match(self, value, m):
        if value is None or (self.predicate and not self.predicate(value)):
            return False
        if self.name:
            if self.name in m.values and m.values[self.name] is not value:
                return False
            m.values[self.name] = value
        return True


class _Const(Pattern):
    def __init__(self, name: str | None, predicate: Callable[[np.ndarray], bool] | None):
        self.name, self.predicate = name, predicate

    def match(self, value, m):
        data = static_value(value)
        if data is None or (self.predicate and not self.predicate(data)):
            return False
        if self.name:
            m[self.name] = data
            m.values[self.name] = value
        return True


class _Op(Pattern):
    def __init__(self, op_name: str | tuple[str, ...], inputs: Sequence[Pattern] | None, name: str | None,
                 single_use: bool, where: Callable[[Node], bool] | None):
        self.ops = (op_name,) if isinstance(op_name, str) else tuple(op_name)
        self.inputs = inputs
        self.name, self.single_use, self.where = name, single_use, where

    def match(self, value, m):
        if value is None or value.producer is None or value.producer.op not in self.ops:
            return False
        node = value.producer
        if self.single_use and (len(value.uses) != 1 or value.is_graph_output):
            return False
        if self.where and not self.where(node):
            return False
        if self.inputs is not None and not self._match_inputs(node, m):
            return False
        if self.name:
            m.nodes[self.name] = node
            m.values[self.name] = value
        return True

    def _match_inputs(self, node: Node, m: Match) -> bool:
        ins = list(node.inputs)
        if len(ins) < len(self.inputs):
            ins += [None] * (len(self.inputs) - len(ins))
        orders = [ins]
        if len(self.inputs) == 2 and get_op(node.op).has(Trait.COMMUTATIVE):
            orders.append([ins[1], ins[0]])
        for order in orders:
            trial = _copy(m)
            if all(p.match(v, trial) for p, v in zip(self.inputs, order)):
                _restore(m, trial)
                return True
        return False


def _copy(m: Match) -> Match:
    c = Match()
    c.update(m)
    c.values.update(m.values)
    c.nodes.update(m.nodes)
    return c


def _restore(m: Match, src: Match) -> None:
    m.update(src)
    m.values.update(src.values)
    m.nodes.update(src.nodes)


def any_(name: str | None = None, where: Callable[[Value], bool] | None = None) -> Pattern:
    """Any value (optionally satisfying `where`), bound to `name`."""
    return _Any(name, where)


def const(name: str | None = None, where: Callable[[np.ndarray], bool] | None = None) -> Pattern:
    """A value known at compile time; its array is bound to `name`."""
    return _Const(name, where)


def op(op_name: str | tuple[str, ...], *inputs: Pattern, name: str | None = None, single_use: bool = False,
       where: Callable[[Node], bool] | None = None, any_inputs: bool = False) -> Pattern:
    """A value produced by `op_name` whose inputs match `inputs` (commutative ops in either order)."""
    return _Op(op_name, None if any_inputs else inputs, name, single_use, where)


class Builder:
    """Creates nodes just before an anchor node (or at the end of the graph)."""

    def __init__(self, graph: Graph, before: Node | None = None, name_hint: str | None = None):
        self.graph, self.before, self.name_hint = graph, before, name_hint

    def __call__(self, op_name: str, *inputs: Value | None, name: str | None = None, **attrs: Any) -> Value:
        return self.node(op_name, *inputs, name=name, **attrs).output

    def node(self, op_name: str, *inputs: Value | None, name: str | None = None, **attrs: Any) -> Node:
        hint = name or (f"{self.name_hint}.{op_name}" if self.name_hint else op_name)
        return self.graph.create_node(op_name, list(inputs), attrs, name=hint, output_names=[hint],
                                      before=self.before)

    def const(self, data, name: str = "const", **kw) -> Value:
        return self.graph.add_constant(np.asarray(data), name, **kw)


class RewriteRule:
    """A rewrite: `pattern` matches the root node's output; `check` may refuse with a reason."""

    pattern: Pattern

    @property
    def name(self) -> str:
        return type(self).__name__

    def check(self, m: Match) -> MatchResult:
        return MatchResult.ok()

    def rewrite(self, b: Builder, m: Match) -> Value | None:  # pragma: no cover - interface
        raise NotImplementedError


def _root_ops(rule: RewriteRule) -> tuple[str, ...] | None:
    pat = rule.pattern
    return pat.ops if isinstance(pat, _Op) else None


def apply_rewrites(graph: Graph, rules: Sequence[RewriteRule], ctx: PassContext | None = None,
                   max_rounds: int = 20) -> bool:
    """Apply rules to single-output nodes until nothing matches; returns whether anything changed.

    A check's refusal becomes a rejection remark on `ctx` (rule, node, reason); rounds that still
    change the graph after `max_rounds` end with a note there.
    """
    ctx = ctx if ctx is not None else PassContext()
    changed = False
    for _ in range(max_rounds):
        round_changed = any([_rewrite_node(graph, node, rules, ctx) for node in list(graph.nodes)])
        changed |= round_changed
        if not round_changed:
            return changed
    ctx.note(f"rewrites still applied after {max_rounds} rounds; stopped there")
    return changed


def _rewrite_node(graph: Graph, node: Node, rules: Sequence[RewriteRule], ctx: PassContext) -> bool:
    """Apply the first rule that matches `node` and passes its check; returns whether one did."""
    if node.graph is not graph or node not in graph.nodes or len(node.outputs) != 1:
        return False
    for rule in rules:
        roots = _root_ops(rule)
        if roots is not None and node.op not in roots:
            continue
        m = Match()
        if not rule.pattern.match(node.output, m):
            continue
        verdict = rule.check(m)
        if not isinstance(verdict, MatchResult):
            raise TypeError(f"{rule.name}.check returned {verdict!r}, not a MatchResult")
        if not verdict:
            ctx.reject(rule.name, node, verdict.reason)
            continue
        new = rule.rewrite(Builder(graph, node, node.name), m)
        if new is None or new is node.output:
            continue
        graph.replace_value(node.output, new)
        _erase_dead_from(graph, node)
        return True
    return False


def _erase_dead_from(graph: Graph, root: Node) -> None:
    """Erase `root` and then any producer left without uses."""
    work = [root]
    while work:
        node = work.pop()
        if node not in graph.nodes or any(o.has_uses for o in node.outputs):
            continue
        producers = [v.producer for v in node.inputs if v is not None and v.producer is not None]
        graph.erase_node(node)
        work.extend(producers)
