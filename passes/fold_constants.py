"""fold-constants: evaluate nodes whose inputs are all known at compile time.

A folded node becomes a constant. Folding never grows the parameters much: an output is folded
only when it is no larger than its largest input or at most `small-elements` elements; a fold
over the compile's `fold_bytes` / `fold_work` limits (edgecc.ir.limits) is left to run time.
Safe anywhere; most useful after passes that make inputs constant (BN folding, layout).
"""

from __future__ import annotations

from edgecc.ir import Graph, Node
from edgecc.ir.static_eval import fold_node, within_fold_limits

from .base import Pass, PassContext, register_pass


def replace_with_constants(graph: Graph, node: Node, arrays) -> None:
    """Replace the node by constants holding `arrays`; they take over its output names."""
    consts = []
    for out, data in zip(node.outputs, arrays):
        const = graph.add_constant(data, out.name + ".folded", layout=out.type.layout, quant=out.type.quant)
        graph.replace_value(out, const)
        consts.append((out.name, const))
    graph.erase_node(node)
    for name, const in consts:
        if not any(v.name == name for v in graph.values()):
            graph.rename_value(const, name)


def try_fold(graph: Graph, node: Node, small_elements: int, grow: bool) -> bool:
    """Fold `node` if its inputs are constant and the size rule allows; returns whether it did."""
    if node.subgraph is not None or not node.opdef.fold_fn:
        return False
    if node.op == "identity" and node.output.is_graph_output:
        return False  # carries an output's name; folding it would only recreate it
    inputs = [v for v in node.inputs if v is not None]
    if any(v.const is None for v in inputs) or not all(o.type.is_static for o in node.outputs):
        return False  # a symbolic-size output (a fill of shape (batch, 4)) is made at run time
    largest = max((v.type.size for v in inputs), default=0)
    out_size = sum(o.type.size for o in node.outputs)
    if out_size > small_elements and (not grow or out_size > largest):
        return False
    if not within_fold_limits(node):
        return False
    arrays = fold_node(node, [None if v is None else v.const for v in node.inputs])
    if arrays is None:
        return False
    replace_with_constants(graph, node, arrays)
    return True


@register_pass
class FoldConstants(Pass):
    """Replace nodes whose inputs are all constants by their computed values."""

    name = "fold-constants"
    small_elements: int = 4096
    grow: bool = True

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in list(graph.nodes):
            changed |= try_fold(graph, node, self.small_elements, self.grow)
        if changed:
            graph.remove_unused_constants()
        return changed
