"""prune-zero-channels: drop conv output channels and matmul neurons whose weights are all zero.

    conv(x, W[O,I,k,k], b) -> chain -> conv(., V[P,O,k,k], c)     channel o with W[o] == 0 removed
    matmul(x, W[K,N]) -> chain -> matmul(., V[N,M])                neuron n with W[:, n] == 0 removed

Structured pruning leaves such all-zero filters; they still cost a full channel of compute and
memory in every layer that touches them. A removed channel holds one value everywhere: its bias
pushed through the chain between the two layers (per-channel adds and multiplies, activations,
max/global pooling, a flatten). When that value is zero the reader's matching input channels
(or rows) simply go; otherwise the reader must be a matmul or an unpadded convolution, and the
constant's contribution moves into the reader's bias. The layers in between shrink with the
channel, and the model's outputs do not change. A channel whose value a reader cannot absorb
(a padded convolution sees the constant only inside the image) is kept.
Run after fold-batch-norm and fold-constants (weights must be constants), before quantize and
convert-layout.
"""

from __future__ import annotations

import numpy as np

from edgecc.ir import Graph, Node, Trait, Value
from edgecc.ir.dims import is_static

from .base import Pass, PassContext, register_pass

_POOLS = ("max_pool", "global_max_pool", "global_avg_pool")
_ARITH = ("add", "sub", "mul", "div")


def _const(v: Value | None) -> np.ndarray | None:
    return None if v is None else v.const


def _producer(node: Node):
    """(zero channel indices, channel axis of the output) of a prunable layer, or None."""
    if len(node.outputs) != 1 or node.output.is_graph_output:
        return None
    w = node.input(1)
    if w is None or w.const is None or w.dtype != "float32":
        return None
    if node.op == "conv":
        if node.attrs["group"] != 1 or any(node.attrs[k] for k in ("layout", "kernel_layout", "out_layout")):
            return None
        if node.input(2) is not None and node.input(2).const is None:
            return None
        zero = np.flatnonzero(~np.any(w.const.reshape(w.shape[0], -1) != 0, axis=1))
        return zero, 1
    if node.op == "matmul" and w.type.rank == 2 and node.inputs[0].type.rank >= 1:
        zero = np.flatnonzero(~np.any(w.const != 0, axis=0))
        return zero, node.output.type.rank - 1
    return None


def _per_channel(arr: np.ndarray, rank: int, axis: int, channels: int) -> bool:
    """A constant broadcasting along the channel axis only (or a scalar)."""
    if arr.size == 1:
        return True
    shape = (1,) * (rank - arr.ndim) + tuple(arr.shape) if arr.ndim <= rank else None
    return shape is not None and shape[axis] == channels and all(d == 1 for i, d in enumerate(shape) if i != axis)


def _channel_values(arr: np.ndarray, rank: int, axis: int, channels: int) -> np.ndarray:
    if arr.size == 1:
        return np.full(channels, arr.reshape(-1)[0], np.float64)
    return arr.reshape(-1).astype(np.float64)


class _Plan:
    def __init__(self, producer: Node, zero: np.ndarray, axis: int):
        self.producer, self.zero, self.axis = producer, zero, axis
        self.chain: list[Node] = []
        self.readers: list[Node] = []
        self.flatten: Node | None = None  # reshape between a conv chain and matmul readers


def _follow(plan: _Plan) -> str | None:
    """Walk the single-reader chain after the producer; returns a reason to give up, or None."""
    value = plan.producer.output
    rank, axis = value.type.rank, plan.axis
    channels = value.shape[axis]
    while True:
        users = value.users
        if value.is_graph_output or len(users) == 0:
            return "the channels reach a graph output"
        if len(users) > 1:
            if all(_is_reader(u, value, axis, rank) for u in users):
                plan.readers = users
                return None
            return "the value has several readers"
        (user,) = users
        if _is_reader(user, value, axis, rank):
            plan.readers = [user]
            return None
        if user.op in _ARITH and len(user.outputs) == 1 and user.output.shape == value.shape:
            other = user.inputs[1] if user.inputs[0] is value else user.inputs[0]
            if user.inputs[0] is not value and user.op in ("sub", "div"):
                return f"{user.op} with the channel value as divisor or subtrahend"
            arr = _const(other)
            if arr is None or not _per_channel(arr, rank, axis, channels):
                return f"{user.name}: operand is not a per-channel constant"
        elif user.op in _POOLS and axis == 1:
            pass
        elif user.op == "avg_pool" and axis == 1 and not user.attrs["count_include_pad"]:
            pass
        elif user.op == "reshape" and axis == 1 and plan.flatten is None and _is_flatten(user):
            plan.flatten = user
            plan.chain.append(user)
            value = user.output
            users = value.users
            if value.is_graph_output or not users or not all(_is_reader(u, value, 1, 2) and u.op == "matmul"
                                                             for u in users):
                return "the flattened value is not read by matmuls only"
            plan.readers = users
            return None
        elif (user.opdef.has(Trait.ELEMENTWISE) and user.opdef.has(Trait.LAYOUT_AGNOSTIC)
              and len(user.inputs) == 1 and user.output.dtype == value.dtype):
            pass
        else:
            return f"{user.name} ({user.op}) does not keep channels apart"
        plan.chain.append(user)
        value = user.output


def _is_flatten(node: Node) -> bool:
    """(N, C, spatial...) -> (N, C*spatial) with a static spatial size (N may be symbolic)."""
    x, y = node.inputs[0].type, node.output.type
    return x.rank >= 2 and y.rank == 2 and y.shape[0] == x.shape[0] and is_static(x.shape[1:])


def _is_reader(node: Node, value: Value, axis: int, rank: int) -> bool:
    """A layer that reads `value`'s channels through constant weights."""
    w = node.input(1)
    if node.inputs[0] is not value or w is None or w.const is None:
        return False
    if node.op == "conv":
        return axis == 1 and node.attrs["group"] == 1 and not any(
            node.attrs[k] for k in ("layout", "kernel_layout", "out_layout")) and (
            node.input(2) is None or node.input(2).const is not None)
    return node.op == "matmul" and w.type.rank == 2 and axis == rank - 1


def _constant_values(plan: _Plan) -> np.ndarray:
    """What each zero channel holds after the chain (float64, one per zero channel)."""
    p = plan.producer
    channels = p.output.shape[plan.axis]
    bias = p.input(2).const if p.op == "conv" and p.input(2) is not None else None
    vals = np.zeros(channels) if bias is None else bias.reshape(-1).astype(np.float64)
    rank = p.output.type.rank
    prev = p.output
    for node in plan.chain:
        if node.op in _ARITH:
            other = node.inputs[1] if node.inputs[0] is prev else node.inputs[0]
            c = _channel_values(other.const, rank, plan.axis, channels)
            vals = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}[node.op](vals, c)
        elif node.opdef.has(Trait.ELEMENTWISE) and node.opdef.fold_fn is not None:
            vals = np.asarray(node.opdef.fold_fn(node, [vals.astype(np.float32)])[0], np.float64)
        prev = node.output
    return vals[plan.zero]


def _absorb_check(plan: _Plan, consts: np.ndarray) -> str | None:
    if not np.any(consts):
        return None
    for r in plan.readers:
        if r.op == "conv" and any(r.attrs["pads"] or ()):
            return f"{r.name} pads its input: the constant channel cannot move into its bias"
    return None


def _take(arr: np.ndarray, keep: np.ndarray, axis: int) -> np.ndarray:
    return np.ascontiguousarray(np.take(arr, keep, axis=axis))


def _rewrite(graph: Graph, plan: _Plan, consts: np.ndarray) -> None:
    p = plan.producer
    channels = p.output.shape[plan.axis]
    keep = np.setdiff1d(np.arange(channels), plan.zero)
    rank = p.output.type.rank
    w = p.inputs[1]
    if p.op == "conv":
        inputs = [p.inputs[0], graph.add_constant(_take(w.const, keep, 0), f"{w.name}.pruned")]
        b = p.input(2)
        inputs.append(None if b is None else graph.add_constant(_take(b.const.reshape(-1), keep, 0), f"{b.name}.pruned"))
    else:
        inputs = [p.inputs[0], graph.add_constant(_take(w.const, keep, 1), f"{w.name}.pruned")]
    new = graph.create_node(p.op, inputs, dict(p.attrs), name=p.name, before=p).output
    vmap = {id(p.output): new}
    for node in plan.chain:
        ins = []
        for v in node.inputs:
            if v is not None and id(v) in vmap:
                ins.append(vmap[id(v)])
            elif v is not None and v.const is not None and v.const.size > 1:
                ins.append(graph.add_constant(_take(v.const, keep, plan.axis - (rank - v.const.ndim)),
                                              f"{v.name}.pruned"))
            else:
                ins.append(v)
        attrs = dict(node.attrs)
        if node is plan.flatten:
            spatial = int(np.prod(node.inputs[0].shape[2:]))
            attrs["shape"] = (node.output.shape[0], len(keep) * spatial)
        vmap[id(node.output)] = graph.create_node(node.op, ins, attrs, name=node.name, before=node).output
    source = vmap[id((plan.chain[-1] if plan.chain else p).output)]
    spatial = 1
    if plan.flatten is not None:
        spatial = int(np.prod(plan.flatten.inputs[0].shape[2:]))
    for r in plan.readers:
        _rewrite_reader(graph, r, source, plan, keep, consts, spatial)
    for node in [*reversed(plan.readers), *reversed(plan.chain), p]:
        if not any(o.has_uses for o in node.outputs):
            graph.erase_node(node)


def _rewrite_reader(graph: Graph, r: Node, source: Value, plan: _Plan, keep, consts, spatial: int) -> None:
    w = r.inputs[1].const
    if r.op == "conv":
        kept = _take(w, keep, 1)
        extra = None
        if np.any(consts):
            gone = np.take(w, plan.zero, axis=1).astype(np.float64).reshape(w.shape[0], len(plan.zero), -1)
            extra = gone.sum(axis=2) @ consts
        bias = r.input(2)
        b = None if bias is None else bias.const
        if extra is not None:
            base = np.zeros(w.shape[0]) if b is None else b.reshape(-1).astype(np.float64)
            b = (base + extra).astype(np.float32)
        inputs = [source, graph.add_constant(kept, f"{r.inputs[1].name}.pruned"),
                  None if b is None else graph.add_constant(np.asarray(b, np.float32).reshape(-1), f"{r.name}.bias")]
        new = graph.create_node("conv", inputs, dict(r.attrs), name=r.name, before=r).output
    else:
        rows = (keep[:, None] * spatial + np.arange(spatial)[None, :]).reshape(-1)
        gone = (plan.zero[:, None] * spatial + np.arange(spatial)[None, :]).reshape(-1)
        kept = _take(w, rows, 0)
        new = graph.create_node("matmul", [source, graph.add_constant(kept, f"{r.inputs[1].name}.pruned")],
                                name=r.name, before=r).output
        if np.any(consts):
            values = np.repeat(consts, spatial)
            extra = (values[:, None] * w[gone].astype(np.float64)).sum(axis=0).astype(np.float32)
            new = graph.create_node("add", [new, graph.add_constant(extra, f"{r.name}.pruned_bias")],
                                    name=f"{r.name}.pruned_bias", before=r).output
    graph.replace_value(r.output, new)


@register_pass
class PruneZeroChannels(Pass):
    """Remove conv channels and matmul neurons whose weights are all zero."""

    name = "prune-zero-channels"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        done: set[int] = set()  # nodes looked at (rewritten layers are new nodes, looked at again)
        while True:
            node = next((n for n in graph.nodes if id(n) not in done), None)
            if node is None:
                break
            done.add(id(node))
            found = _producer(node)
            if found is None or len(found[0]) == 0:
                continue
            zero, axis = found
            if len(zero) == node.output.shape[axis]:
                continue  # an all-zero layer: leave it whole (its value is a constant for fold-constants)
            plan = _Plan(node, zero, axis)
            why = _follow(plan)
            if why is None:
                consts = _constant_values(plan)
                why = _absorb_check(plan, consts)
            if why is not None:
                ctx.note(f"{len(zero)} zero channel(s) kept: {why}", node)
                continue
            _rewrite(graph, plan, consts)
            changed = True
        if changed:
            graph.remove_unused_constants()
        return changed
