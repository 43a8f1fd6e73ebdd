"""shift-to-uint8: int8 activations read by integer convolutions are stored as uint8 (q + 128).

    y = qconv(.., dtype=int8, zp)   ->  y' = qconv(.., dtype=uint8, zp + 128)        (y' = y + 128)
    qconv(y, W, b) {data_zp}        ->  qconv(y', W, b - 128 * sum(W)) {data_zp + 128}

x86 dot products (vpdpbusd, vpmaddubsw) multiply uint8 data by int8 weights: a kernel given
int8 data first copies it moved by 128 and subtracts 128 x the weights' sum in its epilogue.
Here the producer of such an activation (qconv, qdense, qadd, requantize, quantize) writes it as
uint8 instead (zero point and clamp bounds + 128), and every reader takes the move: a
convolution's or dense layer's constant int32 bias absorbs 128 x each output channel's weight sum
at compile time, an addition's, requantization's or dequantization's zero point moves by 128.
Ops that only move data (reshape, flatten, squeeze, unsqueeze, transpose) pass the move on to
their readers: a classifier's quantized, flattened features reach its dense layer as uint8.
The integers are the same values shifted, so results do not change. A value is moved only when
every reader can take it and one of them is a convolution or dense layer.
Requested by targets whose integer kernels take uint8 data; run after lower-qdq, before
convert-layout (weights still OI.. / [K, N]).
"""

from __future__ import annotations

import numpy as np

from edgecc.ir import Graph, Node, Value

from .base import Pass, PassContext, register_pass

#: what int8 data is moved by to become uint8
SHIFT = 128
_WRITERS = ("qconv", "qdense", "qadd", "requantize", "quantize")
#: readers that pass the moved integers on unchanged
_DATA_MOVES = ("reshape", "flatten", "squeeze", "unsqueeze", "transpose")
_INT32 = np.iinfo(np.int32)


def _weight_sums(node: Node) -> np.ndarray | None:
    """Per output channel sums of a qconv's (O, I/g, k..) or a qdense's [K, N] constant weights."""
    w = node.input(1)
    if w is None or w.const is None or any(node.attrs.get(k) for k in ("layout", "kernel_layout", "out_layout")):
        return None
    data = np.asarray(w.const, np.int64)
    if node.op == "qconv":
        return data.reshape(data.shape[0], -1).sum(axis=1)
    return data.sum(axis=0) if data.ndim == 2 else None


def _moved_bias(node: Node) -> np.ndarray | None:
    """The int32 bias of a qconv/qdense reading moved data, or None where it cannot be built."""
    sums = _weight_sums(node)
    bias = node.input(2)
    if sums is None or (bias is not None and bias.const is None):
        return None
    old = np.zeros(len(sums), np.int64) if bias is None else np.asarray(bias.const, np.int64).reshape(-1)
    new = old - SHIFT * sums
    if new.min() < _INT32.min or new.max() > _INT32.max:
        return None
    return new.astype(np.int32)


def _reader_ok(node: Node, idx: int) -> bool:
    if node.op in _DATA_MOVES:
        return idx == 0 and _readers_take_uint8(node.output)
    if node.op in ("qconv", "qdense"):
        return idx == 0 and _moved_bias(node) is not None
    if node.op == "qadd":
        return True
    if node.op == "requantize":
        return idx == 0
    if node.op == "dequantize":
        zp = node.input(2)
        return idx == 0 and (zp is None or zp.const is not None)
    return False


def _movable(value: Value) -> bool:
    """An int8 activation whose producer and readers all can take uint8, read by a kernel."""
    producer = value.producer
    if value.dtype != "int8" or producer is None or producer.op not in _WRITERS or value.is_graph_output:
        return False
    if producer.op == "quantize" and producer.input(2) is not None and producer.input(2).const is None:
        return False
    return _readers_take_uint8(value) and _reaches_a_kernel(value)


def _readers_take_uint8(value: Value) -> bool:
    return not value.is_graph_output and bool(value.uses) and all(_reader_ok(n, i) for n, i in value.uses)


def _reaches_a_kernel(value: Value) -> bool:
    """Whether a convolution or dense layer reads `value`, directly or through data moves."""
    return any(n.op in ("qconv", "qdense") or (n.op in _DATA_MOVES and _reaches_a_kernel(n.output))
               for n, _ in value.uses)


def _bound(v):
    return None if v is None else v + SHIFT


def _rebuild(graph: Graph, node: Node, inputs: list, attrs: dict) -> Node:
    """A copy of `node` with new inputs and attributes in its place; returns the copy."""
    new = graph.create_node(node.op, inputs, attrs, name=node.name, before=node)
    old = node.output
    if old.type.quant is not None and new.output.type.quant is None and new.output.dtype == old.dtype:
        new.output.type = new.output.type.with_quant(old.type.quant)
    name = old.name
    graph.replace_value(old, new.output, retype=new.output.dtype != old.dtype)
    graph.erase_node(node)
    if not new.output.is_graph_output:
        graph.rename_value(new.output, name)
    return new


def _moved_zero_point(graph: Graph, zp: Value | None, dtype: str) -> Value:
    data = np.zeros((), np.int64) if zp is None else np.asarray(zp.const, np.int64)
    return graph.add_constant((data + SHIFT).astype(dtype), "zero_point_uint8")


def _write_uint8(graph: Graph, producer: Node) -> Node:
    attrs = dict(producer.attrs, dtype="uint8")
    inputs = list(producer.inputs)
    if producer.op == "quantize":
        inputs[2] = _moved_zero_point(graph, producer.input(2), "uint8")
    else:
        attrs.update(out_zero_point=attrs["out_zero_point"] + SHIFT, out_min=_bound(attrs.get("out_min")),
                     out_max=_bound(attrs.get("out_max")))
    return _rebuild_moved(graph, producer, inputs, attrs)


def _rebuild_moved(graph: Graph, node: Node, inputs: list, attrs: dict) -> Node:
    """`_rebuild` of a node whose output becomes uint8: its quantization zero point moves too."""
    quant = node.output.type.quant
    new = _rebuild(graph, node, inputs, attrs)
    if quant is not None and new.output.type.quant is None:
        moved = type(quant)(quant.scale, tuple(z + SHIFT for z in quant.zero_point), quant.axis)
        new.output.type = new.output.type.with_quant(moved)
    return new


def _read_uint8(graph: Graph, reader: Node, value: Value) -> Node:
    attrs, inputs = dict(reader.attrs), list(reader.inputs)
    if reader.op in _DATA_MOVES:
        return _rebuild_moved(graph, reader, inputs, attrs)
    if reader.op in ("qconv", "qdense"):
        inputs[2] = graph.add_constant(_moved_bias(reader), f"{reader.name}.bias_uint8")
        attrs["data_zero_point"] += SHIFT
    elif reader.op == "qadd":
        for i, key in ((0, "a_zero_point"), (1, "b_zero_point")):
            if reader.input(i) is value:
                attrs[key] += SHIFT
    elif reader.op == "requantize":
        attrs["in_zero_point"] += SHIFT
    else:  # dequantize
        inputs[2] = _moved_zero_point(graph, reader.input(2), "uint8")
    return _rebuild(graph, reader, inputs, attrs)


@register_pass
class ShiftToUint8(Pass):
    """Store int8 activations read by integer convolutions as uint8, the move folded into biases."""

    name = "shift-to-uint8"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        # id of a replaced node -> (that node, kept alive so its id is not reused; its copy)
        rebuilt: dict[int, tuple[Node, Node]] = {}

        def current(node: Node) -> Node:
            """The live copy of `node`: a reader of two moved values is rebuilt twice."""
            while id(node) in rebuilt:
                node = rebuilt[id(node)][1]
            return node

        for node in list(graph.nodes):
            node = current(node)
            if len(node.outputs) != 1 or not _movable(node.output):
                continue
            new = _write_uint8(graph, node)
            rebuilt[id(node)] = (node, new)
            moved = [new.output]
            while moved:  # the readers, and the readers of data moves in turn
                value = moved.pop()
                for reader in list(value.users):
                    copy = _read_uint8(graph, reader, value)
                    rebuilt[id(reader)] = (reader, copy)
                    if copy.op in _DATA_MOVES:
                        moved.append(copy.output)
            changed = True
        if changed:
            graph.remove_unused_constants()
        return changed
