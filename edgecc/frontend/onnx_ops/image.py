"""Converters for image sampling ops: AffineGrid, GridSample, Col2Im, RoiAlign and DeformConv."""

from __future__ import annotations

import numpy as np

from edgecc.ir.types import np_dtype

from . import converter
from ._util import cast, optional_input
from .checks import check_new_tensor, count
from .tensor import as_int64, emit_dynamic, length, runtime


@converter("AffineGrid", since=20)
def _affine_grid(ctx, inputs, attrs):
    theta = inputs[0]
    if runtime(inputs[1]):
        size = as_int64(ctx, inputs[1], "the size")
        if length(size) not in (4, 5):
            raise ctx.fail(f"size has {length(size)} values: AffineGrid makes 2-D or 3-D grids")
        return emit_dynamic(ctx, "dyn_affine_grid", theta, size, rank=length(size),
                            align_corners=attrs.get("align_corners", 0))
    size = [int(v) for v in ctx.static(inputs[1], "the size").reshape(-1)]
    check_new_tensor(ctx, [*size, len(size) - 1], theta.dtype, "the grid of size")
    spatial = size[2:]
    if len(spatial) not in (2, 3):
        raise ctx.fail(f"size {size}: AffineGrid makes 2-D or 3-D grids")
    align = attrs.get("align_corners", 0)
    axes = []
    for dim in spatial:
        if align:
            axes.append(np.linspace(-1.0, 1.0, dim) if dim > 1 else np.array([-1.0]))
        else:
            axes.append((np.arange(dim) * 2.0 + 1.0) / dim - 1.0)
    mesh = np.meshgrid(*axes, indexing="ij")
    coords = [m.reshape(-1) for m in reversed(mesh)]  # x (width) first
    base = np.stack(coords + [np.ones_like(coords[0])], axis=0)  # (dims + 1, points)
    grid = ctx.emit("matmul", theta, ctx.const(base.astype(np_dtype(theta.dtype)), "base_grid"))
    grid = ctx.emit("transpose", grid, perm=(0, 2, 1))
    return ctx.emit("reshape", grid, shape=(size[0], *spatial, len(spatial)))


@converter("GridSample", since=16)
def _grid_sample(ctx, inputs, attrs):
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(attrs.get("mode", "linear"), attrs.get("mode", "linear"))
    if mode == "cubic" and inputs[0].type.rank == 5:
        raise ctx.unsupported("cubic sampling of volumes")
    return ctx.emit("grid_sample", inputs[0], inputs[1], mode=mode,
                    padding_mode=attrs.get("padding_mode", "zeros"), align_corners=attrs.get("align_corners", 0))


@converter("Col2Im", since=18)
def _col2im(ctx, inputs, attrs):
    image = [int(v) for v in ctx.static(inputs[1], "image_shape").reshape(-1)]
    block = [int(v) for v in ctx.static(inputs[2], "block_shape").reshape(-1)]
    return ctx.emit("col2im", inputs[0], image_shape=image, block_shape=block, strides=attrs.get("strides"),
                    dilations=attrs.get("dilations"), pads=attrs.get("pads"))


def _roi_align(default_mode: str):
    def convert(ctx, inputs, attrs):
        mode = attrs.get("coordinate_transformation_mode", default_mode)
        if mode not in ("half_pixel", "output_half_pixel"):
            raise ctx.unsupported(f"coordinate_transformation_mode={mode}")
        return ctx.emit("roi_align", inputs[0], inputs[1], cast(ctx, inputs[2], "int64"),
                        mode=attrs.get("mode", "avg"), output_height=attrs.get("output_height", 1),
                        output_width=attrs.get("output_width", 1), sampling_ratio=attrs.get("sampling_ratio", 0),
                        spatial_scale=attrs.get("spatial_scale", 1.0), half_pixel=int(mode == "half_pixel"))

    return convert


converter("RoiAlign", since=10)(_roi_align("output_half_pixel"))
converter("RoiAlign", since=16)(_roi_align("half_pixel"))


@converter("DeformConv", since=19, checks={"group": count(), "offset_group": count()})
def _deform_conv(ctx, inputs, attrs):
    x, w, offset, bias, mask = inputs[0], inputs[1], inputs[2], optional_input(inputs, 3), optional_input(inputs, 4)
    if x.type.rank != 4:
        raise ctx.unsupported(f"{x.type.rank - 2}-D deformable convolution")
    return ctx.emit("deform_conv", x, w, offset, bias, mask, strides=attrs.get("strides"), pads=attrs.get("pads"),
                    dilations=attrs.get("dilations"), group=attrs.get("group", 1),
                    offset_group=attrs.get("offset_group", 1))
