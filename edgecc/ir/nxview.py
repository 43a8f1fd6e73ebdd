"""A networkx view of a graph, for graph algorithms (dominators, reachability, ordering)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import networkx as nx

if TYPE_CHECKING:  # Graph.to_networkx calls this module
    from .graph import Graph


def to_networkx(g: Graph) -> nx.DiGraph:
    """One vertex per node (attribute `node`), an edge per producer -> consumer (attribute `values`).

    The graph's outputs feed a sink vertex named `__output__`, so post-dominators are well defined.
    """
    dg = nx.DiGraph()
    for node in g.nodes:
        dg.add_node(node.name, node=node)
    dg.add_node("__output__", node=None)
    for node in g.nodes:
        for v in node.inputs:
            if v is not None and v.producer is not None:
                if dg.has_edge(v.producer.name, node.name):
                    dg.edges[v.producer.name, node.name]["values"].append(v.name)
                else:
                    dg.add_edge(v.producer.name, node.name, values=[v.name])
    for v in g.outputs:
        if v.producer is not None:
            dg.add_edge(v.producer.name, "__output__", values=[v.name])
    return dg
