"""winograd: 3x3 stride-1 NCHW{b}c convolutions become winograd_conv, weights transformed here.

    conv(x: NCHW{ib}c, W: OIHW{ib}i{ob}o 3x3, b) -> winograd_conv{tile=m}(x, U, b)
    U = G W G^T per (output, input) channel pair: (m+2, m+2, O/ob, C/ib, ib, ob)

F(m x m, 3 x 3) computes an m x m output tile with (m+2)^2 multiplications per channel pair
instead of 9 m^2, as one GEMM per transformed entry whose rows are the image's tiles. Each
transformed weight is reused once per tile, so a layer with few tiles is bound by reading its
(m+2)^2/9 times larger weights, not by multiplying. The rule prices each choice per channel pair
as multiplications plus a weight-reuse charge, weights x (rows + `weight_cost`), and for Winograd
the transforms of each tile: the input's, 2 nnz(B) (m+2) operations per input channel shared by
the O output channels, and the output's, nnz(A) (2m+2) per output channel shared by the C inputs,
each operation charged `TRANSFORM_COST` (the transformed tiles go through memory):

    direct: 9 x (N*OH*OW + weight_cost)
    F(m x m): (m+2)^2 x (tiles + weight_cost) + TRANSFORM_COST x tiles x (in_ops / O + out_ops / C)

and takes the cheapest. The transforms decide only for few channels: measured on a 2-core Xeon
(AVX-512), whole single-conv models at 8x8, 32 or fewer channels ran 5-10% faster direct, 64
channels 14% faster in F(2x2); a first layer over one input channel at batch 64 ran 2.5x faster
direct than in F(4x4).

`weight_cost` = 32 fits ResNet-18 (docs/winograd.md): 4x4 tiles at 56x56 and
28x28, 2x2 tiles at 14x14 and 16x16 (16 tiles of 4x4: at most a few percent faster, with the
larger rounding error of F(4x4)), the direct convolution at 7x7: there F(2x2) runs 1.2-1.4x faster
as a kernel with its weights in the cache, but at batch 1 its 1.8x larger weights stream from
memory and the whole model is no faster (AVX-512 Xeon, 2 threads).

A convolution whose output height or width is symbolic stays direct (with a remark); a symbolic
batch is priced as batch 1. Run after convert-layout (the weight must be a blocked constant),
before fuse.
"""

from __future__ import annotations

import numpy as np

from edgecc.ir import Dim, Graph, Node, layout_of
from edgecc.ir.ops.winograd import TILES, transform_weight, winograd_matrices

from .base import Pass, PassContext, PassOptionError, register_pass

#: the weight-reuse charge of the rule, in rows; see the module docstring
WEIGHT_COST = 32
#: the charge per operation of the input and output transforms, in multiplications
TRANSFORM_COST = 2


def winograd_candidate(node: Node) -> str | None:
    """Why `node` cannot run as winograd_conv (None: it can)."""
    if node.op != "conv" or node.output.dtype != "float32":
        return "not a float32 conv"
    a = node.attrs
    if not a["layout"] or not layout_of(a["layout"]).is_blocked or not a["kernel_layout"]:
        return "not in the blocked NCHW{b}c layout"
    w = node.inputs[1]
    if w.const is None or w.type.rank != 6 or w.shape[2:4] != (3, 3):
        return "kernel is not a constant 3x3"
    if a["group"] != 1:
        return "grouped convolution"
    if tuple(a["strides"] or (1, 1)) != (1, 1) or tuple(a["dilations"] or (1, 1)) != (1, 1):
        return "stride or dilation is not 1"
    return None


def choose_tile(batch: int, out_h: int, out_w: int, weight_cost: int = WEIGHT_COST,
                channels: tuple[int, int] | None = None) -> int | None:
    """The Winograd output tile m for a layer, or None when the direct convolution is cheaper;
    `channels` (input, output), when given, prices the transforms too."""
    best, best_cost = None, 9 * (batch * out_h * out_w + weight_cost)
    for m in TILES:
        tiles = batch * -(-out_h // m) * -(-out_w // m)
        cost = (m + 2) ** 2 * (tiles + weight_cost) + tiles * _transform_cost(m, channels)
        if cost < best_cost:
            best, best_cost = m, cost
    return best


def _transform_cost(m: int, channels: tuple[int, int] | None) -> float:
    """Input and output transform charge per tile and channel pair (0 without `channels`)."""
    if channels is None:
        return 0.0
    c, o = channels
    bt, _, at = winograd_matrices(m)
    input_ops = 2 * np.count_nonzero(bt) * (m + 2)  # B^T d, then (B^T d) B
    output_ops = np.count_nonzero(at) * (2 * m + 2)  # A^T M, then (A^T M) A
    return TRANSFORM_COST * (input_ops / o + output_ops / c)


@register_pass
class Winograd(Pass):
    """3x3 stride-1 blocked convolutions as Winograd F(m x m, 3 x 3), weights transformed ahead."""

    name = "winograd"
    tile: int = 0  # output tile for every eligible conv (2 or 4); 0: chosen per layer
    weight_cost: int = WEIGHT_COST  # with tile=0: the rule's weight-reuse charge (rows)

    def __post_init__(self):
        if self.tile not in (0, *TILES):
            raise PassOptionError(f"pass 'winograd': tile must be 0 or one of {TILES}, got {self.tile}")

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        for node in list(graph.nodes):
            if winograd_candidate(node) is not None:
                continue
            n, _, oh, ow, _ = node.output.shape
            if isinstance(oh, Dim) or isinstance(ow, Dim):
                ctx.note(f"stays direct: its output size {oh} x {ow} is symbolic", node)
                continue
            # a symbolic batch is priced as one image: the choice a batch-1 compile makes
            m = self.tile or choose_tile(n if not isinstance(n, Dim) else 1, oh, ow, self.weight_cost,
                                         _channels(node))
            if m is None:
                ctx.note(f"stays direct: cheaper for a {oh}x{ow} output with {_channels(node)[0]} input channels "
                          "(too few tiles to reuse transformed weights, or too few channels to share transforms)", node)
                continue
            _rewrite(graph, node, m)
            changed = True
        if changed:
            graph.remove_unused_constants()
        return changed


def _channels(node: Node) -> tuple[int, int]:
    """(input, output) channels of a blocked conv."""
    c, ib = node.inputs[0].shape[1], node.inputs[0].shape[4]
    return c * ib, node.output.shape[1] * node.output.shape[4]


def _rewrite(graph: Graph, node: Node, m: int) -> None:
    x, w, bias = node.inputs[0], node.inputs[1], node.input(2)
    u = graph.add_constant(transform_weight(np.asarray(w.const), m), f"{w.name}.winograd{m}")
    pads = tuple(node.attrs["pads"] or (0, 0, 0, 0))
    new = graph.create_node("winograd_conv", [x, u, bias], {"tile": m, "pads": pads},
                            name=node.name, before=node).output
    graph.replace_value(node.output, new)
    graph.erase_node(node)
