"""The text form of the IR (parsed back by `edgecc.ir.parser`).

    graph @main(%x: f32[1,3,8,8]) {
      %w = const f32[4,3,3,3] dense<b64:...>
      %y = conv(%x, %w) {pads=[1,1,1,1]} : f32[1,4,8,8]
      return %y
    }

Attributes equal to their op's default are not printed. A missing optional input prints as `_`.
Types: `f32[1,8,56,56,8]<NCHW8c>` carries a layout, `i8[4]<q:scale=[0.1],zp=[0]>` quantization.
Symbolic sizes print as formulas (`f32[batch,seq*2]`); bounds of their variables (meta["dim_bounds"])
follow the inputs: `graph @main(%x: f32[batch,8]) dims {batch=[1,8]} {`.
"""

from __future__ import annotations

import base64

import numpy as np

from typing import TYPE_CHECKING

from .dims import Dim
from .types import TensorType, format_number, format_type

if TYPE_CHECKING:  # Graph.__str__ calls this module
    from .graph import Graph, Node, Value

__all__ = ["print_graph", "format_type", "format_attr_value"]

INLINE_LIMIT = 16


def format_dense(data: np.ndarray, *, elide: bool = False) -> str:
    flat = data.reshape(-1)
    if flat.size and flat.dtype != np.dtype("bool") and np.all(flat == flat[0]) and flat.size > 1:
        return f"dense<splat {format_number(flat[0])}>"
    if flat.size <= INLINE_LIMIT:
        return "dense<[" + ", ".join(format_number(v) for v in flat) + "]>"
    if elide:
        return "dense<...>"
    raw = np.ascontiguousarray(flat.astype(flat.dtype.newbyteorder("<"), copy=False)).tobytes()
    return "dense<b64:" + base64.b64encode(raw).decode() + ">"


def format_attr_value(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, Dim):  # a symbolic dimension in a `dims` attribute: its formula, quoted
        value = str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, np.ndarray):
        return format_type(TensorType(str(value.dtype), value.shape)) + " " + format_dense(value)
    if isinstance(value, (tuple, list)):
        return "[" + ",".join(format_attr_value(v) for v in value) + "]"
    return format_number(value)


class _Printer:
    def __init__(self, *, elide: bool, node_names: bool):
        self.elide = elide
        self.node_names = node_names
        self.lines: list[str] = []

    def graph(self, g: Graph, indent: str = "") -> None:
        params = ", ".join(f"%{v.name}: {format_type(v.type)}" for v in g.inputs)
        bounds = g.meta.get("dim_bounds")
        dims = (" dims {" + ", ".join(f"{name}={format_attr_value(pair)}" for name, pair in sorted(bounds.items()))
                + "}") if bounds else ""
        self.lines.append(f"{indent}graph @{g.name}({params}){dims} {{")
        self.body(g, indent + "  ")
        self.lines.append(f"{indent}}}")

    def body(self, g: Graph, indent: str) -> None:
        for v in g.constants.values():
            self.lines.append(f"{indent}%{v.name} = const {format_type(v.type)} {format_dense(v.const, elide=self.elide)}")
        for node in g.nodes:
            self.node(node, indent)
        self.lines.append(f"{indent}return " + ", ".join(f"%{v.name}" for v in g.outputs))

    def node(self, node: Node, indent: str) -> None:
        outs = ", ".join(f"%{v.name}" for v in node.outputs)
        args = _args(node)
        attrs = _attrs(node)
        types = ", ".join(format_type(v.type) for v in node.outputs)
        loc = f' loc("{node.name}")' if self.node_names else ""
        head = f"{indent}{outs} = {node.op}({args}){attrs} : {types}{loc}"
        if node.subgraph is None:
            self.lines.append(head)
            return
        sub = node.subgraph
        params = ", ".join(f"%{v.name}: {format_type(v.type)}" for v in sub.inputs)
        self.lines.append(head + " {")
        self.lines.append(f"{indent}  ^({params})")
        self.body(sub, indent + "  ")
        self.lines.append(f"{indent}}}")


def _args(node: Node) -> str:
    inputs = list(node.inputs)
    while inputs and inputs[-1] is None:
        inputs.pop()
    return ", ".join("_" if v is None else f"%{v.name}" for v in inputs)


def _attrs(node: Node) -> str:
    from .ops import get_op

    specs = get_op(node.op).attrs
    items = []
    for key in sorted(node.attrs):
        value = node.attrs[key]
        spec = specs.get(key)
        if spec is not None and _equal(value, spec.default):
            continue
        items.append(f"{key}={format_attr_value(value)}")
    return " {" + ", ".join(items) + "}" if items else ""


def _equal(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return False
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return tuple(a) == tuple(b)
    return type(a) is type(b) and a == b or (a is None and b is None)


def print_graph(g: Graph, *, elide_constants: bool = False, node_names: bool = False) -> str:
    """The graph as text. With elide_constants, tensors over 16 elements print as `dense<...>`."""
    p = _Printer(elide=elide_constants, node_names=node_names)
    p.graph(g)
    return "\n".join(p.lines) + "\n"


def print_value(v: Value) -> str:
    return f"%{v.name}: {format_type(v.type)}"
