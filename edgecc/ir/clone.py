"""Deep copies of graphs (constants share their arrays, which passes never modify in place)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Graph.clone calls this module; it builds the copy through the graph's own class
    from .graph import Graph, Value


def clone_graph(g: Graph, name: str | None = None) -> Graph:
    new = type(g)(name or g.name)
    new.meta = {k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
                for k, v in g.meta.items()}  # dim_bounds is a dict
    vmap: dict[int, Value] = {}
    for v in g.inputs:
        vmap[id(v)] = new.add_input(v.name, v.type)
    for v in g.constants.values():
        vmap[id(v)] = new.add_constant(v.const, v.name, layout=v.type.layout, quant=v.type.quant)
    for node in g.nodes:
        copy = new.create_node(
            node.op,
            [vmap[id(v)] if v is not None else None for v in node.inputs],
            dict(node.attrs),
            name=node.name,
            output_names=[o.name for o in node.outputs],
            output_types=[o.type for o in node.outputs],
        )
        if node.subgraph is not None:
            copy.subgraph = clone_graph(node.subgraph)
            copy.subgraph.parent = copy
        for old, fresh in zip(node.outputs, copy.outputs):
            vmap[id(old)] = fresh
    new.set_outputs(vmap[id(v)] for v in g.outputs)
    return new
