"""The `npu_region` op: a region of the graph that an NPU runs as one call.

Its body is a subgraph whose inputs bind, in order, to the node's inputs and whose outputs are
the node's outputs, as for `fused`. `backend` names the NPU backend that compiled it and `region`
its name; the compiled form is kept by the graph (`graph.meta["npu_regions"][region]`).
"""

from __future__ import annotations

from ..graph import IRError, Node
from .registry import Attr, Trait, register_op


def _npu_region_infer(node: Node):
    body = node.subgraph
    if body is None:
        raise IRError("npu_region: node has no body")
    if len(body.inputs) != len(node.inputs):
        raise IRError(f"npu_region: body takes {len(body.inputs)} inputs, node passes {len(node.inputs)}")
    for outer, inner in zip(node.inputs, body.inputs):
        if outer is None or outer.type.shape != inner.type.shape or outer.type.dtype != inner.type.dtype:
            raise IRError(f"npu_region: input {outer} does not match body input {inner}")
    return [v.type for v in body.outputs]


register_op(
    "npu_region",
    ["inputs*"],
    _npu_region_infer,
    attrs={"backend": Attr("str"), "region": Attr("str")},
    traits=[Trait.OPAQUE],
    num_outputs=None,
    doc="a region run by an NPU as one call (external code)",
)
