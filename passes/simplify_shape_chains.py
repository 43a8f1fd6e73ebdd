"""simplify-shape-chains: static shape computations become constants.

Models exported from PyTorch compute shapes at run time (Shape -> Gather -> Concat -> Reshape,
or Shape -> Cast -> Sqrt for attention scaling). Every `shape` and `size` node, and every small
computation that only depends on them and on constants, is replaced by its value when that value
is a plain number. A value that depends on a symbolic dimension (`[batch, seq, 64]`) stays
computed at run time. Run early, before passes that match on constants.
"""

from __future__ import annotations

from edgecc.ir import Graph, Trait, static_value
from edgecc.ir.static_eval import is_symbolic_value

from .base import Pass, PassContext, register_pass
from .fold_constants import replace_with_constants


@register_pass
class SimplifyShapeChains(Pass):
    """Replace shape/size ops and small computations on their results by constants."""

    name = "simplify-shape-chains"
    max_elements: int = 1024

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in list(graph.nodes):
            if not self._from_shapes(node):
                continue
            arrays = [static_value(out, self.max_elements) for out in node.outputs]
            if any(a is None or is_symbolic_value(a) for a in arrays):
                continue
            replace_with_constants(graph, node, arrays)
            changed = True
        if changed:
            graph.remove_unused_constants()
        return changed

    def _from_shapes(self, node) -> bool:
        """A shape op, or a node all of whose inputs are constants or known values computed from
        shapes (a symbolic shape's static dimension: `shape(x)[2]` of x: f32[batch,seq,64])."""
        if node.op == "identity" and node.output.is_graph_output:
            return False
        if node.opdef.has(Trait.SHAPE):
            return True
        inputs = [v for v in node.inputs if v is not None]
        return bool(inputs) and all(
            v.const is not None or (v.type.is_static and v.type.size <= self.max_elements
                                    and static_value(v, self.max_elements) is not None)
            for v in inputs)
