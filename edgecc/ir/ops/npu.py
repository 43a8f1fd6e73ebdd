"""The `npu_region` op: a region of the graph that an NPU runs as one call.

Its body is a subgraph whose inputs bind, in order, to the node's inputs and whose outputs are
the node's outputs, as for `fused`. `backend` names the NPU backend that compiled it and `region`
its name; the compiled form is kept by the graph (`graph.meta["npu_regions"][region]`).
"""

from __future__ import annotations

from ._util import body_infer
from .registry import Attr, Trait, register_op

register_op(
    "npu_region",
    ["inputs*"],
    body_infer,
    attrs={"backend": Attr("str"), "region": Attr("str")},
    traits=[Trait.OPAQUE],
    num_outputs=None,
    doc="a region run by an NPU as one call (external code)",
)
