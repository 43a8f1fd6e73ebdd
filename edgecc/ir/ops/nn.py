"""Neural-network ops: convolution, pooling, normalization, softmax, matmul, layout transform."""

from __future__ import annotations

import math

import numpy as np

from ..dims import Dim, UndecidableDim, format_shape, require_size
from ..graph import IRError, Node
from ..layout import layout_of
from ..types import TensorType
from ._util import broadcast_shapes, in_type, norm_axis, require_float, same_as_input
from .attr_checks import at_least
from .registry import Attr, Trait, register_op

_SPATIAL = "DHW"


def plain_layout(rank: int, channels_last: bool = False) -> str:
    """`NCHW` for rank 4, `NCW` for rank 3, `NCDHW` for rank 5 (or the channels-last forms)."""
    spatial = _SPATIAL[3 - (rank - 2) :] if rank >= 3 else ""
    if rank - 2 > 3 or rank < 2:
        raise IRError(f"no image layout for rank {rank}")
    return "N" + spatial + "C" if channels_last else "NC" + spatial


def data_layout(node: Node, idx: int = 0, attr: str = "layout"):
    t = in_type(node, idx)
    layout = layout_of(node.attrs.get(attr) or plain_layout(t.rank))
    return layout, layout.logical_dims(t.shape)


def spatial_axes(layout) -> list[str]:
    return [a for a in layout.logical if a not in "NC"]


def _window_out(size, k, stride, pad_begin, pad_end, dilation, ceil_mode=False):
    """Output positions of a window along one axis. For a symbolic `size` the formula holds for
    every input at least as large as the window; a smaller one is the run time's to refuse."""
    span = size + pad_begin + pad_end - dilation * (k - 1) - 1
    if not isinstance(span, Dim) and span < 0:
        raise IRError(f"window {k} (dilation {dilation}) is larger than the padded input {size}")
    out = ((span + stride - 1) // stride if ceil_mode else span // stride) + 1
    if ceil_mode and stride <= dilation * (k - 1) + 1 - pad_end:
        return out  # (out-1)*stride <= span + stride - 1 < size + pad_begin: no window starts in the end padding
    if ceil_mode:
        try:
            last_starts_in_padding = (out - 1) * stride >= size + pad_begin
        except UndecidableDim:
            raise UndecidableDim(f"ceil_mode windows over a symbolic size {size}: whether the last window "
                                 f"starts in the padding is not known at compile time") from None
        if last_starts_in_padding:
            out -= 1
    return out


def _spatial_attrs(node: Node, nsp: int, kernel: tuple[int, ...]):
    strides = node.attrs["strides"] or (1,) * nsp
    dil = node.attrs.get("dilations") or (1,) * nsp
    pads = node.attrs["pads"] or (0,) * (2 * nsp)
    if len(strides) != nsp or len(dil) != nsp or len(pads) != 2 * nsp or len(kernel) != nsp:
        raise IRError(f"{node.op}: strides/dilations/pads/kernel do not match {nsp} spatial axes")
    if min(strides) < 1 or min(dil) < 1 or min(kernel) < 1:
        raise IRError(f"{node.op}: strides, dilations and kernel sizes must be positive")
    return strides, dil, pads


# ----- convolution ---------------------------------------------------------------------------
def conv_geometry(node: Node) -> dict:
    """Logical sizes of a conv node: N, C, O, group, spatial in/out/kernel, strides, pads."""
    layout, dims = data_layout(node)
    sp = spatial_axes(layout)
    w = in_type(node, 1)
    klayout = layout_of(node.attrs["kernel_layout"] or "OI" + "".join(sp))
    kd = klayout.logical_dims(w.shape)
    kernel = tuple(kd[a] for a in sp)
    strides, dil, pads = _spatial_attrs(node, len(sp), kernel)
    group = node.attrs["group"]
    message = (f"conv: input has {dims['C']} channels, weight {tuple(w.shape)} with group {group} "
               f"expects {kd['I'] * group}")
    if group < 1 or kd["O"] % group:
        raise IRError(message)
    require_size(dims["C"], kd["I"] * group, message)
    out = [
        _window_out(dims[a], kernel[i], strides[i], pads[i], pads[i + len(sp)], dil[i])
        for i, a in enumerate(sp)
    ]
    return dict(
        layout=layout, N=dims["N"], C=dims["C"], O=kd["O"], group=group, spatial=sp,
        in_sizes=[dims[a] for a in sp], kernel=kernel, strides=strides, dilations=dil,
        pads=pads, out_sizes=out,
    )


def macs(node: Node) -> int:
    """Multiply-accumulates of a convolution or matrix product, float or integer (0 for other
    ops); a `winograd_conv` counts as the direct 3x3 convolution it replaces."""
    out = node.outputs[0].type
    if node.op in ("conv", "qconv"):
        g = conv_geometry(node)
        return out.size * (g["C"] // g["group"]) * math.prod(g["kernel"])
    if node.op == "winograd_conv":  # data (N, C/ib, H, W, ib)
        x = in_type(node, 0).shape
        return out.size * x[1] * x[4] * 9
    if node.op in ("dense", "matmul", "qdense"):
        return out.size * in_type(node, 0).shape[-1]
    return 0


def _conv_infer(node: Node) -> list[TensorType]:
    require_float(node)
    g = conv_geometry(node)
    if node.input(2) is not None and in_type(node, 2).size != g["O"]:
        raise IRError(f"conv: bias has {in_type(node, 2).size} elements, expected {g['O']}")
    out_layout = layout_of(node.attrs["out_layout"] or g["layout"].name)
    dims = {"N": g["N"], "C": g["O"], **dict(zip(g["spatial"], g["out_sizes"]))}
    t = in_type(node, 0)
    layout = t.layout if (node.attrs["layout"] is None and node.attrs["out_layout"] is None) else out_layout.name
    return [TensorType(t.dtype, out_layout.physical_shape(dims), layout)]


_WINDOW_ATTRS = {
    "strides": Attr("ints", None),
    "pads": Attr("ints", None),
    "dilations": Attr("ints", None),
}

register_op(
    "conv",
    ["data", "weight", "bias?"],
    _conv_infer,
    attrs={
        **_WINDOW_ATTRS,
        "group": Attr("int", 1),
        "layout": Attr("str", None),
        "kernel_layout": Attr("str", None),
        "out_layout": Attr("str", None),
    },
    traits=[Trait.ANCHOR, Trait.LAYOUT_SENSITIVE, Trait.QUANTIZABLE],
    doc="N-d convolution; pads are (begin..., end...); layouts default to NC[D]HW / OI[D]HW",
)


def _conv_transpose_infer(node: Node) -> list[TensorType]:
    t, w = in_type(node, 0), in_type(node, 1)
    nsp = t.rank - 2
    if nsp < 1 or w.rank != t.rank:
        raise IRError(f"conv_transpose: input {t.shape} and weight {w.shape} ranks do not fit")
    kernel = w.shape[2:]
    strides, dil, pads = _spatial_attrs(node, nsp, kernel)
    group = node.attrs["group"]
    if t.shape[1] != w.shape[0]:
        raise IRError(f"conv_transpose: input has {t.shape[1]} channels, weight expects {w.shape[0]}")
    if group < 1 or t.shape[1] % group:
        raise IRError(f"conv_transpose: {t.shape[1]} input channels do not split into {group} groups")
    if node.input(2) is not None and in_type(node, 2).size != w.shape[1] * group:
        raise IRError(f"conv_transpose: bias has {in_type(node, 2).size} elements, expected {w.shape[1] * group}")
    outpad = node.attrs["output_padding"] or (0,) * nsp
    out = [
        strides[i] * (t.shape[2 + i] - 1) + outpad[i] + (kernel[i] - 1) * dil[i] + 1 - pads[i] - pads[i + nsp]
        for i in range(nsp)
    ]
    if any(not isinstance(d, Dim) and d < 1 for d in out):
        raise IRError(f"conv_transpose: output size {format_shape(out)} is empty")
    return [TensorType(t.dtype, (t.shape[0], w.shape[1] * group, *out), t.layout)]


register_op(
    "conv_transpose",
    ["data", "weight", "bias?"],
    _conv_transpose_infer,
    attrs={**_WINDOW_ATTRS, "group": Attr("int", 1), "output_padding": Attr("ints", None)},
    traits=[Trait.ANCHOR, Trait.LAYOUT_SENSITIVE],
    doc="transposed N-d convolution in NC[D]HW; weight is (C_in, C_out/group, k...)",
)


# ----- pooling -------------------------------------------------------------------------------
def pool_geometry(node: Node) -> dict:
    layout, dims = data_layout(node)
    sp = spatial_axes(layout)
    kernel = node.attrs["kernel_shape"]
    strides, dil, pads = _spatial_attrs(node, len(sp), kernel)
    ceil_mode = bool(node.attrs.get("ceil_mode", 0))
    out = [
        _window_out(dims[a], kernel[i], strides[i], pads[i], pads[i + len(sp)], dil[i], ceil_mode)
        for i, a in enumerate(sp)
    ]
    return dict(layout=layout, dims=dims, spatial=sp, kernel=kernel, strides=strides,
                dilations=dil, pads=pads, out_sizes=out, ceil_mode=ceil_mode)


def _pool_infer(node: Node) -> list[TensorType]:
    g = pool_geometry(node)
    dims = dict(g["dims"], **dict(zip(g["spatial"], g["out_sizes"])))
    t = in_type(node, 0)
    return [TensorType(t.dtype, g["layout"].physical_shape(dims), t.layout)]


_POOL_ATTRS = {
    "kernel_shape": Attr("ints"),
    **_WINDOW_ATTRS,
    "ceil_mode": Attr("int", 0),
    "layout": Attr("str", None),
}
_POOL_TRAITS = [Trait.ANCHOR, Trait.REDUCTION, Trait.LAYOUT_SENSITIVE, Trait.QUANTIZABLE]
register_op("max_pool", ["data"], _pool_infer, attrs=_POOL_ATTRS, traits=_POOL_TRAITS)
register_op(
    "avg_pool",
    ["data"],
    _pool_infer,
    attrs={**_POOL_ATTRS, "count_include_pad": Attr("int", 0)},
    traits=_POOL_TRAITS,
)
register_op("lp_pool", ["data"], _pool_infer, attrs={**_POOL_ATTRS, "p": Attr("int", 2, check=at_least(1))},
            traits=[Trait.ANCHOR, Trait.REDUCTION, Trait.LAYOUT_SENSITIVE])


def _global_pool_infer(node: Node) -> list[TensorType]:
    layout, dims = data_layout(node)
    dims = {a: (1 if a in spatial_axes(layout) else d) for a, d in dims.items()}
    t = in_type(node, 0)
    return [TensorType(t.dtype, layout.physical_shape(dims), t.layout)]


for _name in ("global_avg_pool", "global_max_pool"):
    register_op(_name, ["data"], _global_pool_infer, attrs={"layout": Attr("str", None)},
                traits=[Trait.ANCHOR, Trait.LAYOUT_SENSITIVE, Trait.REDUCTION])
register_op("global_lp_pool", ["data"], _global_pool_infer,
            attrs={"layout": Attr("str", None), "p": Attr("int", 2, check=at_least(1))},
            traits=[Trait.ANCHOR, Trait.LAYOUT_SENSITIVE, Trait.REDUCTION])


# ----- normalization -------------------------------------------------------------------------
def _channel_params_infer(nparams: int):
    def infer(node: Node) -> list[TensorType]:
        require_float(node)
        t = in_type(node, 0)
        axis = norm_axis(node.attrs.get("axis", 1), t.rank, node.op)
        for i in range(1, 1 + nparams):
            if node.input(i) is not None:
                require_size(t.shape[axis], in_type(node, i).size,
                             f"{node.op}: parameter {i} has {in_type(node, i).size} elements, "
                             f"channel axis has {t.shape[axis]}")
        return [t.with_quant(None)]

    return infer


def _batch_norm_fold(node, v):
    x, scale, bias, mean, var = v
    shape = [1] * x.ndim
    shape[node.attrs["axis"] % x.ndim] = -1
    inv = scale / np.sqrt(var + node.attrs["epsilon"])
    return [(x - mean.reshape(shape)) * inv.reshape(shape) + bias.reshape(shape)]


register_op(
    "batch_norm",
    ["x", "scale", "bias", "mean", "var"],
    _channel_params_infer(4),
    attrs={"epsilon": Attr("float", 1e-5), "axis": Attr("int", 1)},
    traits=[Trait.LAYOUT_SENSITIVE],
    fold=_batch_norm_fold,
    doc="inference batch normalization over channel axis `axis`",
)
register_op(
    "instance_norm",
    ["x", "scale", "bias"],
    _channel_params_infer(2),
    attrs={"epsilon": Attr("float", 1e-5)},
    traits=[Trait.LAYOUT_SENSITIVE, Trait.REDUCTION],
)


def _layer_norm_infer(node: Node) -> list[TensorType]:
    require_float(node)
    t = in_type(node, 0)
    axis = norm_axis(node.attrs["axis"], t.rank, "layer_norm")
    norm_shape = t.shape[axis:]
    for i in (1, 2):
        if node.input(i) is not None:
            broadcast_shapes(norm_shape, in_type(node, i).shape, op="layer_norm")
    return [t.with_quant(None)]


register_op(
    "layer_norm",
    ["x", "scale?", "bias?"],
    _layer_norm_infer,
    attrs={"axis": Attr("int", -1), "epsilon": Attr("float", 1e-5)},
    traits=[Trait.REDUCTION],
    doc="normalize over axes [axis, rank), then scale and shift",
)
register_op(
    "lrn",
    ["x"],
    same_as_input(),
    attrs={"size": Attr("int", check=at_least(1)), "alpha": Attr("float", 1e-4), "beta": Attr("float", 0.75),
           "bias": Attr("float", 1.0)},
    traits=[Trait.LAYOUT_SENSITIVE],
    doc="local response normalization across channels (axis 1)",
)


def _softmax_fold(log: bool):
    def fold(node, v):
        x = v[0].astype(np.float64)
        axis = node.attrs["axis"]
        m = x.max(axis=axis, keepdims=True)
        e = np.exp(x - m)
        s = e.sum(axis=axis, keepdims=True)
        return [(x - m - np.log(s)) if log else e / s]

    return fold


def _softmax_infer(node: Node) -> list[TensorType]:
    require_float(node)
    norm_axis(node.attrs["axis"], in_type(node, 0).rank, node.op)
    return same_as_input()(node)


for _name, _log in (("softmax", False), ("log_softmax", True)):
    register_op(_name, ["x"], _softmax_infer, attrs={"axis": Attr("int", -1)},
                traits=[Trait.REDUCTION], fold=_softmax_fold(_log))
register_op("hardmax", ["x"], _softmax_infer, attrs={"axis": Attr("int", -1)},
            traits=[Trait.REDUCTION])


# ----- matmul --------------------------------------------------------------------------------
def matmul_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """numpy.matmul result shape for static shapes."""
    if not a or not b:
        raise IRError("matmul: scalar operands are not allowed")
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    require_size(a2[-1], b2[-2], f"matmul: inner dimensions differ ({format_shape(a)} @ {format_shape(b)})")
    batch = broadcast_shapes(a2[:-2], b2[:-2], op="matmul")
    out = batch + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


def _matmul_infer(node: Node) -> list[TensorType]:
    a, b = in_type(node, 0), in_type(node, 1)
    if a.dtype != b.dtype:
        raise IRError(f"matmul: input dtypes differ ({a.dtype} and {b.dtype})")
    return [TensorType(a.dtype, matmul_shape(a.shape, b.shape))]


register_op(
    "matmul",
    ["a", "b"],
    _matmul_infer,
    traits=[Trait.ANCHOR, Trait.QUANTIZABLE],
    fold=lambda node, v: [np.matmul(v[0], v[1])],
    doc="numpy.matmul semantics with batch broadcasting",
)


# ----- layout transform ----------------------------------------------------------------------
def _layout_transform_infer(node: Node) -> list[TensorType]:
    t = in_type(node, 0)
    src, dst = layout_of(node.attrs["src"]), layout_of(node.attrs["dst"])
    if sorted(src.logical) != sorted(dst.logical):
        raise IRError(f"layout_transform: {src.name} and {dst.name} have different axes")
    dims = src.logical_dims(t.shape)
    return [TensorType(t.dtype, dst.physical_shape(dims), dst.name, t.quant)]


register_op(
    "layout_transform",
    ["x"],
    _layout_transform_infer,
    attrs={"src": Attr("str"), "dst": Attr("str")},
    traits=[Trait.INJECTIVE],
    fold=lambda node, v: [layout_of(node.attrs["dst"]).from_plain(
        layout_of(node.attrs["src"]).to_plain(v[0], _plain_of(node.attrs["src"])),
        _plain_of(node.attrs["src"]))],
    doc="rearrange data between layouts, e.g. NCHW -> NCHW8c",
)


def _plain_of(name: str) -> str:
    return layout_of(name).logical
