"""Which ops of a quantized edgecc graph Ethos-U takes, and why not the others.

The limits are those of Vela's documented operator support (SUPPORTED_OPS.md of ethos-u-vela
5.2) for the TFLite operator each op becomes, narrowed to what the TFLite writer (`tflite.py`)
expresses: int8 tensors with batch 1, SAME or VALID padding (or an explicit PAD: for
convolutions, and for max pooling where it is exact), any output clamp (a fused activation, or
MAXIMUM/MINIMUM after the operator). Vela has the last word: a region it would leave on the CPU
is rejected as a whole.
"""

from __future__ import annotations

import numpy as np

__all__ = ["unsupported_reason", "SUPPORTED_OPS", "padding_mode", "clamp_bounds", "tflite_activation", "int8_pool_params",
           "per_tensor_int8", "flattens_into_dense", "pads_with_zero_point_exactly", "pads_counted_in_average",
           "requantize_multiplier"]

#: edgecc op -> the TFLite operator it becomes
SUPPORTED_OPS = {
    "qconv": "CONV_2D / DEPTHWISE_CONV_2D",
    "qdense": "FULLY_CONNECTED",
    "qadd": "ADD",
    "max_pool": "MAX_POOL_2D",
    "reshape": "RESHAPE",
    "global_avg_pool": "MEAN (between a dequantize and a quantize)",
    "avg_pool": "AVERAGE_POOL_2D (between a dequantize and a quantize of equal parameters)",
    "dequantize": "(the int8 input of such a pooling)",
    "quantize": "(the int8 output of such a pooling)",
    "concat": "CONCATENATION (between dequantizes and a quantize; QUANTIZE brings inputs to the output's scale)",
    "requantize": "QUANTIZE (int8 to int8), MAXIMUM/MINIMUM for its clamp",
    "clip": "MAXIMUM/MINIMUM with int8 constants (a clamp on int8 data)",
}
#: float ops that run on int8 data when a dequantize feeds them and a quantize reads them
_INT8_POOLS = ("global_avg_pool", "avg_pool", "concat")
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


def clamp_bounds(node) -> tuple[int, int]:
    """The int8 bounds of the node's output clamp (its fused ReLU or clip), or of a clip on int8 data."""
    a = node.attrs
    if node.op == "clip":
        lo = -128 if a.get("min") is None else max(-128, min(127, int(np.ceil(a["min"]))))
        hi = 127 if a.get("max") is None else max(-128, min(127, int(np.floor(a["max"]))))
        return lo, hi
    return (-128 if a.get("out_min") is None else a["out_min"], 127 if a.get("out_max") is None else a["out_max"])


def _tflite_quantize(f: float, scale: float, zero_point: int) -> int:
    """TFLite's quantization of an activation bound: zero point + f / scale rounded half away from zero."""
    x = np.float32(f) / np.float32(scale)
    return zero_point + int(np.sign(x) * np.floor(np.abs(x) + np.float32(0.5)))


def tflite_activation(bounds: tuple[int, int], scale: float, zero_point: int) -> str | None:
    """TFLite's fused activation whose int8 bounds, for an output of this scale and zero point,
    are `bounds` (as TFLite's CalculateActivationRangeQuantized computes them), or None."""
    q = lambda f: _tflite_quantize(f, scale, zero_point)  # noqa: E731
    named = {"NONE": (-128, 127), "RELU": (max(-128, q(0)), 127), "RELU6": (max(-128, q(0)), min(127, q(6))),
             "RELU_N1_TO_1": (max(-128, q(-1)), min(127, q(1)))}
    return next((name for name, b in named.items() if b == tuple(bounds)), None)


def pads_counted_in_average(node) -> bool:
    """An average pooling that counts its padding as zeros: TFLite's SAME does not, a PAD filling
    the zero point (real 0) before a VALID pooling does."""
    return node.op == "avg_pool" and bool(node.attrs.get("count_include_pad")) and any(node.attrs.get("pads") or ())


def pads_with_zero_point_exactly(value) -> bool:
    """Whether the int8 `value` never lies below its zero point, as far as its producers tell (a
    clamp at or above the zero point, or zero point -128): then padding it with the zero point,
    as TFLite's PAD does, leaves every max pooling window's maximum as edgecc's padding does."""
    lowest, producer = -128, value.producer
    while producer is not None and producer.op in ("max_pool", "reshape", "clip"):
        if producer.op == "clip":
            lowest = max(lowest, clamp_bounds(producer)[0])
        producer = producer.inputs[0].producer
    if producer is None:
        return False
    if producer.op in ("qconv", "qdense", "qadd", "requantize"):
        return max(lowest, clamp_bounds(producer)[0]) >= producer.attrs.get("out_zero_point", 0)
    if producer.op == "quantize" and per_tensor_int8(producer) is not None:
        return lowest >= per_tensor_int8(producer)[1]
    return False


def _int8_only(node) -> str | None:
    for role, values in (("input", node.inputs), ("output", node.outputs)):
        for v in values:
            if v is None or v.const is not None and role == "input" and node.op in ("qconv", "qdense", "requantize"):
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
    mode = padding_mode(x.shape[2:], kernel, strides, dilations, pads)
    if mode is None and node.op == "avg_pool" and not a.get("count_include_pad"):
        return f"pads {list(pads)} are neither TFLite's SAME nor VALID, and the padding is not counted (a PAD's zeros would be)"
    if mode is None and node.op == "max_pool" and not pads_with_zero_point_exactly(node.inputs[0]):
        return (f"pads {list(pads)} are neither TFLite's SAME nor VALID, and the input may lie below its zero "
                f"point, which a PAD fills in")
    if (mode is None or pads_counted_in_average(node)) and (max(pads) >= max(kernel) or max(pads) > _MAX_PAD):
        return f"pads {list(pads)} exceed what Ethos-U takes as a PAD before a {kind}"
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
    return None


def _qadd(node) -> str | None:
    a, b = node.inputs[0].type, node.inputs[1].type
    if a.shape != b.shape:
        return f"broadcast add {list(a.shape)} + {list(b.shape)}: only equal shapes"
    if node.inputs[0].const is not None or node.inputs[1].const is not None:
        return "constant operand"
    return None


def requantize_multiplier(node) -> float | None:
    """The one multiplier of a per-tensor requantize with a constant positive multiplier."""
    m = node.inputs[1].const
    if node.attrs.get("axis") is not None or m is None or np.size(m) != 1 or not float(np.asarray(m).reshape(-1)[0]) > 0:
        return None
    return float(np.asarray(m).reshape(-1)[0])


def _requantize(node) -> str | None:
    if requantize_multiplier(node) is None:
        return "per-channel or run-time multiplier: QUANTIZE rescales a tensor by one constant factor"
    return None


def _max_pool(node) -> str | None:
    if node.attrs.get("ceil_mode"):
        return "ceil_mode pooling"
    return _window(node, "pooling")


def flattens_into_dense(node) -> bool:
    """A flatten of an NCHW tensor with space and channels ([1, C, H, W] -> [1, C*H*W]) read only
    by qdense layers: on NHWC data it is exact once their weight rows are permuted to match."""
    x, y = node.inputs[0].type, node.outputs[0].type
    return (x.rank == 4 and y.rank == 2 and y.shape == (1, x.size) and not node.outputs[0].is_graph_output
            and bool(node.outputs[0].uses)
            and all(u.op == "qdense" and i == 0 and u.inputs[1].const is not None for u, i in node.outputs[0].uses))


def _reshape(node) -> str | None:
    x, y = node.inputs[0].type, node.outputs[0].type
    if x.rank == 4 and x.shape[2] * x.shape[3] != 1 and x.shape[1] != 1 and y.rank != 4 \
            and not flattens_into_dense(node):
        return "reshape of an NCHW tensor with space and channels not read by dense layers: NHWC order differs"
    if y.rank == 4 and y.shape[2] * y.shape[3] != 1 and y.shape[1] != 1 and x.rank != 4:
        return "reshape into an NCHW tensor with space and channels: NHWC element order differs"
    if x.rank == 4 and y.rank == 4 and x.shape != y.shape:
        return "4-D to 4-D reshape"
    return None


def per_tensor_int8(node) -> tuple[float, int] | None:
    """(scale, zero point) of a per-tensor int8 quantize/dequantize with constant parameters."""
    int8 = node.outputs[0] if node.op == "quantize" else node.inputs[0]
    scale, zp = node.inputs[1], node.inputs[2]
    if int8.type.dtype != "int8" or scale.const is None or scale.type.size != 1:
        return None
    if zp is not None and zp.const is None:
        return None
    return float(np.asarray(scale.const).reshape(-1)[0]), int(np.asarray(zp.const).reshape(-1)[0]) if zp is not None else 0


def int8_pool_params(node) -> tuple[list[tuple[float, int]], tuple[float, int]] | str:
    """For a float op between per-tensor int8 dequantizes and a quantize: ([(in scale, zp) per
    input], (out scale, zp)), else why it is not such an op."""
    ins = []
    for v in node.inputs:
        producer = v.producer if v is not None else None
        if producer is None or producer.op != "dequantize" or per_tensor_int8(producer) is None:
            return f"float {node.op} not fed by per-tensor int8 dequantizes"
        ins.append(per_tensor_int8(producer))
    readers = [u for u, _ in node.outputs[0].uses]
    if node.outputs[0].is_graph_output or not readers or any(
            u.op != "quantize" or per_tensor_int8(u) is None for u in readers):
        return f"float {node.op} not read only by per-tensor int8 quantizes"
    outs = {per_tensor_int8(u) for u in readers}
    if len(outs) != 1:
        return f"float {node.op} quantized twice with different parameters"
    return ins, outs.pop()


def _int8_pool(node) -> str | None:
    params = int8_pool_params(node)
    if isinstance(params, str):
        return params
    x = node.inputs[0].type
    if node.op == "concat":
        if x.rank not in (2, 4) or x.shape[0] != 1 or len(node.inputs) < 2:
            return f"concatenation of {list(x.shape)} tensors: only [1, C] or [1, C, H, W]"
        return None
    if x.rank != 4 or x.shape[0] != 1:
        return f"pooling of a {list(x.shape)} tensor: only [1, C, H, W]"
    if node.op == "avg_pool":
        if params[0][0] != params[1]:
            return "average pooling that changes scale or zero point (TFLite's int8 AVERAGE_POOL_2D keeps them)"
        if node.attrs.get("ceil_mode"):
            return "ceil_mode pooling"
        return _window(node, "pooling")
    return None


def _dequantize(node) -> str | None:
    if node.outputs[0].is_graph_output:
        return "it makes the model's float output"
    if per_tensor_int8(node) is None:
        return "not a per-tensor int8 dequantize with constant parameters"
    users = [u for u, _ in node.outputs[0].uses]
    if node.outputs[0].is_graph_output or not users or any(u.op not in _INT8_POOLS or _int8_pool(u) for u in users):
        return "its float result goes to ops other than the pooling or concatenation Ethos-U takes on int8 data"
    return None


def _quantize(node) -> str | None:
    producer = node.inputs[0].producer
    if producer is None and node.inputs[0].const is None:
        return "it quantizes the model's float input"
    if per_tensor_int8(node) is None:
        return "not a per-tensor int8 quantize with constant parameters"
    if producer is None or producer.op not in _INT8_POOLS or _int8_pool(producer):
        return "it quantizes a float result that is not a pooling or concatenation Ethos-U takes on int8 data"
    return None


_PATTERN_CHECKS = {"global_avg_pool": _int8_pool, "avg_pool": _int8_pool, "concat": _int8_pool,
                   "dequantize": _dequantize,
                   "quantize": _quantize}
_CHECKS = {"qconv": _qconv, "qdense": _qdense, "qadd": _qadd, "max_pool": _max_pool, "reshape": _reshape,
           "requantize": _requantize, "clip": lambda node: None}


def unsupported_reason(node) -> str | None:
    """None when Ethos-U takes `node`, else one line saying why it stays on the CPU."""
    if node.op in _PATTERN_CHECKS:  # float ops on int8 data: their own dtype rules
        return _PATTERN_CHECKS[node.op](node)
    check = _CHECKS.get(node.op)
    if check is None:
        if any(v.type.dtype.startswith(("float", "bfloat")) for v in node.outputs):
            return f"{node.op} on float tensors: Ethos-U runs int8 ops only"
        return f"{node.op} is not in Ethos-U's operator table ({', '.join(_CHECKS)}, int8 pooling)"
    return _int8_only(node) or check(node)
