"""Converters for signal processing: DFT, STFT, window functions and MelWeightMatrix."""

from __future__ import annotations

import numpy as np

from edgecc.ir.types import np_dtype

from ..onnx import onnx_dtype
from . import converter
from .checks import axis
from ._util import cast, optional_input


def _window(kind: str):
    def convert(ctx, inputs, attrs):
        size = int(ctx.static(inputs[0], "the window size").reshape(-1)[0])
        dtype = onnx_dtype(attrs.get("output_datatype", 1))
        periodic = attrs.get("periodic", 1)
        n = np.arange(size, dtype=np.float64)
        span = size if periodic else size - 1
        with np.errstate(all="ignore"):
            if kind == "hann":
                w = np.sin(n * np.pi / span) ** 2
            elif kind == "hamming":
                alpha = 25.0 / 46.0
                w = alpha - np.cos(n * np.pi * 2 / span) * (1 - alpha)
            else:
                w = 0.42 - 0.5 * np.cos(n * np.pi * 2 / span) + 0.08 * np.cos(n * np.pi * 4 / span)
        return ctx.const(w.astype(np_dtype(dtype)), ctx.node.output[0])

    return convert


converter("HannWindow", since=17)(_window("hann"))
converter("HammingWindow", since=17)(_window("hamming"))
converter("BlackmanWindow", since=17)(_window("blackman"))


def _dft_matrices(n_in: int, length: int, bins: int):
    """cos and sin of the DFT kernel as (n_in, bins) float64 matrices; inputs past `length` drop."""
    n = np.arange(n_in).reshape(-1, 1)
    k = np.arange(bins).reshape(1, -1)
    angle = 2 * np.pi * ((n * k) % length) / length
    keep = (n < length).astype(np.float64)
    return np.cos(angle) * keep, np.sin(angle) * keep


def _dft(ctx, x, axis: int, length: int | None, inverse: bool, onesided: bool):
    """DFT of x (..., 1) real or (..., 2) complex along `axis`; the result is (..., 2) (or (..., 1) for
    the one-sided inverse), computed in float64 by matrix products."""
    rank = x.type.rank
    axis %= rank
    if axis == rank - 1:
        raise ctx.fail("the DFT axis cannot be the last (real/imaginary) axis")
    dtype = x.dtype
    n_in = x.shape[axis]
    if length is None:
        length = 2 * (n_in - 1) if inverse and onesided else n_in
    perm = [d for d in range(rank - 1) if d != axis] + [axis, rank - 1]
    moved = ctx.emit("transpose", cast(ctx, x, "float64"), perm=tuple(perm))
    lead = tuple(moved.shape[:-2])
    parts = []
    for i in range(x.shape[-1]):
        part = ctx.emit("slice", moved, starts=(i,), ends=(i + 1,), axes=(rank - 1,))
        parts.append(ctx.emit("reshape", part, shape=(*lead, n_in)))
    real = parts[0]
    imag = parts[1] if len(parts) > 1 else None

    def product(value, matrix, name):
        return ctx.emit("matmul", value, ctx.const(matrix, name))

    if inverse and onesided:  # irfft: Hermitian spectrum in, real signal out
        bins = min(n_in, length // 2 + 1)
        weight = np.full(bins, 2.0)
        weight[0] = 1.0
        if length % 2 == 0 and bins == length // 2 + 1:
            weight[-1] = 1.0
        k = np.arange(bins).reshape(-1, 1)
        m = np.arange(length).reshape(1, -1)
        angle = 2 * np.pi * ((k * m) % length) / length
        cos = np.cos(angle) * weight.reshape(-1, 1) / length
        sin = -np.sin(angle) * weight.reshape(-1, 1) / length
        sin[0] = 0.0
        if length % 2 == 0 and bins == length // 2 + 1:
            sin[-1] = 0.0
        if n_in > bins:
            real = ctx.emit("slice", real, starts=(0,), ends=(bins,), axes=(len(lead),))
            imag = None if imag is None else ctx.emit("slice", imag, starts=(0,), ends=(bins,), axes=(len(lead),))
        out = product(real, cos, "idft_cos")
        if imag is not None:
            out = ctx.emit("add", out, product(imag, sin, "idft_sin"))
        outs = [out]
    else:
        bins = length // 2 + 1 if onesided else length
        cos, sin = _dft_matrices(n_in, length, bins)
        sign = 1.0 if inverse else -1.0
        scale = 1.0 / length if inverse else 1.0
        cos, sin = cos * scale, sin * scale * sign
        out_real = product(real, cos, "dft_cos")
        out_imag = product(real, sin, "dft_sin")
        if imag is not None:  # (a + ib)(c + is) = ac - bs + i(as + bc)
            out_real = ctx.emit("sub", out_real, product(imag, sin, "dft_sin"))
            out_imag = ctx.emit("add", out_imag, product(imag, cos, "dft_cos"))
        outs = [out_real, out_imag]
    outs = [ctx.emit("reshape", o, shape=(*o.shape, 1)) for o in outs]
    result = outs[0] if len(outs) == 1 else ctx.emit("concat", *outs, axis=-1)
    inverse_perm = [0] * rank
    for i, p in enumerate(perm):
        inverse_perm[p] = i
    return cast(ctx, ctx.emit("transpose", result, perm=tuple(inverse_perm)), dtype)


@converter("DFT", since=17, checks={"axis": axis()}, ranks={0: (2, None)})
def _dft_17(ctx, inputs, attrs):
    length = optional_input(inputs, 1)
    length = None if length is None else int(ctx.static(length, "dft_length").reshape(-1)[0])
    return _dft(ctx, inputs[0], attrs.get("axis", 1), length, bool(attrs.get("inverse", 0)),
                bool(attrs.get("onesided", 0)))


@converter("DFT", since=20, ranks={0: (2, None)})
def _dft_20(ctx, inputs, attrs):
    length, axis = optional_input(inputs, 1), optional_input(inputs, 2)
    length = None if length is None else int(ctx.static(length, "dft_length").reshape(-1)[0])
    axis = -2 if axis is None else int(ctx.static(axis, "axis").reshape(-1)[0])
    return _dft(ctx, inputs[0], axis, length, bool(attrs.get("inverse", 0)), bool(attrs.get("onesided", 0)))


@converter("STFT", since=17)
def _stft(ctx, inputs, attrs):
    signal, step, window, frame_length = inputs[0], inputs[1], optional_input(inputs, 2), optional_input(inputs, 3)
    step = int(ctx.static(step, "frame_step").reshape(-1)[0])
    if frame_length is not None:
        length = int(ctx.static(frame_length, "frame_length").reshape(-1)[0])
    else:
        length = window.shape[0] if window is not None else signal.shape[-2]
    frames = 1 + (signal.shape[-2] - length) // step
    index = (np.arange(frames) * step).reshape(-1, 1) + np.arange(length).reshape(1, -1)
    framed = ctx.emit("gather", signal, ctx.const(index.astype(np.int64), "frame_index"), axis=1)  # (B, F, L, C)
    if window is not None:
        framed = ctx.emit("mul", framed, ctx.emit("reshape", window, shape=(length, 1)))
    return _dft(ctx, framed, 2, length, False, bool(attrs.get("onesided", 1)))


@converter("MelWeightMatrix", since=17)
def _mel_weight_matrix(ctx, inputs, attrs):
    bins_, length, rate = (int(ctx.static(v, w).reshape(-1)[0]) for v, w in
                           zip(inputs[:3], ("num_mel_bins", "dft_length", "sample_rate")))
    lower, upper = (float(ctx.static(v, w).reshape(-1)[0]) for v, w in
                    zip(inputs[3:5], ("lower_edge_hertz", "upper_edge_hertz")))
    spectrogram_bins = length // 2 + 1
    points = np.arange(0, bins_ + 2)
    low_mel = 2595 * np.log1p(lower / 700) / np.log(10)
    high_mel = 2595 * np.log1p(upper / 700) / np.log(10)
    step = (high_mel - low_mel) / points.shape[0]
    hertz = 700 * np.expm1((points * step + low_mel) / 2595 * np.log(10))
    edges = (((length + 1) * hertz) // rate).astype(int)
    out = np.zeros((spectrogram_bins, bins_))
    for i in range(bins_):
        left, center, right = edges[i], edges[i + 1], edges[i + 2]
        if center == left:
            out[center, i] = 1
        else:
            for j in range(left, center + 1):
                out[j, i] = (j - left) / (center - left)
        for j in range(center, right):
            out[j, i] = (right - j) / (right - center)
    dtype = onnx_dtype(attrs.get("output_datatype", 1))
    return ctx.const(out.astype(np_dtype(dtype)), ctx.node.output[0])
