"""Converters for ONNX neural-network ops: Conv, pooling and MaxUnpool, normalization, Softmax, Gemm, MatMul."""

from __future__ import annotations

import math

import numpy as np

from edgecc.ir.dims import Dim, UndecidableDim
from edgecc.ir.types import np_dtype

from ..onnx import onnx_dtype
from . import converter
from ._util import cast, optional_input
from .checks import axis, count, pads, per_spatial_axis

#: the window attributes of convolution and pooling
WINDOW = {"kernel_shape": per_spatial_axis(), "strides": per_spatial_axis(), "dilations": per_spatial_axis(),
          "pads": pads(), "group": count()}


def resolve_pads(ctx, attrs, in_sizes, kernel, strides, dilations) -> list[int]:
    """ONNX pads in (begin..., end...) order, with auto_pad resolved against static sizes."""
    nsp = len(in_sizes)
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = list(attrs.get("pads", [0] * (2 * nsp)))
        if len(pads) != 2 * nsp:
            raise ctx.fail(f"pads has {len(pads)} entries, expected {2 * nsp}")
        return pads
    if auto == "VALID":
        return [0] * (2 * nsp)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise ctx.fail(f"unknown auto_pad {auto!r}")
    begin, end = [], []
    for size, k, s, d in zip(in_sizes, kernel, strides, dilations):
        if isinstance(size, Dim):
            if s != 1:
                raise UndecidableDim(f"auto_pad {auto} with stride {s} over a symbolic size {size}: the padding "
                                     f"depends on the run-time size")
            total = max((k - 1) * d, 0)  # stride 1: the output keeps the input's size
        else:
            out = math.ceil(size / s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        small = total // 2
        begin.append(small if auto == "SAME_UPPER" else total - small)
        end.append(total - begin[-1])
    return begin + end


def _window(ctx, attrs, x, kernel):
    nsp = x.type.rank - 2
    if nsp < 1:
        raise ctx.fail(f"input of rank {x.type.rank} has no spatial axes")
    strides = list(attrs.get("strides", [1] * nsp))
    dilations = list(attrs.get("dilations", [1] * nsp))
    pads = resolve_pads(ctx, attrs, x.shape[2:], kernel, strides, dilations)
    return strides, dilations, pads


@converter("Conv", checks=WINDOW, ranks={0: (3, None), 1: (3, None)})
def _conv(ctx, inputs, attrs):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    kernel = list(attrs.get("kernel_shape", w.shape[2:]))
    strides, dilations, pads = _window(ctx, attrs, x, kernel)
    return ctx.emit("conv", x, w, b, strides=strides, pads=pads, dilations=dilations,
                    group=attrs.get("group", 1))


@converter("ConvTranspose", checks={**WINDOW, "output_padding": per_spatial_axis(low=0)},
           ranks={0: (3, None), 1: (3, None)})
def _conv_transpose(ctx, inputs, attrs):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    nsp = x.type.rank - 2
    kernel = list(attrs.get("kernel_shape", w.shape[2:]))
    strides = list(attrs.get("strides", [1] * nsp))
    dilations = list(attrs.get("dilations", [1] * nsp))
    outpad = list(attrs.get("output_padding", [0] * nsp))
    group = attrs.get("group", 1)
    auto = attrs.get("auto_pad", "NOTSET")
    if "output_shape" in attrs or auto in ("SAME_UPPER", "SAME_LOWER"):
        if "output_shape" in attrs:
            target = list(attrs["output_shape"])[-nsp:]
        else:
            target = [x.shape[2 + i] * strides[i] for i in range(nsp)]
        pads_b, pads_e = [], []
        for i in range(nsp):
            total = strides[i] * (x.shape[2 + i] - 1) + outpad[i] + (kernel[i] - 1) * dilations[i] + 1 - target[i]
            if total < 0:
                outpad[i] -= total
                total = 0
            lower = total // 2 if auto == "SAME_UPPER" else total - total // 2
            pads_b.append(lower)
            pads_e.append(total - lower)
        pads = pads_b + pads_e
    elif auto == "VALID":
        pads = [0] * (2 * nsp)
    else:
        pads = list(attrs.get("pads", [0] * (2 * nsp)))
    return ctx.emit("conv_transpose", x, w, b, strides=strides, pads=pads, dilations=dilations,
                    group=group, output_padding=outpad)


@converter("MaxPool", "AveragePool", "LpPool", checks=WINDOW, ranks={0: (3, None)})
def _pool(ctx, inputs, attrs):
    x = inputs[0]
    if len(ctx.node.output) > 1 and ctx.node.output[1]:
        raise ctx.unsupported("the Indices output")
    kernel = list(attrs["kernel_shape"])
    strides, dilations, pads = _window(ctx, attrs, x, kernel)
    op_type = ctx.node.op_type
    extra = {}
    if op_type == "AveragePool":
        extra["count_include_pad"] = attrs.get("count_include_pad", 0)
        if any(d != 1 for d in dilations):
            extra["dilations"] = dilations
    elif op_type == "LpPool":
        extra["p"] = attrs.get("p", 2)
        extra["dilations"] = dilations
    else:
        extra["dilations"] = dilations
    ir_op = {"MaxPool": "max_pool", "AveragePool": "avg_pool", "LpPool": "lp_pool"}[op_type]
    return ctx.emit(ir_op, x, kernel_shape=kernel, strides=strides, pads=pads,
                    ceil_mode=attrs.get("ceil_mode", 0), **extra)


@converter("GlobalAveragePool", "GlobalMaxPool", ranks={0: (3, None)})
def _global_pool(ctx, inputs, attrs):
    return ctx.emit({"GlobalAveragePool": "global_avg_pool", "GlobalMaxPool": "global_max_pool"}[ctx.node.op_type],
                    inputs[0])


@converter("GlobalLpPool", ranks={0: (3, None)})
def _global_lp_pool(ctx, inputs, attrs):
    return ctx.emit("global_lp_pool", inputs[0], p=attrs.get("p", 2))


@converter("BatchNormalization", ranks={0: (2, None)})
def _batch_norm(ctx, inputs, attrs):
    if attrs.get("training_mode", 0) or (len(ctx.node.output) > 1 and any(ctx.node.output[1:])):
        raise ctx.unsupported("training mode")
    return ctx.emit("batch_norm", *inputs[:5], epsilon=attrs.get("epsilon", 1e-5))


@converter("InstanceNormalization", ranks={0: (3, None)})
def _instance_norm(ctx, inputs, attrs):
    return ctx.emit("instance_norm", *inputs[:3], epsilon=attrs.get("epsilon", 1e-5))


@converter("LayerNormalization", checks={"axis": axis()})
def _layer_norm(ctx, inputs, attrs):
    x = inputs[0]
    scale = inputs[1] if len(inputs) > 1 else None
    bias = inputs[2] if len(inputs) > 2 else None
    axis, eps = attrs.get("axis", -1), attrs.get("epsilon", 1e-5)
    y = ctx.emit("layer_norm", x, scale, bias, axis=axis, epsilon=eps)
    if not any(ctx.node.output[1:]):
        return y
    return [y, *_layer_norm_statistics(ctx, x, axis, eps, onnx_dtype(attrs.get("stash_type", 1)))]


def _layer_norm_statistics(ctx, x, axis, eps, dtype):
    """LayerNormalization's Mean and InvStdDev outputs: moments over [axis, rank), kept as unit axes."""
    if x.dtype != dtype:
        x = ctx.emit("cast", x, to=dtype)
    axes = list(range(axis % x.type.rank, x.type.rank))
    mean = ctx.emit("reduce_mean", x, axes=axes, keepdims=1)
    dev = ctx.emit("sub", x, mean)
    var = ctx.emit("reduce_mean", ctx.emit("mul", dev, dev), axes=axes, keepdims=1)
    std = ctx.emit("sqrt", ctx.emit("add", var, ctx.const(np.array(eps, dtype=dtype), "epsilon")))
    return [mean, ctx.emit("reciprocal", std)]


@converter("LRN", checks={"size": count()}, ranks={0: (3, None)})
def _lrn(ctx, inputs, attrs):
    return ctx.emit("lrn", inputs[0], size=attrs["size"], alpha=attrs.get("alpha", 1e-4),
                    beta=attrs.get("beta", 0.75), bias=attrs.get("bias", 1.0))


def _softmax_like(ir_op: str, legacy: bool):
    def convert(ctx, inputs, attrs):
        x = inputs[0]
        rank = x.type.rank
        axis = attrs.get("axis", 1 if legacy else -1)
        if not legacy or rank == 0:
            return ctx.emit(ir_op, x, axis=axis)
        axis = axis % rank
        flat = ctx.emit("reshape", x, shape=(math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))
        y = ctx.emit(ir_op, flat, axis=1)
        return ctx.emit("reshape", y, shape=x.shape)

    return convert


for _onnx, _ir in (("Softmax", "softmax"), ("LogSoftmax", "log_softmax"), ("Hardmax", "hardmax")):
    converter(_onnx, since=1, checks={"axis": axis()})(_softmax_like(_ir, legacy=True))
    converter(_onnx, since=13, checks={"axis": axis()})(_softmax_like(_ir, legacy=False))


@converter("MatMul")
def _matmul(ctx, inputs, attrs):
    return ctx.emit("matmul", inputs[0], inputs[1])


@converter("Gemm", ranks={0: 2, 1: 2})
def _gemm(ctx, inputs, attrs):
    a, b = inputs[0], inputs[1]
    c = inputs[2] if len(inputs) > 2 else None
    if attrs.get("transA", 0):
        a = ctx.emit("transpose", a, perm=(1, 0))
    if attrs.get("transB", 0):
        b = ctx.emit("transpose", b, perm=(1, 0))
    y = ctx.emit("matmul", a, b)
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if alpha != 1.0:
        y = ctx.emit("mul", y, ctx.const(np.array(alpha, dtype=y.dtype), "alpha"))
    if c is not None and beta != 0.0:
        if beta != 1.0:
            c = ctx.emit("mul", c, ctx.const(np.array(beta, dtype=c.dtype), "beta"))
        y = ctx.emit("add", y, c)
    return y


@converter("MaxUnpool", since=9, checks=WINDOW, ranks={0: (3, None)})
def _max_unpool(ctx, inputs, attrs):
    x, indices, output_shape = inputs[0], inputs[1], optional_input(inputs, 2)
    kernel = list(attrs["kernel_shape"])
    spatial = len(kernel)
    strides = list(attrs.get("strides", [1] * spatial))
    pads = list(attrs.get("pads", [0] * 2 * spatial))
    inferred = [x.shape[0], x.shape[1]] + [
        (x.shape[d + 2] - 1) * strides[d] - (pads[d] + pads[spatial + d]) + kernel[d] for d in range(spatial)]
    total = int(np.prod(inferred))
    flat = ctx.const(np.zeros(total, dtype=np_dtype(x.dtype)), "unpooled")
    y = ctx.emit("scatter_elements", flat, ctx.emit("reshape", cast(ctx, indices, "int64"), shape=(x.type.size,)),
                 ctx.emit("reshape", x, shape=(x.type.size,)), axis=0)
    y = ctx.emit("reshape", y, shape=tuple(inferred))
    if output_shape is not None:
        shape = [int(v) for v in ctx.static(output_shape, "output_shape").reshape(-1)]
        extra = [0] * len(shape) + [s - i for s, i in zip(shape, inferred)]
        if any(e < 0 for e in extra):
            raise ctx.fail(f"output_shape {shape} is smaller than the unpooled shape {inferred}")
        if any(extra):
            y = ctx.emit("pad", y, pads=tuple(extra), mode="constant", value=0.0)
    return y
