"""eliminate-common-subexpressions: one node per (op, inputs, attributes); one constant per content.

Two nodes with the same op, the same input values and equal attributes compute the same thing;
the later one's uses move to the earlier. Identical small constants are merged first so that
nodes reading them compare equal. Safe anywhere.
"""

from __future__ import annotations

import hashlib

import numpy as np

from edgecc.ir import Graph

from .base import Pass, PassContext, register_pass

_MAX_CONST_BYTES = 1 << 20


def _freeze(value):
    if isinstance(value, np.ndarray):
        return ("nd", str(value.dtype), value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, float) and value != value:
        return ("nan",)
    return value


def merge_constants(graph: Graph) -> bool:
    seen: dict[tuple, object] = {}
    changed = False
    for value in list(graph.constants.values()):
        if value.const.nbytes > _MAX_CONST_BYTES:
            continue
        digest = hashlib.sha1(value.const.tobytes()).hexdigest()
        key = (value.type, digest)
        if key in seen:
            graph.replace_value(value, seen[key])
            changed = True
        else:
            seen[key] = value
    return changed


@register_pass
class EliminateCommonSubexpressions(Pass):
    """Merge nodes that compute the same value, and identical constants."""

    name = "eliminate-common-subexpressions"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = merge_constants(graph)
        seen = {}
        for node in list(graph.nodes):
            if node.subgraph is not None or any(o.is_graph_output for o in node.outputs):
                continue
            key = (node.op, tuple(id(v) for v in node.inputs),
                   tuple(sorted((k, _freeze(v)) for k, v in node.attrs.items())))
            twin = seen.get(key)
            if twin is None:
                seen[key] = node
                continue
            for mine, theirs in zip(node.outputs, twin.outputs):
                graph.replace_value(mine, theirs)
            graph.erase_node(node)
            changed = True
        if changed:
            graph.remove_unused_constants()
        return changed
