"""remove-identity: drop ops that return their input unchanged.

identity, dropout (inference), cast to the same dtype, reshape to the same shape, transpose by the
identity permutation, and slice/pad/expand/tile that do nothing. A graph output that would become a
graph input or a constant keeps an identity node, since outputs need a producing kernel. Safe anywhere.
"""

from __future__ import annotations

from edgecc.ir import Graph, Node

from .base import Pass, PassContext, register_pass


def _is_noop(node: Node) -> bool:
    op = node.op
    if op in ("identity", "dropout"):
        return True
    if len(node.outputs) != 1 or not node.inputs or node.inputs[0] is None:
        return False
    src, dst = node.inputs[0].type, node.output.type
    if src.shape != dst.shape or src.dtype != dst.dtype or src.layout != dst.layout:
        return False
    a = node.attrs
    if op in ("cast", "reshape", "expand"):
        return True
    if op == "transpose":
        return list(a["perm"]) == sorted(a["perm"])
    if op == "tile":
        return all(r == 1 for r in a["repeats"])
    if op == "pad":
        return not any(a["pads"])
    if op == "slice":
        return all(s == 1 for s in (a["steps"] or (1,)))
    return False


@register_pass
class RemoveIdentity(Pass):
    """Remove identity, inference dropout, and ops that leave their input unchanged."""

    name = "remove-identity"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in list(graph.nodes):
            if not _is_noop(node):
                continue
            src, out = node.inputs[0], node.output
            if node.op == "identity" and out.is_graph_output and (src.producer is None or src.is_graph_output):
                continue  # this identity is what gives the output its own kernel and name
            graph.replace_value(out, src)
            graph.erase_node(node)
            changed = True
        return changed
