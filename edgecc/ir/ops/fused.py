"""The `fused` op: a group of nodes that lowers to exactly one kernel.

Its body is a subgraph whose inputs bind, in order, to the node's inputs and whose outputs are
the node's outputs. The `kind` attribute names the group's shape (for example `conv_epilogue`),
which picks the default schedule; `anchor` names the op that heads it.
"""

from __future__ import annotations

from ..graph import IRError, Node
from .registry import Attr, Trait, register_op


def _fused_infer(node: Node):
    body = node.subgraph
    if body is None:
        raise IRError("fused: node has no body")
    if len(body.inputs) != len(node.inputs):
        raise IRError(f"fused: body takes {len(body.inputs)} inputs, node passes {len(node.inputs)}")
    for outer, inner in zip(node.inputs, body.inputs):
        if outer is None or outer.type.shape != inner.type.shape or outer.type.dtype != inner.type.dtype:
            raise IRError(f"fused: input {outer} does not match body input {inner}")
    return [v.type for v in body.outputs]


register_op(
    "fused",
    ["inputs*"],
    _fused_infer,
    attrs={"kind": Attr("str", "injective"), "anchor": Attr("str", None)},
    traits=[Trait.OPAQUE],
    num_outputs=None,
    doc="a fusion group; lowers to one kernel",
)
