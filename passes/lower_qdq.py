"""lower-qdq: dequantize -> float op -> quantize patterns become integer kernels.

    quantize(act?(conv(dequantize(x), dequantize(W), b?)))          -> qconv(x, W, b', m)
    quantize(act?(add?(matmul(dequantize(x), dequantize(W)), b)))   -> qdense(x, W, b', m)
    quantize(act?(add(dequantize(a), dequantize(b))))                -> qadd(a, b)
    quantize(T(dequantize(x))), T moving or selecting data           -> T(x), or requantize(T(x))
    quantize(dequantize(x))                                           -> x, or requantize(x)
    conv / matmul(dequantize(x), dequantize(W)) read as float         -> qconv / qdense, float32 epilogue
    dequantize(constant) left over                                    -> float constant

`act` (relu, clip) becomes the output clamp; T is max_pool, reshape, transpose, slice, relu, clip
and the like. Weights are constants quantized per tensor or per output channel; a nonzero weight
zero point makes them int16 (w - zp). The data's zero point moves into the int32 bias, float
biases are quantized to the accumulator's scale. Imported QDQ models (ONNX Runtime's
`quantize_static`) and the `quantize` pass both produce these patterns.
Run after fold-batch-norm, before convert-layout and fuse.
"""

from __future__ import annotations

import numpy as np

from edgecc.ir import Graph, Node, QuantParams, Value, static_value
from edgecc.ir import quant_arith as qk
from edgecc.ir.ops.quant import INT_RANGE, dequantize_array, quant_params_of

from .base import Pass, PassContext, register_pass
from .fold_constants import replace_with_constants
from .rewrite import Builder, Match, MatchResult, Pattern, RewriteRule, any_, apply_rewrites, op

#: ops that move or select elements without computing new values: they run on the integers
TRANSPARENT = ("max_pool", "global_max_pool", "reshape", "transpose", "squeeze", "unsqueeze", "slice",
               "identity", "layout_transform", "relu", "clip")
_DATA_TYPES = ("int8", "uint8", "int16")


class _Maybe(Pattern):
    """An optional input: matches a value or a missing one, binding the value if present."""

    def __init__(self, name: str):
        self.name = name

    def match(self, value, m):
        if value is not None:
            m.values[self.name] = value
        return True


def _dq(name: str) -> Pattern:
    return op("dequantize", name=name, any_inputs=True)


def _per_tensor(node: Node) -> QuantParams | None:
    p = quant_params_of(node)
    return p if p is not None and not p.per_channel else None


def _same(a: QuantParams, a_dtype: str, b: QuantParams, b_dtype: str) -> bool:
    return a_dtype == b_dtype and a.zero_point == b.zero_point and np.float32(a.scale[0]) == np.float32(b.scale[0])


def _data_params(m: Match, name: str):
    """(params, reason) of a per-tensor dequantized activation."""
    node = m.node(name)
    p = _per_tensor(node)
    if p is None:
        return None, f"{node.name}: data parameters are not per-tensor constants"
    if node.inputs[0].dtype not in _DATA_TYPES:
        return None, f"{node.name}: data is {node.inputs[0].dtype}"
    return p, None


def _weight(m: Match, out_axis: int):
    """(integer weights without zero point, per-channel scales, reason) of a dequantized constant."""
    node = m.node("dq_w")
    w = static_value(node.inputs[0])
    p = quant_params_of(node)
    if w is None or p is None:
        return None, None, f"{node.name}: weights are not constant"
    if str(w.dtype) not in INT_RANGE or str(w.dtype) == "int32":
        return None, None, f"{node.name}: weights are {w.dtype}"
    if p.per_channel and p.axis != out_axis % w.ndim:
        return None, None, f"{node.name}: weights are quantized along axis {p.axis}, not the output axis"
    try:
        wi = qk.weight_as_signed(w, np.asarray(p.zero_point), out_axis % w.ndim)
    except ValueError as exc:
        return None, None, f"{node.name}: {exc}"
    return wi, np.asarray(p.scale, np.float32), None


def _bias(value: Value | None, x_scale, w_scale):
    """(int32 bias in the accumulator's scale or None, reason)."""
    if value is None:
        return None, None
    if value.producer is not None and value.producer.op == "dequantize":
        dq = value.producer
        data, p = static_value(dq.inputs[0]), quant_params_of(dq)
        if data is None or p is None or str(data.dtype) != "int32":
            return None, "bias is not a constant int32 tensor"
        data = np.asarray(data, np.int64) - np.asarray(p.zero_point, np.int64).reshape(-1 if p.per_channel else ())
        return qk.rescale_bias(data, np.asarray(p.scale), x_scale, w_scale), None
    data = static_value(value)
    if data is None or not str(data.dtype).startswith("float"):
        return None, "bias is not a float constant"
    return qk.quantize_bias(data, x_scale, w_scale), None


def _clamp(act: Node | None, y: QuantParams, dtype: str):
    """(out_min, out_max) of a fused relu/clip in the output's integers (None: the dtype's bound)."""
    if act is None:
        return None, None
    zp, s = y.zero_point[0], np.float32(y.scale[0])
    if act.op == "relu":
        lo, hi = zp, None
    else:
        lo = None if act.attrs["min"] is None else zp + int(np.rint(np.float32(act.attrs["min"]) / s))
        hi = None if act.attrs["max"] is None else zp + int(np.rint(np.float32(act.attrs["max"]) / s))
    rlo, rhi = INT_RANGE[dtype]
    lo = None if lo is None or lo <= rlo else min(lo, rhi)
    hi = None if hi is None or hi >= rhi else max(hi, rlo)
    return lo, hi


def _with_act(inner: Pattern, act: bool) -> Pattern:
    return op(("relu", "clip"), inner, name="act", single_use=True) if act else inner


def _quantized(inner: Pattern) -> Pattern:
    return op("quantize", inner, any_(), _Maybe("y_zp"), name="q")


def _out_params(m: Match):
    q = m.node("q")
    p = _per_tensor(q)
    if p is None:
        return None, f"{q.name}: output parameters are not per-tensor constants"
    return p, None


# ----- anchors: conv and matmul ------------------------------------------------------------------
class _Anchor(RewriteRule):
    """Shared check/rewrite of the conv and matmul rules; subclasses set the pattern and the op."""

    kernel = ""  # qconv | qdense
    out_axis = 0  # the weight's output-channel axis
    requantized = True  # False: float32 output

    def check(self, m):
        anchor = m.node("anchor")
        if self.kernel == "qconv" and any(anchor.attrs[k] for k in ("layout", "kernel_layout", "out_layout")):
            return MatchResult.fail("convolution is already in a blocked layout")
        if self.kernel == "qdense" and (m.node("dq_w").inputs[0].type.rank != 2 or anchor.inputs[0].type.rank < 1):
            return MatchResult.fail("matmul weight is not a [K, N] matrix")
        px, why = _data_params(m, "dq_x")
        if why:
            return MatchResult(why)
        w, w_scale, why = _weight(m, self.out_axis)
        if why:
            return MatchResult(why)
        bias_value = m.values.get("bias")
        if self.kernel == "qdense" and bias_value is not None and bias_value.type.size != w.shape[1]:
            return MatchResult.fail("the added operand is not a per-column bias")
        bias, why = _bias(bias_value, px.scale, w_scale)
        if why:
            return MatchResult(why)
        try:
            bias = qk.integer_bias(w, self.out_axis, px.zero_point[0], bias)
        except ValueError as exc:
            return MatchResult.fail(str(exc))
        if self.requantized:
            py, why = _out_params(m)
            if why:
                return MatchResult(why)
            dtype = m.node("q").output.dtype
            if dtype not in ("int8", "uint8", "int16"):
                return MatchResult.fail(f"output type {dtype}")
            lo, hi = _clamp(m.nodes.get("act"), py, dtype)
            mult = qk.multiplier(px.scale, w_scale, py.scale)
            epilogue = dict(dtype=dtype, out_zero_point=py.zero_point[0], out_min=lo, out_max=hi)
        else:
            mult = qk.multiplier(px.scale, w_scale)
            epilogue = dict(dtype="float32")
        m["plan"] = (w, bias, mult, dict(data_zero_point=px.zero_point[0], **epilogue))
        return MatchResult.ok()

    def rewrite(self, b: Builder, m):
        w, bias, mult, attrs = m["plan"]
        anchor = m.node("anchor")
        if self.kernel == "qconv":
            keep = ("strides", "pads", "dilations", "group")
            attrs = dict(attrs, **{k: anchor.attrs[k] for k in keep})
        mult = mult if np.unique(mult).size > 1 else mult[:1]
        inputs = [m.node("dq_x").inputs[0], b.const(w, f"{anchor.name}.w"),
                  None if bias is None else b.const(bias, f"{anchor.name}.bias"), b.const(mult, f"{anchor.name}.mult")]
        return b(self.kernel, *inputs, name=anchor.name, **attrs)


_CONV = op("conv", _dq("dq_x"), _dq("dq_w"), _Maybe("bias"), name="anchor", single_use=True)
_MATMUL = op("matmul", _dq("dq_x"), _dq("dq_w"), name="anchor", single_use=True)
_MATMUL_BIAS = op("add", _MATMUL, any_("bias"), name="bias_add", single_use=True)


def _rule(name: str, kernel: str, pattern: Pattern, out_axis: int, requantized: bool) -> RewriteRule:
    cls = type(name, (_Anchor,), {"kernel": kernel, "pattern": pattern, "out_axis": out_axis,
                                  "requantized": requantized})
    return cls()


def _anchor_rules() -> list[RewriteRule]:
    rules = []
    for act in (True, False):
        suffix = "Act" if act else ""
        rules.append(_rule(f"QConv{suffix}", "qconv", _quantized(_with_act(_CONV, act)), 0, True))
        rules.append(_rule(f"QDenseBias{suffix}", "qdense", _quantized(_with_act(_MATMUL_BIAS, act)), -1, True))
        rules.append(_rule(f"QDense{suffix}", "qdense", _quantized(_with_act(_MATMUL, act)), -1, True))
    return rules


def _float_out_rules() -> list[RewriteRule]:
    conv = op("conv", _dq("dq_x"), _dq("dq_w"), _Maybe("bias"), name="anchor")
    matmul = op("matmul", _dq("dq_x"), _dq("dq_w"), name="anchor")
    return [_rule("QConvFloat", "qconv", conv, 0, False), _rule("QDenseFloat", "qdense", matmul, -1, False)]


# ----- elementwise and data movement ------------------------------------------------------------------
class QAdd(RewriteRule):
    """quantize(act?(add(dequantize(a), dequantize(b)))) -> qadd(a, b)."""

    def __init__(self, act: bool):
        self.pattern = _quantized(_with_act(op("add", _dq("dq_a"), _dq("dq_b"), name="add", single_use=True), act))

    def check(self, m):
        pa, why = _data_params(m, "dq_a")
        pb, why_b = _data_params(m, "dq_b")
        py, why_y = _out_params(m)
        if why or why_b or why_y:
            return MatchResult(why or why_b or why_y)
        dtype = m.node("q").output.dtype
        lo, hi = _clamp(m.nodes.get("act"), py, dtype)
        m["attrs"] = dict(a_scale=pa.scale[0], a_zero_point=pa.zero_point[0], b_scale=pb.scale[0],
                          b_zero_point=pb.zero_point[0], scale=py.scale[0], out_zero_point=py.zero_point[0],
                          dtype=dtype, out_min=lo, out_max=hi)
        return MatchResult.ok()

    def rewrite(self, b, m):
        return b("qadd", m.node("dq_a").inputs[0], m.node("dq_b").inputs[0], name=m.node("add").name, **m["attrs"])


def _requantize(b: Builder, x: Value, src: QuantParams, dst: QuantParams, dtype: str, name: str,
                lo=None, hi=None) -> Value:
    mult = np.float32(src.scale[0]) / np.float32(dst.scale[0])
    return b("requantize", x, b.const(np.array([mult], np.float32), f"{name}.mult"), name=name,
             in_zero_point=src.zero_point[0], out_zero_point=dst.zero_point[0], dtype=dtype, out_min=lo, out_max=hi)


class Transparent(RewriteRule):
    """quantize(T(dequantize(x))) -> T(x) on the integers (requantized when the parameters differ)."""

    pattern = _quantized(op(TRANSPARENT, _dq("dq_x"), name="t", single_use=True))

    def check(self, m):
        px, why = _data_params(m, "dq_x")
        py, why_y = _out_params(m)
        return MatchResult(why or why_y)

    def rewrite(self, b, m):
        t, dq, q = m.node("t"), m.node("dq_x"), m.node("q")
        x = dq.inputs[0]
        px, py = _per_tensor(dq), _per_tensor(q)
        lo = hi = None
        if t.op in ("relu", "clip"):  # a clamp in the input's integers
            lo, hi = _clamp(t, px, x.dtype)
            moved = b("clip", x, name=t.name, min=lo, max=hi) if (lo, hi) != (None, None) else x
        else:
            moved = b(t.op, x, *t.inputs[1:], name=t.name, **t.attrs)
        if _same(px, x.dtype, py, q.output.dtype):
            return moved
        return _requantize(b, moved, px, py, q.output.dtype, f"{q.name}.requant")


class QdqPair(RewriteRule):
    """quantize(dequantize(x)) -> x when the parameters agree, else requantize(x)."""

    pattern = _quantized(_dq("dq_x"))

    def check(self, m):
        px, why = _data_params(m, "dq_x")
        py, why_y = _out_params(m)
        return MatchResult(why or why_y)

    def rewrite(self, b, m):
        dq, q = m.node("dq_x"), m.node("q")
        px, py = _per_tensor(dq), _per_tensor(q)
        if _same(px, dq.inputs[0].dtype, py, q.output.dtype):
            return dq.inputs[0]
        return _requantize(b, dq.inputs[0], px, py, q.output.dtype, f"{q.name}.requant")


# ----- constant weights behind transposes and reshapes ---------------------------------------------------
class MoveDequantize(RewriteRule):
    """transpose/reshape(dequantize(constant)) -> dequantize(transposed/reshaped constant)."""

    pattern = op(("transpose", "reshape"), _dq("dq"), name="t")

    def check(self, m):
        dq = m.node("dq")
        p = quant_params_of(dq)
        if static_value(dq.inputs[0]) is None or p is None:
            return MatchResult.fail("not a constant with constant parameters")
        if p.per_channel and m.node("t").op == "reshape":
            return MatchResult.fail("reshape of per-channel parameters")
        return MatchResult.ok()

    def rewrite(self, b, m):
        dq, t = m.node("dq"), m.node("t")
        data = static_value(dq.inputs[0])
        axis = dq.attrs["axis"]
        if t.op == "transpose":
            perm = t.attrs["perm"] or tuple(reversed(range(data.ndim)))
            moved = np.ascontiguousarray(np.transpose(data, perm))
            if axis is not None:
                axis = list(perm).index(axis % data.ndim)
        else:
            moved = data.reshape(t.output.type.shape)
        return b("dequantize", b.const(moved, f"{dq.inputs[0].name}.{t.op}"), *dq.inputs[1:], name=dq.name,
                 axis=axis)


def fold_constant_dequantize(graph: Graph) -> bool:
    """Replace dequantize nodes of constants (with constant parameters) by float constants."""
    changed = False
    for node in list(graph.nodes):
        if node.op != "dequantize":
            continue
        data, scale = static_value(node.inputs[0]), static_value(node.inputs[1])
        zp = static_value(node.inputs[2]) if node.input(2) is not None else None
        if data is None or scale is None or (node.input(2) is not None and zp is None):
            continue
        axis = node.attrs["axis"]
        axis = None if axis is None else axis % max(data.ndim, 1)
        replace_with_constants(graph, node, [dequantize_array(data, scale, zp, axis)])
        changed = True
    if changed:
        graph.remove_unused_constants()
    return changed


@register_pass
class LowerQdq(Pass):
    """Rewrite dequantize -> op -> quantize patterns to integer kernels (qconv, qdense, qadd, ...)."""

    name = "lower-qdq"
    fold_weights: bool = True  # fold dequantize(constant) left over into float constants

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        if not any(n.op in ("quantize", "dequantize") for n in graph.nodes):
            return False
        changed = apply_rewrites(graph, [MoveDequantize()], ctx)
        changed |= apply_rewrites(graph, _anchor_rules() + [QAdd(True), QAdd(False), Transparent(), QdqPair()], ctx)
        changed |= apply_rewrites(graph, _float_out_rules(), ctx)
        if self.fold_weights:
            changed |= fold_constant_dequantize(graph)
        if changed:
            graph.remove_unused_constants()
        return changed
