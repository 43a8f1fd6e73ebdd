"""Which ops of a quantized edgecc graph Ethos-U takes, and why not the others.

The limits are those of Vela's documented operator support (SUPPORTED_OPS.md of ethos-u-vela
5.2) for the TFLite operator each op becomes, narrowed to what the TFLite writer (`tflite.py`)
expresses: int8 tensors with batch 1, SAME or VALID padding (or, for convolutions, an explicit
PAD), fused activations that TFLite can name. Vela has the last word: a region it would leave on the CPU is rejected as a whole.
"""

from __future__ import annotations

__all__ = ["unsupported_reason", "SUPPORTED_OPS", "padding_mode", "fused_activation"]

#: edgecc op -> the TFLite operator it becomes
SUPPORTED_OPS = {
    "qconv": "CONV_2D / DEPTHWISE_CONV_2D",
    "qdense": "FULLY_CONNECTED",
    "qadd": "ADD",
    "max_pool": "MAX_POOL_2D",
    "reshape": "RESHAPE",
}
_MAX_STRIDE = 3
_MAX_KERNEL = 64  # convolution kernel height and width (Vela: 1..64 for stride > 1 and dilation)
_MAX_POOL_KERNEL = 8
_MAX_PAD = 3  # explicit pads (a TFLite PAD, which Vela folds into the convolution after it)  # SAME-padded pooling windows (Vela: 1..8)


def padding_mode(in_sizes, kernel, strides, dilations, pads) -> str | None:
    """"VALID", "SAME" (TFLite's split: the extra pixel after), or None for other explicit pads."""
    nsp = len(in_sizes)
    if all(p == 0 for p in pads):
        return "VALID"
    for i in range(nsp):
        k_eff = dilations[i] * (kernel[i] - 1) + 1
        out = -(-in_sizes[i] // strides[i])
        total = max((out - 1) * strides[i] + k_eff - in_sizes[i], 0)
        if (pads[i], pads[i + nsp]) != (total // 2, total - total // 2):
            return None
    return "SAME"


def fused_activation(node) -> str | None:
    """TFLite's fused activation equal to the node's output clamp, or None when there is none."""
    a = node.attrs
    lo = -128 if a.get("out_min") is None else a["out_min"]
    hi = 127 if a.get("out_max") is None else a["out_max"]
    if (lo, hi) == (-128, 127):
        return "NONE"
    if hi == 127 and lo == a.get("out_zero_point", 0):
        return "RELU"
    return None


def _int8_only(node) -> str | None:
    for role, values in (("input", node.inputs), ("output", node.outputs)):
        for v in values:
            if v is None or v.const is not None and role == "input" and node.op in ("qconv", "qdense"):
                continue
            if v.type.dtype != "int8":
                return f"{role} %{v.name} is {v.type.dtype}: Ethos-U runs int8 tensors only"
            if v.type.rank == 4 and v.type.shape[0] != 1:
                return f"{role} %{v.name} has batch {v.type.shape[0]}: Ethos-U takes batch 1"
    return None


def _window(node, kind: str) -> str | None:
    a = node.attrs
    x = node.inputs[0].type
    if x.rank != 4 or x.layout not in (None, "NCHW"):
        return f"{kind} on a rank-{x.rank} {x.layout or 'plain'} tensor: only 2-D NCHW windows"
    kernel = node.inputs[1].type.shape[2:] if node.op == "qconv" else a["kernel_shape"]
    strides = a.get("strides") or (1, 1)
    dilations = a.get("dilations") or (1, 1)
    pads = a.get("pads") or (0, 0, 0, 0)
    if max(strides) > _MAX_STRIDE:
        return f"stride {list(strides)} exceeds Ethos-U's {_MAX_STRIDE}"
    if max(dilations) > 1 and node.op != "qconv":
        return f"dilation {list(dilations)}: pooling takes none"
    if padding_mode(x.shape[2:], kernel, strides, dilations, pads) is None:
        if node.op != "qconv":
            return f"pads {list(pads)} are neither TFLite's SAME nor VALID (pooling takes no explicit PAD)"
        if max(pads) >= max(kernel) or max(pads) > _MAX_PAD:
            return f"pads {list(pads)} exceed what Ethos-U folds into a convolution"
    limit = _MAX_KERNEL if node.op == "qconv" else (_MAX_POOL_KERNEL if any(pads) else 256)
    if max(kernel) > limit:
        return f"window {list(kernel)} exceeds Ethos-U's {limit}"
    return None


def _qconv(node) -> str | None:
    a = node.attrs
    if any(a.get(k) is not None for k in ("layout", "kernel_layout", "out_layout")):
        return "convolution already in a CPU layout"
    if a["dtype"] != "int8" or node.inputs[3] is None:
        return f"output {a['dtype']}: Ethos-U needs a requantized int8 output"
    if node.inputs[1].const is None:
        return "weights computed at run time: Ethos-U needs constant weights"
    channels, out_channels = node.inputs[0].type.shape[1], node.inputs[1].type.shape[0]
    if a["group"] != 1 and not (a["group"] == channels == out_channels):
        return f"grouped convolution (group {a['group']}): only plain and depthwise (multiplier 1)"
    if fused_activation(node) is None:
        return f"output clamp [{a['out_min']}, {a['out_max']}] is not a TFLite activation"
    return _window(node, "convolution")


def _qdense(node) -> str | None:
    a = node.attrs
    x, w = node.inputs[0].type, node.inputs[1]
    if x.rank != 2 or x.shape[0] != 1:
        return f"input {list(x.shape)}: FULLY_CONNECTED here takes [1, K]"
    if w.const is None or w.type.rank != 2:
        return "weights not a constant [K, N] matrix"
    if a["dtype"] != "int8" or node.inputs[3] is None:
        return f"output {a['dtype']}: Ethos-U needs a requantized int8 output"
    if fused_activation(node) is None:
        return f"output clamp [{a['out_min']}, {a['out_max']}] is not a TFLite activation"
    return None


def _qadd(node) -> str | None:
    a, b = node.inputs[0].type, node.inputs[1].type
    if a.shape != b.shape:
        return f"broadcast add {list(a.shape)} + {list(b.shape)}: only equal shapes"
    if node.inputs[0].const is not None or node.inputs[1].const is not None:
        return "constant operand"
    if fused_activation(node) is None:
        return f"output clamp [{node.attrs['out_min']}, {node.attrs['out_max']}] is not a TFLite activation"
    return None


def _max_pool(node) -> str | None:
    if node.attrs.get("ceil_mode"):
        return "ceil_mode pooling"
    return _window(node, "pooling")


def _reshape(node) -> str | None:
    x, y = node.inputs[0].type, node.outputs[0].type
    if x.rank == 4 and x.shape[2] * x.shape[3] != 1 and x.shape[1] != 1 and y.rank != 4:
        return "reshape of an NCHW tensor with space and channels: NHWC element order differs"
    if y.rank == 4 and y.shape[2] * y.shape[3] != 1 and y.shape[1] != 1 and x.rank != 4:
        return "reshape into an NCHW tensor with space and channels: NHWC element order differs"
    if x.rank == 4 and y.rank == 4 and x.shape != y.shape:
        return "4-D to 4-D reshape"
    return None


_CHECKS = {"qconv": _qconv, "qdense": _qdense, "qadd": _qadd, "max_pool": _max_pool, "reshape": _reshape}


def unsupported_reason(node) -> str | None:
    """None when Ethos-U takes `node`, else one line saying why it stays on the CPU."""
    check = _CHECKS.get(node.op)
    if check is None:
        return f"{node.op} is not in Ethos-U's operator table ({', '.join(SUPPORTED_OPS)})"
    return _int8_only(node) or check(node)
