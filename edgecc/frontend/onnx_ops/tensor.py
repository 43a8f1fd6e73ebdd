"""Converters for ONNX data-movement and shape ops.

Inputs that ONNX passes as tensors but that fix an output shape (Reshape's shape, Slice's starts,
Pad's pads, ...) must be known at compile time; they become IR attributes.
"""

from __future__ import annotations

import math
import re

import numpy as np

from edgecc.ir.dims import Dim, dim_vars
from edgecc.ir.ops.tensor import resolve_reshape
from edgecc.ir.static_eval import static_value

from ..onnx import onnx_dtype
from . import converter
from ._util import cast, scalar
from .checks import at_least, axes, axis, check_new_tensor, count, one_of


def _opt(inputs, i):
    return inputs[i] if len(inputs) > i else None


def _ints(ctx, value, what) -> list[int]:
    return [int(v) for v in ctx.static(value, what).reshape(-1)]


# ----- values known only at run time ---------------------------------------------------------
def runtime(*values) -> bool:
    """Whether any of the (present) values is computed from a run-time input."""
    return any(v is not None and static_value(v) is None for v in values)


def fresh_vars(ctx, rank: int) -> tuple[str, ...]:
    """`rank` size-variable names for a node's run-time output shape, unused in the graph so far."""
    base = re.sub(r"\W", "_", ctx.node.output[0] if ctx.node is not None else "dyn") or "dyn"
    if base[0].isdigit():
        base = "d_" + base
    taken: set[str] = set()
    for v in ctx.graph.values():
        taken.update(dim_vars(v.type.shape))
    names: list[str] = []
    i = 0
    while len(names) < rank:
        name = f"{base}_{i}"
        if name not in taken:
            names.append(name)
        i += 1
    return tuple(names)


def emit_dynamic(ctx, op: str, *inputs, rank: int, num_outputs: int = 1, **attrs):
    """An op of `edgecc.ir.ops.dynamic` whose output shape (of rank `rank`) is fixed at run time."""
    return ctx.emit(op, *inputs, num_outputs=num_outputs, shape_vars=fresh_vars(ctx, rank), **attrs)


def as_int64(ctx, value, what: str):
    """A run-time shape/axes/count input as an int64 vector of compile-time length."""
    if value.type.rank > 1 or any(isinstance(d, Dim) for d in value.type.shape):
        raise ctx.fail(f"{what} must be a vector of known length, it has shape {value.type.shape}")
    return cast(ctx, value, "int64")


def length(value) -> int:
    """The number of values in a 0-D or 1-D input of static length."""
    return 1 if value.type.rank == 0 else int(value.type.shape[0])


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
    return ctx.emit("reshape", x, shape=tuple(d if isinstance(d, Dim) else int(d) for d in shape))


@converter("Reshape", since=5)
def _reshape(ctx, inputs, attrs):
    x = inputs[0]
    if runtime(inputs[1]):
        shape = as_int64(ctx, inputs[1], "the target shape")
        return emit_dynamic(ctx, "dyn_reshape", x, shape, rank=length(shape), mode="reshape",
                            allowzero=attrs.get("allowzero", 0))
    target = ctx.static_shape(inputs[1], "the target shape")
    return _reshape_to(ctx, x, resolve_reshape(x.shape, target, attrs.get("allowzero", 0)))


@converter("Flatten", checks={"axis": axis(end=True)})
def _flatten(ctx, inputs, attrs):
    x = inputs[0]
    axis = attrs.get("axis", 1)
    axis = axis + x.type.rank if axis < 0 else axis
    return _reshape_to(ctx, x, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))


def _squeeze_axes(ctx, inputs, attrs):
    if "axes" in attrs:
        return list(attrs["axes"])
    if len(inputs) > 1 and inputs[1] is not None:
        return _ints(ctx, inputs[1], "axes")
    return None


@converter("Squeeze")
def _squeeze(ctx, inputs, attrs):
    x = inputs[0]
    if "axes" not in attrs and runtime(_opt(inputs, 1)):
        axes_value = as_int64(ctx, inputs[1], "axes")
        return emit_dynamic(ctx, "dyn_reshape", x, axes_value, rank=x.type.rank - length(axes_value), mode="squeeze")
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
    if "axes" not in attrs and runtime(_opt(inputs, 1)):
        axes_value = as_int64(ctx, inputs[1], "axes")
        return emit_dynamic(ctx, "dyn_reshape", x, axes_value, rank=x.type.rank + length(axes_value),
                            mode="unsqueeze")
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
        if runtime(inputs[1]):
            split = as_int64(ctx, inputs[1], "split sizes")
            if length(split) != n_out:
                raise ctx.fail(f"{length(split)} split sizes for {n_out} outputs")
            names = fresh_vars(ctx, n_out)
            outs = ctx.emit("dyn_split", x, split, num_outputs=n_out, axis=axis, shape_vars=names)
            return outs if isinstance(outs, list) else [outs]
        sizes = ctx.static_shape(inputs[1], "split sizes")
    else:
        n = attrs.get("num_outputs", n_out)
        dim = x.shape[axis]
        if isinstance(dim, Dim) and n > 1:  # equal parts of a symbolic size: sizes computed at run time
            return _split_evenly_at_run_time(ctx, x, axis, n)
        chunk = -(-dim // n)
        sizes = [min(chunk, dim - i * chunk) for i in range(n)]
    outs = ctx.emit("split", x, axis=axis, sizes=sizes, num_outputs=len(sizes))
    return outs if isinstance(outs, list) else [outs]


def _split_evenly_at_run_time(ctx, x, axis: int, n: int):
    """Split's num_outputs parts of a symbolic dimension: ceil(dim / n) each, the last one shorter."""
    dim = ctx.emit("shape", x, start=axis, end=axis + 1)
    chunk = ctx.emit("div", ctx.emit("add", dim, scalar(ctx, n - 1, "int64")), scalar(ctx, n, "int64"))
    parts = []
    for i in range(n):
        rest = ctx.emit("sub", dim, ctx.emit("mul", chunk, scalar(ctx, i, "int64")))
        parts.append(ctx.emit("maximum", ctx.emit("minimum", chunk, rest), scalar(ctx, 0, "int64")))
    sizes = ctx.emit("concat", *parts, axis=0) if n > 1 else parts[0]
    outs = ctx.emit("dyn_split", x, sizes, num_outputs=n, axis=axis, shape_vars=fresh_vars(ctx, n))
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
    if runtime(*inputs[1:5]):
        values = [as_int64(ctx, v, what) if v is not None else None
                  for v, what in zip(inputs[1:5], ("starts", "ends", "axes", "steps"))]
        return emit_dynamic(ctx, "dyn_slice", x, *values, rank=x.type.rank)
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
    if runtime(inputs[1]):
        shape = as_int64(ctx, inputs[1], "the target shape")
        return emit_dynamic(ctx, "dyn_expand", inputs[0], shape, rank=max(inputs[0].type.rank, length(shape)))
    return ctx.emit("expand", inputs[0], shape=ctx.static_shape(inputs[1], "the target shape"))


@converter("Tile")
def _tile(ctx, inputs, attrs):
    if runtime(inputs[1]):
        repeats = as_int64(ctx, inputs[1], "repeats")
        return emit_dynamic(ctx, "dyn_tile", inputs[0], repeats, rank=inputs[0].type.rank)
    return ctx.emit("tile", inputs[0], repeats=_ints(ctx, inputs[1], "repeats"))


@converter("Pad", since=1)
def _pad_v2(ctx, inputs, attrs):
    return ctx.emit("pad", inputs[0], pads=attrs.get("pads", attrs.get("paddings")),
                    mode=attrs.get("mode", "constant"), value=attrs.get("value", 0.0))


@converter("Pad", since=11)
def _pad(ctx, inputs, attrs):
    x = inputs[0]
    rank = x.type.rank
    if runtime(inputs[1], _opt(inputs, 2), _opt(inputs, 3)):
        pads = as_int64(ctx, inputs[1], "pads")
        value = _opt(inputs, 2)
        if value is not None and value.type.size == 0:
            value = None
        if value is not None:
            value = cast(ctx, ctx.emit("reshape", value, shape=()), x.dtype) if value.type.rank else cast(ctx, value, x.dtype)
        pad_axes = _opt(inputs, 3)
        pad_axes = as_int64(ctx, pad_axes, "axes") if pad_axes is not None else None
        return emit_dynamic(ctx, "dyn_pad", x, pads, value, pad_axes, rank=rank, mode=attrs.get("mode", "constant"))
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

    fill = numpy_helper.to_array(attrs["value"]).reshape(-1) if "value" in attrs else np.zeros(1, np.float32)
    if runtime(inputs[0]):
        shape = as_int64(ctx, inputs[0], "the shape")
        return emit_dynamic(ctx, "dyn_full", shape, rank=length(shape), value=fill[0].item(), dtype=str(fill.dtype))
    shape = ctx.static_shape(inputs[0], "the shape")
    if not any(isinstance(d, Dim) for d in shape):
        shape = check_new_tensor(ctx, shape, "float64", "the shape")
    return ctx.emit("full", shape=tuple(shape), value=fill[0].item(), dtype=str(fill.dtype))


@converter("Range")
def _range(ctx, inputs, attrs):
    if runtime(*inputs[:3]):
        dtype = inputs[0].dtype
        scalars = [ctx.emit("reshape", v, shape=()) if v.type.rank else v for v in inputs[:3]]
        return emit_dynamic(ctx, "dyn_range", *[cast(ctx, v, dtype) for v in scalars], rank=1)
    start, limit, delta = (ctx.static(v, name).reshape(()) for v, name in zip(inputs, ("start", "limit", "delta")))
    if any(isinstance(v.item(), Dim) for v in (start, limit, delta)):
        return _symbolic_range(ctx, inputs[0].dtype, start.item(), limit.item(), delta.item())
    if delta == 0:
        raise ctx.fail("delta is 0")
    steps = max(math.ceil((float(limit) - float(start)) / float(delta)), 0) if np.isfinite(float(delta)) else 0
    check_new_tensor(ctx, (steps,), str(start.dtype), "the range")
    data = np.arange(start, limit, delta, dtype=start.dtype)
    return ctx.const(data, ctx.node.output[0])


def _symbolic_range(ctx, dtype: str, start, limit, delta):
    """Range over a symbolic length (torch.arange(x.size(1))): start + delta * (0, 1, ..., n-1)."""
    if isinstance(start, Dim) or isinstance(delta, Dim) or int(delta) <= 0:
        raise ctx.fail("a range with a symbolic start or step, or a step <= 0 up to a symbolic limit, "
                       "is not supported")
    delta = int(delta)
    steps = (limit - int(start) + delta - 1) // delta
    ones = ctx.emit("full", shape=(steps,), value=1, dtype=dtype)
    counts = ctx.emit("sub", ctx.emit("cumsum", ones, axis=0), scalar(ctx, 1, dtype))
    if delta != 1:
        counts = ctx.emit("mul", counts, scalar(ctx, delta, dtype))
    return ctx.emit("add", counts, scalar(ctx, int(start), dtype)) if int(start) else counts


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
        if runtime(inputs[1]):
            return _resize_runtime(ctx, x, None, inputs[1], None, attrs)
        scales, sizes, roi = ctx.static(inputs[1], "scales"), None, None
    elif runtime(*inputs[1:4]):
        return _resize_runtime(ctx, x, _opt(inputs, 1), _opt(inputs, 2), _opt(inputs, 3), attrs)
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
    if runtime(inputs[1]):
        return _resize_runtime(ctx, x, None, inputs[1], None, {"mode": attrs.get("mode", "nearest"),
                                                                "coordinate_transformation_mode": "asymmetric",
                                                                "nearest_mode": "floor"})
    scales = ctx.static(inputs[1], "scales")
    out, full = _resize_sizes(ctx, x, scales, None, None, "stretch")
    mode = attrs.get("mode", "nearest")
    return ctx.emit("resize", x, sizes=out, scales=full, mode=mode, coordinate_transformation_mode="asymmetric",
                    nearest_mode="floor")


def _resize_runtime(ctx, x, roi, scales, sizes, attrs):
    """Resize with roi, scales or sizes known only at run time (dyn_resize)."""
    if attrs.get("antialias", 0):
        raise ctx.unsupported("antialias=1")
    if any(isinstance(d, Dim) for d in x.shape):
        raise ctx.unsupported("run-time scales or sizes of an input with symbolic dimensions")
    present = [v if v is not None and length(v) > 0 else None for v in (roi, scales, sizes)]
    roi, scales, sizes = present
    if scales is None and sizes is None:
        raise ctx.fail("Resize needs scales or sizes")
    old = _op_version(ctx) < 11
    return emit_dynamic(
        ctx, "dyn_resize", x, cast(ctx, roi, "float32") if roi is not None else None,
        cast(ctx, scales, "float32") if scales is not None else None,
        as_int64(ctx, sizes, "sizes") if sizes is not None else None, rank=x.type.rank,
        axes=attrs.get("axes"), keep_aspect_ratio_policy=attrs.get("keep_aspect_ratio_policy", "stretch"),
        mode=attrs.get("mode", "nearest"),
        coordinate_transformation_mode=attrs.get("coordinate_transformation_mode", "asymmetric" if old else "half_pixel"),
        nearest_mode=attrs.get("nearest_mode", "floor" if old else "round_prefer_floor"),
        cubic_coeff_a=attrs.get("cubic_coeff_a", -0.75), exclude_outside=attrs.get("exclude_outside", 0),
        extrapolation_value=attrs.get("extrapolation_value", 0.0))


def _op_version(ctx) -> int:
    from . import _op_version as version_of

    return version_of(ctx.node.op_type, "", ctx.opset) or ctx.opset


@converter("CenterCropPad", since=18, checks={"axes": axes()})
def _center_crop_pad(ctx, inputs, attrs):
    x = inputs[0]
    rank = x.type.rank
    axes = [a % rank for a in attrs.get("axes", range(rank))]
    if runtime(inputs[1]):
        return _center_crop_pad_runtime(ctx, x, as_int64(ctx, inputs[1], "the shape"), axes)
    target = [int(v) for v in ctx.static(inputs[1], "the shape").reshape(-1)]
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


def _center_crop_pad_runtime(ctx, x, sizes, axes):
    """CenterCropPad to sizes known at run time: a slice centred on each axis (where the size is
    smaller), then a centred zero pad (where it is larger)."""
    if length(sizes) != len(axes):
        raise ctx.fail(f"{length(sizes)} sizes for {len(axes)} axes")
    if any(isinstance(x.shape[a], Dim) for a in axes):
        raise ctx.unsupported("a run-time shape on symbolic axes")
    dims = ctx.const(np.array([x.shape[a] for a in axes], dtype=np.int64), "dims")
    zero, two = scalar(ctx, 0, "int64"), scalar(ctx, 2, "int64")
    axes_value = ctx.const(np.array(axes, dtype=np.int64), "axes")
    starts = ctx.emit("div", ctx.emit("maximum", ctx.emit("sub", dims, sizes), zero), two)
    ends = ctx.emit("add", starts, ctx.emit("minimum", sizes, dims))
    cropped = emit_dynamic(ctx, "dyn_slice", x, starts, ends, axes_value, None, rank=x.type.rank)
    extra = ctx.emit("maximum", ctx.emit("sub", sizes, dims), zero)
    before = ctx.emit("div", extra, two)
    pads = ctx.emit("concat", before, ctx.emit("sub", extra, before), axis=0)
    return emit_dynamic(ctx, "dyn_pad", cropped, pads, None, axes_value, rank=x.type.rank, mode="constant")


@converter("NonZero", since=9)
def _nonzero(ctx, inputs, attrs):
    x = inputs[0]
    data = static_value(x)
    if data is not None and data.dtype != object:
        return ctx.const(np.array(np.nonzero(data), dtype=np.int64), ctx.node.output[0])
    return ctx.emit("nonzero", x, shape_vars=fresh_vars(ctx, 1))


@converter("NonMaxSuppression", since=10)
def _non_max_suppression(ctx, inputs, attrs):
    boxes, scores = inputs[0], inputs[1]
    if boxes.type.rank != 3 or scores.type.rank != 3:
        raise ctx.fail(f"boxes {boxes.type.shape} and scores {scores.type.shape} must be 3-D")
    extra = [_opt(inputs, 2), _opt(inputs, 3), _opt(inputs, 4)]
    extra = [None if v is None or v.type.size == 0 else v for v in extra]
    if extra[0] is not None:  # TOPI reads the count as a (1,) tensor and the thresholds as scalars
        extra[0] = ctx.emit("reshape", as_int64(ctx, extra[0], "max_output_boxes_per_class"), shape=(1,))
    extra[1:] = [ctx.emit("reshape", cast(ctx, v, "float32"), shape=()) if v is not None else None for v in extra[1:]]
    extra[1] = _next_float32_up(ctx, extra[1])
    return ctx.emit("dyn_nms", cast(ctx, boxes, "float32"), cast(ctx, scores, "float32"), *extra,
                    center_point_box=attrs.get("center_point_box", 0), shape_vars=fresh_vars(ctx, 1))


def _next_float32_up(ctx, threshold):
    """The float32 just above the IoU threshold (0 when absent): TOPI suppresses a box whose IoU is
    at least the threshold, ONNX one whose IoU is above it."""
    if threshold is None:
        return scalar(ctx, np.nextafter(np.float32(0), np.float32(1)), "float32")
    bits = ctx.emit("bitcast", threshold, to="int32")
    step = ctx.emit("where", ctx.emit("greater_equal", threshold, scalar(ctx, 0, "float32")),
                    scalar(ctx, 1, "int32"), scalar(ctx, -1, "int32"))
    return ctx.emit("bitcast", ctx.emit("add", bits, step), to="float32")


@converter("Unique", since=11)
def _unique(ctx, inputs, attrs):
    x = inputs[0]
    if any(isinstance(d, Dim) for d in x.shape):
        raise ctx.unsupported("an input with symbolic dimensions")
    return ctx.emit("dyn_unique", x, num_outputs=4, axis=attrs.get("axis"), sorted=attrs.get("sorted", 1),
                    shape_vars=fresh_vars(ctx, 1))


@converter("Compress", since=9, checks={"axis": axis()})
def _compress(ctx, inputs, attrs):
    x = inputs[0]
    if runtime(inputs[1]):
        return _compress_runtime(ctx, x, inputs[1], attrs.get("axis"))
    condition = ctx.static(inputs[1], "the condition").reshape(-1).astype(bool)
    axis = attrs.get("axis")
    if axis is None:
        x = ctx.emit("reshape", x, shape=(x.type.size,))
        axis = 0
    axis %= x.type.rank
    indices = np.nonzero(condition[: x.shape[axis]])[0].astype(np.int64)
    return ctx.emit("gather", x, ctx.const(indices, "indices"), axis=axis)


def _compress_runtime(ctx, x, condition, axis):
    """Compress with a run-time condition: the positions of its true entries (NonZero), gathered."""
    if axis is None:
        x = ctx.emit("reshape", x, shape=(math.prod(x.shape),))
        axis = 0
    axis %= x.type.rank
    if condition.type.rank != 1:
        raise ctx.fail(f"the condition must be 1-D, it has shape {condition.type.shape}")
    n = condition.shape[0]
    if not isinstance(n, Dim) and not isinstance(x.shape[axis], Dim) and n > x.shape[axis]:
        condition = ctx.emit("slice", condition, starts=(0,), ends=(x.shape[axis],), axes=(0,))
    positions = ctx.emit("nonzero", cast(ctx, condition, "bool"), shape_vars=fresh_vars(ctx, 1))
    indices = ctx.emit("reshape", positions, shape=(positions.shape[1],))
    return ctx.emit("gather", x, indices, axis=axis)


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
