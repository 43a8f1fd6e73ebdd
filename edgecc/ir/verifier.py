"""The graph verifier: SSA, use lists, topological order, and each node against its op."""

from __future__ import annotations

from .graph import Graph, IRError, Node

__all__ = ["verify_graph", "VerifyError"]


class VerifyError(IRError):
    """The graph breaks an IR invariant; the message names the node."""


def verify_graph(g: Graph) -> None:
    """Raise VerifyError at the first broken invariant."""
    _check_dim_bounds(g.meta.get("dim_bounds") or {})
    defined: set[int] = set()
    for v in g.inputs:
        _check_owner(g, v, "graph input")
        defined.add(id(v))
    for name, v in g.constants.items():
        _check_owner(g, v, "constant")
        if v.const is None or v.name != name:
            raise VerifyError(f"constant %{name} is malformed")
        if tuple(v.const.shape) != v.type.shape or str(v.const.dtype) != v.type.dtype:
            raise VerifyError(f"constant %{name}: data {v.const.dtype}{list(v.const.shape)} does not match {v.type}")
        defined.add(id(v))
    names: set[str] = set()
    for v in g.values():
        if v.name in names:
            raise VerifyError(f"value name %{v.name} is defined twice")
        names.add(v.name)
    for node in g.nodes:
        _verify_node(g, node, defined)
        for out in node.outputs:
            defined.add(id(out))
    for v in g.outputs:
        if id(v) not in defined:
            raise VerifyError(f"graph output %{v.name} is not defined in {g.name}")
    _check_uses(g)


def _check_dim_bounds(bounds) -> None:
    """meta["dim_bounds"]: {size variable: (low >= 1, high >= low or None)}."""
    for name, pair in bounds.items():
        ok = isinstance(name, str) and isinstance(pair, tuple) and len(pair) == 2
        low, high = pair if ok else (None, None)
        ok = ok and isinstance(low, int) and low >= 1 and (high is None or (isinstance(high, int) and high >= low))
        if not ok:
            raise VerifyError(f"dim_bounds: {name!r}: {pair!r} is not (low >= 1, high >= low or None)")


def _check_owner(g: Graph, v, what: str) -> None:
    if v.graph is not g:
        raise VerifyError(f"{what} %{v.name} belongs to another graph")


def _verify_node(g: Graph, node: Node, defined: set[int]) -> None:
    where = f"node {node.name} ({node.op})"
    if node.graph is not g:
        raise VerifyError(f"{where} belongs to another graph")
    for i, v in enumerate(node.inputs):
        if v is None:
            continue
        if v.graph is not g:
            raise VerifyError(f"{where}: input {i} %{v.name} comes from another graph")
        if id(v) not in defined:
            raise VerifyError(f"{where}: input %{v.name} is used before it is defined")
        if (node, i) not in v.uses:
            raise VerifyError(f"{where}: %{v.name} does not list this use")
    for i, out in enumerate(node.outputs):
        if out.producer is not node or out.index != i:
            raise VerifyError(f"{where}: output %{out.name} does not point back to it")
    try:
        node.opdef.verify(node)
    except IRError as exc:
        raise VerifyError(f"{where}: {exc}") from None
    if node.subgraph is not None:
        try:
            verify_graph(node.subgraph)
        except VerifyError as exc:
            raise VerifyError(f"{where}, in its body: {exc}") from None


def _check_uses(g: Graph) -> None:
    for v in g.values():
        for node, idx in v.uses:
            if node.graph is not g or node not in g.nodes or node.inputs[idx] is not v:
                raise VerifyError(f"%{v.name} lists a stale use by {node.name}")
