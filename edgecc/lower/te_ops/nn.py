"""nn lowerings: convolution, pooling, normalization, the softmax family, matmul, layout transform.

Windowed ops are a padding stage (`pad`) and one reduction stage over the window, so schedules can
inline the padding. Half-precision inputs accumulate in float32 and are cast back at the end.
"""

from __future__ import annotations

from tvm import te, tirx

from edgecc.errors import LoweringError
from edgecc.ir import layout_of
from edgecc.ir.ops._util import norm_axis
from edgecc.ir.ops.nn import conv_geometry, plain_layout, pool_geometry

from . import fastmath, lowering
from .elementwise import dtype_of
from .packed import lower_blocked_conv, lower_layout_transform
from .shapes import extent, is_one, shape_of, te_shape

HALF_TYPES = ("float16", "bfloat16")


# ----- helpers ---------------------------------------------------------------------------------
def _acc(dtype: str) -> str:
    return "float32" if dtype in HALF_TYPES else dtype


def _shape(t) -> tuple:
    return shape_of(t)


def _c(value, dtype: str):
    return tirx.const(value, dtype)


def _out(node, i: int = 0):
    return node.outputs[i].type


def _all(conds):
    out = conds[0]
    for c in conds[1:]:
        out = tirx.And(out, c)
    return out


def _axis_source(i, size: int, begin: int, stride: int, extent: int):
    """Source index and bounds checks of padded index `i` along one axis."""
    j = i - begin if begin else i
    last = (size - 1) * stride
    conds = []
    if begin > 0:
        conds.append(j >= 0)
    reaches_past = extent - begin - 1 > last
    if not isinstance(reaches_past, bool) or reaches_past:  # symbolic: check it at run time
        conds.append(j <= last)
    if stride == 1:
        return j, conds
    conds.append(tirx.floormod(j, stride) == 0)
    return tirx.floordiv(j, stride), conds


def _untouched(begin, stride, end) -> bool:
    """Whether an axis is neither padded, cropped nor strided."""
    return all(isinstance(v, int) for v in (begin, stride, end)) and begin == 0 and end == 0 and stride == 1


def pad_window(x, begin, end, value, stride=None, name: str = "pad"):
    """`x` padded by `begin`/`end` per axis (negative amounts crop); with `stride`, the input
    elements sit `stride` apart with `value` between them."""
    shape = _shape(x)
    stride = list(stride or [1] * len(shape))
    if all(_untouched(b, s, e) for b, s, e in zip(begin, stride, end)):
        return x
    ext = [(n - 1) * s + 1 + b + e for n, s, b, e in zip(shape, stride, begin, end)]

    def body(*idx):
        src, conds = [], []
        for i, n, b, s, e, pad_end in zip(idx, shape, begin, stride, ext, end):
            if _untouched(b, s, pad_end):  # also for a symbolic extent, which the checks cannot compare
                src.append(i)
                continue
            j, c = _axis_source(i, n, b, s, e)
            src.append(j)
            conds += c
        return tirx.if_then_else(_all(conds), x(*src), value) if conds else x(*src)

    return te.compute(tuple(ext), body, name=name)


def per_channel(p, c):
    """Element `c` of a parameter holding one value per channel, whatever its shape."""
    shape = _shape(p)
    big = [k for k, d in enumerate(shape) if d > 1]
    idx = [0] * len(shape)
    if len(big) == 1:
        idx[big[0]] = c
    else:
        for k in reversed(big):
            idx[k], c = tirx.floormod(c, shape[k]), tirx.floordiv(c, shape[k])
    return p(*idx)


def _bcast_index(idx, shape, out_shape):
    """Numpy-broadcast index into `shape` from an index over `out_shape` (right-aligned)."""
    off = len(out_shape) - len(shape)
    return [0 if is_one(d) and not is_one(out_shape[k + off]) else idx[k + off] for k, d in enumerate(shape)]


def _finish(t, dtype: str, name: str):
    """`t` cast to `dtype` (`t` itself when it already has that type)."""
    if str(t.dtype) == dtype:
        return t
    return te.compute(t.shape, lambda *i: t(*i).astype(dtype), name=name)


def _spatial_positions(node, rank: int) -> list[int]:
    """Physical axes of the spatial dims of an image-layout node, in logical order."""
    layout = layout_of(node.attrs.get("layout") or plain_layout(rank))
    return [k for name in layout.logical if name not in "NC"
            for k, (axis, block) in enumerate(layout.axes) if axis == name and block is None]


# ----- convolution ------------------------------------------------------------------------------
def _window_sum(padded, out_shape, cin_g, cout_g, kernel, strides, dilations, weight_at, acc, name):
    """out[n, o, y...] = sum over the group's channels and the kernel of padded * weight."""
    rc = te.reduce_axis((0, cin_g), name="rc")
    rk = [te.reduce_axis((0, k), name=f"rk{i}") for i, k in enumerate(kernel)]
    grouped = int(padded.shape[1]) != cin_g

    def body(n, o, *ys):
        c = tirx.floordiv(o, cout_g) * cin_g + rc if grouped else rc
        pos = [y * s + r * d for y, r, s, d in zip(ys, rk, strides, dilations)]
        prod = padded(n, c, *pos).astype(acc) * weight_at(o, rc, rk).astype(acc)
        return te.sum(prod, axis=[rc, *rk])

    return te.compute(tuple(out_shape), body, name=name)


def _epilogue(out, bias, dtype: str):
    """Add the per-output-channel bias and cast to `dtype`, as one stage after the reduction."""
    if bias is None:
        return _finish(out, dtype, "cast")
    acc = str(out.dtype)
    return te.compute(out.shape, lambda n, o, *ys: (out(n, o, *ys) + per_channel(bias, o).astype(acc)).astype(dtype),
                      name="bias_add")


@lowering("conv")
def lower_conv(node, ins):
    layout = node.attrs["layout"]
    if layout is not None and layout_of(layout).is_blocked:
        return lower_blocked_conv(node, ins)
    if layout is not None or node.attrs["kernel_layout"] is not None or node.attrs["out_layout"] is not None:
        raise LoweringError(f"conv {node.name}: layout {layout} is not supported (plain NC... or NCHW{{b}}c)")
    data, weight, bias = ins[0], ins[1], ins[2] if len(ins) > 2 else None
    g = conv_geometry(node)
    nsp = len(g["kernel"])
    dtype = str(data.dtype)
    padded = pad_window(data, [0, 0, *g["pads"][:nsp]], [0, 0, *g["pads"][nsp:]], _c(0, dtype))
    out = _window_sum(padded, te_shape(_out(node).shape), g["C"] // g["group"], g["O"] // g["group"], g["kernel"],
                      g["strides"], g["dilations"], lambda o, rc, rk: weight(o, rc, *rk), _acc(dtype), "conv")
    return [_epilogue(out, bias, dtype)]


@lowering("conv_transpose")
def lower_conv_transpose(node, ins):
    """Convolution of the stride-dilated, padded input with the flipped, group-transposed kernel."""
    data, weight, bias = ins[0], ins[1], ins[2] if len(ins) > 2 else None
    shape, kernel = _shape(data), _shape(weight)[2:]
    nsp, group = len(kernel), node.attrs["group"]
    strides = node.attrs["strides"] or (1,) * nsp
    dil = node.attrs["dilations"] or (1,) * nsp
    pads = node.attrs["pads"] or (0,) * (2 * nsp)
    outpad = node.attrs["output_padding"] or (0,) * nsp
    span = [d * (k - 1) for d, k in zip(dil, kernel)]
    begin = [s - p for s, p in zip(span, pads[:nsp])]
    end = [s - p + op for s, p, op in zip(span, pads[nsp:], outpad)]
    dtype = str(data.dtype)
    padded = pad_window(data, [0, 0, *begin], [0, 0, *end], _c(0, dtype), stride=[1, 1, *strides])
    cin_g, cout_g = shape[1] // group, int(weight.shape[1])

    def weight_at(o, rc, rk):
        c = tirx.floordiv(o, cout_g) * cin_g + rc if group > 1 else rc
        return weight(c, tirx.floormod(o, cout_g) if group > 1 else o, *[k - 1 - r for k, r in zip(kernel, rk)])

    out = _window_sum(padded, te_shape(_out(node).shape), cin_g, cout_g, kernel, (1,) * nsp, dil, weight_at,
                      _acc(dtype), "conv_transpose")
    return [_epilogue(out, bias, dtype)]


# ----- pooling ---------------------------------------------------------------------------------
def _pool_window(node, x, pad_value, reducer, element, acc, name):
    """reducer(element(x[window])) for each output position; returns (result, geometry, positions)."""
    g = pool_geometry(node)
    shape = _shape(x)
    pos = _spatial_positions(node, len(shape))
    begin, end = [0] * len(shape), [0] * len(shape)
    for i, k in enumerate(pos):
        need = (extent(g["out_sizes"][i]) - 1) * g["strides"][i] + g["dilations"][i] * (g["kernel"][i] - 1) + 1
        begin[k] = extent(g["pads"][i])
        beyond = need - shape[k] - begin[k]
        end[k] = max(beyond, 0) if isinstance(beyond, int) else tirx.max(beyond, 0)
    padded = pad_window(x, begin, end, pad_value)
    rk = [te.reduce_axis((0, k), name=f"rk{i}") for i, k in enumerate(g["kernel"])]

    def body(*idx):
        src = list(idx)
        for i, k in enumerate(pos):
            src[k] = idx[k] * g["strides"][i] + rk[i] * g["dilations"][i]
        return reducer(element(padded(*src).astype(acc)), axis=rk)

    return te.compute(te_shape(_out(node).shape), body, name=name), g, pos


@lowering("max_pool")
def lower_max_pool(node, ins):
    x = ins[0]
    dtype = str(x.dtype)
    out, _, _ = _pool_window(node, x, tirx.min_value(dtype), te.max, lambda v: v, dtype, "max_pool")
    return [out]


def _window_count(o, k, stride, dilation, lo, hi, pad_begin):
    """How many of the window's k taps starting at o*stride - pad_begin fall in [lo, hi)."""
    start = o * stride - pad_begin
    if dilation == 1:
        return tirx.min(start + k, hi) - tirx.max(start, lo)
    first = tirx.max(tirx.floordiv(lo - start + dilation - 1, dilation), 0)
    last = tirx.min(tirx.floordiv(hi - 1 - start, dilation), k - 1)
    return tirx.max(last - first + 1, 0)


@lowering("avg_pool")
def lower_avg_pool(node, ins):
    """Divisor: taps inside the padded extent (count_include_pad) or inside the input; a window
    with no such tap gives 0."""
    x = ins[0]
    dtype = str(x.dtype)
    acc = _acc(dtype)
    total, g, pos = _pool_window(node, x, _c(0, dtype), te.sum, lambda v: v, acc, "avg_pool_sum")
    include = bool(node.attrs["count_include_pad"])
    shape, nsp = _shape(x), len(pos)

    def body(*idx):
        count = 1
        for i, k in enumerate(pos):
            pb, pe = g["pads"][i], g["pads"][i + nsp]
            lo, hi = (-pb, shape[k] + pe) if include else (0, shape[k])
            count = count * _window_count(idx[k], g["kernel"][i], g["strides"][i],
                                          g["dilations"][i], lo, hi, pb)
        return (total(*idx) / tirx.max(count, 1).astype(acc)).astype(dtype)

    return [te.compute(total.shape, body, name="avg_pool")]


def _lp_element(p: int):
    if p == 1:
        return tirx.abs
    if p == 2:
        return lambda v: v * v
    return lambda v: tirx.power(tirx.abs(v), _c(float(p), dtype_of(v)))


def _lp_root(total, p: int, dtype: str, name: str):
    def root(*i):
        s = total(*i)
        if p == 1:
            r = s
        elif p == 2:
            r = tirx.sqrt(s)
        else:
            r = tirx.power(s, _c(1.0 / p, str(total.dtype)))
        return r.astype(dtype)

    return te.compute(total.shape, root, name=name)


@lowering("lp_pool")
def lower_lp_pool(node, ins):
    x = ins[0]
    dtype, p = str(x.dtype), node.attrs["p"]
    total, _, _ = _pool_window(node, x, _c(0, dtype), te.sum, _lp_element(p), _acc(dtype), "lp_pool_sum")
    return [_lp_root(total, p, dtype, "lp_pool")]


def _global_reduce(node, x, reducer, element, acc, name):
    shape = _shape(x)
    pos = _spatial_positions(node, len(shape))
    rs = {k: te.reduce_axis((0, shape[k]), name=f"r{k}") for k in pos}

    def body(*idx):
        src = [rs[k] if k in rs else i for k, i in enumerate(idx)]
        return reducer(element(x(*src).astype(acc)), axis=list(rs.values()))

    count = 1
    for k in pos:
        count *= shape[k]
    return te.compute(te_shape(_out(node).shape), body, name=name), count


@lowering("global_max_pool")
def lower_global_max_pool(node, ins):
    x = ins[0]
    out, _ = _global_reduce(node, x, te.max, lambda v: v, str(x.dtype), "global_max_pool")
    return [out]


@lowering("global_avg_pool")
def lower_global_avg_pool(node, ins):
    x = ins[0]
    dtype = str(x.dtype)
    acc = _acc(dtype)
    total, count = _global_reduce(node, x, te.sum, lambda v: v, acc, "global_avg_pool_sum")
    divisor = _c(count, acc) if isinstance(count, int) else count.astype(acc)
    return [te.compute(total.shape, lambda *i: (total(*i) / divisor).astype(dtype), name="global_avg_pool")]


@lowering("global_lp_pool")
def lower_global_lp_pool(node, ins):
    x = ins[0]
    dtype, p = str(x.dtype), node.attrs["p"]
    total, _ = _global_reduce(node, x, te.sum, _lp_element(p), _acc(dtype), "global_lp_pool_sum")
    return [_lp_root(total, p, dtype, "global_lp_pool")]


# ----- normalization ---------------------------------------------------------------------------
@lowering("batch_norm")
def lower_batch_norm(node, ins):
    x, scale, bias, mean, var = ins
    dtype, acc = str(x.dtype), _acc(str(x.dtype))
    axis = norm_axis(node.attrs["axis"], len(x.shape), "batch_norm")
    eps = _c(node.attrs["epsilon"], acc)

    def body(*idx):
        c = idx[axis]
        p = {name: per_channel(t, c).astype(acc) for name, t in
             (("scale", scale), ("bias", bias), ("mean", mean), ("var", var))}
        inv = p["scale"] / tirx.sqrt(p["var"] + eps)
        return ((x(*idx).astype(acc) - p["mean"]) * inv + p["bias"]).astype(dtype)

    return [te.compute(x.shape, body, name="batch_norm")]


def _moments(x, axes, acc, name):
    """Mean and (biased) variance of `x` over `axes`, as functions of the kept axes' index."""
    shape = _shape(x)
    kept = [k for k in range(len(shape)) if k not in axes]
    count = 1
    for k in axes:
        count *= shape[k]

    def reduce(element, suffix):
        def body(*idx):
            rs = {k: te.reduce_axis((0, shape[k]), name=f"r{k}") for k in axes}
            src = [rs[k] if k in rs else idx[kept.index(k)] for k in range(len(shape))]
            return te.sum(element(x(*src).astype(acc), idx), axis=list(rs.values()))

        return te.compute(tuple(shape[k] for k in kept), body, name=f"{name}_{suffix}")

    total = reduce(lambda v, idx: v, "sum")

    def mean(*idx):
        return total(*idx) / _c(count, acc)

    sqdev = reduce(lambda v, idx: (v - mean(*idx)) * (v - mean(*idx)), "sqdev")
    return mean, lambda *idx: sqdev(*idx) / _c(count, acc)


@lowering("instance_norm")
def lower_instance_norm(node, ins):
    """Per (n, c) statistics over the spatial axes, then the per-channel scale and bias."""
    x, scale, bias = ins
    dtype, acc = str(x.dtype), _acc(str(x.dtype))
    mean, var = _moments(x, list(range(2, len(x.shape))), acc, "instance_norm")
    eps = _c(node.attrs["epsilon"], acc)

    def body(n, c, *sp):
        norm = (x(n, c, *sp).astype(acc) - mean(n, c)) / tirx.sqrt(var(n, c) + eps)
        return (norm * per_channel(scale, c).astype(acc) + per_channel(bias, c).astype(acc)).astype(dtype)

    return [te.compute(x.shape, body, name="instance_norm")]


@lowering("layer_norm")
def lower_layer_norm(node, ins):
    """Statistics over axes [axis, rank) in float32 (float64 for float64 input)."""
    x, scale, bias = ins[0], ins[1] if len(ins) > 1 else None, ins[2] if len(ins) > 2 else None
    dtype, acc, shape = str(x.dtype), _acc(str(x.dtype)), _shape(x)
    axis = norm_axis(node.attrs["axis"], len(shape), "layer_norm")
    mean, var = _moments(x, list(range(axis, len(shape))), acc, "layer_norm")
    eps = _c(node.attrs["epsilon"], acc)

    def param(t, idx):
        return t(*_bcast_index(idx, _shape(t), shape)).astype(acc)

    def body(*idx):
        y = (x(*idx).astype(acc) - mean(*idx[:axis])) / tirx.sqrt(var(*idx[:axis]) + eps)
        if scale is not None:
            y = y * param(scale, idx)
        if bias is not None:
            y = y + param(bias, idx)
        return y.astype(dtype)

    return [te.compute(x.shape, body, name="layer_norm")]


@lowering("lrn")
def lower_lrn(node, ins):
    """y = x / (bias + alpha/size * sum of x^2 over channels c-floor((size-1)/2)..c+ceil((size-1)/2))^beta."""
    x = ins[0]
    dtype, acc = str(x.dtype), _acc(str(x.dtype))
    a = node.attrs
    size = a["size"]
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    rank = len(x.shape)
    padded = pad_window(x, [0, lo] + [0] * (rank - 2), [0, hi] + [0] * (rank - 2), _c(0, dtype))
    r = te.reduce_axis((0, size), name="rc")

    def square_sum(n, c, *sp):
        v = padded(n, c + r, *sp).astype(acc)
        return te.sum(v * v, axis=r)

    sq = te.compute(x.shape, square_sum, name="lrn_sum")

    def body(*idx):
        base = _c(a["bias"], acc) + _c(a["alpha"] / size, acc) * sq(*idx)
        return (x(*idx).astype(acc) / tirx.power(base, _c(a["beta"], acc))).astype(dtype)

    return [te.compute(x.shape, body, name="lrn")]


# ----- softmax family --------------------------------------------------------------------------
def _along(axis: int):
    """Index helpers for reductions over one axis: drop it from, or put `r` into, an index."""
    def drop(idx):
        return idx[:axis] + idx[axis + 1:]

    def put(idx, r):
        return (*idx[:axis], r, *idx[axis:])

    return drop, put


#: a symbolic softmax axis is reduced over whole groups of this many elements (a multiple of every
#: CPU target's float32 vector width), so that the schedule can accumulate them in vector lanes
SYMBOLIC_ROW_GROUP = 16


def _axis_max(x, axis, acc, name):
    shape = _shape(x)
    _, put = _along(axis)
    r = te.reduce_axis((0, shape[axis]), name="rs")
    return te.compute(shape[:axis] + shape[axis + 1:], lambda *i: te.max(x(*put(i, r)).astype(acc), axis=r),
                      name=name)


def _row_reduce_axis(length):
    """(reduce axis, guard) over a softmax axis of `length` elements. A static axis: the axis
    itself, no guard. A symbolic one: the axis rounded up to whole `SYMBOLIC_ROW_GROUP`s, the
    elements past its end replaced by `guard(value, identity)` with the reduction's identity; the
    guard is `likely` true, so the build splits each row into an unguarded body of whole groups
    and a guarded tail (loop partition), and it never reads past the row."""
    if isinstance(length, int):
        return te.reduce_axis((0, length), name="rs"), None
    group = SYMBOLIC_ROW_GROUP
    r = te.reduce_axis((0, (length + group - 1) // group * group), name="rs")
    return r, lambda value, identity: tirx.if_then_else(tirx.likely(r < length), value, identity)


def _row_max(x, axis, acc, name):
    """`_axis_max`, over whole groups of a symbolic axis (`_row_reduce_axis`)."""
    shape = _shape(x)
    r, guard = _row_reduce_axis(shape[axis])
    if guard is None:
        return _axis_max(x, axis, acc, name)
    _, put = _along(axis)
    lowest = tirx.min_value(acc)
    return te.compute(shape[:axis] + shape[axis + 1:],
                      lambda *i: te.max(guard(x(*put(i, r)).astype(acc), lowest), axis=r), name=name)


@lowering("softmax", "log_softmax")
def lower_softmax(node, ins):
    """Stable: exp(x - max) summed, then normalized (or x - max - log(sum)). A float16 softmax rounds
    x - max, its exp and the sum to float16 (summing in float32), as onnx's reference computes it.
    A symbolic axis is reduced over whole groups of elements (`_row_reduce_axis`)."""
    x = ins[0]
    dtype, acc, shape = str(x.dtype), _acc(str(x.dtype)), _shape(x)
    axis = norm_axis(node.attrs["axis"], len(shape), node.op)
    drop, put = _along(axis)
    mx = _row_max(x, axis, acc, f"{node.op}_max")

    def step(value):
        return value.astype(dtype).astype(acc) if dtype == "float16" and node.op == "softmax" else value

    def exp_shifted(value, peak):
        return step(fastmath.exp(step(value.astype(acc) - peak)))

    r, guard = _row_reduce_axis(shape[axis])
    guard = guard or (lambda value, identity: value)
    total = te.compute(mx.shape, lambda *i: te.sum(guard(exp_shifted(x(*put(i, r)), mx(*i)), tirx.const(0, acc)),
                                                   axis=r), name=f"{node.op}_sum")

    def body(*idx):
        if node.op == "log_softmax":
            shifted = x(*idx).astype(acc) - mx(*drop(idx))
            return (shifted - tirx.log(total(*drop(idx)))).astype(dtype)
        return (exp_shifted(x(*idx), mx(*drop(idx))) / step(total(*drop(idx)))).astype(dtype)

    return [te.compute(x.shape, body, name=node.op)]


@lowering("hardmax")
def lower_hardmax(node, ins):
    """1 at the first maximum along the axis, 0 elsewhere."""
    x = ins[0]
    dtype, shape = str(x.dtype), _shape(x)
    axis = norm_axis(node.attrs["axis"], len(shape), "hardmax")
    n = shape[axis]
    drop, put = _along(axis)
    mx = _axis_max(x, axis, dtype, "hardmax_max")
    r = te.reduce_axis((0, n), name="rs")
    first = te.compute(mx.shape, lambda *i: te.min(tirx.Select(x(*put(i, r)) == mx(*i), r.var, n), axis=r),
                       name="hardmax_first")
    return [te.compute(x.shape, lambda *i: tirx.Select(i[axis] == first(*drop(i)), _c(1, dtype), _c(0, dtype)),
                       name="hardmax")]


# ----- matmul ----------------------------------------------------------------------------------
@lowering("matmul")
def lower_matmul(node, ins):
    """numpy.matmul: 1-D operands gain and lose a unit axis; batch axes broadcast."""
    a, b = ins
    sa, sb = _shape(a), _shape(b)
    out_shape = te_shape(_out(node).shape)
    dtype = str(a.dtype)
    acc = _acc(dtype)
    nbatch = len(out_shape) - (len(sa) > 1) - (len(sb) > 1)
    batch_shape = out_shape[:nbatch]
    rk = te.reduce_axis((0, sa[-1]), name="rk")

    def body(*idx):
        batch, rest = idx[:nbatch], idx[nbatch:]
        ai = _bcast_index(batch, sa[:-2], batch_shape) + ([rest[0]] if len(sa) > 1 else []) + [rk]
        bi = _bcast_index(batch, sb[:-2], batch_shape) + [rk] + ([rest[-1]] if len(sb) > 1 else [])
        return te.sum(a(*ai).astype(acc) * b(*bi).astype(acc), axis=rk)

    out = te.compute(out_shape, body, name="matmul")
    return [_finish(out, dtype, "matmul_cast")]


# ----- layout transform ------------------------------------------------------------------------
lowering("layout_transform")(lower_layout_transform)
