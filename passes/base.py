"""The pass base class, pass context (with remarks) and pass registry.

A pass is a dataclass with a class-level `name`; its fields are its options, typed, settable from
a pipeline string (`fuse{max-group-size=8}`; `options.py` has the value syntax). `run` transforms
the graph in place and returns whether it changed anything.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

from edgecc.errors import EdgeccError
from edgecc.ir import Graph

from .options import format_option, parse_option

__all__ = [
    "Pass", "PassContext", "Remark", "register_pass", "get_pass", "all_passes", "PassOptionError", "NOTE",
    "REJECTION",
]


class PassOptionError(EdgeccError, ValueError):
    """A pipeline string names an unknown pass or option, or gives a bad option value."""


NOTE, REJECTION = "note", "rejection"
#: the pipeline element that repeats a group of passes (`passes/pipeline.py`)
FIXPOINT = "fixpoint"


@dataclass(frozen=True)
class Remark:
    """Something a pass tells its user: a note, or why a rewrite rule did not apply to a node."""

    pass_name: str
    message: str
    node: str | None = None
    kind: str = NOTE  # NOTE | REJECTION

    def __str__(self) -> str:
        where = f"{self.node}: " if self.node else ""
        return f"{self.pass_name or '(no pass)'}: {where}{self.message}"


@dataclass
class PassContext:
    """What passes may know besides the graph (the target, the opt level, free-form options), and
    where they leave remarks. The pass manager sets `pass_name` while a pass runs."""

    target: Any = None
    opt_level: int = 2
    options: dict[str, Any] = field(default_factory=dict)
    remarks: list[Remark] = field(default_factory=list)
    pass_name: str = ""
    _seen: set[Remark] = field(default_factory=set, init=False, repr=False, compare=False)

    def note(self, message: str, node: Any = None) -> None:
        """Tell the user something about this pass's work (on `node`, a Node or its name)."""
        self._add(Remark(self.pass_name, message, _node_name(node), NOTE))

    def reject(self, rule: str, node: Any, reason: str) -> None:
        """Record that rewrite rule `rule` matched `node` but its check refused, and why."""
        self._add(Remark(self.pass_name, f"{rule}: {reason}", _node_name(node), REJECTION))

    def _add(self, remark: Remark) -> None:
        if remark not in self._seen:  # passes repeated to a fixed point say the same things again
            self._seen.add(remark)
            self.remarks.append(remark)


def _node_name(node: Any) -> str | None:
    return node if node is None or isinstance(node, str) else node.name


@dataclass
class Pass:
    """Base class: subclasses set `name`, declare options as fields and implement `run`."""

    name: ClassVar[str] = ""

    def run(self, graph: Graph, ctx: PassContext) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    @classmethod
    def summary(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    @classmethod
    def options(cls) -> dict[str, dataclasses.Field]:
        return {f.name.replace("_", "-"): f for f in dataclasses.fields(cls)}

    @classmethod
    def option_types(cls) -> dict[str, Any]:
        """Option name (as written in pipelines) -> its resolved type annotation."""
        hints = typing.get_type_hints(cls)
        return {key: hints[f.name] for key, f in cls.options().items()}

    @classmethod
    def from_options(cls, options: dict[str, str]) -> Pass:
        """Build the pass from `key=value` strings of a pipeline element."""
        known = cls.options()
        annotations = cls.option_types()
        kwargs = {}
        for key, text in options.items():
            if key not in known:
                names = ", ".join(known) or "none"
                raise PassOptionError(f"pass '{cls.name}' has no option '{key}' (options: {names})")
            try:
                kwargs[known[key].name] = parse_option(text, annotations[key])
            except ValueError as exc:
                raise PassOptionError(f"pass '{cls.name}': option {key}={text!r}: {exc}") from None
        return cls(**kwargs)

    def spec(self) -> str:
        """This pass as a pipeline element, options that differ from the defaults included."""
        parts = []
        for key, f in self.options().items():
            value = getattr(self, f.name)
            if value != _default(f):
                parts.append(f"{key}={format_option(value)}")
        return self.name + ("{" + ",".join(parts) + "}" if parts else "")


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


_PASSES: dict[str, type[Pass]] = {}


def register_pass(cls: type[Pass]) -> type[Pass]:
    """Class decorator: make the pass available by name to pipelines and the CLI."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name == FIXPOINT:
        raise ValueError(f"pass name {FIXPOINT} is taken by pipeline groups")
    if cls.name in _PASSES and _PASSES[cls.name] is not cls:
        raise ValueError(f"pass name {cls.name} is taken")
    cls = cls if "__dataclass_fields__" in cls.__dict__ else dataclass(cls)
    _check_option_types(cls)
    _PASSES[cls.name] = cls
    return cls


def _check_option_types(cls: type[Pass]) -> None:
    """Every option's default must print and parse back to itself (so `spec()` round-trips)."""
    for key, annotation in cls.option_types().items():
        default = _default(cls.options()[key])
        try:
            if default is dataclasses.MISSING:  # a required option: its type must still be parsable
                _try_parse(annotation)
                continue
            ok = parse_option(format_option(default), annotation) == default
        except TypeError as exc:
            raise TypeError(f"pass {cls.name}: option {key}: {exc}") from None
        except ValueError:
            ok = False
        if not ok:
            raise TypeError(f"pass {cls.name}: option {key}: default {default!r} does not round-trip")


def _try_parse(annotation: Any) -> None:
    """TypeError when no text can give a value of `annotation`."""
    try:
        parse_option("", annotation)
    except ValueError:
        pass


def get_pass(name: str) -> type[Pass]:
    try:
        return _PASSES[name]
    except KeyError:
        known = ", ".join(sorted(_PASSES))
        raise PassOptionError(f"unknown pass '{name}' (known: {known})") from None


def all_passes() -> dict[str, type[Pass]]:
    return dict(sorted(_PASSES.items()))
