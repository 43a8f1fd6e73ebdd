"""Lowerings of data-movement ops: reshape, transpose, concat, split, slice, gathers, scatters,
expand, tile, pad, resize, and the constant-valued shape, size and full."""

from __future__ import annotations

import itertools

import numpy as np
from tvm import te, tirx, topi

from edgecc.ir import Dim
from edgecc.ir.ops.tensor import SymbolicRange, slice_ranges

from . import lowering
from .elementwise import broadcast_compute, dtype_of
from .shapes import extent, is_zero, reshape, shape_of, te_shape


def _shape(t) -> list:
    return list(shape_of(t))


def _const(value, dtype: str):
    """A TIR constant of `dtype` (bool and integer values converted as numpy does)."""
    if dtype == "bfloat16":
        return tirx.const(float(value), dtype)
    return tirx.const(np.array(value).astype(dtype).item(), dtype)


def _pick(k, exprs):
    """exprs[k] for an index expression k."""
    value = exprs[-1]
    for j in range(len(exprs) - 2, -1, -1):
        value = tirx.Select(k == j, exprs[j], value)
    return value


def _wrap_index(idx, size):
    """idx + size where idx is negative (ONNX's negative indices); `size` may be symbolic."""
    dtype = dtype_of(idx)
    size = tirx.const(size, dtype) if isinstance(size, int) else size.astype(dtype)
    return tirx.Select(idx < tirx.const(0, dtype), idx + size, idx)


@lowering("reshape")
def _lower_reshape(node, ins):
    if not node.output.type.is_static:  # the attribute may hold 0 and -1: the type has the sizes
        return [reshape(ins[0], te_shape(node.output.type.shape))]
    return [topi.reshape(ins[0], node.attrs["shape"])]


@lowering("transpose")
def _lower_transpose(node, ins):
    return [topi.transpose(ins[0], node.attrs["perm"])]


@lowering("concat")
def _lower_concat(node, ins):
    axis = node.attrs["axis"] % len(ins[0].shape)
    return [topi.concatenate([t for t in ins if not is_zero(t.shape[axis])] or ins[:1], axis)]


@lowering("split")
def _lower_split(node, ins):
    x = ins[0]
    axis = node.attrs["axis"] % len(x.shape)
    outs, offset = [], 0
    for k, out in enumerate(node.outputs):
        outs.append(_shifted(x, te_shape(out.type.shape), axis, extent(offset), f"split{k}"))
        offset += out.type.shape[axis]
    return outs


def _shifted(x, shape, axis: int, offset: int, name: str):
    def body(*idx):
        src = list(idx)
        src[axis] = idx[axis] + offset
        return x(*src)

    return te.compute(tuple(shape), body, name=name)


@lowering("slice")
def _lower_slice(node, ins):
    x = ins[0]
    a = node.attrs
    ranges = slice_ranges(node.inputs[0].type.shape, a["starts"], a["ends"], a["axes"], a["steps"])
    starts = [extent(r.start) for r in ranges]

    def body(*idx):
        return x(*(start + i * r.step for start, r, i in zip(starts, ranges, idx)))

    lengths = [extent(r.length) if isinstance(r, SymbolicRange) else len(r) for r in ranges]
    return [te.compute(tuple(lengths), body, name="slice")]


@lowering("gather")
def _lower_gather(node, ins):
    data, indices = ins
    rank, irank = len(data.shape), len(indices.shape)
    axis = node.attrs["axis"] % rank
    size = shape_of(data)[axis]

    def body(*idx):
        pos = _wrap_index(indices(*idx[axis:axis + irank]), size)
        return data(*idx[:axis], pos, *idx[axis + irank:])

    return [te.compute(te_shape(node.output.type.shape), body, name="gather")]


@lowering("gather_elements")
def _lower_gather_elements(node, ins):
    data, indices = ins
    axis = node.attrs["axis"] % len(data.shape)
    size = int(data.shape[axis])

    def body(*idx):
        src = list(idx)
        src[axis] = _wrap_index(indices(*idx), size)
        return data(*src)

    return [te.compute(tuple(indices.shape), body, name="gather_elements")]


@lowering("gather_nd")
def _lower_gather_nd(node, ins):
    data, indices = ins
    b = node.attrs["batch_dims"]
    depth = int(indices.shape[-1])
    n_idx = len(indices.shape) - 1
    dims = _shape(data)

    def body(*idx):
        outer, rest = idx[:n_idx], idx[n_idx:]
        picked = [_wrap_index(indices(*outer, j), dims[b + j]) for j in range(depth)]
        return data(*outer[:b], *picked, *rest)

    return [te.compute(te_shape(node.output.type.shape), body, name="gather_nd")]


_SCATTER_MODES = {"none": "update", "add": "add", "mul": "mul", "max": "max", "min": "min"}


_COMBINE = {
    "none": lambda old, new: new,
    "add": lambda old, new: old + new,
    "mul": lambda old, new: old * new,
    "max": lambda old, new: tirx.max(old, new),
    "min": lambda old, new: tirx.min(old, new),
}


def _prod(dims) -> int:
    out = 1
    for d in dims:
        out *= int(d)
    return out


def _reindex(flat, from_dims, to_dims):
    """The offset in a row-major `to_dims` array of the coordinates at offset `flat` of `from_dims`."""
    if list(from_dims) == list(to_dims):
        return flat
    out, from_stride, to_stride = 0, 1, 1
    for f, t in zip(reversed(from_dims), reversed(to_dims)):
        out = out + tirx.floormod(tirx.floordiv(flat, from_stride), f) * to_stride
        from_stride, to_stride = from_stride * f, to_stride * t
    return out


@lowering("scatter_elements")
def _lower_scatter_elements(node, ins):
    """A copy of data, then the updates applied in index order (one thread per line along axis)."""
    data, indices, updates = ins
    dims, idims = _shape(data), _shape(indices)
    axis = node.attrs["axis"] % len(dims)
    combine = _COMBINE[node.attrs["reduction"]]

    def gen(data_buf, idx_buf, upd_buf, out_buf):
        from tvm.script.ir_builder import IRBuilder
        from tvm.script.ir_builder import tirx as T

        src, idx, upd, out = (T.buffer_proxy(b) for b in (data_buf, idx_buf, upd_buf, out_buf))
        inner, n_axis = _prod(idims[axis + 1:]), idims[axis]
        with IRBuilder() as ib:
            with T.seq_scope():
                with T.parallel(0, _prod(dims)) as i:
                    out[i] = src[i]
                with T.parallel(0, _prod(idims[:axis]) * inner) as line:
                    before, after = tirx.floordiv(line, inner), tirx.floormod(line, inner)
                    base = (_reindex(before, idims[:axis], dims[:axis]) * dims[axis] * _prod(dims[axis + 1:])
                            + _reindex(after, idims[axis + 1:], dims[axis + 1:]))
                    with T.serial(0, n_axis) as k:
                        at = (before * n_axis + k) * inner + after
                        pos = _wrap_index(idx[at], dims[axis]).astype(dtype_of(base))
                        target = base + pos * _prod(dims[axis + 1:])
                        out[target] = combine(out[target], upd[at])
        return ib.get()

    return [te.extern([data.shape], [data, indices, updates], lambda i, o: gen(i[0], i[1], i[2], o[0]),
                      dtype=str(data.dtype), name="scatter_elements")]


@lowering("scatter_nd")
def _lower_scatter_nd(node, ins):
    data, indices, updates = ins
    dims = _shape(data)
    depth = int(indices.shape[-1])
    outer = tuple(indices.shape[:-1])
    # TOPI wants the index depth first, and no negative indices
    leading = te.compute((depth, *outer), lambda m, *y: _wrap_index_rows(indices, dims, m, y),
                         name="scatter_nd_indices")
    return [topi.scatter_nd(data, leading, updates, _SCATTER_MODES[node.attrs["reduction"]])]


def _wrap_index_rows(indices, dims, m, y):
    idx = indices(*y, m)
    size = _pick(m, [tirx.const(d, dtype_of(idx)) for d in dims[: int(indices.shape[-1])]])
    return tirx.Select(idx < tirx.const(0, dtype_of(idx)), idx + size, idx)


@lowering("expand")
def _lower_expand(node, ins):
    return [broadcast_compute(ins, node.output.type.shape, lambda x: x, "expand")]


@lowering("tile")
def _lower_tile(node, ins):
    x = ins[0]
    dims = _shape(x)

    def body(*idx):
        return x(*(i if r == 1 else tirx.floormod(i, d)
                   for i, d, r in zip(idx, dims, node.attrs["repeats"])))

    return [te.compute(te_shape(node.output.type.shape), body, name="tile")]


@lowering("pad")
def _lower_pad(node, ins):
    x = ins[0]
    dims = _shape(x)
    rank = len(dims)
    pads, mode = node.attrs["pads"], node.attrs["mode"]
    dtype = str(x.dtype)
    fill = _const(node.attrs["value"], dtype)

    def body(*idx):
        src, inside = [], tirx.const(True, "bool")
        for i, (o, n) in enumerate(zip(idx, dims)):
            lo = max(-pads[i], 0)
            kept = n - lo - max(-pads[i + rank], 0)
            p = o - max(pads[i], 0)
            if pads[i] > 0 or pads[i + rank] > 0:
                if mode == "constant":
                    inside = tirx.And(inside, tirx.And(p >= 0, p < kept))
                p = _pad_source(p, kept, mode)
            src.append(p + lo)
        value = x(*src)
        return value if mode != "constant" else tirx.Select(inside, value, fill)

    return [te.compute(te_shape(node.output.type.shape), body, name="pad")]


def _pad_source(p, n: int, mode: str):
    """Position in [0, n) that padded position p (may be outside) reads."""
    if mode in ("constant", "edge"):  # constant: any valid position (the value is discarded)
        return tirx.max(tirx.min(p, n - 1), 0)
    if mode == "wrap":
        return tirx.floormod(p, n)
    if n == 1:
        return p * 0
    period = 2 * (n - 1)
    m = tirx.floormod(p, period)
    return tirx.Select(m < n, m, period - m)


# ----- resize ----------------------------------------------------------------------------------
F32 = "float32"


def _f32(value):
    return tirx.const(float(np.float32(value)), F32)


def _f64(value):
    return tirx.const(float(value), "float64")


def _axis_scale(attrs, axis: int, n_in: int, n_out: int) -> np.float32:
    if attrs["scales"]:
        return np.float32(attrs["scales"][axis])
    return np.float32(n_out) / np.float32(n_in)


def _roi(attrs, axis: int, rank: int) -> tuple[float, float]:
    roi = attrs["roi"]
    return (0.0, 1.0) if not roi else (roi[axis], roi[axis + rank])


def _source_coord(o, ctm: str, n_in: int, n_out: int, scale, roi):
    """The input coordinate (float32) that output position o maps to, as ONNX Resize defines it."""
    x = o.astype(F32)
    half = _f32(0.5)
    if ctm in ("half_pixel", "pytorch_half_pixel", "half_pixel_symmetric"):
        if ctm == "pytorch_half_pixel" and n_out <= 1:
            return _f32(0)
        if ctm != "half_pixel_symmetric":
            return (x + half) / _f32(scale) - half
        # float32 offset, then float64 arithmetic (ONNX Runtime's double literals)
        adjustment = np.float32(n_out) / (scale * np.float32(n_in))
        offset = np.float32(n_in) / np.float32(2) * (np.float32(1) - adjustment)
        x64 = o.astype("float64")
        return (_f64(offset) + (x64 + _f64(0.5)) / _f64(scale) - _f64(0.5)).astype(F32)
    if ctm == "align_corners":
        return _f32(0) if n_out == 1 else x * _f32(n_in - 1) / _f32(n_out - 1)
    if ctm == "asymmetric":
        return x / _f32(scale)
    if ctm == "tf_crop_and_resize":
        lo, hi = np.float32(roi[0]), np.float32(roi[1])
        if n_out == 1:
            return _f32(0.5 * float(lo + hi) * (n_in - 1))
        return _f32(lo * (n_in - 1)) + x * _f32(hi - lo) * _f32(n_in - 1) / _f32(n_out - 1)
    raise ValueError(f"unknown coordinate_transformation_mode {ctm}")


def _clamp_index(i, n: int):
    return tirx.max(tirx.min(i, n - 1), 0)


def _nearest(coord, n: int, mode: str):
    """The input index nearest to coord, ties broken as `mode` says."""
    half = _f32(0.5)
    rounded = {
        "round_prefer_floor": lambda: tirx.ceil(coord - half),
        "round_prefer_ceil": lambda: tirx.floor(coord + half),
        "floor": lambda: tirx.floor(coord),
        "ceil": lambda: tirx.ceil(coord),
    }[mode]()
    return _clamp_index(rounded.astype("int32"), n)


def _linear_tap(coord, n: int, t):
    """(index, weight) of tap t in {0, 1}; coordinates outside the input clamp to its edge."""
    clamped = tirx.max(tirx.min(coord, _f32(n - 1)), _f32(0))
    first = tirx.floor(clamped).astype("int32")
    w1 = clamped - first.astype(F32)
    return tirx.min(first + t, n - 1), tirx.Select(t == 0, _f32(1) - w1, w1)


def _cubic_coeffs(s, a: float):
    """Cubic convolution weights (coefficient a) of the taps at distances 1 + s, s, 1 - s, 2 - s."""
    a_, one, two = _f32(a), _f32(1), _f32(2)

    def far(d):  # 1 <= d < 2
        return ((a_ * d - _f32(5 * a)) * d + _f32(8 * a)) * d - _f32(4 * a)

    def near(d):  # d < 1
        return ((a_ + two) * d - (a_ + _f32(3))) * d * d + one

    return [far(s + one), near(s), near(one - s), far(two - s)]


def _cubic_tap(coord, n: int, t, a: float, exclude_outside: bool):
    """(index, weight) of tap t in {0, 1, 2, 3} at floor(coord) - 1 + t; with exclude_outside the
    taps outside the input weigh 0 (the caller renormalizes)."""
    base = tirx.floor(coord)
    pos = base.astype("int32") - 1 + t
    weight = _pick(t, _cubic_coeffs(coord - base, a))
    if exclude_outside:
        weight = tirx.Select(tirx.And(pos >= 0, pos < n), weight, _f32(0))
    return _clamp_index(pos, n), weight


def _is_unchanged(attrs, axis: int, n_in: int, n_out: int, rank: int) -> bool:
    scale = _axis_scale(attrs, axis, n_in, n_out)
    tf_crop = attrs["coordinate_transformation_mode"] == "tf_crop_and_resize"
    return n_in == n_out and scale == 1 and (not tf_crop or _roi(attrs, axis, rank) == (0.0, 1.0))


def _axis_tables(attrs, axis: int, n_in: int, n_out: int, rank: int):
    """Per-axis tables over (output position, tap): input index, weight (None for nearest), and
    whether the position lies inside the input (None unless tf_crop_and_resize)."""
    ctm, mode = attrs["coordinate_transformation_mode"], attrs["mode"]
    scale, roi = _axis_scale(attrs, axis, n_in, n_out), _roi(attrs, axis, rank)

    def coord(o):
        return _source_coord(o, ctm, n_in, n_out, scale, roi)

    def tap(o, t):
        if mode == "nearest":
            return _nearest(coord(o), n_in, attrs["nearest_mode"]), None
        if mode == "linear":
            return _linear_tap(coord(o), n_in, t)
        return _cubic_tap(coord(o), n_in, t, attrs["cubic_coeff_a"], bool(attrs["exclude_outside"]))

    n_taps = {"nearest": 1, "linear": 2, "cubic": 4}[mode]
    shape = (n_out, n_taps)
    index = te.compute(shape, lambda o, t: tap(o, t)[0], name=f"resize_index{axis}")
    weight = None
    if mode != "nearest":
        weight = te.compute(shape, lambda o, t: tap(o, t)[1], name=f"resize_weight{axis}")
    if mode == "cubic" and attrs["exclude_outside"]:
        weight = _normalized(weight, axis)
    inside = None
    if ctm == "tf_crop_and_resize":
        inside = te.compute((n_out,), lambda o: tirx.And(coord(o) >= _f32(0), coord(o) <= _f32(n_in - 1)),
                            name=f"resize_inside{axis}")
    return index, weight, inside


def _normalized(weight, axis: int):
    """Weights divided by their sum over the taps."""
    n_out, n_taps = (int(d) for d in weight.shape)

    def sum_taps(o):
        k = te.reduce_axis((0, n_taps), name="k")
        return te.sum(weight[o, k], axis=k)

    total = te.compute((n_out,), sum_taps, name=f"resize_weight{axis}_sum")
    return te.compute(weight.shape, lambda o, t: weight[o, t] / total[o], name=f"resize_weight{axis}_normalized")


def _resize_value(x, o, tables, dtype: str):
    """The interpolated value at output position o: a weighted sum over the taps of every axis."""
    acc_dtype = "float64" if dtype == "float64" else F32
    total = None
    tap_ranges = [range(int(t[0].shape[1])) if t else [None] for t in tables]
    for combo in itertools.product(*tap_ranges):
        idx, weight = [], None
        for i, t, table in zip(o, combo, tables):
            if table is None:
                idx.append(i)
                continue
            idx.append(table[0][i, t])
            if table[1] is not None:
                weight = table[1][i, t] if weight is None else weight * table[1][i, t]
        term = x(*idx)
        if weight is not None:
            term = term.astype(acc_dtype) * weight.astype(acc_dtype)
        total = term if total is None else total + term
    return total.astype(dtype)  # integer results truncate, as in ONNX Runtime


@lowering("resize")
def _lower_resize(node, ins):
    x = ins[0]
    attrs = node.attrs
    dims, out_shape = _shape(x), node.output.type.shape
    rank, dtype = len(dims), str(x.dtype)
    fill = _const(attrs["extrapolation_value"], dtype)
    tables = [None if _is_unchanged(attrs, a, n_in, n_out, rank) else _axis_tables(attrs, a, n_in, n_out, rank)
              for a, (n_in, n_out) in enumerate(zip(dims, out_shape))]

    def body(*o):
        value = _resize_value(x, o, tables, dtype)
        inside = [t[2][i] for i, t in zip(o, tables) if t is not None and t[2] is not None]
        return tirx.Select(_all(inside), value, fill) if inside else value

    return [te.compute(tuple(out_shape), body, name="resize")]


def _all(conditions):
    out = conditions[0]
    for c in conditions[1:]:
        out = tirx.And(out, c)
    return out


# ----- constants -----------------------------------------------------------------------------------
def _element(value, dtype: str):
    """A constant, or a symbolic dimension's run-time value (read from the kernel's size variables)."""
    return extent(value).astype(dtype) if isinstance(value, Dim) else _const(value, dtype)


def _const_compute(array: np.ndarray, name: str, dtype: str | None = None):
    """A tensor holding a small array of constants (and symbolic dimensions, in an object array
    of `dtype`), selected element by element."""
    dtype = dtype or str(array.dtype)
    if array.ndim == 0:
        return te.compute((), lambda: _element(array.item(), dtype), name=name)
    if array.size == 0:
        return te.compute(array.shape, lambda *i: _const(0, dtype), name=name)
    values = [_element(v, dtype) for v in array.reshape(-1).tolist()]

    def body(*idx):
        pos = 0
        for i, d in zip(idx, array.shape):
            pos = pos * d + i
        return _pick(pos, values)

    return te.compute(array.shape, body, name=name)


@lowering("shape", "size")
def _lower_shape(node, ins):
    value = node.opdef.fold(node, [None])[0]
    return [_const_compute(value, node.op, node.output.type.dtype)]


@lowering("full")
def _lower_full(node, ins):
    t = node.output.type
    value = _const(node.attrs["value"], t.dtype)
    return [te.compute(te_shape(t.shape), lambda *i: value, name="full")]
