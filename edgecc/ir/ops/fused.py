"""The `fused` op: a group of nodes that lowers to exactly one kernel.

Its body is a subgraph whose inputs bind, in order, to the node's inputs and whose outputs are
the node's outputs. The `kind` attribute names the group's shape (for example `conv_epilogue`),
which picks the default schedule; `anchor` names the op that heads it.
"""

from __future__ import annotations

from ._util import body_infer
from .registry import Attr, Trait, register_op

register_op(
    "fused",
    ["inputs*"],
    body_infer,
    attrs={"kind": Attr("str", "injective"), "anchor": Attr("str", None)},
    traits=[Trait.OPAQUE],
    num_outputs=None,
    doc="a fusion group; lowers to one kernel",
)
