"""Lowerings of the image ops that sample or scatter pixels: grid_sample, col2im, roi_align, deform_conv."""

from __future__ import annotations

from tvm import te, tirx, topi

from . import lowering


@lowering("grid_sample")
def _lower_grid_sample(node, ins):
    data, grid = ins
    rank = len(data.shape)
    # TOPI wants the coordinates first: (N, 2, H, W) or (N, 3, D, H, W)
    perm = (0, rank - 1, *range(1, rank - 1))
    grid_first = topi.transpose(grid, perm)
    method = {"linear": "bilinear", "nearest": "nearest", "cubic": "bicubic"}[node.attrs["mode"]]
    layout = "NCHW" if rank == 4 else "NCDHW"
    out = topi.image.grid_sample(data, grid_first, method=method, layout=layout,
                                 padding_mode=node.attrs["padding_mode"],
                                 align_corners=bool(node.attrs["align_corners"]))
    return [out]


@lowering("col2im")
def _lower_col2im(node, ins):
    x = ins[0]
    image, block = list(node.attrs["image_shape"]), list(node.attrs["block_shape"])
    dims = len(image)
    strides = node.attrs["strides"] or (1,) * dims
    dilations = node.attrs["dilations"] or (1,) * dims
    pads = node.attrs["pads"] or (0,) * (2 * dims)
    blocks = [(image[d] + pads[d] + pads[d + dims] - dilations[d] * (block[d] - 1) - 1) // strides[d] + 1
              for d in range(dims)]
    n, ck, _ = (int(s) for s in x.shape)
    kernel = 1
    for k in block:
        kernel *= k
    channels = ck // kernel

    def body(b, c, *pixel):
        ks = [te.reduce_axis((0, block[d]), name=f"k{d}") for d in range(dims)]
        valid = tirx.const(True, "bool")
        grid, flat_k = [], tirx.const(0, "int32")
        for d in range(dims):
            pos = pixel[d] + pads[d] - ks[d] * dilations[d]
            index = tirx.floordiv(pos, strides[d])
            valid = tirx.And(valid, tirx.And(tirx.floormod(pos, strides[d]) == 0,
                                             tirx.And(pos >= 0, index < blocks[d])))
            grid.append(tirx.max(tirx.min(index, blocks[d] - 1), 0))
            flat_k = flat_k * block[d] + ks[d]
        flat_b = tirx.const(0, "int32")
        for d in range(dims):
            flat_b = flat_b * blocks[d] + grid[d]
        return te.sum(tirx.Select(valid, x[b, c * kernel + flat_k, flat_b], tirx.const(0, str(x.dtype))), axis=ks)

    return [te.compute((n, channels, *image), body, name="col2im")]


@lowering("roi_align")
def _lower_roi_align(node, ins):
    """As the ONNX reference: bilinear samples on a grid in each bin; `avg` averages them, `max`
    takes the largest weighted corner of any sample."""
    data, rois, batch = ins
    a = node.attrs
    _, _, height, width = (int(d) for d in data.shape)
    dtype = str(data.dtype)
    pooled_h, pooled_w = a["output_height"], a["output_width"]
    scale, ratio = a["spatial_scale"], a["sampling_ratio"]

    def c(v):
        return tirx.const(v, dtype)

    def body(i, ch, ph, pw):
        offset = c(0.5 if a["half_pixel"] else 0.0)
        start_w, start_h = rois[i, 0] * c(scale) - offset, rois[i, 1] * c(scale) - offset
        roi_w = rois[i, 2] * c(scale) - offset - start_w
        roi_h = rois[i, 3] * c(scale) - offset - start_h
        if not a["half_pixel"]:
            roi_w, roi_h = tirx.max(roi_w, c(1.0)), tirx.max(roi_h, c(1.0))
        bin_h, bin_w = roi_h / c(pooled_h), roi_w / c(pooled_w)
        if ratio > 0:
            grid_h = grid_w = tirx.const(ratio, "int32")
        else:
            grid_h = tirx.ceil(roi_h / c(pooled_h)).astype("int32")
            grid_w = tirx.ceil(roi_w / c(pooled_w)).astype("int32")
        iy = te.reduce_axis((0, grid_h), name="iy")
        ix = te.reduce_axis((0, grid_w), name="ix")
        y = start_h + ph.astype(dtype) * bin_h + (iy.astype(dtype) + c(0.5)) * bin_h / grid_h.astype(dtype)
        x = start_w + pw.astype(dtype) * bin_w + (ix.astype(dtype) + c(0.5)) * bin_w / grid_w.astype(dtype)
        outside = tirx.Or(tirx.Or(y < c(-1.0), y > c(height)), tirx.Or(x < c(-1.0), x > c(width)))
        y, x = tirx.max(y, c(0.0)), tirx.max(x, c(0.0))
        y_low = tirx.min(tirx.floor(y).astype("int32"), height - 1)
        x_low = tirx.min(tirx.floor(x).astype("int32"), width - 1)
        y = tirx.Select(y_low >= height - 1, y_low.astype(dtype), y)
        x = tirx.Select(x_low >= width - 1, x_low.astype(dtype), x)
        y_high = tirx.min(y_low + 1, height - 1)
        x_high = tirx.min(x_low + 1, width - 1)
        ly, lx = y - y_low.astype(dtype), x - x_low.astype(dtype)
        hy, hx = c(1.0) - ly, c(1.0) - lx
        b = batch[i].astype("int32")
        corners = [hy * hx * data[b, ch, y_low, x_low], hy * lx * data[b, ch, y_low, x_high],
                   ly * hx * data[b, ch, y_high, x_low], ly * lx * data[b, ch, y_high, x_high]]
        if a["mode"] == "avg":
            value = corners[0] + corners[1] + corners[2] + corners[3]
            count = tirx.max(grid_h * grid_w, 1).astype(dtype)
            return te.sum(tirx.Select(outside, c(0.0), value) / count, axis=[iy, ix])
        value = tirx.max(tirx.max(corners[0], corners[1]), tirx.max(corners[2], corners[3]))
        return te.max(tirx.Select(outside, c(0.0), value), axis=[iy, ix])

    return [te.compute((int(rois.shape[0]), int(data.shape[1]), pooled_h, pooled_w), body, name="roi_align")]


@lowering("deform_conv")
def _lower_deform_conv(node, ins):
    data, weight, offset = ins[:3]
    bias = ins[3] if len(ins) > 3 else None
    mask = ins[4] if len(ins) > 4 else None
    a = node.attrs
    n, channels, height, width = (int(d) for d in data.shape)
    out_channels, group_channels, kh, kw = (int(d) for d in weight.shape)
    _, _, out_h, out_w = (int(d) for d in offset.shape)
    sh, sw = a["strides"] or (1, 1)
    dh, dw = a["dilations"] or (1, 1)
    top, left = (a["pads"] or (0, 0, 0, 0))[:2]
    group, offset_group = a["group"], a["offset_group"]
    per_group_out = out_channels // group
    per_offset_group = channels // offset_group
    dtype = str(data.dtype)
    zero = tirx.const(0, dtype)

    def pixel(b, c, y, x):
        inside = tirx.And(tirx.And(y >= 0, y < height), tirx.And(x >= 0, x < width))
        value = data[b, c, tirx.max(tirx.min(y, height - 1), 0), tirx.max(tirx.min(x, width - 1), 0)]
        return tirx.Select(inside, value, zero)

    def body(b, oc, i, j):
        icg = te.reduce_axis((0, group_channels), name="icg")
        ky = te.reduce_axis((0, kh), name="ky")
        kx = te.reduce_axis((0, kw), name="kx")
        ic = (oc // per_group_out) * group_channels + icg
        og = ic // per_offset_group
        tap = (og * kh + ky) * kw + kx
        y = (i * sh - top + ky * dh).astype(dtype) + offset[b, tap * 2, i, j]
        x = (j * sw - left + kx * dw).astype(dtype) + offset[b, tap * 2 + 1, i, j]
        y0f, x0f = tirx.floor(y), tirx.floor(x)
        y0, x0 = y0f.astype("int32"), x0f.astype("int32")
        ly, lx = y - y0f, x - x0f
        one = tirx.const(1, dtype)
        sample = ((one - ly) * (one - lx) * pixel(b, ic, y0, x0) + (one - ly) * lx * pixel(b, ic, y0, x0 + 1)
                  + ly * (one - lx) * pixel(b, ic, y0 + 1, x0) + ly * lx * pixel(b, ic, y0 + 1, x0 + 1))
        term = weight[oc, icg, ky, kx] * sample
        if mask is not None:
            term = term * mask[b, tap, i, j]
        return te.sum(term, axis=[icg, ky, kx])

    out = te.compute((n, out_channels, out_h, out_w), body, name="deform_conv")
    if bias is not None:
        out = te.compute(out.shape, lambda b, oc, i, j: out[b, oc, i, j] + bias[oc], name="deform_conv_bias")
    return [out]
