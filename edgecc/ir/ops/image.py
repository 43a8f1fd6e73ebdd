"""Image ops that sample or scatter pixels at computed positions: grid_sample, col2im, roi_align, deform_conv."""

from __future__ import annotations

import numpy as np

from ..graph import IRError
from ..types import TensorType
from ._util import in_type
from .registry import Attr, Trait, register_op


def _grid_sample_infer(node):
    data, grid = in_type(node, 0), in_type(node, 1)
    spatial = data.rank - 2
    if spatial not in (2, 3) or grid.rank != data.rank or grid.shape[-1] != spatial:
        raise IRError(f"grid_sample: data {data.shape} and grid {grid.shape} do not fit "
                      "(N, C, H, W) with (N, H', W', 2), or (N, C, D, H, W) with (N, D', H', W', 3)")
    if grid.shape[0] != data.shape[0]:
        raise IRError("grid_sample: data and grid differ in batch")
    if node.attrs["mode"] not in ("linear", "nearest", "cubic"):
        raise IRError(f"grid_sample: unknown mode {node.attrs['mode']}")
    if node.attrs["padding_mode"] not in ("zeros", "border", "reflection"):
        raise IRError(f"grid_sample: unknown padding mode {node.attrs['padding_mode']}")
    return [TensorType(data.dtype, (*data.shape[:2], *grid.shape[1:-1]))]


register_op(
    "grid_sample",
    ["data", "grid"],
    _grid_sample_infer,
    attrs={"mode": Attr("str", "linear"), "padding_mode": Attr("str", "zeros"), "align_corners": Attr("int", 0)},
    traits=(Trait.LAYOUT_SENSITIVE, Trait.OPAQUE),
    doc="samples NC[D]HW data at the normalized coordinates of an N[D]HW{2,3} grid, as ONNX GridSample",
)


def _col2im_geometry(node):
    """(blocks per spatial dimension) from the node's input and attributes."""
    data = in_type(node, 0)
    image, block = node.attrs["image_shape"], node.attrs["block_shape"]
    dims = len(image)
    if len(block) != dims:
        raise IRError("col2im: image_shape and block_shape differ in length")
    strides = node.attrs["strides"] or (1,) * dims
    dilations = node.attrs["dilations"] or (1,) * dims
    pads = node.attrs["pads"] or (0,) * (2 * dims)
    blocks = tuple((image[d] + pads[d] + pads[d + dims] - dilations[d] * (block[d] - 1) - 1) // strides[d] + 1
                   for d in range(dims))
    kernel = int(np.prod(block))
    if data.rank != 3 or data.shape[1] % kernel or data.shape[2] != int(np.prod(blocks)):
        raise IRError(f"col2im: input {data.shape} does not hold {kernel}-element blocks on a {blocks} grid")
    return blocks


def _col2im_infer(node):
    data = in_type(node, 0)
    _col2im_geometry(node)
    channels = data.shape[1] // int(np.prod(node.attrs["block_shape"]))
    return [TensorType(data.dtype, (data.shape[0], channels, *node.attrs["image_shape"]))]


def _col2im_fold(node, values):
    x = values[0]
    image, block = node.attrs["image_shape"], node.attrs["block_shape"]
    dims = len(image)
    strides = node.attrs["strides"] or (1,) * dims
    dilations = node.attrs["dilations"] or (1,) * dims
    pads = node.attrs["pads"] or (0,) * (2 * dims)
    blocks = _col2im_geometry(node)
    n, ck, _ = x.shape
    channels = ck // int(np.prod(block))
    padded = np.zeros((n, channels, *(image[d] + pads[d] + pads[d + dims] for d in range(dims))), x.dtype)
    cols = x.reshape(n, channels, *block, *blocks)
    for k in np.ndindex(*block):
        for b in np.ndindex(*blocks):
            pos = tuple(b[d] * strides[d] + k[d] * dilations[d] for d in range(dims))
            padded[(slice(None), slice(None), *pos)] += cols[(slice(None), slice(None), *k, *b)]
    inner = tuple(slice(pads[d], pads[d] + image[d]) for d in range(dims))
    return [padded[(slice(None), slice(None), *inner)]]


register_op(
    "col2im",
    ["x"],
    _col2im_infer,
    attrs={"image_shape": Attr("ints"), "block_shape": Attr("ints"), "strides": Attr("ints", None),
           "dilations": Attr("ints", None), "pads": Attr("ints", None)},
    traits=(Trait.LAYOUT_SENSITIVE, Trait.OPAQUE),
    fold=_col2im_fold,
    doc="sums (N, C*prod(block), L) columns back into an (N, C, *image) image, as ONNX Col2Im",
)


def _roi_align_infer(node):
    data, rois, batch = in_type(node, 0), in_type(node, 1), in_type(node, 2)
    if data.rank != 4 or rois.rank != 2 or rois.shape[1] != 4 or batch.shape != (rois.shape[0],):
        raise IRError(f"roi_align: data {data.shape}, rois {rois.shape}, batch indices {batch.shape} "
                      "are not (N, C, H, W), (R, 4), (R,)")
    if node.attrs["mode"] not in ("avg", "max"):
        raise IRError(f"roi_align: unknown mode {node.attrs['mode']}")
    return [TensorType(data.dtype, (rois.shape[0], data.shape[1], node.attrs["output_height"],
                                    node.attrs["output_width"]))]


register_op(
    "roi_align",
    ["data", "rois", "batch_indices"],
    _roi_align_infer,
    attrs={"mode": Attr("str", "avg"), "output_height": Attr("int", 1), "output_width": Attr("int", 1),
           "sampling_ratio": Attr("int", 0), "spatial_scale": Attr("float", 1.0), "half_pixel": Attr("int", 1)},
    traits=(Trait.LAYOUT_SENSITIVE, Trait.OPAQUE),
    doc="pools (x1, y1, x2, y2) regions of NCHW data to a fixed size by bilinear sampling, as ONNX RoiAlign",
)


def _deform_conv_infer(node):
    x, w, offset = in_type(node, 0), in_type(node, 1), in_type(node, 2)
    if x.rank != 4 or w.rank != 4 or offset.rank != 4:
        raise IRError("deform_conv: only 2-D convolutions (NCHW data, OIHW weight) are supported")
    group, offset_group = node.attrs["group"], node.attrs["offset_group"]
    kh, kw = w.shape[2:]
    if x.shape[1] != w.shape[1] * group or w.shape[0] % group or x.shape[1] % offset_group:
        raise IRError(f"deform_conv: data {x.shape} and weight {w.shape} do not fit group {group}")
    if offset.shape[1] != offset_group * kh * kw * 2:
        raise IRError(f"deform_conv: offset {offset.shape} does not hold 2 offsets per kernel tap")
    return [TensorType(x.dtype, (x.shape[0], w.shape[0], *offset.shape[2:]))]


register_op(
    "deform_conv",
    ["data", "weight", "offset", "bias?", "mask?"],
    _deform_conv_infer,
    attrs={"strides": Attr("ints", None), "pads": Attr("ints", None), "dilations": Attr("ints", None),
           "group": Attr("int", 1), "offset_group": Attr("int", 1)},
    traits=(Trait.LAYOUT_SENSITIVE, Trait.OPAQUE),
    doc="2-D convolution sampling the input at learned offsets (bilinear), as ONNX DeformConv",
)
