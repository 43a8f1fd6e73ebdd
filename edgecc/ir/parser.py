"""Parse the IR text form written by `edgecc.ir.printer` back into a Graph."""

from __future__ import annotations

import base64
import re

import numpy as np

from .graph import Graph, IRError, Node, Value
from .types import QuantParams, TensorType, dtype_from_short, np_dtype, parse_dim

__all__ = ["parse_graph", "ParseError"]


class ParseError(IRError):
    """The text is not valid IR; the message names the line."""


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>[ \t\r]+|\#[^\n]*)
  | (?P<nl>\n)
  | (?P<dense>dense<[^>]*>)
  | (?P<type>[a-z]+\d*\[[0-9A-Za-z_,\s*+\-/()]*\](?:<[^>]*>)?)
  | (?P<value>%[A-Za-z0-9_.]+)
  | (?P<global>@[A-Za-z0-9_.]+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<number>-?(?:\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|\d+|inf)|nan)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<punct>->|[(){}\[\],=:^])
    """,
    re.VERBOSE,
)


class _Tokens:
    def __init__(self, text: str):
        self.toks: list[tuple[str, str, int]] = []
        line, pos = 1, 0
        while pos < len(text):
            m = _TOKEN_RE.match(text, pos)
            if not m:
                raise ParseError(f"line {line}: unexpected text {text[pos:pos + 20]!r}")
            kind = m.lastgroup
            if kind == "nl":
                line += 1
            elif kind != "ws":
                self.toks.append((kind, m.group(), line))
            pos = m.end()
        self.i = 0

    def peek(self) -> tuple[str, str, int]:
        return self.toks[self.i] if self.i < len(self.toks) else ("eof", "", -1)

    def next(self) -> tuple[str, str, int]:
        tok = self.peek()
        self.i += 1
        return tok

    def expect(self, text: str) -> None:
        kind, got, line = self.next()
        if got != text:
            raise ParseError(f"line {line}: expected {text!r}, got {got!r}")

    def expect_kind(self, kind: str) -> str:
        k, got, line = self.next()
        if k != kind:
            raise ParseError(f"line {line}: expected a {kind}, got {got!r}")
        return got

    def accept(self, text: str) -> bool:
        if self.peek()[1] == text:
            self.i += 1
            return True
        return False

    @property
    def line(self) -> int:
        return self.peek()[2]


def parse_type(text: str) -> TensorType:
    m = re.fullmatch(r"([a-z]+\d*)\[([0-9A-Za-z_,\s*+\-/()]*)\](?:<([^>]*)>)?", text)
    if not m:
        raise ParseError(f"bad type {text!r}")
    short, dims, extras = m.groups()
    try:
        dtype = dtype_from_short(short)
    except KeyError:
        raise ParseError(f"unknown element type {short!r}") from None
    try:
        shape = tuple(parse_dim(d) for d in dims.split(",") if d.strip())
    except IRError as exc:
        raise ParseError(f"bad type {text!r}: {exc}") from None
    layout, quant = None, None
    for part in (extras or "").split(";"):
        if not part:
            continue
        if part.startswith("q:"):
            quant = _parse_quant(part[2:])
        else:
            layout = part
    return TensorType(dtype, shape, layout, quant)


def _parse_quant(text: str) -> QuantParams:
    fields = dict(re.findall(r"(axis|scale|zp)=(\[[^\]]*\]|-?\d+)", text))
    scale = tuple(float(s) for s in fields["scale"].strip("[]").split(",") if s)
    zp = tuple(int(s) for s in fields["zp"].strip("[]").split(",") if s)
    axis = int(fields["axis"]) if "axis" in fields else None
    return QuantParams(scale, zp, axis)


def parse_dense(text: str, ttype: TensorType) -> np.ndarray:
    body = text[len("dense<") : -1]
    dtype = np_dtype(ttype.dtype)
    if body.startswith("splat "):
        return np.full(ttype.shape, _literal(body[6:]), dtype=dtype)
    if body.startswith("b64:"):
        raw = base64.b64decode(body[4:])
        data = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype)
    elif body.startswith("["):
        items = [s.strip() for s in body.strip("[]").split(",") if s.strip()]
        data = np.array([_literal(s) for s in items], dtype=dtype)
    else:
        raise ParseError(f"constant data is elided ({text}); print with elide_constants=False")
    if data.size != ttype.size:
        raise ParseError(f"constant has {data.size} values, type {ttype} needs {ttype.size}")
    return data.reshape(ttype.shape)


def _literal(text: str):
    if text in ("true", "false"):
        return text == "true"
    if text in ("nan", "inf", "-inf"):
        return float(text)
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return float(text)


class _Parser:
    def __init__(self, text: str):
        self.t = _Tokens(text)

    def graph(self) -> Graph:
        self.t.expect("graph")
        name = self.t.expect_kind("global")[1:]
        g = Graph(name)
        scope: dict[str, Value] = {}
        self.t.expect("(")
        for vname, vtype in self.params(")"):
            scope[vname] = self.define(g, g.add_input(vname, vtype), vname)
        if self.t.accept("dims"):  # bounds of size variables: dims {batch=[1,8], seq=[1,none]}
            g.meta["dim_bounds"] = {name: self._bounds(name, value) for name, value in self.attrs().items()}
        self.t.expect("{")
        self.body(g, scope)
        self.t.expect("}")
        return g

    def _bounds(self, name: str, value) -> tuple:
        if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], int)
                and (value[1] is None or isinstance(value[1], int))):
            raise ParseError(f"line {self.t.line}: bounds of {name} must be [low, high or none], got {value!r}")
        return value

    def params(self, close: str):
        out = []
        while not self.t.accept(close):
            vname = self.t.expect_kind("value")[1:]
            self.t.expect(":")
            out.append((vname, parse_type(self.t.expect_kind("type"))))
            self.t.accept(",")
        return out

    def define(self, g: Graph, value: Value, name: str) -> Value:
        if value.name != name:
            raise ParseError(f"line {self.t.line}: %{name} is defined twice")
        return value

    def body(self, g: Graph, scope: dict[str, Value]) -> None:
        while True:
            kind, text, line = self.t.peek()
            if text == "return":
                self.t.next()
                outs = [self.use(scope, self.t.expect_kind("value")[1:])]
                while self.t.accept(","):
                    outs.append(self.use(scope, self.t.expect_kind("value")[1:]))
                g.set_outputs(outs)
                return
            if kind != "value":
                raise ParseError(f"line {line}: expected a definition or return, got {text!r}")
            self.statement(g, scope)

    def use(self, scope: dict[str, Value], name: str) -> Value:
        if name not in scope:
            raise ParseError(f"line {self.t.line}: %{name} is used before it is defined")
        return scope[name]

    def statement(self, g: Graph, scope: dict[str, Value]) -> None:
        line = self.t.line
        names = [self.t.expect_kind("value")[1:]]
        while self.t.accept(","):
            names.append(self.t.expect_kind("value")[1:])
        self.t.expect("=")
        op = self.t.expect_kind("ident")
        if op == "const":
            ttype = parse_type(self.t.expect_kind("type"))
            data = parse_dense(self.t.expect_kind("dense"), ttype)
            value = g.add_constant(data, names[0], layout=ttype.layout, quant=ttype.quant)
            scope[names[0]] = self.define(g, value, names[0])
            return
        self.t.expect("(")
        inputs: list[Value | None] = []
        while not self.t.accept(")"):
            if self.t.accept("_"):
                inputs.append(None)
            else:
                inputs.append(self.use(scope, self.t.expect_kind("value")[1:]))
            self.t.accept(",")
        attrs = self.attrs() if self.t.peek()[1] == "{" and self.t.toks[self.t.i + 1][0] == "ident" else {}
        self.t.expect(":")
        types = [parse_type(self.t.expect_kind("type"))]
        while self.t.accept(","):
            types.append(parse_type(self.t.expect_kind("type")))
        node_name = None
        if self.t.accept("loc"):
            self.t.expect("(")
            node_name = _unquote(self.t.expect_kind("string"))
            self.t.expect(")")
        if len(types) != len(names):
            raise ParseError(f"line {line}: {len(names)} results but {len(types)} types")
        subgraph = self.subgraph() if self.t.peek()[1] == "{" else None
        try:
            node = self._make(g, op, inputs, attrs, types, names, node_name, subgraph)
        except IRError as exc:
            raise ParseError(f"line {line}: {exc}") from None
        for name, out in zip(names, node.outputs):
            scope[name] = self.define(g, out, name)

    def _make(self, g, op, inputs, attrs, types, names, node_name, subgraph) -> Node:
        node = g.create_node(op, inputs, attrs, name=node_name, output_names=names, output_types=types)
        if subgraph is not None:
            node.subgraph = subgraph
            subgraph.parent = node
        return node

    def subgraph(self) -> Graph:
        self.t.expect("{")
        self.t.expect("^")
        self.t.expect("(")
        sub = Graph("body")
        scope: dict[str, Value] = {}
        for vname, vtype in self.params(")"):
            scope[vname] = self.define(sub, sub.add_input(vname, vtype), vname)
        self.body(sub, scope)
        self.t.expect("}")
        return sub

    def attrs(self) -> dict:
        self.t.expect("{")
        out = {}
        while not self.t.accept("}"):
            key = self.t.expect_kind("ident")
            self.t.expect("=")
            out[key] = self.attr_value()
            self.t.accept(",")
        return out

    def attr_value(self):
        kind, text, line = self.t.next()
        if kind == "string":
            return _unquote(text)
        if kind == "number":
            return _literal(text)
        if kind == "ident" and text in ("true", "false"):
            return text == "true"
        if kind == "ident" and text == "none":
            return None
        if text == "[":
            items = []
            while not self.t.accept("]"):
                items.append(self.attr_value())
                self.t.accept(",")
            return tuple(items)
        if kind == "type":
            ttype = parse_type(text)
            return parse_dense(self.t.expect_kind("dense"), ttype)
        raise ParseError(f"line {line}: bad attribute value {text!r}")


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def parse_graph(text: str) -> Graph:
    """Parse IR text into a Graph; ParseError names the offending line."""
    parser = _Parser(text)
    g = parser.graph()
    kind, rest, line = parser.t.peek()
    if kind != "eof":
        raise ParseError(f"line {line}: unexpected {rest!r} after the graph")
    return g
