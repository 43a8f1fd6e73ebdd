"""Arithmetic for building integer kernels: multipliers, int32 biases, weight zero points.

Shared by the `lower-qdq` pass (QDQ patterns -> qconv/qdense) and the ONNX frontend (QLinearConv,
QLinearMatMul, QGemm, ...), so both produce the same numbers. Everything here is numpy on
compile-time constants.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "INT32_MAX", "multiplier", "integer_bias", "quantize_bias", "rescale_bias", "weight_as_signed",
    "symmetric_weight",
]

INT32_MAX = 2**31 - 1


def multiplier(x_scale, w_scale, y_scale=None) -> np.ndarray:
    """x_scale * w_scale[c] / y_scale in float32 arithmetic (as ONNX Runtime computes it); without
    y_scale, the dequantizing multiplier x_scale * w_scale[c]."""
    m = np.float32(np.asarray(x_scale, np.float32).reshape(-1)[0]) * np.asarray(w_scale, np.float32).reshape(-1)
    if y_scale is not None:
        m = m / np.float32(np.asarray(y_scale, np.float32).reshape(-1)[0])
    return m.astype(np.float32)


def _check_int32(b: np.ndarray, what: str) -> np.ndarray:
    if b.size and (b.max() > INT32_MAX or b.min() < -INT32_MAX - 1):
        raise ValueError(f"{what} does not fit in int32")
    return b.astype(np.int32)


def integer_bias(weight: np.ndarray, out_axis: int, data_zero_point: int, bias=None) -> np.ndarray | None:
    """The int32 bias of an integer kernel: bias - data_zero_point * (sum of each output's weights).

    `weight` holds the integer weights with any weight zero point already removed; `out_axis` is
    its output-channel axis (0 for OIHW convolutions, 1 for [K, N] dense weights).
    """
    w = np.moveaxis(np.asarray(weight, np.int64), out_axis, 0)
    channels = w.shape[0]
    b = np.zeros(channels, np.int64) if bias is None else np.asarray(bias, np.int64).reshape(-1)
    if data_zero_point:
        b = b - int(data_zero_point) * w.reshape(channels, -1).sum(axis=1)
    if bias is None and not data_zero_point:
        return None
    return _check_int32(b, "integer bias")


def quantize_bias(bias: np.ndarray, x_scale, w_scale) -> np.ndarray:
    """A float bias in the accumulator's scale x_scale * w_scale[c] (round half to even)."""
    s = np.asarray(multiplier(x_scale, w_scale), np.float64)
    s = np.where(s == 0, 1.0, s)
    b = np.rint(np.asarray(bias, np.float64).reshape(-1) / s)
    return _check_int32(np.clip(b, -INT32_MAX - 1, INT32_MAX), "quantized bias")


def rescale_bias(bias_q: np.ndarray, bias_scale, x_scale, w_scale) -> np.ndarray:
    """An int32 bias quantized with `bias_scale`, in the accumulator's scale x_scale * w_scale[c]."""
    target = multiplier(x_scale, w_scale)
    scale = np.asarray(bias_scale, np.float32).reshape(-1)
    if scale.size in (1, target.size) and np.array_equal(np.broadcast_to(scale, target.shape), target):
        return np.asarray(bias_q, np.int32).reshape(-1)
    real = np.asarray(bias_q, np.float64).reshape(-1) * scale.astype(np.float64)
    return quantize_bias(real, x_scale, w_scale)


def weight_as_signed(weight: np.ndarray, zero_point, axis: int) -> np.ndarray:
    """Integer weights with their zero point removed: int8 when it is zero, else int16 (w - zp)."""
    w = np.asarray(weight)
    zp = np.asarray(zero_point if zero_point is not None else 0, np.int64).reshape(-1)
    if not zp.any():
        return w if w.dtype == np.int8 or w.dtype == np.int16 else _narrow(w.astype(np.int64))
    shape = [1] * w.ndim
    if zp.size > 1:
        shape[axis] = zp.size
    return _narrow(w.astype(np.int64) - zp.reshape(shape if zp.size > 1 else ()))


def _narrow(w: np.ndarray) -> np.ndarray:
    if w.size == 0 or (w.min() >= -128 and w.max() <= 127):
        return w.astype(np.int8)
    if w.min() >= -32768 and w.max() <= 32767:
        return w.astype(np.int16)
    raise ValueError("integer weights do not fit in int16")


def symmetric_weight(weight: np.ndarray, axis: int | None, dtype: str = "int8", bits: int | None = None):
    """Symmetric quantization of float weights, per channel along `axis` (None: per tensor).

    Returns (integer weights, scales): scale = max|w| / qmax (1 for an all-zero channel), weights
    round(w / scale) in [-qmax, qmax]; qmax = 127 for int8, 63 with `bits=7` (x86 AVX2's
    vpmaddubsw multiplies such weights without saturating).
    """
    w = np.asarray(weight, np.float32)
    qmax = {"int8": 127, "int16": 32767}[dtype] if bits is None else (1 << (bits - 1)) - 1
    if axis is None:
        amax = np.abs(w).max(initial=0.0).reshape(1)
    else:
        amax = np.abs(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)).max(axis=1, initial=0.0)
    scale = np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    if axis is not None:
        shape[axis] = scale.size
    q = np.clip(np.rint(w / scale.reshape(shape if axis is not None else ())), -qmax, qmax)
    return q.astype(dtype), scale
