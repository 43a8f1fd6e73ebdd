"""The pass base class, pass context and pass registry.

A pass is a dataclass with a class-level `name`; its fields are its options, settable from a
pipeline string (`fuse{max-inputs=8}`). `run` transforms the graph in place and returns whether
it changed anything.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from edgecc.errors import EdgeccError
from edgecc.ir import Graph

__all__ = ["Pass", "PassContext", "register_pass", "get_pass", "all_passes", "PassOptionError"]


class PassOptionError(EdgeccError, ValueError):
    """A pipeline string names an unknown pass or option, or gives a bad option value."""


@dataclass
class PassContext:
    """What passes may know besides the graph: the target, the opt level, free-form options."""

    target: Any = None
    opt_level: int = 2
    options: dict[str, Any] = field(default_factory=dict)
    diagnostics: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        self.diagnostics.append(message)


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
    def from_options(cls, options: dict[str, str]) -> Pass:
        """Build the pass from `key=value` strings of a pipeline element."""
        known = cls.options()
        kwargs = {}
        for key, text in options.items():
            if key not in known:
                names = ", ".join(known) or "none"
                raise PassOptionError(f"pass '{cls.name}' has no option '{key}' (options: {names})")
            f = known[key]
            kwargs[f.name] = _parse_option(cls.name, key, text, f.type)
        return cls(**kwargs)

    def spec(self) -> str:
        """This pass as a pipeline element, options that differ from the defaults included."""
        parts = []
        for key, f in self.options().items():
            value = getattr(self, f.name)
            default = f.default if f.default is not dataclasses.MISSING else None
            if value != default:
                parts.append(f"{key}={_format_option(value)}")
        return self.name + ("{" + ",".join(parts) + "}" if parts else "")


def _parse_option(pass_name: str, key: str, text: str, annotation) -> Any:
    kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    try:
        if "bool" in kind:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        if kind.startswith("int"):
            return int(text)
        if kind.startswith("float"):
            return float(text)
        if "tuple" in kind or "list" in kind:
            return tuple(s for s in text.split(":") if s)
        return text
    except ValueError:
        raise PassOptionError(f"pass '{pass_name}': option {key}={text!r} is not a valid {kind}") from None


def _format_option(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ":".join(str(v) for v in value)
    return str(value)


_PASSES: dict[str, type[Pass]] = {}


def register_pass(cls: type[Pass]) -> type[Pass]:
    """Class decorator: make the pass available by name to pipelines and the CLI."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _PASSES and _PASSES[cls.name] is not cls:
        raise ValueError(f"pass name {cls.name} is taken")
    _PASSES[cls.name] = cls if "__dataclass_fields__" in cls.__dict__ else dataclass(cls)
    return _PASSES[cls.name]


def get_pass(name: str) -> type[Pass]:
    try:
        return _PASSES[name]
    except KeyError:
        known = ", ".join(sorted(_PASSES))
        raise PassOptionError(f"unknown pass '{name}' (known: {known})") from None


def all_passes() -> dict[str, type[Pass]]:
    return dict(sorted(_PASSES.items()))
