"""SSA values, nodes and graphs.

A `Value` is defined once (by a node output, a graph input or a constant) and knows its uses.
Use lists are kept by the IR: change a node's inputs only through `Node.set_input`,
`Value.replace_all_uses_with` and `Graph.erase_node`, never by editing fields.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from .errors import IRError
from .types import TensorType

__all__ = ["Value", "Node", "Graph", "IRError", "check_same_type"]


class Value:
    """An SSA value: a node output, a graph input, or a constant tensor."""

    __slots__ = ("name", "type", "producer", "index", "uses", "const", "graph", "scratch")

    def __init__(self, name: str, type: TensorType, graph: Graph, const: np.ndarray | None = None):
        self.name = name
        self.type = type
        self.producer: Node | None = None
        self.index = 0
        self.uses: list[tuple[Node, int]] = []
        self.const = const
        self.graph = graph
        self.scratch: dict[str, Any] = {}

    @property
    def is_constant(self) -> bool:
        return self.const is not None

    @property
    def is_graph_input(self) -> bool:
        return self.producer is None and self.const is None

    @property
    def is_graph_output(self) -> bool:
        return any(v is self for v in self.graph.outputs)

    @property
    def users(self) -> list[Node]:
        """Distinct nodes that read this value, in use order."""
        seen: dict[int, Node] = {}
        for node, _ in self.uses:
            seen.setdefault(id(node), node)
        return list(seen.values())

    @property
    def has_uses(self) -> bool:
        return bool(self.uses) or self.is_graph_output

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self) -> str:
        return self.type.dtype

    def replace_all_uses_with(self, new: Value, *, retype: bool = False) -> None:
        """Make every reader of this value (nodes and graph outputs) read `new` instead.

        `new` must have the same type (see `check_same_type`) unless `retype` is set by a caller
        that also changes every reader to accept the new type.
        """
        if new is self:
            return
        if not retype:
            check_same_type(self, new)
        for node, idx in list(self.uses):
            node.set_input(idx, new)
        self.graph.outputs = [new if v is self else v for v in self.graph.outputs]

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


def check_same_type(old: Value, new: Value) -> None:
    """Raise IRError unless `new` can stand in for `old`: same dtype and shape, and the same
    layout (None, the model's own order, matches any unblocked layout). Quantization parameters
    are not compared: lowering quantized patterns legitimately attaches or refines them."""
    a, b = old.type, new.type
    if a.dtype != b.dtype or a.shape != b.shape or not _same_layout(a.layout, b.layout):
        raise IRError(f"cannot replace %{old.name}: {a} by %{new.name}: {b} (types differ)")


def _same_layout(a: str | None, b: str | None) -> bool:
    if a == b:
        return True
    if a is not None and b is not None:
        return False
    from .layout import layout_of

    return not layout_of(a or b).is_blocked


class Node:
    """An operation: op name, inputs (a missing optional input is None), attributes, outputs."""

    __slots__ = ("op", "name", "_inputs", "outputs", "attrs", "subgraph", "graph", "scratch")

    def __init__(self, op: str, name: str, graph: Graph, attrs: dict[str, Any] | None = None):
        self.op = op
        self.name = name
        self.graph = graph
        self._inputs: list[Value | None] = []
        self.outputs: list[Value] = []
        self.attrs: dict[str, Any] = dict(attrs or {})
        self.subgraph: Graph | None = None
        self.scratch: dict[str, Any] = {}

    @property
    def inputs(self) -> tuple[Value | None, ...]:
        return tuple(self._inputs)

    @property
    def output(self) -> Value:
        if len(self.outputs) != 1:
            raise IRError(f"node {self.name} ({self.op}) has {len(self.outputs)} outputs")
        return self.outputs[0]

    def input(self, idx: int) -> Value | None:
        return self._inputs[idx] if idx < len(self._inputs) else None

    def set_input(self, idx: int, value: Value | None) -> None:
        """Replace input `idx`, keeping both values' use lists right."""
        old = self._inputs[idx]
        if old is not None:
            old.uses.remove((self, idx))
        self._inputs[idx] = value
        if value is not None:
            value.uses.append((self, idx))

    def append_input(self, value: Value | None) -> None:
        self._inputs.append(None)
        self.set_input(len(self._inputs) - 1, value)

    def drop_inputs(self) -> None:
        for idx in range(len(self._inputs)):
            self.set_input(idx, None)
        self._inputs = []

    @property
    def opdef(self):
        from .ops import get_op

        return get_op(self.op)

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def __repr__(self) -> str:
        return f"<Node {self.name}: {self.op}>"


_NAME_RE = re.compile(r"[^A-Za-z0-9_.]")


def sanitize_name(name: str) -> str:
    """A name the text form can print: letters, digits, `_` and `.`."""
    name = _NAME_RE.sub("_", name)
    return name or "v"


class Graph:
    """A function in SSA form: inputs, constants, nodes in topological order, outputs."""

    def __init__(self, name: str = "main"):
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.nodes: list[Node] = []
        self.constants: dict[str, Value] = {}
        self.parent: Node | None = None
        self.meta: dict[str, Any] = {}  # model metadata (original I/O names, producer, opset)
        self._names: set[str] = set()
        self._node_names: set[str] = set()
        self._counter = 0

    # ----- naming -------------------------------------------------------------------------
    def fresh_name(self, base: str = "v", *, node: bool = False) -> str:
        """A name not used yet by a value (or, with node=True, by a node) of this graph."""
        taken = self._node_names if node else self._names
        base = sanitize_name(base)
        if base not in taken:
            taken.add(base)
            return base
        while True:
            self._counter += 1
            cand = f"{base}_{self._counter}"
            if cand not in taken:
                taken.add(cand)
                return cand

    # ----- construction -------------------------------------------------------------------
    def add_input(self, name: str, type: TensorType) -> Value:
        value = Value(self.fresh_name(name), type, self)
        self.inputs.append(value)
        return value

    def add_constant(
        self, data: np.ndarray, name: str = "const", *, layout: str | None = None, quant=None
    ) -> Value:
        """A new constant value holding `data` (copied to a contiguous array)."""
        from .types import DTYPES

        data = np.asarray(data)
        if not data.flags.c_contiguous:  # (np.ascontiguousarray would turn a scalar into shape (1,))
            data = data.copy(order="C")
        dtype = str(data.dtype)
        if dtype not in DTYPES:
            raise IRError(f"constant {name}: unsupported dtype {dtype}")
        ttype = TensorType(dtype, data.shape, layout, quant)
        value = Value(self.fresh_name(name), ttype, self, const=data)
        self.constants[value.name] = value
        return value

    def create_node(
        self,
        op: str,
        inputs: Sequence[Value | None],
        attrs: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        output_names: Sequence[str] | None = None,
        output_types: Sequence[TensorType] | None = None,
        before: Node | None = None,
        after: Node | None = None,
        infer: bool = True,
    ) -> Node:
        """Create a node, infer its output types from the op registry, and insert it.

        Inserted at the end, or just before `before` / just after `after`.
        """
        from .ops import get_op

        node = Node(op, self.fresh_name(name or op, node=True), self, attrs)
        opdef = get_op(op)
        for value in inputs:
            node.append_input(value)
        if opdef.max_inputs is not None:  # optional inputs left out are present as None
            for _ in range(len(inputs), opdef.max_inputs):
                node.append_input(None)
        try:
            if output_types is None:
                if not infer:
                    raise IRError("output types are needed when inference is off")
                opdef.normalize_attrs(node)
                output_types = opdef.infer(node)
            else:
                opdef.normalize_attrs(node)
        except Exception:
            node.drop_inputs()
            raise
        names = list(output_names or [])
        for i, ttype in enumerate(output_types):
            base = names[i] if i < len(names) and names[i] else node.name
            value = Value(self.fresh_name(base), ttype, self)
            value.producer, value.index = node, i
            node.outputs.append(value)
        self._insert(node, before=before, after=after)
        return node

    def _insert(self, node: Node, *, before: Node | None, after: Node | None) -> None:
        if before is not None:
            self.nodes.insert(self.nodes.index(before), node)
        elif after is not None:
            self.nodes.insert(self.nodes.index(after) + 1, node)
        else:
            self.nodes.append(node)

    def set_outputs(self, outputs: Iterable[Value]) -> None:
        self.outputs = list(outputs)

    # ----- mutation -----------------------------------------------------------------------
    def erase_node(self, node: Node) -> None:
        """Remove a node whose outputs have no uses."""
        for out in node.outputs:
            if out.has_uses:
                readers = ", ".join(n.name for n in out.users) or "graph output"
                raise IRError(f"cannot erase {node.name}: output %{out.name} is used by {readers}")
        node.drop_inputs()
        self.nodes.remove(node)
        for out in node.outputs:
            self._names.discard(out.name)
        self._node_names.discard(node.name)

    def replace_value(self, old: Value, new: Value, *, retype: bool = False) -> None:
        """Make all readers of `old` read `new`, keeping graph output names stable.

        `new` must have `old`'s dtype and shape (and layout, where both name one); IRError
        otherwise. `retype=True` allows a different type for the rare rewrite that changes the
        readers too. When `old` is a graph output, `new` takes over its name; if `new` cannot (it
        is a graph input, a constant or already an output), an identity node is inserted to carry
        the name.
        """
        if old is new:
            return
        if not retype:
            check_same_type(old, new)
        if not old.is_graph_output:
            old.replace_all_uses_with(new, retype=retype)
            return
        if new.producer is None or new.is_graph_output:
            anchor = old.producer
            node = self.create_node("identity", [new], name=old.name, before=anchor)
            new = node.output
        old.replace_all_uses_with(new, retype=retype)
        name = old.name
        self.rename_value(old, name + ".replaced")
        self.rename_value(new, name)

    def remove_unused_constants(self) -> int:
        dead = [name for name, v in self.constants.items() if not v.has_uses]
        for name in dead:
            del self.constants[name]
            self._names.discard(name)
        return len(dead)

    def rename_value(self, value: Value, name: str) -> None:
        if value.name == name:
            return
        is_const = value.name in self.constants and self.constants[value.name] is value
        self._names.discard(value.name)
        new = self.fresh_name(name)
        if is_const:
            del self.constants[value.name]
            self.constants[new] = value
        value.name = new

    def topological_sort(self) -> None:
        """Reorder `nodes` so every node comes after the producers of its inputs (stable)."""
        position = {id(n): i for i, n in enumerate(self.nodes)}
        indegree = {id(n): 0 for n in self.nodes}
        for n in self.nodes:
            indegree[id(n)] = len({id(v.producer) for v in n.inputs if v is not None and v.producer})
        import heapq

        ready = [(position[id(n)], n) for n in self.nodes if indegree[id(n)] == 0]
        heapq.heapify(ready)
        order: list[Node] = []
        while ready:
            _, node = heapq.heappop(ready)
            order.append(node)
            for user in {id(u): u for out in node.outputs for u in out.users}.values():
                indegree[id(user)] -= 1
                if indegree[id(user)] == 0:
                    heapq.heappush(ready, (position[id(user)], user))
        if len(order) != len(self.nodes):
            raise IRError(f"graph {self.name} has a cycle")
        self.nodes = order

    # ----- queries ------------------------------------------------------------------------
    def values(self) -> Iterator[Value]:
        yield from self.inputs
        yield from self.constants.values()
        for node in self.nodes:
            yield from node.outputs

    def value(self, name: str) -> Value:
        for v in self.values():
            if v.name == name:
                return v
        raise KeyError(name)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def walk(self) -> Iterator[Node]:
        """All nodes, including those inside fused subgraphs."""
        for node in self.nodes:
            yield node
            if node.subgraph is not None:
                yield from node.subgraph.walk()

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return dict(sorted(counts.items()))

    def parameter_bytes(self) -> int:
        return sum(v.const.nbytes for v in self.constants.values())

    def to_networkx(self):
        """A networkx DiGraph view: one vertex per node, an edge per producer->consumer value."""
        from .nxview import to_networkx

        return to_networkx(self)

    def clone(self) -> Graph:
        """A deep copy (constants share their read-only arrays)."""
        from .clone import clone_graph

        return clone_graph(self)

    def __str__(self) -> str:
        from .printer import print_graph

        return print_graph(self)
