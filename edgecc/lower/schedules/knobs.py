"""Knob spaces: the constants of a default schedule rule, as a search space per kernel.

A rule that can be tuned declares, next to itself, a function `kernel, target -> Knobs`: its
knobs (name, allowed values, the value the rule uses by default) for that kernel, a check that
rules out combinations the rule cannot build (a register tile larger than the registers), and
the kernel's shape as features for a cost model. The rule takes the chosen values as
`knobs={name: value}`; called without knobs it builds exactly its default schedule, and the
default point of the space (`Knobs.default()`) builds the same code.

The tuner searches these spaces (`edgecc.tune.knob_search`); a record of a knob point is applied
by calling the rule with those values. Knob values are plain ints, bools and strings.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["KNOB_SPACES", "Knob", "Knobs", "knob_space", "register_knobs"]

#: kind -> function(kernel, target) -> Knobs, for the kinds whose CPU rule takes knobs
KNOB_SPACES: dict[str, Callable] = {}


@dataclass(frozen=True)
class Knob:
    """One constant of a rule: its allowed values and the one the rule picks by default."""

    name: str
    values: tuple
    default: object

    def __post_init__(self):
        if self.default not in self.values:
            object.__setattr__(self, "values", (self.default, *self.values))

    def number(self, value) -> float:
        """The value as a cost-model feature (ints as they are, others by position)."""
        if isinstance(value, bool) or not isinstance(value, int):
            return float(self.values.index(value))
        return float(value)


@dataclass(frozen=True)
class Knobs:
    """The knob space of one rule on one kernel."""

    rule: str  # the kernel kind whose rule takes these knobs
    knobs: tuple[Knob, ...]
    allowed: Callable[[dict], bool] = lambda point: True
    shape: dict[str, float] = field(default_factory=dict)  # kernel features for a cost model

    def default(self) -> dict:
        return {k.name: k.default for k in self.knobs}

    def points(self) -> list[dict]:
        """Every allowed combination, the default first."""
        default = self.default()
        names = [k.name for k in self.knobs]
        combos = (dict(zip(names, values)) for values in itertools.product(*(k.values for k in self.knobs)))
        return [default] + [p for p in combos if p != default and self.allowed(p)]

    def check(self, point: dict) -> None:
        """Raise ValueError unless `point` names exactly these knobs with allowed values."""
        by_name = {k.name: k for k in self.knobs}
        if set(point) != set(by_name):
            raise ValueError(f"{self.rule} knobs are {sorted(by_name)}, not {sorted(point)}")
        for name, value in point.items():
            if value not in by_name[name].values or type(value) is not type(by_name[name].default):
                raise ValueError(f"{self.rule} knob {name}={value!r} is not one of {list(by_name[name].values)}")
        if point != self.default() and not self.allowed(point):
            raise ValueError(f"{self.rule} knobs {point} do not fit this kernel")

    def features(self, point: dict) -> list[float]:
        """Cost-model features: the knob values, then the kernel's shape."""
        return [k.number(point[k.name]) for k in self.knobs] + [float(v) for v in self.shape.values()]


def register_knobs(*kinds: str):
    """Register a knob-space function for the rules of `kinds`."""

    def deco(fn):
        for kind in kinds:
            KNOB_SPACES[kind] = fn
        return fn

    return deco


def knob_space(kernel, target) -> Knobs | None:
    """The knob space of the kernel's CPU rule, or None when its rule has none (kernels with
    symbolic extents get rules of their own, which take no knobs)."""
    if target.schedule_rules != "cpu" or getattr(kernel, "symbolic", False):
        return None
    from . import _load_rules

    _load_rules()
    fn = KNOB_SPACES.get(kernel.kind)
    return fn(kernel, target) if fn is not None else None
