"""Outlining: a set of nodes becomes one node holding them as its body subgraph.

Used by `fuse` (`fused` nodes) and `partition-npu` (`npu_region` nodes). The body's inputs bind,
in order, to the new node's inputs; its outputs are the members' values read outside the set.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgecc.ir import Graph, Node, Value


@dataclass
class Outlined:
    """A set of nodes as a graph of its own, with the outer values it reads and those read outside."""

    body: Graph
    inputs: list[Value]
    outputs: list[Value]


def extract_body(nodes: list[Node], body_name: str = "body", copy_constants: bool = False) -> Outlined:
    """Copy `nodes` (in graph order) into a new graph. With `copy_constants` the constants they
    read are copied into the body instead of becoming inputs."""
    members = {id(n) for n in nodes}
    inputs: list[Value] = []
    for n in nodes:
        for v in n.inputs:
            if v is None or (copy_constants and v.const is not None):
                continue
            if (v.producer is None or id(v.producer) not in members) and all(v is not i for i in inputs):
                inputs.append(v)
    outputs = [o for n in nodes for o in n.outputs
               if o.is_graph_output or any(id(u) not in members for u, _ in o.uses)]
    body = Graph(body_name)
    vmap: dict[int, Value] = {id(v): body.add_input(v.name, v.type) for v in inputs}
    for n in nodes:
        for v in n.inputs:
            if v is not None and v.const is not None and id(v) not in vmap:
                vmap[id(v)] = body.add_constant(v.const, v.name, layout=v.type.layout, quant=v.type.quant)
        copy = body.create_node(n.op, [vmap[id(v)] if v is not None else None for v in n.inputs], dict(n.attrs),
                                name=n.name, output_names=[o.name for o in n.outputs],
                                output_types=[o.type for o in n.outputs])
        for old, new in zip(n.outputs, copy.outputs):
            vmap[id(old)] = new
    body.set_outputs(vmap[id(o)] for o in outputs)
    return Outlined(body, inputs, outputs)


def replace_with_body(graph: Graph, nodes: list[Node], outlined: Outlined, op: str, attrs: dict, name: str) -> Node:
    """Put one `op` node holding `outlined.body` after the last of `nodes`, redirect the readers
    of their outputs to it and erase them; its outputs keep the old values' names."""
    outputs = outlined.outputs
    node = graph.create_node(op, outlined.inputs, attrs, name=name, output_names=[o.name for o in outputs],
                             output_types=[o.type for o in outputs], after=nodes[-1])
    node.subgraph = outlined.body
    outlined.body.parent = node
    names = [o.name for o in outputs]
    for old, new in zip(outputs, node.outputs):
        graph.replace_value(old, new)
    for n in reversed(nodes):
        graph.erase_node(n)
    for value_name, new in zip(names, node.outputs):
        if new.name != value_name and not any(v.name == value_name for v in graph.values()):
            graph.rename_value(new, value_name)
    return node


def outline(graph: Graph, nodes: list[Node], op: str, attrs: dict, name: str, body_name: str = "body",
            copy_constants: bool = False) -> Node:
    """Replace `nodes` (in graph order) by one `op` node holding them as its body."""
    return replace_with_body(graph, nodes, extract_body(nodes, body_name, copy_constants), op, attrs, name)
