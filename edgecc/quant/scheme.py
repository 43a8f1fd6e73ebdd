"""Quantization schemes: from a real range to (scale, zero point), and onto the graph's values.

Activations are per tensor: int8 or uint8, asymmetric (the range [min(lo, 0), max(hi, 0)] maps
onto all of the type's integers, so zero is exact) or symmetric (zero point 0 for int8, 128 for
uint8; scale max|x| / 127). Weights are symmetric int8 per output channel
(`edgecc.ir.quant_arith.symmetric_weight`).
"""

from __future__ import annotations

import numpy as np

from edgecc.ir import QuantParams
from edgecc.ir.ops.quant import INT_RANGE

__all__ = ["activation_params", "annotate"]

#: smallest scale given to a range that is (nearly) empty
MIN_SCALE = 1e-8


def activation_params(lo: float, hi: float, dtype: str = "int8", symmetric: bool = False) -> QuantParams:
    qmin, qmax = INT_RANGE[dtype]
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if symmetric:
        amax = max(-lo, hi)
        scale = max(amax / 127.0, MIN_SCALE)
        zp = 0 if dtype == "int8" else 128
    else:
        scale = max((hi - lo) / (qmax - qmin), MIN_SCALE)
        zp = int(np.clip(np.rint(qmin - lo / scale), qmin, qmax))
    return QuantParams((float(np.float32(scale)),), (zp,))


def annotate(graph, ranges: dict[str, tuple[float, float]], dtype: str = "int8", symmetric: bool = False) -> int:
    """Set `type.quant` of each named float value from its range; returns how many were set."""
    count = 0
    for value in graph.values():
        if value.name in ranges and value.dtype == "float32":
            lo, hi = ranges[value.name]
            value.type = value.type.with_quant(activation_params(lo, hi, dtype, symmetric))
            count += 1
    return count
