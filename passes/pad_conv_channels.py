"""pad-conv-channels: integer convolutions over two or three input channels get four.

    qconv(x: [N, 3, H, W], W: [O, 3, kh, kw])  ->  qconv(pad(x): [N, 4, H, W], W': [O, 4, kh, kw])

The added channels hold the data's zero point and meet zero weights, so every sum is unchanged.
A convolution over three channels (an image model's stem) has no group of four input channels
for a four-product dot-product instruction (x86 vpdpbusd, AArch64 sdot) and multiply-adds one
product at a time; with four channels one instruction sums a pixel's window column of products,
a third of the instructions at the price of a quarter of zero products.
Requested by the x86 host target when it has VNNI (vpdpbusd); run after lower-qdq, before convert-layout.
"""

from __future__ import annotations

import numpy as np

from edgecc.ir import Graph, Node

from .base import Pass, PassContext, register_pass

GROUP = 4


def _paddable(node: Node) -> bool:
    if node.op != "qconv" or node.attrs["group"] != 1:
        return False
    if any(node.attrs.get(k) for k in ("layout", "kernel_layout", "out_layout")):
        return False
    x, w = node.inputs[0], node.input(1)
    if w is None or w.const is None or x.type.rank != 4 or not isinstance(x.shape[1], int):
        return False
    return 1 < x.shape[1] < GROUP  # (one channel: four times the products, for as many instructions)


def _pad_channels(graph: Graph, node: Node) -> None:
    x, w = node.inputs[0], node.input(1)
    extra = GROUP - x.shape[1]
    padded = graph.create_node("pad", [x], {"pads": [0, 0, 0, 0, 0, extra, 0, 0],
                                            "value": float(node.attrs["data_zero_point"])},
                               name=f"{node.name}.pad_channels", before=node)
    weights = np.asarray(w.const)
    zeros = np.zeros((weights.shape[0], extra, *weights.shape[2:]), weights.dtype)
    wide = graph.add_constant(np.concatenate([weights, zeros], axis=1), f"{node.name}.w_{GROUP}c")
    inputs = [padded.output, wide, *node.inputs[2:]]
    new = graph.create_node("qconv", inputs, dict(node.attrs), name=node.name, before=node)
    name = node.output.name
    graph.replace_value(node.output, new.output)
    graph.erase_node(node)
    if not new.output.is_graph_output:
        graph.rename_value(new.output, name)


@register_pass
class PadConvChannels(Pass):
    """Give integer convolutions over two or three input channels four (zero weights)."""

    name = "pad-conv-channels"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        targets = [n for n in graph.nodes if _paddable(n)]
        for node in targets:
            _pad_channels(graph, node)
        if targets:
            graph.remove_unused_constants()
        return bool(targets)
