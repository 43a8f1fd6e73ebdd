"""The pass base class, pass context and pass registry.

A pass is a dataclass with a class-level `name`; its fields are its options, settable from a
pipeline string (`fuse{max-inputs=8}`). `run` transforms the graph in place and returns whether
it changed anything.
"""

from __future__ import annotations

import dataclasses
import types
import typing
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


# ----- option values: parsed by the field's annotation -------------------------------------------
#: how a pipeline string writes None, booleans, and the separator of sequence items
NONE_TEXT = "none"
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
ITEM_SEPARATOR = ":"


def parse_option(text: str, annotation: Any) -> Any:
    """The value of `text` for an option annotated `annotation`; ValueError saying what was expected.

    bool (true/false), int, float, str, Literal[...] (one of its values), X | None ("none"),
    tuple[X, ...] / list[X] / tuple[X, Y] (items separated by ':', empty for none).
    """
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        others = [a for a in args if a is not type(None)]
        if len(others) != len(args) and text.strip().lower() == NONE_TEXT:
            return None
        if len(others) != 1:
            raise TypeError(f"option type {annotation} is not supported (one type or None)")
        return parse_option(text, others[0])
    if origin is typing.Literal:
        for choice in args:
            if text == str(choice) or (isinstance(choice, str) and text.lower() == choice.lower()):
                return choice
        raise ValueError("expected one of " + ", ".join(str(a) for a in args))
    if origin in (tuple, list) or annotation in (tuple, list):
        return _parse_sequence(text, origin or annotation, args)
    if annotation is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError("expected true or false")
    if annotation in (int, float):
        try:
            return annotation(text)
        except ValueError:
            raise ValueError(f"expected {'an integer' if annotation is int else 'a number'}") from None
    if annotation is str:
        return text
    raise TypeError(f"option type {annotation} is not supported")


def _parse_sequence(text: str, origin: type, args: tuple) -> tuple | list:
    items = [t for t in text.split(ITEM_SEPARATOR)] if text.strip() else []
    if origin is tuple and args and args[-1] is not Ellipsis:  # fixed length: tuple[int, int]
        if len(items) != len(args):
            raise ValueError(f"expected {len(args)} items separated by '{ITEM_SEPARATOR}'")
        kinds = list(args)
    else:
        kinds = [args[0] if args else str] * len(items)
    try:
        values = [parse_option(t.strip(), kind) for t, kind in zip(items, kinds)]
    except ValueError as exc:
        raise ValueError(f"{exc} for each item separated by '{ITEM_SEPARATOR}'") from None
    return tuple(values) if origin is tuple else values


def format_option(value: Any) -> str:
    """The text `parse_option` reads back as `value`."""
    if value is None:
        return NONE_TEXT
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ITEM_SEPARATOR.join(format_option(v) for v in value)
    return str(value)


_PASSES: dict[str, type[Pass]] = {}


def register_pass(cls: type[Pass]) -> type[Pass]:
    """Class decorator: make the pass available by name to pipelines and the CLI."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
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
