"""Lowerings of the ops whose output shapes are computed at run time (`edgecc.ir.ops.dynamic`).

Each op has a shape function (`@shape_function`): a small kernel computing the output's
dimensions from the input shapes and the run-time values (axes, a shape, pads, a count) as an
int64 vector. The lowering binds the output's size variables from it before the op's kernel
runs; inside the kernel those sizes are the extents of the output (`te_shape`), so the kernel
reads the run-time values only where the output's extents do not already tell it what it needs
(a reduction's axes are recovered from which extents shrank to 1).

All index arithmetic is int64.
"""

from __future__ import annotations

import math

import numpy as np
from tvm import te, tirx, topi

from . import lowering, shape_function
from .elementwise import dtype_of
from .reduce import (
    _REDUCERS,
    _acc_dtype,
    _bool_reducer,
    _empty_value,
    _float_extremum,
    _product,
    _sort_key,
)
from .shapes import shape_of, te_shape
from .tensor import F32, _all, _cubic_tap, _linear_tap, _nearest

I64 = "int64"


# ----- small helpers ---------------------------------------------------------------------------
def _c(v) -> tirx.PrimExpr:
    return tirx.const(v, I64)


def _i64(e):
    """An int or a TIR expression as an int64 expression."""
    if isinstance(e, int):
        return _c(e)
    return e if dtype_of(e) == I64 else e.astype(I64)


def _dims(t) -> list:
    return [_i64(d) for d in shape_of(t)]


def _out_dims(value) -> list:
    return [_i64(d) for d in te_shape(value.type.shape)]


def _values(t, n: int | None = None) -> list:
    """The elements of a 0-D or 1-D int tensor as int64 expressions."""
    if len(t.shape) == 0:
        return [_i64(t())]
    count = int(t.shape[0]) if n is None else n
    return [_i64(t(_c(i))) for i in range(count)]


def _pick(exprs: list, i):
    """exprs[i] for a run-time index i (exprs known at compile time)."""
    out = exprs[-1] if exprs else _c(0)
    for j in range(len(exprs) - 2, -1, -1):
        out = tirx.Select(i == _c(j), exprs[j], out)
    return out


def _shape_tensor(exprs: list, name: str):
    return te.compute((len(exprs),), lambda i: _pick(exprs, _i64(i)), name=name)


def _any(conds: list):
    out = tirx.const(False, "bool")
    for c in conds:
        out = tirx.Or(out, c)
    return out


def _axis_mask(axes: list, rank: int) -> list:
    """Per dimension d < rank: whether one of the run-time axes (negative from the end) names d."""
    return [_any([tirx.Or(a == _c(d), a == _c(d - rank)) for a in axes]) for d in range(rank)]


def _ravel(index, dims):
    flat = _c(0)
    for i, d in zip(index, dims):
        flat = flat * d + _i64(i)
    return flat


def _unravel(flat, dims) -> list:
    out = []
    for d in reversed(dims):  # a 0 extent has no elements: divide by 1 instead
        d = _max(d, _c(1))
        out.append(tirx.floormod(flat, d))
        flat = tirx.floordiv(flat, d)
    return list(reversed(out))


def _max(a, b):
    return tirx.Max(a, b)


def _min(a, b):
    return tirx.Min(a, b)


def _clamp(v, lo, hi):
    return _max(_min(v, hi), lo)


# ----- reductions over run-time axes ---------------------------------------------------------
@shape_function("dyn_reduce")
def _reduce_shape(node, ins):
    x, axes = ins
    dims = _dims(x)
    mask = _axis_mask(_values(axes), len(dims))
    return [_shape_tensor([tirx.Select(m, _c(1), d) for m, d in zip(mask, dims)], "reduce_shape")]


def _reduce_extents(x, out_dims) -> list:
    """Per axis, the extent reduced over: the input's where the output's shrank, else 1 (a
    reduced axis of size 1 reduces over 1 either way)."""
    return [tirx.Select(o == d, _c(1), d) for o, d in zip(out_dims, _dims(x))]


def _reduce_keep(x, out_dims, reducer, element, name: str):
    extents = _reduce_extents(x, out_dims)

    def body(*o):
        rs = [te.reduce_axis((_c(0), e), name=f"r{d}") for d, e in enumerate(extents)]
        return reducer(element(x(*[_i64(i) + r.var for i, r in zip(o, rs)])), axis=rs)

    return te.compute(tuple(out_dims), body, name=name), extents


@lowering("dyn_reduce")
def _lower_reduce(node, ins):
    x = ins[0]
    op = node.attrs["reduce"]
    dtype = str(x.dtype)
    acc = _acc_dtype(dtype)
    out_dims = _out_dims(node.output)
    if op == "reduce_log_sum_exp":
        return [_log_sum_exp(x, out_dims, acc, dtype)]
    reducer, element, _ = _REDUCERS[op]
    if dtype == "bool" and op in ("reduce_max", "reduce_min"):
        reducer = _bool_reducer(op)
    elif acc.startswith(("float", "bfloat")) and op in ("reduce_max", "reduce_min"):
        reducer = _float_extremum(op)
    reducer = reducer or _product()
    total, extents = _reduce_keep(x, out_dims, reducer, lambda v: element(v.astype(acc)), op)
    count = _c(1)
    for e in extents:
        count = count * e

    empty = tirx.const(_empty_value(op, dtype), dtype)

    def finish(*i):
        s = total(*i)
        if op == "reduce_mean":
            if acc.startswith(("int", "uint")):
                s = tirx.truncdiv(s, _max(count, _c(1)).astype(acc))
            else:
                s = s / _max(count, _c(1)).astype(acc)
        elif op == "reduce_l2":
            s = tirx.sqrt(s)
        elif op == "reduce_log_sum":
            s = tirx.log(s)
        return tirx.Select(count == _c(0), empty, s.astype(dtype))  # TIR runs no init for 0 elements

    return [te.compute(tuple(out_dims), finish, name=f"{op}_out")]


def _log_sum_exp(x, out_dims, acc: str, dtype: str):
    """log(sum(exp(x - m))) + m with m the maximum (0 where it is infinite)."""
    top, _ = _reduce_keep(x, out_dims, _float_extremum("reduce_max"), lambda v: v.astype(acc), "lse_max")

    def shift(*i):
        m = top(*i)
        return tirx.Select(tirx.isinf(m), tirx.const(0, acc), m)

    m = te.compute(tuple(out_dims), shift, name="lse_shift")
    extents = _reduce_extents(x, out_dims)

    def body(*o):
        rs = [te.reduce_axis((_c(0), e), name=f"s{d}") for d, e in enumerate(extents)]
        return te.sum(tirx.exp(x(*[_i64(i) + r.var for i, r in zip(o, rs)]).astype(acc) - m(*o)), axis=rs)

    total = te.compute(tuple(out_dims), body, name="lse_sum")
    count = _c(1)
    for e in extents:
        count = count * e
    empty = tirx.const(_empty_value("reduce_log_sum_exp", dtype), dtype)
    return te.compute(tuple(out_dims), lambda *i: tirx.Select(count == _c(0), empty,
                                                              (tirx.log(total(*i)) + m(*i)).astype(dtype)),
                      name="reduce_log_sum_exp")


# ----- reshape, squeeze, unsqueeze ---------------------------------------------------------
@shape_function("dyn_reshape")
def _reshape_shape(node, ins):
    x, values = ins
    dims = _dims(x)
    vals = _values(values)
    mode = node.attrs["mode"]
    if mode == "squeeze":
        mask = _axis_mask(vals, len(dims))
        return [_shape_tensor(_squeezed(dims, mask, len(node.output.type.shape)), "squeeze_shape")]
    if mode == "unsqueeze":
        return [_shape_tensor(_unsqueezed(dims, vals), "unsqueeze_shape")]
    return [_shape_tensor(_reshaped(dims, vals, node.attrs["allowzero"]), "reshape_shape")]


def _reshaped(dims: list, target: list, allowzero: int) -> list:
    """ONNX Reshape's output dimensions: 0 copies the input's (unless allowzero), -1 takes the rest."""
    out = []
    for i, t in enumerate(target):
        copy = dims[i] if i < len(dims) else _c(0)
        out.append(t if allowzero else tirx.Select(t == _c(0), copy, t))
    total = _c(1)
    for d in dims:
        total = total * d
    known = _c(1)
    for e in out:
        known = known * tirx.Select(e == _c(-1), _c(1), e)
    rest = tirx.floordiv(total, _max(known, _c(1)))
    return [tirx.Select(e == _c(-1), rest, e) for e in out]


def _squeezed(dims: list, mask: list, n_out: int) -> list:
    """The first `n_out` dimensions not masked, in order."""
    kept = [tirx.Not(m) for m in mask]
    positions, count = [], _c(0)
    for k in kept:
        positions.append(count)
        count = count + tirx.Select(k, _c(1), _c(0))
    out = []
    for k in range(n_out):
        expr = _c(0)
        for d, dim in enumerate(dims):
            expr = tirx.Select(tirx.And(kept[d], positions[d] == _c(k)), dim, expr)
        out.append(expr)
    return out


def _unsqueezed(dims: list, axes: list) -> list:
    """The input's dimensions with 1 inserted at the run-time axes of the output."""
    rank = len(dims) + len(axes)
    mask = _axis_mask(axes, rank)
    out = []
    before = _c(0)
    for p in range(rank):
        source = _pick(dims, _c(p) - before) if dims else _c(1)
        out.append(tirx.Select(mask[p], _c(1), source))
        before = before + tirx.Select(mask[p], _c(1), _c(0))
    return out


@lowering("dyn_reshape")
def _lower_reshape(node, ins):
    x = ins[0]
    dims = _dims(x)
    out_dims = _out_dims(node.output)
    return [te.compute(tuple(out_dims), lambda *o: x(*_unravel(_ravel(o, out_dims), dims)), name=node.attrs["mode"])]


# ----- slice ---------------------------------------------------------------------------------
def _slice_params(node, ins) -> list[tuple]:
    """Per input dimension: (start, step, length) as int64 expressions (ONNX Slice's clamping)."""
    x, starts, ends = ins[0], ins[1], ins[2]
    axes_t = ins[3] if len(ins) > 3 else None
    steps_t = ins[4] if len(ins) > 4 else None
    dims = _dims(x)
    rank = len(dims)
    st, en = _values(starts), _values(ends)
    n = len(st)
    axes = _values(axes_t) if axes_t is not None else [_c(i) for i in range(n)]
    steps = _values(steps_t) if steps_t is not None else [_c(1)] * n
    out = []
    for d, dim in enumerate(dims):
        hit = [tirx.Or(a == _c(d), a == _c(d - rank)) for a in axes]
        start, end, step = _c(0), dim, _c(1)
        for j in range(n):
            start = tirx.Select(hit[j], st[j], start)
            end = tirx.Select(hit[j], en[j], end)
            step = tirx.Select(hit[j], steps[j], step)
        start = tirx.Select(start < _c(0), start + dim, start)
        end = tirx.Select(end < _c(0), end + dim, end)
        forward = step > _c(0)
        start = tirx.Select(forward, _clamp(start, _c(0), dim), _clamp(start, _c(0), dim - _c(1)))
        end = tirx.Select(forward, _clamp(end, _c(0), dim), _clamp(end, _c(-1), dim - _c(1)))
        safe = tirx.Select(step == _c(0), _c(1), step)
        length = tirx.Select(forward, tirx.floordiv(end - start + safe - _c(1), safe),
                             tirx.floordiv(start - end - safe - _c(1), -safe))
        out.append((start, safe, _max(length, _c(0))))
    return out


@shape_function("dyn_slice")
def _slice_shape(node, ins):
    return [_shape_tensor([length for _, _, length in _slice_params(node, ins)], "slice_shape")]


@lowering("dyn_slice")
def _lower_slice(node, ins):
    x = ins[0]
    params = _slice_params(node, ins)
    out_dims = _out_dims(node.output)
    return [te.compute(tuple(out_dims), lambda *o: x(*[s + _i64(i) * step for i, (s, step, _) in zip(o, params)]),
                       name="slice")]


# ----- pad -----------------------------------------------------------------------------------
def _pad_amounts(node, ins) -> list[tuple]:
    """Per dimension: (pad before, pad after) as int64 expressions."""
    x, pads_t = ins[0], ins[1]
    axes_t = ins[3] if len(ins) > 3 else None
    rank = len(x.shape)
    pads = _values(pads_t)
    if axes_t is None:
        return [(pads[d], pads[d + rank]) for d in range(rank)]
    axes = _values(axes_t)
    n = len(axes)
    out = []
    for d in range(rank):
        before, after = _c(0), _c(0)
        for j, a in enumerate(axes):
            hit = tirx.Or(a == _c(d), a == _c(d - rank))
            before = tirx.Select(hit, pads[j], before)
            after = tirx.Select(hit, pads[j + n], after)
        out.append((before, after))
    return out


@shape_function("dyn_pad")
def _pad_shape(node, ins):
    dims = _dims(ins[0])
    return [_shape_tensor([d + b + a for d, (b, a) in zip(dims, _pad_amounts(node, ins))], "pad_shape")]


def _source_index(i, dim, mode: str):
    """Where an index outside [0, dim) reads from, by pad mode (constant: unchanged)."""
    if mode == "edge":
        return _clamp(i, _c(0), dim - _c(1))
    if mode == "wrap":
        return tirx.floormod(i, dim)
    if mode == "reflect":
        period = _max(_c(2) * (dim - _c(1)), _c(1))
        j = tirx.floormod(i, period)
        return tirx.Select(j < dim, j, period - j)
    return i


@lowering("dyn_pad")
def _lower_pad(node, ins):
    x = ins[0]
    value_t = ins[2] if len(ins) > 2 else None
    mode = node.attrs["mode"]
    dims = _dims(x)
    amounts = _pad_amounts(node, ins)
    out_dims = _out_dims(node.output)
    fill = value_t() if value_t is not None else tirx.const(0, str(x.dtype))

    def body(*o):
        idx = [_i64(i) - before for i, (before, _) in zip(o, amounts)]
        if mode != "constant":
            return x(*[_source_index(i, d, mode) for i, d in zip(idx, dims)])
        inside = tirx.const(True, "bool")
        for i, d in zip(idx, dims):
            inside = tirx.And(inside, tirx.And(i >= _c(0), i < d))
        safe = [_clamp(i, _c(0), _max(d - _c(1), _c(0))) for i, d in zip(idx, dims)]
        return tirx.Select(inside, x(*safe), fill.astype(str(x.dtype)))

    return [te.compute(tuple(out_dims), body, name="pad")]


# ----- expand, tile, full, range ---------------------------------------------------------------
@shape_function("dyn_expand")
def _expand_shape(node, ins):
    x, shape = ins
    dims = _dims(x)
    target = _values(shape)
    rank = max(len(dims), len(target))
    dims = [_c(1)] * (rank - len(dims)) + dims
    target = [_c(1)] * (rank - len(target)) + target
    return [_shape_tensor([tirx.Select(d == _c(1), t, d) for d, t in zip(dims, target)], "expand_shape")]


@lowering("dyn_expand")
def _lower_expand(node, ins):
    x = ins[0]
    dims = _dims(x)
    out_dims = _out_dims(node.output)
    lead = len(out_dims) - len(dims)

    def body(*o):
        return x(*[tirx.Select(d == _c(1), _c(0), _i64(o[lead + k])) for k, d in enumerate(dims)])

    return [te.compute(tuple(out_dims), body, name="expand")]


@shape_function("dyn_tile")
def _tile_shape(node, ins):
    x, repeats = ins
    return [_shape_tensor([d * r for d, r in zip(_dims(x), _values(repeats))], "tile_shape")]


@lowering("dyn_tile")
def _lower_tile(node, ins):
    x = ins[0]
    dims = _dims(x)
    out_dims = _out_dims(node.output)
    return [te.compute(tuple(out_dims), lambda *o: x(*[tirx.floormod(_i64(i), _max(d, _c(1)))
                                                        for i, d in zip(o, dims)]), name="tile")]


@shape_function("dyn_full")
def _full_shape(node, ins):
    return [_shape_tensor(_values(ins[0]), "full_shape")]


@lowering("dyn_full")
def _lower_full(node, ins):
    dtype = node.attrs["dtype"]
    value = tirx.const(node.attrs["value"], "float64").astype(dtype)
    return [te.compute(tuple(_out_dims(node.output)), lambda *o: value, name="full")]


def _range_length(start, limit, delta, dtype: str):
    if dtype.startswith(("int", "uint")):
        s, l, d = _i64(start), _i64(limit), _i64(delta)
        safe = tirx.Select(d == _c(0), _c(1), d)
        n = tirx.Select(d > _c(0), tirx.floordiv(l - s + safe - _c(1), safe),
                        tirx.floordiv(s - l - safe - _c(1), -safe))
    else:
        s, l, d = (v.astype("float64") for v in (start, limit, delta))
        n = tirx.ceil((l - s) / d).astype(I64)
    return _max(n, _c(0))


@shape_function("dyn_range")
def _range_shape(node, ins):
    start, limit, delta = (t() for t in ins)
    return [_shape_tensor([_range_length(start, limit, delta, str(ins[0].dtype))], "range_shape")]


@lowering("dyn_range")
def _lower_range(node, ins):
    start, _, delta = ins
    dtype = str(start.dtype)
    return [te.compute(tuple(_out_dims(node.output)), lambda i: start() + i.astype(dtype) * delta(), name="range")]


# ----- topk, one-hot ---------------------------------------------------------------------------
@shape_function("dyn_topk")
def _topk_shape(node, ins):
    x, k = ins
    dims = _dims(x)
    axis = node.attrs["axis"] % len(dims)
    out = list(dims)
    out[axis] = _clamp(_values(k, 1)[0], _c(0), dims[axis])
    return [_shape_tensor(out, "topk_values_shape"), _shape_tensor(out, "topk_indices_shape")]


@lowering("dyn_topk")
def _lower_topk(node, ins):
    """Sort along the axis (stable: equal values keep index order) and take the first k."""
    x = ins[0]
    axis = node.attrs["axis"] % len(x.shape)
    order = topi.argsort(_sort_key(x), axis=axis, is_ascend=not node.attrs["largest"], dtype=I64)
    out_dims = _out_dims(node.outputs[0])

    def index(*o):
        return order(*o)

    indices = te.compute(tuple(out_dims), index, name="topk_indices")

    def value(*o):
        src = list(o)
        src[axis] = indices(*o)
        return x(*src)

    return [te.compute(tuple(out_dims), value, name="topk_values"), indices]


@shape_function("dyn_one_hot")
def _one_hot_shape(node, ins):
    indices, depth = ins[0], ins[1]
    dims = _dims(indices)
    axis = node.attrs["axis"] % (len(dims) + 1)
    out = dims[:axis] + [_values(depth, 1)[0]] + dims[axis:]
    return [_shape_tensor(out, "one_hot_shape")]


@lowering("dyn_one_hot")
def _lower_one_hot(node, ins):
    indices, _, values = ins
    out_dims = _out_dims(node.output)
    axis = node.attrs["axis"] % len(out_dims)
    depth = out_dims[axis]

    def body(*o):
        where = [_i64(i) for i in o]
        idx = _i64(indices(*(where[:axis] + where[axis + 1:])))
        idx = tirx.Select(idx < _c(0), idx + depth, idx)
        return tirx.Select(idx == where[axis], values(_c(1)), values(_c(0)))

    return [te.compute(tuple(out_dims), body, name="one_hot")]


# ----- split -----------------------------------------------------------------------------------
@shape_function("dyn_split")
def _split_shape(node, ins):
    x, split = ins
    dims = _dims(x)
    axis = node.attrs["axis"] % len(dims)
    out = []
    for k, size in enumerate(_values(split)):
        part = list(dims)
        part[axis] = size
        out.append(_shape_tensor(part, f"split{k}_shape"))
    return out


@lowering("dyn_split")
def _lower_split(node, ins):
    x, split = ins
    axis = node.attrs["axis"] % len(x.shape)
    outs, offset = [], _c(0)
    for k, (value, size) in enumerate(zip(node.outputs, _values(split))):
        outs.append(te.compute(tuple(_out_dims(value)), _shifted(x, axis, offset), name=f"split{k}"))
        offset = offset + size
    return outs


def _shifted(x, axis: int, start):
    """fcompute reading x at the output index moved by `start` along `axis`."""
    def body(*o):
        src = [_i64(i) for i in o]
        src[axis] = src[axis] + start
        return x(*src)

    return body


# ----- affine grid -----------------------------------------------------------------------------
@shape_function("dyn_affine_grid")
def _affine_grid_shape(node, ins):
    size = _values(ins[1])
    return [_shape_tensor([size[0], *size[2:], _c(len(size) - 2)], "affine_grid_shape")]


@lowering("dyn_affine_grid")
def _lower_affine_grid(node, ins):
    """grid[n, ..., k] = theta[n, k, :] . (x, y[, z], 1) with normalized coordinates in [-1, 1]."""
    theta = ins[0]
    dtype = str(theta.dtype)
    out_dims = _out_dims(node.output)
    spatial = out_dims[1:-1]  # D, H, W or H, W
    align = node.attrs["align_corners"]

    def coordinate(i, n):
        i, n = _i64(i).astype(dtype), n.astype(dtype)
        one, two = tirx.const(1, dtype), tirx.const(2, dtype)
        if align:
            return tirx.Select(n > one, -one + two * i / tirx.Max(n - one, one), -one)
        return (two * i + one) / n - one

    def body(b, *rest):
        *pos, k = rest
        coords = [coordinate(i, n) for i, n in zip(reversed(pos), reversed(spatial))]  # x (width) first
        total = theta[b, k, _c(len(coords))]
        for j, c in enumerate(coords):
            total = total + theta[b, k, _c(j)] * c
        return total

    return [te.compute(tuple(out_dims), body, name="affine_grid")]


# ----- non-maximum suppression ---------------------------------------------------------------
def _nms(node, ins):
    """TOPI's all-class NMS: (selected rows padded to batch * classes * boxes, count (1,))."""
    from tvm.topi.vision import all_class_non_max_suppression

    boxes, scores, max_out, iou, score = (list(ins) + [None] * 5)[:5]
    dtype = str(boxes.dtype)
    if node.attrs["center_point_box"]:  # (x centre, y centre, width, height) -> corners (y1, x1, y2, x2)
        centred = boxes
        half = tirx.const(0.5, dtype)

        def corner(b, n, k):
            centre = centred[b, n, tirx.Select(k % 2 == 0, 1, 0)]
            extent = centred[b, n, tirx.Select(k % 2 == 0, 3, 2)]
            return tirx.Select(k < 2, centre - half * extent, centre + half * extent)

        boxes = te.compute(tuple(boxes.shape), corner, name="nms_corners")
    consts = [v.const if v is not None and v.const is not None else None for v in (list(node.inputs) + [None] * 5)[2:5]]
    max_out = int(consts[0].reshape(-1)[0]) if consts[0] is not None else (max_out if max_out is not None else 0)
    iou = float(consts[1].reshape(-1)[0]) if consts[1] is not None else (iou if iou is not None else 0.0)
    score = float(consts[2].reshape(-1)[0]) if consts[2] is not None else (
        score if score is not None else float(np.finfo(np.float32).min))
    return all_class_non_max_suppression(boxes, scores, max_out, iou, score, output_format="onnx")


def _values_f32(t):
    return (t() if len(t.shape) == 0 else t(_c(0))).astype(F32)


@shape_function("dyn_nms")
def _nms_shape(node, ins):
    selected, count = _nms(node, ins)
    total = count(_c(0)).astype(I64)
    # the rows are read (never, the count is not negative) so that the kernel allocates them
    unused = tirx.Select(total < _c(0), selected(_c(0), _c(0)).astype(I64), _c(0))
    return [te.compute((2,), lambda i: tirx.Select(i == 0, total, _c(3) + unused), name="nms_shape")]


@lowering("dyn_nms")
def _lower_nms(node, ins):
    selected, count = _nms(node, ins)
    return [te.compute(tuple(_out_dims(node.output)),
                       lambda i, j: tirx.Select(_i64(i) < count(_c(0)).astype(I64), selected(i, j).astype(I64), _c(0)),
                       name="nms")]


# ----- unique ----------------------------------------------------------------------------------
def _unique_layout(node, x) -> tuple[int, int, int]:
    """(outer, length, inner): x as `length` items (slices along the axis) of outer x inner elements."""
    dims = [int(d) for d in shape_of(x)]
    axis = node.attrs["axis"]
    if axis is None:
        return 1, math.prod(dims), 1
    axis %= len(dims)
    return math.prod(dims[:axis]), dims[axis], math.prod(dims[axis + 1:])


class _Items:
    """IR-builder helpers over the items of x's buffer (see `_unique_layout`)."""

    def __init__(self, T, src, layout, dtype: str):
        self.T, self.src, (self.outer, self.length, self.inner) = T, src, layout
        self.wide = F32 if dtype in ("float16", "bfloat16") else dtype

    def at(self, item, o, i):
        return self.src[(o * self.length + item) * self.inner + i].astype(self.wide)

    def equal(self, a, b, flag):
        """flag[0] = 1 when items a and b hold equal elements, else 0."""
        T = self.T
        flag[0] = _c(1)
        with (T.serial(_c(0), _c(self.outer)) as o, T.serial(_c(0), _c(self.inner)) as i,
              T.If(self.at(a, o, i) != self.at(b, o, i)), T.Then()):
            flag[0] = _c(0)

    def compare(self, a, b, order):
        """order[0] = -1, 0 or 1 as item a sorts before, with or after item b (row-major order)."""
        T = self.T
        order[0] = _c(0)
        with (T.serial(_c(0), _c(self.outer)) as o, T.serial(_c(0), _c(self.inner)) as i,
              T.If(order[0] == _c(0)), T.Then()):
            va, vb = self.at(a, o, i), self.at(b, o, i)
            with T.If(va < vb):
                with T.Then():
                    order[0] = _c(-1)
                with T.Else(), T.If(va > vb), T.Then():
                    order[0] = _c(1)

    def first_occurrences(self, flag, seen, fresh, store=None):
        """seen[0] = the number of distinct items; store(position, item) for each first occurrence."""
        T = self.T
        seen[0] = _c(0)
        with T.serial(_c(0), _c(self.length)) as k:
            fresh[0] = _c(1)
            with T.serial(_c(0), k) as j:
                self.equal(j, k, flag)
                with T.If(flag[0] == _c(1)), T.Then():
                    fresh[0] = _c(0)
            with T.If(fresh[0] == _c(1)), T.Then():
                if store is not None:
                    store(seen[0], k)
                seen[0] = seen[0] + _c(1)


def _local(T, n: int = 1):
    return T.buffer_proxy(T.decl_buffer((n,), I64, scope="local"))


@shape_function("dyn_unique")
def _unique_shape(node, ins):
    x = ins[0]
    layout = _unique_layout(node, x)

    def gen(x_buf, out_buf):
        from tvm.script.ir_builder import IRBuilder
        from tvm.script.ir_builder import tirx as T

        out = T.buffer_proxy(out_buf)
        with IRBuilder() as ib, T.seq_scope():
            items = _Items(T, T.buffer_proxy(x_buf), layout, str(x.dtype))
            seen, flag, fresh = _local(T), _local(T), _local(T)
            items.first_occurrences(flag, seen, fresh)
            out[0] = seen[0]
        return ib.get()

    count = te.extern([(1,)], [x], lambda i, o: gen(i[0], o[0]), dtype=I64, name="unique_count")
    rank = len(node.outputs[0].type.shape)
    axis = 0 if node.attrs["axis"] is None else node.attrs["axis"] % rank
    dims = _dims(x) if node.attrs["axis"] is not None else [_c(layout[1])]
    total = count(_c(0))
    values = [total if d == axis else dims[d] for d in range(rank)]
    return [_shape_tensor(values, "unique_shape"), _shape_tensor([total], "unique_indices_shape"),
            _shape_tensor([_c(layout[1])], "unique_inverse_shape"), _shape_tensor([total], "unique_counts_shape")]


@lowering("dyn_unique")
def _lower_unique(node, ins):
    """First occurrences in order, sorted when asked (selection sort of distinct items), then each
    item's position among them and the counts; all sequential."""
    x = ins[0]
    layout = _unique_layout(node, x)
    outer, length, inner = layout
    shapes = [tuple(_out_dims(v)) for v in node.outputs]
    count = _out_dims(node.outputs[1])[0]

    def gen(x_buf, y_buf, first_buf, inverse_buf, counts_buf):
        from tvm.script.ir_builder import IRBuilder
        from tvm.script.ir_builder import tirx as T

        src = T.buffer_proxy(x_buf)
        y, first, inverse, counts = (T.buffer_proxy(b) for b in (y_buf, first_buf, inverse_buf, counts_buf))
        with IRBuilder() as ib, T.seq_scope():
            items = _Items(T, src, layout, str(x.dtype))
            seen, flag, fresh, order, best, held = (_local(T) for _ in range(6))

            def store(position, item):
                first[position] = item

            items.first_occurrences(flag, seen, fresh, store)
            if node.attrs["sorted"]:
                with T.serial(_c(0), count) as p:
                    best[0] = p
                    with T.serial(p + _c(1), count) as q:
                        items.compare(first[q], first[best[0]], order)
                        with T.If(order[0] == _c(-1)), T.Then():
                            best[0] = q
                    held[0] = first[p]
                    first[p] = first[best[0]]
                    first[best[0]] = held[0]
            with T.serial(_c(0), count) as u:
                counts[u] = _c(0)
            with T.serial(_c(0), _c(length)) as k, T.serial(_c(0), count) as u:
                items.equal(first[u], k, flag)
                with T.If(flag[0] == _c(1)), T.Then():
                    inverse[k] = u
                    counts[u] = counts[u] + _c(1)
            with T.serial(_c(0), _c(outer)) as o, T.serial(_c(0), count) as u, T.serial(_c(0), _c(inner)) as i:
                y[(o * count + u) * _c(inner) + i] = src[(o * _c(length) + first[u]) * _c(inner) + i]
        return ib.get()

    return list(te.extern(shapes, [x], lambda i, o: gen(i[0], *o), dtype=[str(x.dtype), I64, I64, I64],
                          name="unique"))


# ----- nonzero ---------------------------------------------------------------------------------
@shape_function("nonzero")
def _nonzero_shape(node, ins):
    x = ins[0]
    dims = _dims(x)

    def nonzero(v):
        return v if str(x.dtype) == "bool" else v != tirx.const(0, str(x.dtype))

    if dims:
        rs = [te.reduce_axis((_c(0), d), name=f"n{k}") for k, d in enumerate(dims)]
        count = te.compute((1,), lambda _: te.sum(tirx.Select(nonzero(x(*[r.var for r in rs])), _c(1), _c(0)), axis=rs),
                           name="nonzero_count")
    else:
        count = te.compute((1,), lambda _: tirx.Select(nonzero(x()), _c(1), _c(0)), name="nonzero_count")
    return [te.compute((2,), lambda i: tirx.Select(i == 0, _c(len(dims)), count(_c(0))), name="nonzero_shape")]


@lowering("nonzero")
def _lower_nonzero(node, ins):
    """One pass in row-major order, writing each nonzero element's coordinates at a running count."""
    x = ins[0]
    dims = _dims(x)
    out_dims = _out_dims(node.output)
    count = out_dims[1]

    def gen(x_buf, out_buf):
        from tvm.script.ir_builder import IRBuilder
        from tvm.script.ir_builder import tirx as T

        src, out = T.buffer_proxy(x_buf), T.buffer_proxy(out_buf)
        total = _c(1)
        for d in dims:
            total = total * d
        with IRBuilder() as ib, T.seq_scope():
            seen = T.buffer_proxy(T.decl_buffer((1,), I64, scope="local"))
            seen[0] = _c(0)
            with T.serial(_c(0), total) as p:
                value = src[p]
                with T.If(value if str(x.dtype) == "bool" else value != tirx.const(0, str(x.dtype))), T.Then():
                    for k, coord in enumerate(_unravel(p, dims)):
                        out[_c(k) * count + seen[0]] = coord
                    seen[0] = seen[0] + _c(1)
        return ib.get()

    return [te.extern([tuple(out_dims)], [x], lambda i, o: gen(i[0], o[0]), dtype=I64, name="nonzero")]


# ----- resize with run-time scales, sizes or roi -------------------------------------------------
def _resize_params(node, ins) -> tuple[list, list, list]:
    """Per axis: (output extent, float32 scale, (roi start, roi end)) at run time; the output
    extents as the shape function computes them (ONNX Runtime's float32 arithmetic)."""
    x, roi_t, scales_t, sizes_t = (list(ins) + [None] * 4)[:4]
    dims = [int(d) for d in shape_of(x)]
    rank = len(dims)
    axes = [a % rank for a in node.attrs["axes"]] if node.attrs["axes"] else list(range(rank))
    outs, scales = [_c(d) for d in dims], [_f32c(1.0) for _ in dims]
    if sizes_t is not None and int(sizes_t.shape[0]) > 0:
        sizes = _values(sizes_t)
        policy = node.attrs["keep_aspect_ratio_policy"]
        if policy in ("not_larger", "not_smaller"):
            ratios = [sizes[j].astype(F32) / _f32c(dims[a]) for j, a in enumerate(axes)]
            r = ratios[0]
            for q in ratios[1:]:
                r = tirx.Min(r, q) if policy == "not_larger" else tirx.Max(r, q)
            for a in axes:
                scales[a] = r
                outs[a] = tirx.floor(_f32c(dims[a]) * r + _f32c(0.5)).astype(I64)
        else:
            for j, a in enumerate(axes):
                outs[a] = sizes[j]
                scales[a] = sizes[j].astype(F32) / _f32c(dims[a])
    else:
        for j, a in enumerate(axes):
            scales[a] = scales_t(_c(j)).astype(F32)
            outs[a] = (_f32c(dims[a]) * scales[a]).astype(I64)  # truncated, as ONNX Runtime
    rois = [(_f32c(0.0), _f32c(1.0)) for _ in dims]
    if roi_t is not None and int(roi_t.shape[0]) > 0:
        for j, a in enumerate(axes):
            rois[a] = (roi_t(_c(j)).astype(F32), roi_t(_c(j + len(axes))).astype(F32))
    return outs, scales, rois


def _f32c(v):
    return tirx.const(float(v), F32)


def _coord(o, ctm: str, n_in: int, n_out, scale, roi):
    """The input coordinate (float32) of output position o, as ONNX Resize defines it."""
    x = o.astype(F32)
    half = _f32c(0.5)
    if ctm in ("half_pixel", "pytorch_half_pixel"):
        value = (x + half) / scale - half
        return tirx.Select(n_out <= _c(1), _f32c(0), value) if ctm == "pytorch_half_pixel" else value
    if ctm == "half_pixel_symmetric":
        adjustment = n_out.astype(F32) / (scale * _f32c(n_in))
        offset = _f32c(n_in / 2) * (_f32c(1) - adjustment)
        x64 = o.astype("float64")
        return (offset.astype("float64") + (x64 + 0.5) / scale.astype("float64") - 0.5).astype(F32)
    if ctm == "align_corners":  # over the unrounded output length n_in * scale, as ONNX Runtime
        length = _f32c(n_in) * scale
        return tirx.Select(n_out == _c(1), _f32c(0), x * _f32c(n_in - 1) / (length - _f32c(1)))
    if ctm == "asymmetric":
        return x / scale
    if ctm == "tf_crop_and_resize":
        lo, hi = roi
        one = _f32c(0.5) * (lo + hi) * _f32c(n_in - 1)
        many = lo * _f32c(n_in - 1) + x * (hi - lo) * _f32c(n_in - 1) / (_max(n_out - _c(1), _c(1))).astype(F32)
        return tirx.Select(n_out == _c(1), one, many)
    raise ValueError(f"unknown coordinate_transformation_mode {ctm}")


def _resize_tables(attrs, axis: int, n_in: int, n_out, scale, roi):
    """(input index, weight or None, inside or None) tables over (output position, tap)."""
    ctm, mode = attrs["coordinate_transformation_mode"], attrs["mode"]

    def tap(o, t):
        c = _coord(o, ctm, n_in, n_out, scale, roi)
        if mode == "nearest":
            return _nearest(c, n_in, attrs["nearest_mode"]), None
        if mode == "linear":
            return _linear_tap(c, n_in, t)
        return _cubic_tap(c, n_in, t, attrs["cubic_coeff_a"], bool(attrs["exclude_outside"]))

    taps = {"nearest": 1, "linear": 2, "cubic": 4}[mode]
    index = te.compute((n_out, taps), lambda o, t: tap(o, t)[0], name=f"resize_index{axis}")
    weight = None
    if mode != "nearest":
        weight = te.compute((n_out, taps), lambda o, t: tap(o, t)[1], name=f"resize_weight{axis}")
        if mode == "cubic" and attrs["exclude_outside"]:
            raw = weight

            def normalized(o, t):
                total = raw[o, 0]
                for k in range(1, taps):
                    total = total + raw[o, k]
                return raw[o, t] / total

            weight = te.compute((n_out, taps), normalized, name=f"resize_weight{axis}_normalized")
    inside = None
    if ctm == "tf_crop_and_resize":
        def within(o):
            c = _coord(o, ctm, n_in, n_out, scale, roi)
            return tirx.And(c >= _f32c(0), c <= _f32c(n_in - 1))

        inside = te.compute((n_out,), within, name=f"resize_inside{axis}")
    return index, weight, inside


@shape_function("dyn_resize")
def _resize_shape(node, ins):
    outs, _, _ = _resize_params(node, ins)
    return [_shape_tensor([_i64(o) for o in outs], "resize_shape")]


@lowering("dyn_resize")
def _lower_resize(node, ins):
    """Separable: one pass per axis over its taps (float accumulation), then the output dtype."""
    x = ins[0]
    dims = [int(d) for d in shape_of(x)]
    dtype = str(x.dtype)
    acc = "float64" if dtype == "float64" else F32
    _, scales, rois = _resize_params(node, ins)
    out_dims = _out_dims(node.output)
    current = te.compute(tuple(dims), lambda *i: x(*i).astype(acc), name="resize_in")
    inside = []
    for a in range(len(dims)):
        index, weight, within = _resize_tables(node.attrs, a, dims[a], out_dims[a], scales[a], rois[a])
        current = _resize_axis(current, a, out_dims[a], index, weight)
        if within is not None:
            inside.append((a, within))
    fill = tirx.const(node.attrs["extrapolation_value"], "float64").astype(dtype)

    def body(*o):
        value = current(*o).astype(dtype)  # integer results truncate, as in ONNX Runtime
        return tirx.Select(_all([w[o[a]] for a, w in inside]), value, fill) if inside else value

    return [te.compute(tuple(out_dims), body, name="resize")]


def _resize_axis(t, axis: int, n_out, index, weight):
    """t resized along one axis: the weighted sum over the taps of its index table."""
    shape = [d for d in t.shape]
    shape[axis] = n_out
    taps = int(index.shape[1])

    def body(*o):
        total = None
        for k in range(taps):
            src = list(o)
            src[axis] = index[o[axis], k]
            term = t(*src)
            if weight is not None:
                term = term * weight[o[axis], k].astype(str(t.dtype))
            total = term if total is None else total + term
        return total

    return te.compute(tuple(shape), body, name=f"resize_axis{axis}")
