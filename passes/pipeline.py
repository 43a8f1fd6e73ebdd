"""Pipeline strings, fixpoint groups and the opt-level pipelines.

A pipeline string lists passes separated by commas, each with optional options in braces:
`fold-constants,fuse{max-group-size=8},eliminate-dead-code`. A group in `fixpoint(...)` repeats
its passes until a whole round changes nothing, at most `max-iterations` rounds:
`fixpoint{max-iterations=4}(fold-constants,eliminate-common-subexpressions,eliminate-dead-code)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from edgecc.ir import Graph

from .base import FIXPOINT, Pass, PassContext, PassOptionError, get_pass

__all__ = ["Fixpoint", "parse_pipeline", "opt_level_pipeline", "format_pipeline", "pipeline_names",
           "without_passes"]


@dataclass
class Fixpoint(Pass):
    """Repeat a group of passes until none of them changes the graph (or the bound is hit)."""

    name = FIXPOINT
    passes: list[Pass] = field(default_factory=list)
    max_iterations: int = 8

    @classmethod
    def options(cls):
        return {k: f for k, f in super().options().items() if k != "passes"}

    def run(self, graph: Graph, ctx: PassContext, run_pass: Callable[[Pass], bool] | None = None) -> bool:
        """Rounds over the group; `run_pass(p)` runs one member (the pass manager instruments it).

        Hitting the bound leaves a note on `ctx`: some member still changed the graph.
        """
        run_pass = run_pass or (lambda p: bool(p.run(graph, ctx)))
        changed_any = False
        for _ in range(self.max_iterations):
            changed = False
            for p in self.passes:
                changed |= run_pass(p)
            if not changed:
                return changed_any
            changed_any = True
        ctx.pass_name = self.name
        ctx.note(f"{self.spec()} still changed the graph after {self.max_iterations} iterations; stopped there")
        return changed_any

    def spec(self) -> str:
        return super().spec() + "(" + format_pipeline(self.passes) + ")"


#: clean-ups that enable each other: folding makes nodes identical, CSE and DCE make work for folding
CLEANUP = "fixpoint(fold-constants,eliminate-common-subexpressions,eliminate-dead-code)"

#: passes each opt level adds on top of the level below
OPT_LEVELS: dict[int, list[str]] = {
    0: [],
    1: ["remove-identity", "simplify-shape-chains", CLEANUP],
    2: ["fold-batch-norm", "prune-zero-channels", "lower-qdq",
        "fixpoint(simplify-arithmetic,remove-identity,fold-constants,eliminate-common-subexpressions,"
        "eliminate-dead-code)"],
}

#: where target-chosen passes (layout, quantization lowering, fusion) go at opt level >= 2
TARGET_SLOT = 2


def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split at `sep` outside braces and parentheses."""
    parts, stack, cur = [], [], []
    for ch in text:
        if ch in "{(":
            stack.append("}" if ch == "{" else ")")
        elif ch in "})":
            if not stack or stack.pop() != ch:
                raise PassOptionError(f"unbalanced '{ch}' in pipeline {text!r}")
        if ch == sep and not stack:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if stack:
        raise PassOptionError(f"missing '{stack[-1]}' in pipeline {text!r}")
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _parse_element(element: str) -> Pass:
    """`name`, `name{k=v,...}`, or `fixpoint{k=v}(pipeline)` -> a Pass."""
    body = None
    if element.endswith(")"):
        element, _, body = element[:-1].partition("(")
    name, _, rest = element.partition("{")
    name = name.strip()
    options: dict[str, str] = {}
    if rest:
        if not rest.endswith("}"):
            raise PassOptionError(f"bad pipeline element {element!r}")
        for item in _split_top(rest[:-1]):
            key, eq, value = item.partition("=")
            if not eq:
                raise PassOptionError(f"option {item!r} of pass '{name}' needs key=value")
            options[key.strip()] = value.strip()
    if name == Fixpoint.name:
        if body is None:
            raise PassOptionError("fixpoint needs its passes in parentheses: fixpoint(a,b)")
        group = Fixpoint.from_options(options)
        group.passes = parse_pipeline(body)
        if not group.passes or group.max_iterations < 1:
            raise PassOptionError(f"fixpoint needs at least one pass and max-iterations >= 1: {element}({body})")
        return group
    if body is not None:
        raise PassOptionError(f"only fixpoint takes passes in parentheses, not '{name}'")
    return get_pass(name).from_options(options)


def parse_pipeline(text: str) -> list[Pass]:
    """`"a,b{k=v},fixpoint(c,d)"` -> [A(), B(k=v), Fixpoint([C(), D()])]; PassOptionError names
    what is wrong."""
    return [_parse_element(element) for element in _split_top(text)]


def format_pipeline(passes: list[Pass]) -> str:
    """The pipeline string that `parse_pipeline` reads back as `passes`."""
    return ",".join(p.spec() for p in passes)


def pipeline_names(passes: list[Pass]) -> list[str]:
    """Names of every pass in the pipeline, those inside fixpoint groups included."""
    names = []
    for p in passes:
        names += pipeline_names(p.passes) if isinstance(p, Fixpoint) else [p.name]
    return names


def without_passes(passes: list[Pass], names: set[str]) -> list[Pass]:
    """The pipeline less the passes named `names` (also inside groups; emptied groups go too)."""
    kept: list[Pass] = []
    for p in passes:
        if isinstance(p, Fixpoint):
            inner = without_passes(p.passes, names)
            if inner:
                kept.append(Fixpoint(inner, p.max_iterations))
        elif p.name not in names:
            kept.append(p)
    return kept


def opt_level_pipeline(opt_level: int, target_passes: list[str] | None = None) -> list[Pass]:
    """The passes of -O<opt_level>, with a target's own passes at opt level 2 and up."""
    if opt_level not in OPT_LEVELS:
        raise PassOptionError(f"opt level must be 0..{max(OPT_LEVELS)}, got {opt_level}")
    names: list[str] = []
    for level in range(1, opt_level + 1):
        names += OPT_LEVELS[level]
        if level == TARGET_SLOT and target_passes:
            names += list(target_passes)
    return parse_pipeline(",".join(names)) if names else []
