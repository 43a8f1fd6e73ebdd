"""Typed pass options: parsed by each field's annotation, printed back by `spec()`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from edgecc.errors import EdgeccError
from edgecc.passes import Pass, PassOptionError, all_passes, parse_pipeline, register_pass
from edgecc.passes.options import format_option, parse_option


@dataclass
class Options(Pass):
    """One option of every supported kind (not registered)."""

    name = "test-options"
    flag: bool = False
    count: int = 3
    limit: int | None = None
    ratio: float = 0.5
    label: str = "x"
    mode: Literal["fast", "small"] = "fast"
    sizes: tuple[int, ...] = (1, 2)
    pair: tuple[int, float] = (0, 1.0)
    names: list[str] = field(default_factory=list)


@pytest.mark.parametrize("text, key, value", [
    ("flag=true", "flag", True), ("flag=0", "flag", False), ("flag=Off", "flag", False),
    ("count=-7", "count", -7),
    ("limit=none", "limit", None), ("limit=12", "limit", 12),
    ("ratio=1e-3", "ratio", 1e-3),
    ("label=hello", "label", "hello"),
    ("mode=small", "mode", "small"), ("mode=FAST", "mode", "fast"),
    ("sizes=4:8:16", "sizes", (4, 8, 16)), ("sizes=", "sizes", ()),
    ("pair=3:2.5", "pair", (3, 2.5)),
    ("names=a:b", "names", ["a", "b"]),
])
def test_each_option_type_parses_to_its_annotation(text, key, value):
    key_text, _, value_text = text.partition("=")
    p = Options.from_options({key_text: value_text})
    got = getattr(p, key)
    assert got == value and type(got) is type(value)
    if isinstance(got, (tuple, list)):
        assert all(type(a) is type(b) for a, b in zip(got, value))


@pytest.mark.parametrize("text, message", [
    ("flag=maybe", "option flag='maybe': expected true or false"),
    ("count=3.5", "option count='3.5': expected an integer"),
    ("limit=lots", "option limit='lots': expected an integer"),
    ("ratio=half", "option ratio='half': expected a number"),
    ("mode=medium", "option mode='medium': expected one of fast, small"),
    ("sizes=4:x", "option sizes='4:x': expected an integer for each item separated by ':'"),
    ("pair=1:2:3", "option pair='1:2:3': expected 2 items separated by ':'"),
])
def test_bad_option_values_say_what_was_expected(text, message):
    key, _, value = text.partition("=")
    with pytest.raises(PassOptionError, match="pass 'test-options': " + message):
        Options.from_options({key: value})


def test_spec_round_trips_every_option_type():
    p = Options(flag=True, count=-1, limit=4, ratio=0.25, label="y", mode="small", sizes=(), pair=(2, 0.5),
                names=["p", "q"])
    spec = p.spec()
    assert spec == ("test-options{flag=true,count=-1,limit=4,ratio=0.25,label=y,mode=small,sizes=,"
                    "pair=2:0.5,names=p:q}")
    _, _, body = spec.partition("{")
    options = dict(item.split("=", 1) for item in body[:-1].split(","))
    assert Options.from_options(options) == p
    assert Options().spec() == "test-options"
    assert Options(limit=None, names=[]).spec() == "test-options"


@pytest.mark.parametrize("name, cls", sorted(all_passes().items()))
def test_registered_passes_round_trip_through_spec(name, cls):
    default = cls()
    assert parse_pipeline(default.spec()) == [default]
    for key, annotation in cls.option_types().items():
        value = getattr(default, cls.options()[key].name)
        assert parse_option(format_option(value), annotation) == value


def test_options_of_real_passes_are_typed():
    (layout,) = parse_pipeline("convert-layout{layout=none,lanes=4}")
    assert layout.layout == "none" and layout.lanes == 4
    (quantize,) = parse_pipeline("quantize{dtype=uint8,skip=conv1:conv2,per-channel=false}")
    assert quantize.skip == ("conv1", "conv2") and quantize.per_channel is False
    assert quantize.spec() == "quantize{dtype=uint8,per-channel=false,skip=conv1:conv2}"
    with pytest.raises(PassOptionError, match="option layout='NHWC': expected one of target, NCHWc, none"):
        parse_pipeline("convert-layout{layout=NHWC}")


def test_option_errors_are_user_errors():
    with pytest.raises(EdgeccError):
        parse_pipeline("fold-constants{grow=perhaps}")
    with pytest.raises(ValueError):  # also a ValueError, for callers that catch those
        parse_pipeline("no-such-pass")


def test_unsupported_option_types_are_refused_at_registration():
    class Table(Pass):
        """Has an option no pipeline string can write (test only)."""

        name = "test-table-option"
        table: dict = field(default_factory=dict)

    class Weights(Pass):
        """Has an option no pipeline string can write (test only)."""

        name = "test-set-option"
        weights: set[int] = frozenset()

    with pytest.raises(TypeError, match="test-table-option: option table: option type <class 'dict'> is not supported"):
        register_pass(Table)
    with pytest.raises(TypeError, match="test-set-option: option weights: option type set\\[int\\] is not supported"):
        register_pass(Weights)
    assert not {"test-table-option", "test-set-option"} & set(all_passes())
