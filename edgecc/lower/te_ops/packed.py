"""Lowerings of the blocked-layout and packed-weight forms the layout pass creates.

Block names (`conv2d_NCHWc`, `depthwise_conv2d_NCHWc`, `dense_pack`, `pad`) are what the default
schedules look for.
"""

from __future__ import annotations

from tvm import te, topi

from edgecc.ir import layout_of

from . import lowering
from .shapes import extent, shape_of, te_shape


def _pad_blocked(data, pads, value=0.0):
    """Pad H and W of an NCHW{b}c tensor; pads are (top, left, bottom, right)."""
    top, left, bottom, right = pads
    if not any(pads):
        return data
    return topi.nn.pad(data, (0, 0, top, left, 0), (0, 0, bottom, right, 0), pad_value=value, name="pad")


def conv2d_nchwc(data, weight, strides, pads, dilations):
    """data (N, C/ib, H, W, ib) * weight (O/ob, C/ib, KH, KW, ib, ob) -> (N, O/ob, OH, OW, ob)."""
    n, icc, h, w, ib = shape_of(data)
    occ, _, kh, kw, _, ob = shape_of(weight)
    sh, sw = strides
    dh, dw = dilations
    oh = (h + pads[0] + pads[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pads[1] + pads[3] - dw * (kw - 1) - 1) // sw + 1
    padded = _pad_blocked(data, pads)
    rc = te.reduce_axis((0, icc), name="rc")
    ry = te.reduce_axis((0, kh), name="ry")
    rx = te.reduce_axis((0, kw), name="rx")
    ri = te.reduce_axis((0, ib), name="ri")
    return te.compute(
        (n, occ, oh, ow, ob),
        lambda b, oc, y, x, o: te.sum(
            padded[b, rc, y * sh + ry * dh, x * sw + rx * dw, ri] * weight[oc, rc, ry, rx, ri, o],
            axis=[rc, ry, rx, ri]),
        name="conv2d_NCHWc",
    )


def depthwise_conv2d_nchwc(data, weight, strides, pads, dilations):
    """data (N, C/b, H, W, b) * weight (C/b, 1, KH, KW, 1, b) -> (N, C/b, OH, OW, b)."""
    n, cc, h, w, b = shape_of(data)
    _, _, kh, kw, _, _ = shape_of(weight)
    sh, sw = strides
    dh, dw = dilations
    oh = (h + pads[0] + pads[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pads[1] + pads[3] - dw * (kw - 1) - 1) // sw + 1
    padded = _pad_blocked(data, pads)
    ry = te.reduce_axis((0, kh), name="ry")
    rx = te.reduce_axis((0, kw), name="rx")
    return te.compute(
        (n, cc, oh, ow, b),
        lambda i, c, y, x, j: te.sum(
            padded[i, c, y * sh + ry * dh, x * sw + rx * dw, j] * weight[c, 0, ry, rx, 0, j], axis=[ry, rx]),
        name="depthwise_conv2d_NCHWc",
    )


def lower_blocked_conv(node, ins):
    """conv with layout NCHW{b}c (called by the conv lowering for blocked layouts)."""
    data, weight, bias = ins[0], ins[1], ins[2] if len(ins) > 2 else None
    a = node.attrs
    strides = a["strides"] or (1, 1)
    dilations = a["dilations"] or (1, 1)
    p = a["pads"] or (0, 0, 0, 0)
    pads = tuple(extent(d) for d in p[:4])
    if a["group"] > 1:
        out = depthwise_conv2d_nchwc(data, weight, strides, pads, dilations)
    else:
        out = conv2d_nchwc(data, weight, strides, pads, dilations)
    if bias is not None:
        out = te.compute(out.shape, lambda n, c, y, x, b: out[n, c, y, x, b] + bias[0, c, 0, 0, b], name="bias_add")
    return [out]


@lowering("dense")
def lower_dense(node, ins):
    data, weight = ins
    nb, k, b = (int(d) for d in weight.shape)
    shape = shape_of(data)[:-1] + (nb * b,)
    rk = te.reduce_axis((0, k), name="rk")
    return [te.compute(
        shape,
        lambda *idx: te.sum(data[(*idx[:-1], rk)] * weight[idx[-1] // b, rk, idx[-1] % b], axis=rk),
        name="dense_pack",
    )]


def layout_index(src: str, dst: str, out_shape):
    """For layout_transform: a function from output indices (dst) to input indices (src)."""
    s, d = layout_of(src), layout_of(dst)
    dst_axes = d.axes

    def index(*idx):
        logical = {}
        for (axis, block), i in zip(dst_axes, idx):
            key = axis.upper()
            if block is None:
                inner = d.block(key)
                logical[key] = logical.get(key, 0) + (i * inner if inner else i)
            else:
                logical[key] = logical.get(key, 0) + i
        out = []
        for axis, block in s.axes:
            key = axis.upper()
            inner = s.block(key)
            if block is None:
                out.append(logical[key] // inner if inner else logical[key])
            else:
                out.append(logical[key] % block)
        return out

    return index


def lower_layout_transform(node, ins):
    (x,) = ins
    index = layout_index(node.attrs["src"], node.attrs["dst"], node.output.type.shape)
    return [te.compute(te_shape(node.output.type.shape), lambda *idx: x[tuple(index(*idx))], name="layout_transform")]
