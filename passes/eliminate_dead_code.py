"""eliminate-dead-code: erase nodes none of whose outputs is used, and unused constants.

Safe anywhere; run it after any pass that replaces values.
"""

from __future__ import annotations

from edgecc.ir import Graph

from .base import Pass, PassContext, register_pass


def erase_dead_nodes(graph: Graph) -> int:
    """Erase dead nodes in reverse order (so whole dead chains go in one sweep); returns the count."""
    erased = 0
    for node in reversed(list(graph.nodes)):
        if not any(out.has_uses for out in node.outputs):
            graph.erase_node(node)
            erased += 1
    return erased


@register_pass
class EliminateDeadCode(Pass):
    """Erase nodes whose outputs are unused, and constants nothing reads."""

    name = "eliminate-dead-code"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        erased = erase_dead_nodes(graph)
        return bool(erased + graph.remove_unused_constants())
