"""winograd_conv: a 3x3 stride-1 convolution in NCHW{b}c computed as Winograd F(m x m, 3 x 3).

The weight is transformed ahead of time (`transform_weight`, called by the `winograd` pass), so
the op's weight is U = G g G^T per channel pair, laid out (alpha, alpha, O/ob, C/ib, ib, ob) with
alpha = m + 2. The matrices are Lavin and Gray's (interpolation points 0, +-1, +-2, infinity).
"""

from __future__ import annotations

import numpy as np

from ..graph import IRError, Node
from ..layout import layout_of
from ..types import TensorType
from ._util import in_type, require_float
from .registry import Attr, Trait, register_op

__all__ = ["TILES", "transform_weight", "winograd_matrices"]

#: output tile sizes m with matrices below
TILES = (2, 4)

_MATRICES = {
    2: dict(
        BT=[[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        G=[[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
        AT=[[1, 1, 1, 0], [0, 1, -1, -1]],
    ),
    4: dict(
        BT=[[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
            [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        G=[[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
           [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
        AT=[[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    ),
}


def winograd_matrices(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B^T, G, A^T) of F(m, 3) as float64: Y = A^T [(G g G^T) * (B^T d B)] A."""
    if m not in _MATRICES:
        raise IRError(f"winograd: no matrices for output tile {m} (have {TILES})")
    mats = _MATRICES[m]
    return tuple(np.array(mats[k], dtype=np.float64) for k in ("BT", "G", "AT"))


def transform_weight(blocked: np.ndarray, m: int) -> np.ndarray:
    """A 3x3 weight in OIHW{ib}i{ob}o (O/ob, C/ib, 3, 3, ib, ob) -> (alpha, alpha, O/ob, C/ib, ib, ob)."""
    _, g, _ = winograd_matrices(m)
    u = np.einsum("ak,bl,ocklij->abocij", g, g, blocked.astype(np.float64))
    return np.ascontiguousarray(u.astype(blocked.dtype))


def _infer(node: Node) -> list[TensorType]:
    require_float(node)
    x, w = in_type(node, 0), in_type(node, 1)
    m = node.attrs["tile"]
    layout = layout_of(x.layout or "NCHW")
    ib = layout.block("C")
    if x.rank != 5 or not ib or x.shape[4] != ib:
        raise IRError(f"winograd_conv: input must be NCHW{{b}}c, got {x.layout} {x.shape}")
    if w.rank != 6 or w.shape[0] != m + 2 or w.shape[1] != m + 2 or w.shape[3] != x.shape[1] or w.shape[4] != ib:
        raise IRError(f"winograd_conv: weight {w.shape} is not (alpha={m + 2}, alpha, O/ob, {x.shape[1]}, {ib}, ob)")
    pads = node.attrs["pads"]
    if len(pads) != 4 or min(pads) < 0:
        raise IRError(f"winograd_conv: pads must be (top, left, bottom, right), got {pads}")
    oc, ob = w.shape[2], w.shape[5]
    oh, ow = x.shape[2] + pads[0] + pads[2] - 2, x.shape[3] + pads[1] + pads[3] - 2
    if oh < 1 or ow < 1:
        raise IRError(f"winograd_conv: 3x3 window is larger than the padded input {x.shape[2:4]}")
    if node.input(2) is not None and in_type(node, 2).size != oc * ob:
        raise IRError(f"winograd_conv: bias has {in_type(node, 2).size} elements, expected {oc * ob}")
    return [TensorType(x.dtype, (x.shape[0], oc, oh, ow, ob), f"NCHW{ob}c")]


def _verify(node: Node) -> None:
    if node.attrs["tile"] not in TILES:
        raise IRError(f"winograd_conv: tile must be one of {TILES}, got {node.attrs['tile']}")


register_op(
    "winograd_conv",
    ["data", "weight", "bias?"],
    _infer,
    attrs={"tile": Attr("int"), "pads": Attr("ints")},
    traits=[Trait.ANCHOR, Trait.LAYOUT_SENSITIVE],
    verify=_verify,
    doc="3x3 stride-1 conv in NCHW{b}c as Winograd F(tile x tile, 3x3); weight pre-transformed to "
        "(tile+2, tile+2, O/ob, C/ib, ib, ob)",
)
