"""Converters for ONNX data-movement and shape ops.

Inputs that ONNX passes as tensors but that fix an output shape (Reshape's shape, Slice's starts,
Pad's pads, ...) must be known at compile time; they become IR attributes.
"""

from __future__ import annotations

import math

import numpy as np

from ..onnx import onnx_dtype
from . import converter
from .checks import at_least, axes, axis, check_new_tensor, count, one_of
from ._util import cast


def _opt(inputs, i):
    return inputs[i] if len(inputs) > i else None


def _ints(ctx, value, what) -> list[int]:
    return [int(v) for v in ctx.static(value, what).reshape(-1)]


@converter("Constant")
def _constant(ctx, inputs, attrs):
    from onnx import numpy_helper

    if "value" in attrs:
        data = numpy_helper.to_array(attrs["value"])
    elif "value_float" in attrs:
        data = np.array(attrs["value_float"], dtype=np.float32)
    elif "value_floats" in attrs:
        data = np.array(attrs["value_floats"], dtype=np.float32)
    elif "value_int" in attrs:
        data = np.array(attrs["value_int"], dtype=np.int64)
    elif "value_ints" in attrs:
        data = np.array(attrs["value_ints"], dtype=np.int64)
    else:
        raise ctx.unsupported("sparse or string constants")
    return ctx.const(data, ctx.node.output[0])


def _reshape_to(ctx, x, shape):
    return ctx.emit("reshape", x, shape=tuple(int(d) for d in shape))


def resolve_reshape(ctx, in_shape, target, allowzero=0) -> list[int]:
    out = []
    for i, d in enumerate(target):
        if d == 0 and not allowzero:
            if i >= len(in_shape):
                raise ctx.fail(f"0 at axis {i} copies a dimension the input does not have")
            out.append(in_shape[i])
        else:
            out.append(int(d))
    if out.count(-1) > 1:
        raise ctx.fail(f"shape {target} has more than one -1")
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1], dtype=np.int64))
        total = int(np.prod(in_shape, dtype=np.int64))
        if known == 0 or total % known:
            raise ctx.fail(f"cannot reshape {tuple(in_shape)} to {tuple(target)}")
        out[out.index(-1)] = total // known
    return out


@converter("Reshape", since=5)
def _reshape(ctx, inputs, attrs):
    x = inputs[0]
    target = _ints(ctx, inputs[1], "the target shape")
    return _reshape_to(ctx, x, resolve_reshape(ctx, x.shape, target, attrs.get("allowzero", 0)))


@converter("Flatten", checks={"axis": axis(end=True)})
def _flatten(ctx, inputs, attrs):
    x = inputs[0]
    axis = attrs.get("axis", 1)
    axis = axis + x.type.rank if axis < 0 else axis
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    return _reshape_to(ctx, x, (outer, int(np.prod(x.shape[axis:], dtype=np.int64))))


def _squeeze_axes(ctx, inputs, attrs):
    if "axes" in attrs:
        return list(attrs["axes"])
    if len(inputs) > 1 and inputs[1] is not None:
        return _ints(ctx, inputs[1], "axes")
    return None


@converter("Squeeze")
def _squeeze(ctx, inputs, attrs):
    x = inputs[0]
    axes = _squeeze_axes(ctx, inputs, attrs)
    rank = x.type.rank
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    axes = [a % rank for a in axes]
    for a in axes:
        if x.shape[a] != 1:
            raise ctx.fail(f"cannot squeeze axis {a} of size {x.shape[a]}")
    return _reshape_to(ctx, x, [d for i, d in enumerate(x.shape) if i not in axes])


@converter("Unsqueeze")
def _unsqueeze(ctx, inputs, attrs):
    x = inputs[0]
    axes = _squeeze_axes(ctx, inputs, attrs) or []
    rank = x.type.rank + len(axes)
    axes = sorted(a % rank for a in axes)
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return _reshape_to(ctx, x, shape)


@converter("Transpose")
def _transpose(ctx, inputs, attrs):
    x = inputs[0]
    perm = attrs.get("perm", list(reversed(range(x.type.rank))))
    return ctx.emit("transpose", x, perm=perm)


@converter("Concat", checks={"axis": axis()})
def _concat(ctx, inputs, attrs):
    parts = [v for v in inputs if v is not None and (v.type.size > 0 or v.type.rank != 1)]
    if not parts:
        parts = [v for v in inputs if v is not None][:1]
    if len(parts) == 1:
        return ctx.emit("identity", parts[0])
    return ctx.emit("concat", *parts, axis=attrs["axis"])


@converter("Split", checks={"axis": axis(), "num_outputs": count(limit="outputs"),
                              "split": at_least(0, each=True)}, ranks={0: (1, None)})
def _split(ctx, inputs, attrs):
    x = inputs[0]
    axis = attrs.get("axis", 0) % x.type.rank
    n_out = len(ctx.node.output)
    if attrs.get("num_outputs", n_out) != n_out:
        raise ctx.fail(f"attribute num_outputs={attrs['num_outputs']} but the node has {n_out} outputs")
    if "split" in attrs:
        sizes = list(attrs["split"])
    elif _opt(inputs, 1) is not None:
        sizes = _ints(ctx, inputs[1], "split sizes")
    else:
        n = attrs.get("num_outputs", n_out)
        dim = x.shape[axis]
        chunk = -(-dim // n)
        sizes = [min(chunk, dim - i * chunk) for i in range(n)]
    outs = ctx.emit("split", x, axis=axis, sizes=sizes, num_outputs=len(sizes))
    return outs if isinstance(outs, list) else [outs]


@converter("Slice", since=1)
def _slice_v1(ctx, inputs, attrs):
    x = inputs[0]
    axes = attrs.get("axes", list(range(len(attrs["starts"]))))
    return ctx.emit("slice", x, starts=attrs["starts"], ends=attrs["ends"], axes=axes)


_INT64_MAX = np.iinfo(np.int64).max


def _clamp_index(v: int) -> int:
    return max(min(v, _INT64_MAX // 2), -(_INT64_MAX // 2))


@converter("Slice", since=10)
def _slice(ctx, inputs, attrs):
    x = inputs[0]
    starts = [_clamp_index(v) for v in _ints(ctx, inputs[1], "starts")]
    ends = [_clamp_index(v) for v in _ints(ctx, inputs[2], "ends")]
    axes = _ints(ctx, inputs[3], "axes") if _opt(inputs, 3) is not None else list(range(len(starts)))
    steps = _ints(ctx, inputs[4], "steps") if _opt(inputs, 4) is not None else [1] * len(starts)
    return ctx.emit("slice", x, starts=starts, ends=ends, axes=[a % x.type.rank for a in axes], steps=steps)


@converter("Gather", checks={"axis": axis()})
def _gather(ctx, inputs, attrs):
    return ctx.emit("gather", inputs[0], inputs[1], axis=attrs.get("axis", 0))


@converter("GatherElements", checks={"axis": axis()})
def _gather_elements(ctx, inputs, attrs):
    return ctx.emit("gather_elements", inputs[0], inputs[1], axis=attrs.get("axis", 0))


@converter("GatherND", checks={"batch_dims": count(0)})
def _gather_nd(ctx, inputs, attrs):
    return ctx.emit("gather_nd", inputs[0], inputs[1], batch_dims=attrs.get("batch_dims", 0))


@converter("ScatterElements", "Scatter", checks={"axis": axis()})
def _scatter_elements(ctx, inputs, attrs):
    return ctx.emit("scatter_elements", *inputs[:3], axis=attrs.get("axis", 0),
                    reduction=attrs.get("reduction", "none"))


@converter("ScatterND")
def _scatter_nd(ctx, inputs, attrs):
    return ctx.emit("scatter_nd", *inputs[:3], reduction=attrs.get("reduction", "none"))


@converter("Expand")
def _expand(ctx, inputs, attrs):
    return ctx.emit("expand", inputs[0], shape=_ints(ctx, inputs[1], "the target shape"))


@converter("Tile")
def _tile(ctx, inputs, attrs):
    return ctx.emit("tile", inputs[0], repeats=_ints(ctx, inputs[1], "repeats"))


@converter("Pad", since=1)
def _pad_v2(ctx, inputs, attrs):
    return ctx.emit("pad", inputs[0], pads=attrs.get("pads", attrs.get("paddings")),
                    mode=attrs.get("mode", "constant"), value=attrs.get("value", 0.0))


@converter("Pad", since=11)
def _pad(ctx, inputs, attrs):
    x = inputs[0]
    rank = x.type.rank
    pads = _ints(ctx, inputs[1], "pads")
    value = 0.0
    if _opt(inputs, 2) is not None:
        data = ctx.static(inputs[2], "the pad value").reshape(-1)
        value = data[0].item() if data.size else 0.0
    if _opt(inputs, 3) is not None:
        axes = [a % rank for a in _ints(ctx, inputs[3], "axes")]
        full = [0] * (2 * rank)
        for i, a in enumerate(axes):
            full[a], full[a + rank] = pads[i], pads[i + len(axes)]
        pads = full
    return ctx.emit("pad", x, pads=pads, mode=attrs.get("mode", "constant"), value=value)


@converter("Shape")
def _shape(ctx, inputs, attrs):
    return ctx.emit("shape", inputs[0], start=attrs.get("start", 0), end=attrs.get("end"))


@converter("Size")
def _size(ctx, inputs, attrs):
    return ctx.emit("size", inputs[0])


@converter("ConstantOfShape")
def _constant_of_shape(ctx, inputs, attrs):
    from onnx import numpy_helper

    shape = check_new_tensor(ctx, _ints(ctx, inputs[0], "the shape"), "float64", "the shape")
    fill = numpy_helper.to_array(attrs["value"]).reshape(-1) if "value" in attrs else np.zeros(1, np.float32)
    return ctx.emit("full", shape=shape, value=fill[0].item(), dtype=str(fill.dtype))


@converter("Range")
def _range(ctx, inputs, attrs):
    start, limit, delta = (ctx.static(v, name).reshape(()) for v, name in zip(inputs, ("start", "limit", "delta")))
    if delta == 0:
        raise ctx.fail("delta is 0")
    steps = max(math.ceil((float(limit) - float(start)) / float(delta)), 0) if np.isfinite(float(delta)) else 0
    check_new_tensor(ctx, (steps,), str(start.dtype), "the range")
    data = np.arange(start, limit, delta, dtype=start.dtype)
    return ctx.const(data, ctx.node.output[0])


@converter("EyeLike", ranks={0: 2})
def _eye_like(ctx, inputs, attrs):
    x = inputs[0]
    dtype = onnx_dtype(attrs["dtype"]) if "dtype" in attrs else x.dtype
    check_new_tensor(ctx, x.shape, dtype, "the identity matrix")
    return ctx.const(np.eye(x.shape[0], x.shape[1], k=attrs.get("k", 0), dtype=dtype), ctx.node.output[0])


@converter("DepthToSpace", checks={"blocksize": count(), "mode": one_of("DCR", "CRD")}, ranks={0: 4})
def _depth_to_space(ctx, inputs, attrs):
    x = inputs[0]
    b = attrs["blocksize"]
    n, c, h, w = x.shape
    if attrs.get("mode", "DCR") == "DCR":
        t = _reshape_to(ctx, x, (n, b, b, c // (b * b), h, w))
        t = ctx.emit("transpose", t, perm=(0, 3, 4, 1, 5, 2))
    else:
        t = _reshape_to(ctx, x, (n, c // (b * b), b, b, h, w))
        t = ctx.emit("transpose", t, perm=(0, 1, 4, 2, 5, 3))
    return _reshape_to(ctx, t, (n, c // (b * b), h * b, w * b))


@converter("SpaceToDepth", checks={"blocksize": count()}, ranks={0: 4})
def _space_to_depth(ctx, inputs, attrs):
    x = inputs[0]
    b = attrs["blocksize"]
    n, c, h, w = x.shape
    t = _reshape_to(ctx, x, (n, c, h // b, b, w // b, b))
    perm = (0, 3, 5, 1, 2, 4) if attrs.get("mode", "DCR") == "DCR" else (0, 1, 3, 5, 2, 4)
    t = ctx.emit("transpose", t, perm=perm)
    return _reshape_to(ctx, t, (n, c * b * b, h // b, w // b))


def _resize_sizes(ctx, x, scales, sizes, axes, policy):
    rank = x.type.rank
    axes = list(range(rank)) if axes is None else [a % rank for a in axes]
    if sizes is not None and len(sizes):
        sizes = [int(s) for s in sizes]
        if policy in ("not_larger", "not_smaller"):
            # float32 arithmetic, as ONNX Runtime computes it
            ratios = [np.float32(sizes[i]) / np.float32(x.shape[a]) for i, a in enumerate(axes)]
            r = min(ratios) if policy == "not_larger" else max(ratios)
            scale_full = [1.0] * rank
            out = list(x.shape)
            for a in axes:
                scale_full[a] = float(r)
                out[a] = int(np.floor(np.float32(x.shape[a]) * r + np.float32(0.5)))
            return out, scale_full
        out = list(x.shape)
        for i, a in enumerate(axes):
            out[a] = sizes[i]
        return out, None
    if scales is None or not len(scales):
        raise ctx.fail("Resize needs scales or sizes")
    full = [1.0] * rank
    for i, a in enumerate(axes):
        full[a] = float(scales[i])
    # the float32 product, truncated, as ONNX Runtime computes it (5 * 1.4f is 7, not 6)
    return [int(np.float32(d) * np.float32(s)) for d, s in zip(x.shape, full)], full


@converter("Resize", since=10, checks={"axes": axes()})
def _resize(ctx, inputs, attrs):
    x = inputs[0]
    if ctx.node.op_type == "Resize" and len(inputs) == 2 and _op_version(ctx) < 11:
        scales, sizes, roi = ctx.static(inputs[1], "scales"), None, None
    else:
        roi = ctx.static_or_none(_opt(inputs, 1), "roi")
        scales = ctx.static_or_none(_opt(inputs, 2), "scales")
        sizes = ctx.static_or_none(_opt(inputs, 3), "sizes")
    if attrs.get("antialias", 0):
        raise ctx.unsupported("antialias=1")
    axes = attrs.get("axes")
    out, full_scales = _resize_sizes(ctx, x, scales, sizes, axes, attrs.get("keep_aspect_ratio_policy", "stretch"))
    rank = x.type.rank
    if roi is not None and roi.size:
        if axes is not None:
            full_roi = [0.0] * rank + [1.0] * rank
            for i, a in enumerate(axes):
                full_roi[a % rank], full_roi[a % rank + rank] = roi[i], roi[i + len(axes)]
            roi = np.array(full_roi)
        roi = [float(v) for v in roi.reshape(-1)]
    else:
        roi = None
    mode = attrs.get("mode", "nearest")
    ctm = attrs.get("coordinate_transformation_mode", "half_pixel" if _op_version(ctx) >= 11 else "asymmetric")
    return ctx.emit("resize", x, sizes=out, scales=full_scales, mode=mode,
                    coordinate_transformation_mode=ctm,
                    nearest_mode=attrs.get("nearest_mode", "round_prefer_floor" if _op_version(ctx) >= 11 else "floor"),
                    cubic_coeff_a=attrs.get("cubic_coeff_a", -0.75),
                    exclude_outside=attrs.get("exclude_outside", 0),
                    extrapolation_value=attrs.get("extrapolation_value", 0.0), roi=roi)


@converter("Upsample", since=9)
def _upsample(ctx, inputs, attrs):
    x = inputs[0]
    scales = ctx.static(inputs[1], "scales")
    out, full = _resize_sizes(ctx, x, scales, None, None, "stretch")
    mode = attrs.get("mode", "nearest")
    return ctx.emit("resize", x, sizes=out, scales=full, mode=mode, coordinate_transformation_mode="asymmetric",
                    nearest_mode="floor")


def _op_version(ctx) -> int:
    from . import _op_version as version_of

    return version_of(ctx.node.op_type, "", ctx.opset) or ctx.opset


@converter("CenterCropPad", since=18, checks={"axes": axes()})
def _center_crop_pad(ctx, inputs, attrs):
    x = inputs[0]
    rank = x.type.rank
    target = [int(v) for v in ctx.static(inputs[1], "the shape").reshape(-1)]
    axes = [a % rank for a in attrs.get("axes", range(rank))]
    if len(axes) != len(target):
        raise ctx.fail(f"{len(target)} sizes for {len(axes)} axes")
    starts, ends, crop_axes = [], [], []
    pads = [0] * (2 * rank)
    for ax, size in zip(axes, target):
        dim = x.shape[ax]
        if size < dim:
            begin = (dim - size) // 2
            starts.append(begin)
            ends.append(begin + size)
            crop_axes.append(ax)
        elif size > dim:
            before = (size - dim) // 2
            pads[ax], pads[ax + rank] = before, size - dim - before
    if crop_axes:
        x = ctx.emit("slice", x, starts=tuple(starts), ends=tuple(ends), axes=tuple(crop_axes))
    if any(pads):
        x = ctx.emit("pad", x, pads=tuple(pads), mode="constant", value=0.0)
    return x if x is not inputs[0] else ctx.emit("identity", x)


@converter("Compress", since=9, checks={"axis": axis()})
def _compress(ctx, inputs, attrs):
    x = inputs[0]
    condition = ctx.static(inputs[1], "the condition").reshape(-1).astype(bool)
    axis = attrs.get("axis")
    if axis is None:
        x = ctx.emit("reshape", x, shape=(x.type.size,))
        axis = 0
    axis %= x.type.rank
    indices = np.nonzero(condition[: x.shape[axis]])[0].astype(np.int64)
    return ctx.emit("gather", x, ctx.const(indices, "indices"), axis=axis)


@converter("ReverseSequence", since=10, checks={"time_axis": axis(), "batch_axis": axis()},
           ranks={0: (2, None), 1: 1})
def _reverse_sequence(ctx, inputs, attrs):
    x, lengths = inputs[0], cast(ctx, inputs[1], "int64")
    time_axis, batch_axis = attrs.get("time_axis", 0), attrs.get("batch_axis", 1)
    steps, batch = x.shape[time_axis], x.shape[batch_axis]
    t_shape = [1] * x.type.rank
    t_shape[time_axis] = steps
    b_shape = [1] * x.type.rank
    b_shape[batch_axis] = batch
    t = ctx.const(np.arange(steps, dtype=np.int64).reshape(t_shape), "time_index")
    n = ctx.emit("reshape", lengths, shape=tuple(b_shape))
    reversed_t = ctx.emit("sub", ctx.emit("sub", n, ctx.const(np.array(1, np.int64), "one")), t)
    index = ctx.emit("expand", ctx.emit("where", ctx.emit("less", t, n), reversed_t, t), shape=x.shape)
    return ctx.emit("gather_elements", x, index, axis=time_axis)
