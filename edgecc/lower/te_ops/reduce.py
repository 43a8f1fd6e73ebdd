"""Lowerings of reductions, arg-reductions, cumsum, cumprod and topk."""

from __future__ import annotations

import math

from tvm import te, tirx, topi

from edgecc.ir.ops.reduce import reduce_axes

from . import fastmath, lowering
from .elementwise import dtype_of
from .shapes import is_zero, shape_of, te_shape

HALF_TYPES = ("float16", "bfloat16")


def _acc_dtype(dtype: str) -> str:
    """Half types accumulate in float32."""
    return "float32" if dtype in HALF_TYPES else dtype


def _product():
    return te.comm_reducer(lambda a, b: a * b, lambda t: tirx.const(1, t), name="product")


def _reduce(x, axes, keepdims: bool, reducer, element, name: str):
    """out = reducer(element(x[...]) over `axes`), keeping or dropping the reduced axes."""
    dims = list(shape_of(x))
    if keepdims:
        out_shape = [1 if i in axes else d for i, d in enumerate(dims)]
    else:
        out_shape = [d for i, d in enumerate(dims) if i not in axes]

    def body(*idx):
        rs = {a: te.reduce_axis((0, dims[a]), name=f"r{a}") for a in axes}
        src, k = [], 0
        for i in range(len(dims)):
            if i in rs:
                src.append(rs[i].var)
                k += int(keepdims)
            else:
                src.append(idx[k])
                k += 1
        return reducer(element(x(*src)), axis=list(rs.values()))

    return te.compute(tuple(out_shape), body, name=name)


_REDUCERS = {
    "reduce_sum": (te.sum, lambda v: v, lambda s, n: s),
    "reduce_mean": (te.sum, lambda v: v, lambda s, n: _mean(s, n)),
    "reduce_max": (te.max, lambda v: v, lambda s, n: s),
    "reduce_min": (te.min, lambda v: v, lambda s, n: s),
    "reduce_prod": (None, lambda v: v, lambda s, n: s),
    "reduce_l1": (te.sum, lambda v: tirx.abs(v), lambda s, n: s),
    "reduce_l2": (te.sum, lambda v: v * v, lambda s, n: tirx.sqrt(s)),
    "reduce_log_sum": (te.sum, lambda v: v, lambda s, n: tirx.log(s)),
    "reduce_sum_square": (te.sum, lambda v: v * v, lambda s, n: s),
}


def _mean(total, count: int):
    dtype = dtype_of(total)
    count = tirx.const(count, dtype) if isinstance(count, int) else count.astype(dtype)
    if dtype.startswith(("int", "uint")):
        return tirx.truncdiv(total, count)
    return total / count


#: results of reducing no elements (a mean of nothing is 0 in ONNX Runtime)
_EMPTY = {"reduce_sum": 0, "reduce_mean": 0, "reduce_max": float("-inf"), "reduce_min": float("inf"),
          "reduce_prod": 1, "reduce_l1": 0, "reduce_l2": 0, "reduce_log_sum": float("-inf"),
          "reduce_log_sum_exp": float("-inf"), "reduce_sum_square": 0}


def _empty_value(op: str, dtype: str):
    value = _EMPTY[op]
    if dtype.startswith(("float", "bfloat")):
        return value
    if dtype == "bool":
        return value > 0
    if math.isinf(value):
        return (tirx.max_value(dtype) if value > 0 else tirx.min_value(dtype)).value
    return value


def _empty_reduction(node, dtype: str):
    """The result of a reduction over an axis of size 0 (TIR would never run its init)."""
    const = tirx.const(_empty_value(node.op, dtype), dtype)
    return te.compute(te_shape(node.output.type.shape), lambda *i: const, name=node.op)


def _float_extremum(op: str):
    """max/min whose identity is -inf/+inf (te.max starts at the lowest finite float)."""
    if op == "reduce_max":
        return te.comm_reducer(lambda a, b: tirx.max(a, b), lambda t: tirx.const(float("-inf"), t), name="fmax")
    return te.comm_reducer(lambda a, b: tirx.min(a, b), lambda t: tirx.const(float("inf"), t), name="fmin")


def _bool_reducer(op: str):
    """max and min of booleans: any and all."""
    if op == "reduce_max":
        return te.comm_reducer(lambda a, b: tirx.Or(a, b), lambda t: tirx.const(False, t), name="any")
    return te.comm_reducer(lambda a, b: tirx.And(a, b), lambda t: tirx.const(True, t), name="all")


@lowering(*_REDUCERS)
def _lower_reduce(node, ins):
    x = ins[0]
    dtype = str(x.dtype)
    acc = _acc_dtype(dtype)
    axes = reduce_axes(node, len(x.shape))
    if any(is_zero(x.shape[a]) for a in axes):
        return [_empty_reduction(node, dtype)]
    keep = bool(node.attrs["keepdims"])
    reducer, element, finish = _REDUCERS[node.op]
    if dtype == "bool" and node.op in ("reduce_max", "reduce_min"):
        reducer = _bool_reducer(node.op)
    elif acc.startswith(("float", "bfloat")) and node.op in ("reduce_max", "reduce_min"):
        reducer = _float_extremum(node.op)
    reducer = reducer or _product()
    count = 1
    for a in axes:
        count *= shape_of(x)[a]
    total = _reduce(x, axes, keep, reducer, lambda v: element(v.astype(acc)), node.op)
    return [te.compute(total.shape, lambda *i: finish(total(*i), count).astype(dtype), name=f"{node.op}_out")]


@lowering("reduce_log_sum_exp")
def _lower_log_sum_exp(node, ins):
    """log(sum(exp(x - max))) + max, stable for large inputs."""
    x = ins[0]
    dtype = str(x.dtype)
    acc = _acc_dtype(dtype)
    axes = reduce_axes(node, len(x.shape))
    if any(is_zero(x.shape[a]) for a in axes):
        return [_empty_reduction(node, dtype)]
    top = _reduce(x, axes, True, te.max, lambda v: v.astype(acc), "lse_max")

    def shift(*idx):  # the max, or 0 where it is infinite (all -inf, or an inf input)
        m = top(*idx)
        return tirx.Select(tirx.isinf(m), tirx.const(0, acc), m)

    def shifted_exp(*idx):
        return fastmath.exp(x(*idx).astype(acc) - shift(*(0 if i in axes else v for i, v in enumerate(idx))))

    exps = te.compute(tuple(x.shape), shifted_exp, name="lse_exp")
    total = _reduce(exps, axes, True, te.sum, lambda v: v, "lse_sum")
    out = te.compute(total.shape, lambda *i: (tirx.log(total(*i)) + shift(*i)).astype(dtype), name=node.op)
    return [out if node.attrs["keepdims"] else topi.reshape(out, te_shape(node.output.type.shape))]


def _arg_reducer(largest: bool, last: bool):
    """Reducer over (index, value) pairs: the best value, ties to the first (or last) index."""

    def combine(lhs, rhs):
        i0, v0 = lhs
        i1, v1 = rhs
        better = v1 > v0 if largest else v1 < v0
        tie_wins = i1 > i0 if last else i1 < i0
        # index -1 marks the identity, which never wins
        take = tirx.And(i1 >= 0, tirx.Or(i0 < 0, tirx.Or(better, tirx.And(v1 == v0, tie_wins))))
        return tirx.Select(take, i1, i0), tirx.Select(take, v1, v0)

    def identity(t_idx, t_val):
        worst = tirx.min_value(t_val) if largest else tirx.max_value(t_val)
        return tirx.const(-1, t_idx), worst

    return te.comm_reducer(combine, identity, name="argmax" if largest else "argmin")


@lowering("argmax", "argmin")
def _lower_arg(node, ins):
    x = ins[0]
    dims = list(shape_of(x))
    axis = node.attrs["axis"] % len(dims)
    keep = bool(node.attrs["keepdims"])
    reducer = _arg_reducer(node.op == "argmax", bool(node.attrs["select_last_index"]))
    out_shape = node.output.type.shape

    def body(*idx):
        k = te.reduce_axis((0, dims[axis]), name="k")
        src = list(idx)
        if keep:
            src[axis] = k.var
        else:
            src.insert(axis, k.var)
        return reducer((k.var.astype("int64"), x(*src)), axis=k)

    pair = te.compute(te_shape(out_shape), body, name=node.op)
    return [pair[0]]


@lowering("cumsum")
def _lower_cumsum(node, ins):
    x = ins[0]
    if any(is_zero(d) for d in x.shape):  # nothing to scan (the TOPI scan would write one element)
        return [te.compute(x.shape, lambda *i: tirx.const(0, str(x.dtype)), name="cumsum")]
    axis = node.attrs["axis"] % len(x.shape)
    reverse = bool(node.attrs["reverse"])
    if reverse:
        x = topi.flip(x, axis)
    out = topi.cumsum(x, axis, str(ins[0].dtype), bool(node.attrs["exclusive"]))
    return [topi.flip(out, axis) if reverse else out]


@lowering("cumprod")
def _lower_cumprod(node, ins):
    x = ins[0]
    rank = len(x.shape)
    axis = node.attrs["axis"] % rank
    n = int(x.shape[axis])
    exclusive, reverse = node.attrs["exclusive"], node.attrs["reverse"]
    dtype = str(x.dtype)
    product = te.comm_reducer(lambda a, b: a * b, lambda t: tirx.const(1, t), name="product")

    def body(*idx):
        k = te.reduce_axis((0, n), name="k")
        i = idx[axis]
        if reverse:
            keep = k > i if exclusive else k >= i
        else:
            keep = k < i if exclusive else k <= i
        src = list(idx)
        src[axis] = k
        return product(tirx.Select(keep, x(*src), tirx.const(1, dtype)), axis=k)

    return [te.compute(tuple(x.shape), body, name="cumprod")]


@lowering("topk")
def _lower_topk(node, ins):
    x = ins[0]
    axis = node.attrs["axis"] % len(x.shape)
    k = node.attrs["k"]
    if k == 0:  # TOPI would return everything
        shape = te_shape(node.outputs[0].type.shape)
        return [te.compute(shape, lambda *i: tirx.const(0, str(x.dtype)), name="topk_values"),
                te.compute(shape, lambda *i: tirx.const(0, "int64"), name="topk_indices")]
    ascending = not node.attrs["largest"]
    key = _sort_key(x)
    if key is x:
        return list(topi.topk(x, k, axis, "both", is_ascend=ascending, dtype="int64"))
    indices = topi.topk(key, k, axis, "indices", is_ascend=ascending, dtype="int64")
    return [_take_along(x, indices, axis), indices]


#: element types the runtime's sort lacks, and wider ones that order the same
_WIDER_KEY = {"int16": "int32", "uint16": "int32", "uint32": "int64"}


def _sort_key(x):
    """x itself, or a tensor of a type the runtime sorts that orders as x does."""
    dtype = str(x.dtype)
    if dtype == "uint64":  # flipping the top bit maps the unsigned order onto the signed one
        top = tirx.shift_left(tirx.const(1, "uint64"), tirx.const(63, "uint64"))
        return te.compute(x.shape, lambda *i: tirx.reinterpret("int64", tirx.bitwise_xor(x(*i), top)),
                          name="topk_key")
    if dtype in _WIDER_KEY:
        return te.compute(x.shape, lambda *i: x(*i).astype(_WIDER_KEY[dtype]), name="topk_key")
    return x


def _take_along(x, indices, axis: int):
    def body(*idx):
        src = list(idx)
        src[axis] = indices(*idx)
        return x(*src)

    return te.compute(indices.shape, body, name="topk_values")
