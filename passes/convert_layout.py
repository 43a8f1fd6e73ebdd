"""convert-layout: move convolutions to the target's blocked layout and pack matmul weights.

    conv(x: NCHW, w: OIHW)          -> conv(x': NCHW{b}c, w': OIHW{b}i{b'}o) : NCHW{b'}c
    matmul(x, W: const [K, N])      -> dense(x, W': (N/b, K, b))

The integer kernels get the same treatment: qconv (int8/uint8 data) goes blocked with its bias and
multiplier in [1, C/b, 1, 1, b], qdense gets the packed weight; per-tensor quantize, dequantize and
requantize follow the blocked layout. On targets whose int8 kernels multiply input channels in
groups of g (`target.int8_dot_channels`: 2 for AVX2's vpmaddwd, 4 for VNNI's vpdpbusd;
`target.int8_narrow_dot_channels` for weights within [-64, 64]) qconv weights are
OIHW{b/g}i{b'}o{g}i; with groups of four (VNNI) 8-bit qdense weights are (N/b, K/4, b, 4).

b is chosen from the channel count alone (16 or 8 when they divide it, for SIMD width 8), so a
producer's output block always equals its consumer's input block. Weights are rearranged at
compile time. Ops that work in the blocked layout follow it (elementwise ops, per-channel
broadcasts, pooling, channel concat); each converted value keeps a plain twin
(`layout_transform` back to NCHW) that only survives where an op needs plain data, so the graph
boundary pays and the rest cancels. `layout=NCHWc|none` overrides the target's choice.
Run after fold-batch-norm and before fuse.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from edgecc.errors import TargetError

from edgecc.ir import Graph, Node, Trait, Value, layout_of

from .base import Pass, PassContext, register_pass
from .eliminate_dead_code import erase_dead_nodes

#: int32 lanes of the narrowest dot-product vector (x86 vpdpbusd on 256 bits; two of AArch64's sdot)
DOT_VECTOR = 8
_POOLS = ("max_pool", "avg_pool", "global_avg_pool", "global_max_pool")
#: quantization ops that run unchanged in a blocked layout when their parameters are per tensor
_PER_TENSOR_QUANT = ("quantize", "dequantize", "requantize")


def choose_block(channels: int, lanes: int, dot_product: bool = False) -> int:
    """Channel block for a tensor with `channels` channels and `lanes`-wide SIMD: two or one whole
    vectors, else (`dot_product`: integer convolutions) the widest multiple of 8 lanes dividing
    the channels, else their widest divisor up to `lanes`. On 16-lane int8 graphs 24 channels then
    take blocks of 8, not 12: vpdpbusd on whole ymm registers instead of three xmm ones
    (MobileNetV2's 24-channel 1x1 convs, 2 threads: 0.097 -> 0.046 and 0.152 -> 0.075 ms); float32
    convolutions keep 12 (blocks of 8 made MobileNetV2's fused 24-channel kernels 4-14% slower)."""
    for b in (2 * lanes, lanes):
        if channels % b == 0:
            return b
    eights = [b for b in range(8, lanes + 1, 8) if channels % b == 0] if dot_product else []
    if eights:
        return max(eights)
    return max(d for d in range(1, lanes + 1) if channels % d == 0)


class _Converter:
    def __init__(self, graph: Graph, lanes: int, int8_group: int = 1, int8_narrow_group: int = 1):
        self.graph = graph
        self.lanes = lanes
        self.int8_group = int8_group  # int8 qconv weights with groups of input channels innermost
        self.int8_narrow_group = int8_narrow_group  # the same for weights within [-64, 64]
        self.blocked: dict[int, dict[str, Value]] = {}  # plain value -> layout -> blocked twin
        self.changed = False  # a node was replaced

    # ----- value bookkeeping ------------------------------------------------------------
    def blocked_twin(self, value: Value, layout: str, before: Node) -> Value:
        """`value` (plain NCHW) in `layout`, reusing or creating a layout_transform."""
        twins = self.blocked.setdefault(id(value), {})
        if layout in twins:
            return twins[layout]
        if twins:  # re-block from an existing twin rather than from plain data
            src_layout, src = next(iter(twins.items()))
            node = self.graph.create_node("layout_transform", [src], {"src": src_layout, "dst": layout},
                                          name=f"{value.name}.{layout}", before=before)
        else:
            node = self.graph.create_node("layout_transform", [value], {"src": "NCHW", "dst": layout},
                                          name=f"{value.name}.{layout}", before=before)
        twins[layout] = node.output
        return node.output

    def publish(self, old: Node, new: Value, layout: str) -> None:
        """Make `new` (blocked) the result of `old`; readers get a plain twin of it."""
        name = old.output.name
        plain = self.graph.create_node("layout_transform", [new], {"src": layout, "dst": "NCHW"},
                                       name=f"{name}.plain", after=new.producer).output
        output = old.output.is_graph_output
        self.graph.replace_value(old.output, plain)
        self.changed = True
        self.graph.erase_node(old)
        if not output:  # the blocked value carries the original name; its plain twin is `.plain`
            self.graph.rename_value(plain, f"{name}.plain")
            self.graph.rename_value(new, name)
        self.blocked[id(plain)] = {layout: new}

    def layout_of_value(self, value: Value) -> str | None:
        twins = self.blocked.get(id(value))
        return next(iter(twins)) if twins else None

    # ----- rules per op -----------------------------------------------------------------
    def convert(self, node: Node) -> None:
        op = node.op
        if op in ("conv", "qconv") and self._conv_convertible(node):
            self.conv(node)
        elif op == "matmul":
            self.matmul(node)
        elif op == "qdense":
            self.qdense(node)
        elif op in _PER_TENSOR_QUANT and node.attrs["axis"] is None:
            self.follow_unary(node)
        elif op in _POOLS and node.inputs[0].type.rank == 4 and node.attrs.get("layout") is None:
            self.follow_unary(node, layout_attr=True)
        elif node.opdef.has(Trait.LAYOUT_AGNOSTIC) and len(node.outputs) == 1:
            self.follow_unary(node)
        elif node.opdef.has(Trait.BROADCAST) and len(node.outputs) == 1:
            self.follow_broadcast(node)
        elif op == "concat":
            self.concat(node)

    @staticmethod
    def _conv_convertible(node: Node) -> bool:
        x, w = node.inputs[0].type, node.inputs[1].type
        dtypes = ("float32",) if node.op == "conv" else ("int8", "uint8", "int16")
        if x.rank != 4 or x.dtype not in dtypes or node.inputs[1].const is None:
            return False
        if node.attrs["layout"] or node.attrs["kernel_layout"]:
            return False
        groups = node.attrs["group"]
        return groups == 1 or (groups == x.shape[1] == w.shape[0] and w.shape[1] == 1)

    def conv(self, node: Node) -> None:
        x, w, b = node.inputs[:3]
        cin, cout = x.type.shape[1], w.type.shape[0]
        depthwise = node.attrs["group"] > 1
        integer = node.op == "qconv"
        ib = choose_block(cin, self.lanes, integer)
        ob = ib if depthwise else choose_block(cout, self.lanes, integer)
        data_layout, out_layout = f"NCHW{ib}c", f"NCHW{ob}c"
        kernel_layout = f"OIHW1i{ob}o" if depthwise else f"OIHW{ib}i{ob}o"
        g = self._int8_group(w.const, ob)
        eight_bit = x.type.dtype in ("int8", "uint8") and w.type.dtype == "int8"
        if node.op == "qconv" and g > 1 and not depthwise and ib % g == 0 and eight_bit:
            kernel_layout = f"OIHW{ib // g}i{ob}o{g}i"
        packed = layout_of(kernel_layout).from_plain(w.const, "OIHW")
        xb = self.blocked_twin(x, data_layout, node)
        wb = self.graph.add_constant(packed, f"{w.name}.{kernel_layout}")
        bb = None
        if b is not None:
            bb = self._per_channel(b, cout, out_layout, node)
        inputs = [xb, wb, bb]
        if node.op == "qconv":  # the requantization multiplier is per channel like the bias
            mult = node.inputs[3]
            if mult is not None and mult.type.size > 1:
                mult = self._per_channel(mult, cout, out_layout, node)
            inputs.append(mult)
        attrs = dict(node.attrs, layout=data_layout, kernel_layout=kernel_layout, out_layout=out_layout)
        new = self.graph.create_node(node.op, inputs, attrs, name=node.name, before=node).output
        self.publish(node, new, out_layout)

    def _int8_group(self, weight, out_block: int) -> int:
        """Input channels per multiply-add group for these int8 weights (groups of four need
        output blocks of a multiple of 4)."""
        narrow = weight.size and weight.min() >= -64 and weight.max() <= 64
        g = self.int8_narrow_group if narrow else self.int8_group
        return g if g != 4 or out_block % 4 == 0 else min(self.int8_group, 2)

    def _per_channel(self, value: Value, channels: int, layout: str, before: Node) -> Value:
        """A length-C (or [C,1,1]) per-channel operand as a [1, C/b, 1, 1, b] tensor."""
        plain = self._as_nchw(value, channels, before)
        return self.blocked_twin(plain, layout, before)

    def _as_nchw(self, value: Value, channels: int, before: Node) -> Value:
        if value.type.rank == 4:
            return value
        return self.graph.create_node("reshape", [value], {"shape": (1, channels, 1, 1)},
                                      name=f"{value.name}.nchw", before=before).output

    def follow_unary(self, node: Node, layout_attr: bool = False) -> None:
        x = node.inputs[0]
        layout = self.layout_of_value(x)
        if layout is None:
            return
        attrs = dict(node.attrs, layout=layout) if layout_attr else dict(node.attrs)
        new = self.graph.create_node(node.op, [self.blocked[id(x)][layout]] + list(node.inputs[1:]), attrs,
                                     name=node.name, before=node).output
        self.publish(node, new, layout)

    def follow_broadcast(self, node: Node) -> None:
        out = node.output.type
        if out.rank != 4:
            return
        layouts = {self.layout_of_value(v) for v in node.inputs if v is not None} - {None}
        if len(layouts) != 1:
            return
        layout = layouts.pop()
        channels = out.shape[1]
        new_inputs = []
        for v in node.inputs:
            if v is None:
                new_inputs.append(None)
            elif self.layout_of_value(v) == layout:
                new_inputs.append(self.blocked[id(v)][layout])
            elif v.type.shape == out.shape:
                new_inputs.append(self.blocked_twin(v, layout, node))
            elif _per_channel_shape(v.type.shape, channels):
                new_inputs.append(self._per_channel(v, channels, layout, node))
            elif v.type.size == 1:
                new_inputs.append(self._scalar(v, node))
            else:
                return
        new = self.graph.create_node(node.op, new_inputs, dict(node.attrs), name=node.name, before=node).output
        self.publish(node, new, layout)

    def _scalar(self, value: Value, before: Node) -> Value:
        if value.type.rank == 0:
            return value
        return self.graph.create_node("reshape", [value], {"shape": ()}, name=f"{value.name}.scalar",
                                      before=before).output

    def concat(self, node: Node) -> None:
        if node.attrs["axis"] % 4 != 1 or node.output.type.rank != 4:
            return
        if not all(self.layout_of_value(v) for v in node.inputs):
            return
        b = min(layout_of(self.layout_of_value(v)).block("C") for v in node.inputs)
        if any(v.type.shape[1] % b for v in node.inputs):
            return
        layout = f"NCHW{b}c"
        inputs = [self.blocked_twin(v, layout, node) for v in node.inputs]
        new = self.graph.create_node("concat", inputs, {"axis": 1}, name=node.name, before=node).output
        self.publish(node, new, layout)

    def matmul(self, node: Node) -> None:
        a, w = node.inputs
        if a.type.rank < 1 or w.type.dtype != "float32":
            return
        wp = self._packed_weight(w)
        if wp is not None:
            self._replace(node, self.graph.create_node("dense", [a, wp], name=node.name, before=node).output)

    def qdense(self, node: Node) -> None:
        """qdense with a constant [K, N] weight: (N/b, K/4, b, 4) for 8-bit operands when the
        target sums four products per int32 lane for these weights (VNNI; AVX2's vpmaddubsw for
        7-bit ones), else the same (N/b, K, b) packing as dense."""
        x, w = node.inputs[:2]
        quads = (w.const is not None and x.type.dtype in ("int8", "uint8") and w.type.dtype == "int8"
                 and self._int8_group(w.const, 4) == 4)
        wp = self._packed_weight(w, 4 if quads else 1)
        if wp is not None:
            inputs = [node.inputs[0], wp, *node.inputs[2:]]
            self._replace(node, self.graph.create_node("qdense", inputs, dict(node.attrs), name=node.name,
                                                       before=node).output)

    def _packed_weight(self, w: Value, group: int = 1) -> Value | None:
        """A constant [K, N] weight as (N/b, K, b), b two or one SIMD widths, or with `group` 4 as
        (N/b, K/4, b, 4) when K divides into fours; None when it does not fit. With no whole SIMD
        width dividing N, b is the widest multiple of a step dividing N up to four SIMD widths: with
        `group` 4 of 8 (one 256-bit int32 vector, the narrowest dot-product vector), else of half
        a SIMD width (the matmul rule's tile): 1000 classes -> 40 (a float classifier read in
        contiguous blocks: MobileNetV2's 0.163 -> 0.132 ms, ResNet-18's 0.097 -> 0.079 ms). A float
        weight of at most four SIMD widths of columns that none of these divides is one block of all
        of them (a 10-class classifier), which the dense rule tiles like any other."""
        if w.const is None or w.type.rank != 2:
            return None
        k, n = w.type.shape
        block = next((b for b in (2 * self.lanes, self.lanes) if n % b == 0), None)
        step = DOT_VECTOR if group == 4 else self.lanes // 2  # (float: half vectors, as the matmul rule)
        if block is None and step >= 4:
            block = max((b for b in range(step, 4 * self.lanes + 1, step) if n % b == 0), default=None)
        if block is None and w.type.dtype == "float32" and 2 <= n <= 4 * self.lanes:
            block = n  # a few columns that no vector divides (a 10-class classifier): one block
        if block is None:
            return None
        if group == 4 and k % 4 == 0:
            quads = w.const.reshape(k // 4, 4, n // block, block).transpose(2, 0, 3, 1)
            return self.graph.add_constant(np.ascontiguousarray(quads), f"{w.name}.packed{block}x4")
        packed = np.ascontiguousarray(w.const.reshape(k, n // block, block).transpose(1, 0, 2))
        return self.graph.add_constant(packed, f"{w.name}.packed{block}")

    def _replace(self, node: Node, new: Value) -> None:
        self.graph.replace_value(node.output, new)
        self.changed = True
        self.graph.erase_node(node)


def _per_channel_shape(shape: tuple[int, ...], channels: int) -> bool:
    """[C], [C,1,1] or [1,C,1,1]: broadcasts along channels only (NCHW)."""
    padded = (1,) * (4 - len(shape)) + tuple(shape) if len(shape) <= 4 else None
    return padded is not None and padded[1] == channels and channels > 1 and all(
        d == 1 for i, d in enumerate(padded) if i != 1) and len(shape) != 1


@register_pass
class ConvertLayout(Pass):
    """Blocked NCHW{b}c convolutions with packed weights; packed dense weights for matmul."""

    name = "convert-layout"
    layout: Literal["target", "NCHWc", "none"] = "target"
    lanes: int = 0  # SIMD lanes for float32 (0: from the target)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        layout = self.layout
        if layout == "target":  # without a target: the generic CPU choice
            layout = ctx.target.preferred_layout or "none" if ctx.target is not None else "NCHWc"
        if layout is None or layout.lower() == "none":
            return False
        if layout != "NCHWc":
            raise TargetError(f"target layout {layout!r} is not supported by convert-layout (NCHWc or none)")
        lanes = self.lanes or (ctx.target.lanes("float32") if ctx.target is not None else 8)
        target = ctx.target
        dots = (target.int8_dot_channels, target.int8_narrow_dot_channels) if target is not None else (1, 1)
        converter = _Converter(graph, lanes, *dots)
        for node in list(graph.nodes):
            if node.graph is graph and node in graph.nodes:
                converter.convert(node)
        cleaned = erase_dead_nodes(graph) + graph.remove_unused_constants()
        graph.topological_sort()
        return converter.changed or bool(cleaned)
