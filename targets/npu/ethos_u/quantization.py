"""Scale and zero point of every int8 tensor of a region, as the TFLite model must state them.

A tensor's parameters come from its quantization parameters, the `qadd` that reads or writes it,
the `dequantize`/`quantize` pair around an op the NPU runs on int8 data, or the readers outside
the region (dequantize, qadd, through max pooling and reshapes). A tensor that only reaches
convolutions and dense layers (through pooling and reshapes) may take any scale, 1.0: only
in_scale * w_scale / out_scale matters there, and the weight scales are chosen to match.
"""

from __future__ import annotations

import numpy as np

from ..backend import RegionRejected
from .support import per_tensor_int8, requantize_multiplier

__all__ = ["tensor_quantization"]


def tensor_quantization(body, outer_users=None) -> dict[int, tuple[float, int]]:
    """(scale, zero point) of every int8 value of `body`, keyed by id; RegionRejected when one
    is unknown or two users disagree. `outer_users` maps a body output's id to the outer graph's
    values it stands for (their dequantize consumers know its scale)."""
    known: dict[int, tuple[float | None, int | None]] = {}

    def put(v, scale=None, zp=None):
        s, z = known.get(id(v), (None, None))
        if scale is not None:
            if s is not None and not np.isclose(s, scale, rtol=1e-6):
                raise RegionRejected(f"%{v.name} has two scales ({s} and {scale})")
            s = float(scale)
        if zp is not None:
            if z is not None and z != zp:
                raise RegionRejected(f"%{v.name} has two zero points ({z} and {zp})")
            z = int(zp)
        known[id(v)] = (s, z)

    values = list(body.inputs) + [o for n in body.nodes for o in n.outputs]
    for v in values:
        if v.type.quant is not None and len(v.type.quant.scale) == 1:
            put(v, v.type.quant.scale[0], v.type.quant.zero_point[0])
        for outer in (outer_users or {}).get(id(v), ()):
            for user, index in outer.uses:
                put(v, *_reader_quantization(user, index))
    def propagate():
        for _ in range(len(body.nodes) + 1):  # through ops that keep quantization
            for n in body.nodes:
                a = n.attrs
                if n.op in ("qconv", "qdense"):
                    put(n.inputs[0], zp=a["data_zero_point"])
                    put(n.outputs[0], zp=a["out_zero_point"])
                elif n.op == "qadd":
                    put(n.inputs[0], a["a_scale"], a["a_zero_point"])
                    put(n.inputs[1], a["b_scale"], a["b_zero_point"])
                    put(n.outputs[0], a["scale"], a["out_zero_point"])
                elif n.op in ("dequantize", "quantize"):  # the int8 side of a pooling on int8 data
                    s_z = per_tensor_int8(n)
                    put(n.inputs[0], *s_z)
                    put(n.outputs[0], *s_z)
                elif n.op in ("max_pool", "reshape", "clip"):
                    s_in, z_in = known.get(id(n.inputs[0]), (None, None))
                    s_out, z_out = known.get(id(n.outputs[0]), (None, None))
                    put(n.inputs[0], s_out, z_out)
                    put(n.outputs[0], s_in, z_in)
                elif n.op == "requantize":  # out_scale = in_scale / multiplier
                    m = requantize_multiplier(n)
                    s_in, s_out = known.get(id(n.inputs[0]), (None,))[0], known.get(id(n.outputs[0]), (None,))[0]
                    put(n.inputs[0], None if s_out is None else s_out * m, a["in_zero_point"])
                    put(n.outputs[0], None if s_in is None else s_in / m, a["out_zero_point"])

    propagate()
    # a scale no op fixes: values that only reach convolutions and dense layers (through pooling
    # and reshapes) may take any scale, as only in_scale * w_scale / out_scale matters there
    for v in values:
        outer = (outer_users or {}).get(id(v), ())
        free = all(_scale_free(o) for o in outer) if v.is_graph_output else _scale_free(v)
        if known.get(id(v), (None, None))[0] is None and free:
            put(v, 1.0)
            propagate()
    result = {}
    for v in values:
        s, z = known.get(id(v), (None, None))
        if z is None:
            raise RegionRejected(f"zero point of %{v.name} unknown")
        if s is None:
            raise RegionRejected(f"scale of %{v.name} unknown")
        result[id(v)] = (s, z)
    return result


def _reader_quantization(user, index: int) -> tuple[float | None, int | None]:
    """The (scale, zero point) a reader outside the region gives the value it reads, if any."""
    a = user.attrs
    if user.op == "dequantize" and user.input(1).const is not None:
        zp = user.input(2).const if user.input(2) is not None else 0
        return float(np.asarray(user.input(1).const).reshape(-1)[0]), int(np.asarray(zp).reshape(-1)[0])
    if user.op == "qadd":
        side = "a" if index == 0 else "b"
        return a[f"{side}_scale"], a[f"{side}_zero_point"]
    if user.op in ("qconv", "qdense") and index == 0:
        return None, a["data_zero_point"]
    if user.op in ("max_pool", "reshape", "clip"):  # they keep quantization: ask their readers
        for reader, i in user.outputs[0].uses:
            scale, zp = _reader_quantization(reader, i)
            if scale is not None:
                return scale, zp
    if user.op == "requantize" and requantize_multiplier(user) is not None:  # in_scale = out_scale * multiplier
        for reader, i in user.outputs[0].uses:
            scale, _ = _reader_quantization(reader, i)
            if scale is not None:
                return scale * requantize_multiplier(user), a["in_zero_point"]
        return None, a["in_zero_point"]
    return None, None


def _scale_free(value) -> bool:
    """Whether every path from `value` ends in a qconv/qdense input through max_pool, reshape, clip
    and per-tensor requantize only (a requantize fixes the ratio of its scales, not the scales)."""
    if not value.uses or (value.is_graph_output and value.graph is not None and value.graph.parent is None):
        return False
    for user, index in value.uses:
        if user.op in ("qconv", "qdense") and index == 0:
            continue
        if (user.op in ("max_pool", "reshape", "clip") or user.op == "requantize" and requantize_multiplier(user) is not None) \
                and _scale_free(user.outputs[0]):
            continue
        return False
    return True
