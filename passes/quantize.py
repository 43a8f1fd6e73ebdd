"""quantize: insert quantize/dequantize pairs around the layers chosen for integer execution.

    conv(x, W)        -> conv(dequantize(quantize(x)), dequantize(W_int8))
    matmul(x, W)      -> matmul(dequantize(quantize(x)), dequantize(W_int8))
    add(a, b)         -> add(dequantize(quantize(a)), dequantize(quantize(b)))

Activation parameters come from the graph: calibration (`edgecc.quant.annotate`) puts them on the
float values as `type.quant` (a float value carrying QuantParams is one whose range is known). A
layer is quantized when its activation inputs have them, unless `skip` names it (or `only` leaves
it out). Weights (constants) are quantized here: symmetric int8, per output channel unless
`per-channel=false`. Ops that only move data (max_pool, reshape, transpose, ...) between such a
value and its producer take its producer's parameters, so they run on the integers too.
Biases stay float; `lower-qdq` quantizes them with the kernels it forms.
With `outputs=true` (set for targets with an NPU backend, which run whole int8 graphs), every
quantized layer's result (after its bias add and activation) gets a quantize/dequantize pair too,
graph outputs included, and the POOL_OPS are quantized on their inputs and output (an avg_pool's
output with its input's parameters, as int8 average pooling keeps them), so nothing between the
input quantize and the output dequantize is left in float.
Run after fold-batch-norm and fold-constants (weights must be constants), before lower-qdq.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from edgecc.ir import Graph, Node, QuantParams, Value
from edgecc.ir.ops.quant import INT_RANGE
from edgecc.ir.quant_arith import symmetric_weight

from .base import Pass, PassContext, register_pass

__all__ = ["Quantize", "quantizable_nodes", "activation_inputs", "calibration_values", "layer_result", "CHAIN_OPS",
           "POOL_OPS"]

#: ops between a quantized producer and a quantized consumer that take the producer's parameters
CHAIN_OPS = ("max_pool", "global_max_pool", "reshape", "transpose", "squeeze", "unsqueeze", "slice", "identity")
#: ops quantized only with `outputs`: they run on int8 data between dequantizes and a quantize
POOL_OPS = ("avg_pool", "global_avg_pool", "concat")
#: activations an integer kernel applies to its result as a clamp
_OUTPUT_ACTIVATIONS = ("relu", "clip")


def _float_activation(v: Value | None) -> bool:
    return v is not None and v.const is None and v.dtype == "float32"


def activation_inputs(node: Node) -> list[int]:
    """Input positions of a quantizable node that carry activations (not weights)."""
    if node.op == "concat":
        return list(range(len(node.inputs)))
    return [0, 1] if node.op == "add" else [0]


def _candidate(node: Node, outputs: bool) -> bool:
    ins = node.inputs
    if node.op in POOL_OPS:
        return outputs and all(_float_activation(v) for v in ins)
    if node.op == "conv":
        return (_float_activation(ins[0]) and ins[1].const is not None and ins[1].dtype == "float32"
                and not any(node.attrs[k] for k in ("layout", "kernel_layout", "out_layout")))
    if node.op == "matmul":
        return (_float_activation(ins[0]) and ins[1].const is not None and ins[1].dtype == "float32"
                and ins[1].type.rank == 2)
    if node.op == "add":
        return _float_activation(ins[0]) and _float_activation(ins[1])
    return False


def quantizable_nodes(graph: Graph, outputs: bool = False) -> list[Node]:
    """The layers the quantize pass can turn into integer kernels, in graph order (with
    `outputs`, the POOL_OPS too)."""
    return [n for n in graph.nodes if _candidate(n, outputs)]


def _chain(value: Value) -> list[Value]:
    """`value` and, through CHAIN_OPS producers, the values it is moved from (source last)."""
    out = [value]
    while value.producer is not None and value.producer.op in CHAIN_OPS and _float_activation(value.producer.inputs[0]):
        value = value.producer.inputs[0]
        out.append(value)
    return out


def _result_step(value: Value) -> Value | None:
    """The output of the bias add or activation that alone reads `value`, else None."""
    if len(value.uses) != 1 or value.is_graph_output:
        return None
    user = value.users[0]
    if user.op in _OUTPUT_ACTIVATIONS:
        return user.output
    if user.op == "add" and any(v is not None and v.const is not None for v in user.inputs):
        return user.output
    return None


def layer_result(node: Node) -> Value | None:
    """`node`'s result after the bias add and activation that alone read it (None if not float)."""
    value = node.output
    while (step := _result_step(value)) is not None:
        value = step
    return value if _float_activation(value) else None


def calibration_values(graph: Graph, nodes: list[Node] | None = None, outputs: bool = False) -> list[Value]:
    """The float values whose ranges quantizing `nodes` (default: every candidate) can use;
    with `outputs`, also the results of those layers (`layer_result`)."""
    seen: dict[int, Value] = {}
    for node in quantizable_nodes(graph, outputs) if nodes is None else nodes:
        for idx in activation_inputs(node):
            for v in _chain(node.inputs[idx]):
                seen.setdefault(id(v), v)
        result = layer_result(node) if outputs else None
        if result is not None:
            seen.setdefault(id(result), result)
    return list(seen.values())


def _source_params(value: Value) -> QuantParams | None:
    """Parameters for `value`: those of the farthest value it is moved from that has some."""
    params = None
    for v in _chain(value):
        if v.type.quant is not None:
            params = v.type.quant
    return params


@dataclass
class _Plan:
    value: Value
    params: QuantParams
    uses: list  # (node, input index) to redirect to the dequantized value


@register_pass
class Quantize(Pass):
    """Quantize/dequantize pairs around layers whose activations carry calibrated parameters."""

    name = "quantize"
    dtype: Literal["int8", "uint8"] = "int8"  # activations
    per_channel: bool = True  # weights per output channel (else per tensor)
    skip: tuple[str, ...] = ()  # node names kept in float
    only: tuple[str, ...] = ()  # if given, quantize only these node names
    weight_bits: int = 8  # 7: weights within [-63, 63] (x86 AVX2's vpmaddubsw)
    outputs: bool = False  # also quantize every quantized layer's result, and the POOL_OPS

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        if self.dtype not in ("int8", "uint8"):
            raise ValueError(f"activation type {self.dtype!r} is not int8 or uint8")
        plans: dict[int, _Plan] = {}
        chosen = []
        for node in quantizable_nodes(graph, self.outputs):
            if node.name in self.skip or (self.only and node.name not in self.only):
                continue
            wanted = []
            for idx in activation_inputs(node):
                value = node.inputs[idx]
                params = _source_params(value)
                if params is None or params.per_channel:
                    break
                chain = _chain(value)
                uses = [(node, idx)] + [(v.producer, 0) for v in chain[:-1]]
                wanted.append((chain, uses, params))
            else:
                chosen.append(node)
                for chain, uses, params in wanted:
                    self._check_params(params, node)
                    for v, use in zip(chain, uses):
                        plan = plans.setdefault(id(v), _Plan(v, params, []))
                        if use not in plan.uses:
                            plan.uses.append(use)
                if node.op == "avg_pool":  # int8 average pooling keeps its input's parameters
                    node.output.type = node.output.type.with_quant(wanted[0][2])
        for plan in plans.values():
            self._insert_pair(graph, plan)
        for node in chosen:
            if node.op in ("conv", "matmul"):
                self._quantize_weight(graph, node)
            if self.outputs:
                self._quantize_result(graph, node, plans)
        return bool(chosen)

    def _quantize_result(self, graph: Graph, node: Node, plans: dict[int, _Plan]) -> None:
        """A quantize/dequantize pair on `node`'s result unless its readers gave it one (a graph
        output keeps its name)."""
        value = layer_result(node)
        if value is None or id(value) in plans or value.type.quant is None or value.type.quant.per_channel:
            return
        self._check_params(value.type.quant, node)
        dq = self._pair(graph, value, value.type.quant, after=value.producer)
        q = dq.inputs[0].producer
        graph.replace_value(value, dq.output)
        q.set_input(0, value)

    def _check_params(self, params: QuantParams, node: Node) -> None:
        lo, hi = INT_RANGE[self.dtype]
        zp = params.zero_point[0]
        if not lo <= zp <= hi:
            raise ValueError(f"{node.name}: zero point {zp} of its input is outside {self.dtype}")

    def _insert_pair(self, graph: Graph, plan: _Plan) -> None:
        first = min((graph.nodes.index(n) for n, _ in plan.uses))
        dq = self._pair(graph, plan.value, plan.params, before=graph.nodes[first])
        for node, idx in plan.uses:
            node.set_input(idx, dq.output)

    def _pair(self, graph: Graph, value: Value, params: QuantParams, **where) -> Node:
        """Insert quantize(value) -> dequantize at `where` (before= or after= a node); returns the dequantize."""
        scale = graph.add_constant(np.array(params.scale[0], np.float32), f"{value.name}.scale")
        zp = graph.add_constant(np.array(params.zero_point[0], self.dtype), f"{value.name}.zp")
        q = graph.create_node("quantize", [value, scale, zp], {"dtype": self.dtype}, name=f"{value.name}.q", **where)
        return graph.create_node("dequantize", [q.output, scale, zp], name=f"{value.name}.dq", after=q)

    def _quantize_weight(self, graph: Graph, node: Node) -> None:
        w = node.inputs[1]
        axis = (0 if node.op == "conv" else 1) if self.per_channel else None
        data, scale = symmetric_weight(w.const, axis, bits=self.weight_bits)
        wq = graph.add_constant(data, f"{w.name}.int8")
        shape = scale.shape if axis is not None else ()
        s = graph.add_constant(scale.reshape(shape), f"{w.name}.scale")
        zp = graph.add_constant(np.zeros(shape, np.int8), f"{w.name}.zp")
        dq = graph.create_node("dequantize", [wq, s, zp], {"axis": axis}, name=f"{w.name}.dq", before=node)
        node.set_input(1, dq.output)
