"""Ops on pre-packed weights, created by the layout pass for fast CPU kernels."""

from __future__ import annotations

from ..dims import format_shape, require_size
from ..graph import IRError, Node
from ..types import TensorType
from ._util import in_type
from .registry import Trait, register_op


def _dense_infer(node: Node):
    x, w = in_type(node, 0), in_type(node, 1)
    if w.rank != 3:
        raise IRError(f"dense: packed weight must be (N/b, K, b), got {w.shape}")
    if x.rank < 1:
        raise IRError(f"dense: input {x.shape} does not match packed weight {w.shape}")
    require_size(x.shape[-1], w.shape[1], f"dense: input {format_shape(x.shape)} does not match packed weight {w.shape}")
    if x.dtype != w.dtype:
        raise IRError(f"dense: input dtypes differ ({x.dtype} and {w.dtype})")
    return [TensorType(x.dtype, x.shape[:-1] + (w.shape[0] * w.shape[2],))]


register_op(
    "dense",
    ["data", "weight"],
    _dense_infer,
    traits=[Trait.ANCHOR, Trait.QUANTIZABLE],
    doc="data[..., K] @ W[K, N] with W packed as (N/b, K, b): out[..., n] = sum_k data[..., k] * W[n//b, k, n%b]",
)
