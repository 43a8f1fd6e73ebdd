"""Kernel schedules: tuning records first, then rule-based defaults per fusion-group kind.

`make_scheduler(target, records)` returns a `Scheduler`; `scheduler.schedule(kernel)` gives a
`ScheduledKernel`: the PrimFunc and how it was scheduled, "tuned" (a tuning record), "default"
(the rule of the kernel's kind), "generic" (the rule for any kind) or "none" (left as generated).
Rules come in sets, one per kind of hardware (`cpu.py`, `quant.py`, `winograd.py`: "cpu"; `gpu.py`:
"gpu"); a target names its set (`target.schedule_rules`). On a "cpu" target, a kernel with
symbolic extents (`kernel.symbolic`) gets the "symbolic" set (`symbolic.py`), or "runtime_sizes" when
a size comes from a tensor's values (`kernel.runtime_sizes`: it may be 0), and no tuning record.

A kernel meant for a tuning record or a rule of its own that ends up with something else (the
record did not replay, the rule raised, its kind has no rule) carries a `ScheduleFallback`
naming the kernel, what it was meant to get, what it got and why. A rule that knowingly leaves a
kernel to the generic schedule raises `RuleDoesNotApply`; that is not a fallback.

Tuning records reach lowering through the `ScheduleSource` interface (the driver passes one);
this package does not import the tuner.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["RULES", "RULE_ATTR", "RULE_SETS", "RuleDoesNotApply", "ScheduleFallback",
           "ScheduleSource", "ScheduledKernel", "Scheduler", "make_scheduler", "register_rule"]

#: kind -> rule(kernel, target) -> scheduled PrimFunc ("*": the generic rule for any kind): the CPU rules
RULES: dict[str, Callable] = {}
#: rule set (a target's `schedule_rules`: "cpu", "gpu") -> its rules by kind
RULE_SETS: dict[str, dict[str, Callable]] = {"cpu": RULES}
#: PrimFunc attribute a rule may set to name itself ("dlight.Matmul"); the metadata's kernel table shows it
RULE_ATTR = "edgecc.schedule_rule"
#: kinds with no schedule of their own: the generic rule is what they are meant to get
GENERIC_KINDS = frozenset({"opaque"})


class RuleDoesNotApply(Exception):
    """Raised by a rule for a kernel it deliberately leaves to the generic schedule."""


class ScheduleSource(Protocol):
    """Where tuned schedules come from (edgecc.tune.apply.TunedSchedules is one)."""

    def lookup(self, kernel):
        """The kernel's PrimFunc scheduled from a record, or None when no record should be used.
        Raises when a record exists but cannot be applied."""


@dataclass(frozen=True)
class ScheduleFallback:
    """A kernel that did not get the schedule it was meant to get."""

    kernel: str
    kind: str
    intended: str  # "tuned" or "default"
    got: str  # "default", "generic" or "none"
    reason: str

    def __str__(self) -> str:
        return f"{self.kernel} ({self.kind}): {self.intended} -> {self.got}: {self.reason}"


@dataclass
class ScheduledKernel:
    func: object  # tvm.tirx.PrimFunc
    how: str
    fallback: ScheduleFallback | None = None


def register_rule(*kinds: str, rules: str = "cpu"):
    """Register a rule for `kinds` in the rule set `rules`."""
    rule_set = RULE_SETS.setdefault(rules, {})

    def deco(fn):
        for kind in kinds:
            rule_set[kind] = fn
        return fn

    return deco


def _load_rules() -> None:
    from . import cpu, gpu, quant, reduction, symbolic, winograd  # noqa: F401  (registration)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


class Scheduler:
    """Schedules kernels for one target: a tuning record, else its kind's rule, else the generic rule."""

    def __init__(self, target, records: ScheduleSource | None = None):
        _load_rules()
        self.target = target
        self.rules = RULE_SETS[target.schedule_rules]
        self.records = records

    def _rules_for(self, kernel) -> dict[str, Callable]:
        if self.target.schedule_rules == "cpu" and getattr(kernel, "symbolic", False):
            return RULE_SETS["runtime_sizes" if kernel.runtime_sizes else "symbolic"]
        return self.rules

    def schedule(self, kernel) -> ScheduledKernel:
        reasons: list[str] = []
        intended = "default"
        rules = self._rules_for(kernel)
        if self.records is not None and rules is self.rules:
            try:
                func = self.records.lookup(kernel)
            except Exception as exc:  # noqa: BLE001 - a record that does not replay: use the rules
                intended = "tuned"
                reasons.append(f"tuning record did not replay ({_first_line(exc)})")
            else:
                if func is not None:
                    return ScheduledKernel(func, "tuned")
        func, how, meant_generic = self._by_rules(kernel, rules, reasons)
        if meant_generic and intended == "default":
            intended = "generic"
        fallback = None
        if how != intended:
            fallback = ScheduleFallback(kernel.name, kernel.kind, intended, how, "; ".join(reasons))
        return ScheduledKernel(func, how, fallback)

    def _by_rules(self, kernel, rules: dict[str, Callable], reasons: list[str]) -> tuple[object, str, bool]:
        """(PrimFunc, how, whether the generic rule is what the kernel is meant to get)."""
        rule = rules.get(kernel.kind)
        meant_generic = False
        if rule is not None:
            try:
                return rule(kernel, self.target), "default", False
            except RuleDoesNotApply:
                meant_generic = True
            except Exception as exc:  # noqa: BLE001 - a rule that failed: try the generic one
                reasons.append(f"the {kernel.kind} rule raised {_first_line(exc)}")
        elif kernel.kind in GENERIC_KINDS:
            meant_generic = True
        else:
            reasons.append(f"no schedule rule for kind '{kernel.kind}'")
        try:
            return rules["*"](kernel, self.target), "generic", meant_generic
        except Exception as exc:  # noqa: BLE001 - left as generated
            reasons.append(f"the generic rule raised {_first_line(exc)}")
        return kernel.func, "none", meant_generic


def make_scheduler(target, records: ScheduleSource | None = None) -> Scheduler:
    """The scheduler of `target`, with tuned schedules from `records` when given."""
    return Scheduler(target, records)
