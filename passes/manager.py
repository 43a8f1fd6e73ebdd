"""The pass manager: runs a pipeline with instrumentation.

Instrumentation: verify the graph after every pass (on in tests), time each pass, print the IR
after chosen passes, and turn a failure into a PassError naming the pass and what ran before it.
Members of fixpoint groups are instrumented one by one; the remarks passes leave on the context
are kept in `PassManager.remarks`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from edgecc.ir import Graph, IRError, print_graph, verify_graph
from edgecc.ir.verifier import VerifyError

from .base import Pass, PassContext, Remark
from .pipeline import Fixpoint

__all__ = ["PassManager", "PassError", "PassRecord"]


class PassError(Exception):
    """A pass raised, or left the graph broken. Names the pass and its predecessors.

    `cause` is the original exception: an `edgecc.errors.EdgeccError` there is the user's error
    (a bad option value, an unsupported target setting), anything else is a compiler bug.
    """

    def __init__(self, pass_name: str, before: Sequence[str], cause: BaseException):
        ran = ", ".join(before[-5:]) if before else "nothing"
        super().__init__(f"pass '{pass_name}' failed: {cause} (ran before it: {ran})")
        self.pass_name = pass_name
        self.cause = cause


@dataclass
class PassRecord:
    name: str
    seconds: float
    changed: bool


@dataclass
class PassManager:
    """Run passes in order over a graph.

    verify_each: run the IR verifier before the first and after every pass, and check that a pass
        that returns False left the graph's text unchanged (fixpoint groups rely on it).
    print_ir_after: pass names after which the IR is printed to `out` ("all" for every pass).
    Passes inside fixpoint groups are run, timed, verified and printed one by one. What passes
    say (`ctx.note`, rewrite rejections) collects in `remarks` after `run`.
    """

    passes: list[Pass]
    verify_each: bool = False
    print_ir_after: set[str] = field(default_factory=set)
    out: TextIO = field(default=sys.stderr)
    records: list[PassRecord] = field(default_factory=list)
    remarks: list[Remark] = field(default_factory=list)

    def run(self, graph: Graph, ctx: PassContext | None = None) -> bool:
        ctx = ctx or PassContext()
        if self.verify_each:
            self._verify(graph, "<input>", [])
        done: list[str] = []
        try:
            return any([self._run_one(p, graph, ctx, done) for p in self.passes])
        finally:
            ctx.pass_name = ""
            self.remarks = ctx.remarks

    def _run_one(self, p: Pass, graph: Graph, ctx: PassContext, done: list[str]) -> bool:
        if isinstance(p, Fixpoint):
            return p.run(graph, ctx, run_pass=lambda member: self._run_one(member, graph, ctx, done))
        ctx.pass_name = p.name
        before = print_graph(graph, elide_constants=True) if self.verify_each else None
        start = time.perf_counter()
        try:
            changed = bool(p.run(graph, ctx))
        except PassError:
            raise
        except Exception as exc:  # noqa: BLE001 - re-raised with the pass named
            raise PassError(p.name, done, exc) from exc
        self.records.append(PassRecord(p.name, time.perf_counter() - start, changed))
        if self.verify_each:
            self._verify(graph, p.name, done)
            if not changed and print_graph(graph, elide_constants=True) != before:
                raise PassError(p.name, done, IRError("changed the graph but reported no change"))
        if p.name in self.print_ir_after or "all" in self.print_ir_after:
            self.out.write(f"// IR after {p.spec()}\n{print_graph(graph, elide_constants=True)}")
        done.append(p.name)
        return changed

    @staticmethod
    def _verify(graph: Graph, name: str, done: list[str]) -> None:
        try:
            verify_graph(graph)
        except VerifyError as exc:
            if name == "<input>":
                raise
            raise PassError(name, done, VerifyError(f"left the IR broken: {exc}")) from exc

    def timing_report(self) -> str:
        """A table of pass timings (for --time-passes)."""
        total = sum(r.seconds for r in self.records) or 1e-9
        lines = [f"{'pass':<32}{'time (ms)':>12}{'share':>8}  changed"]
        for r in self.records:
            lines.append(
                f"{r.name:<32}{r.seconds * 1e3:>12.2f}{r.seconds / total:>8.1%}  {'yes' if r.changed else 'no'}"
            )
        lines.append(f"{'total':<32}{total * 1e3:>12.2f}")
        return "\n".join(lines) + "\n"
