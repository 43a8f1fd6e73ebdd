"""Kernel schedules: tuned records first, then rule-based defaults per fusion-group kind.

`make_scheduler(target, tuning_logs)` returns `schedule(kernel) -> (PrimFunc, how)` where `how` is
"tuned", "default" or "none" (left as generated).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["make_scheduler", "register_rule", "RULES"]

#: kind -> rule(kernel, target) -> PrimFunc or None (None: the rule does not apply)
RULES: dict[str, Callable] = {}


def register_rule(*kinds: str):
    def deco(fn):
        for kind in kinds:
            RULES[kind] = fn
        return fn

    return deco


def _load_rules() -> None:
    from . import cpu, quant  # noqa: F401  (registration)


def _debug(message: str) -> None:
    import os
    import sys

    if os.environ.get("EDGECC_DEBUG"):
        print(f"edgecc: debug: {message}", file=sys.stderr)


def make_scheduler(target, tuning_logs: str | None = None):
    _load_rules()
    tuned = None
    if tuning_logs != "":
        from edgecc.tune.apply import TunedSchedules

        tuned = TunedSchedules.for_target(target, tuning_logs)

    def schedule(kernel):
        if tuned is not None:
            func = tuned.lookup(kernel)
            if func is not None:
                return func, "tuned"
        for rule, how in ((RULES.get(kernel.kind), "default"), (RULES.get("*"), "generic")):
            if rule is None:
                continue
            try:
                return rule(kernel, target), how
            except Exception as exc:  # noqa: BLE001 - a rule that does not fit; try the next one
                _debug(f"schedule rule for {kernel.name} ({kernel.kind}) did not apply: {exc}")
        return kernel.func, "none"

    return schedule
