"""fuse: group nodes into `fused` nodes, each of which lowers to exactly one kernel.

Rules (as TVM's FuseOps, decided here on the edgecc IR):
  * an anchor (an op with Trait.ANCHOR: conv, matmul, dense, pooling) absorbs its chain of
    elementwise and broadcast consumers: bias, folded scale, activation, residual add
    (`conv -> add -> relu`);
  * a reduction (softmax, layer_norm, reduce_*) absorbs elementwise producers that only feed it
    (`add -> layer_norm`) and elementwise consumers (`reduce_mean -> sqrt`);
  * chains of injective ops (elementwise, reshape, transpose, slice, ...) form one group;
  * on float32 convs in the blocked layout, a depthwise conv and a 1x1 conv next to it share one
    kernel when the tensor between them is large (1x1 -> stride-2 depthwise: `conv_depthwise`;
    depthwise -> 1x1: `depthwise_pointwise`), so that tensor never goes to memory;
  * a padded float32 conv takes in a lone layout transform of its input (a model's first conv
    reading its NCHW input), so its padded copy of the input is the transform as well.
A node joins its producer's group only if it is the sole reader of that group's output. That is
the post-dominator condition for single-output groups: nothing outside the group reads the
intermediate, so fusion never duplicates work, and no path can leave the group and come back,
so it never creates a cycle. Run last, after layout passes (layout transforms are injective and
fuse with their neighbours).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgecc.ir import Graph, Node, Trait, Value

from ._outline import outline
from .base import Pass, PassContext, register_pass


@dataclass
class _Group:
    nodes: list[Node] = field(default_factory=list)
    kind: str = "injective"  # injective | reduction | <anchor kind>
    anchor: str | None = None


def _pattern(node: Node) -> str:
    """elementwise | injective | reduction | anchor | opaque."""
    opdef = node.opdef
    if opdef.has(Trait.ANCHOR):
        return "anchor"
    if len(node.outputs) != 1 or opdef.has(Trait.OPAQUE) or opdef.has(Trait.SHAPE):
        return "opaque"
    if opdef.has(Trait.REDUCTION):
        return "reduction"
    if opdef.has(Trait.ELEMENTWISE):
        return "elementwise"
    if opdef.has(Trait.INJECTIVE):
        return "injective"
    return "opaque"


def _sole_reader(value: Value, node: Node) -> bool:
    return not value.is_graph_output and bool(value.uses) and all(user is node for user, _ in value.uses)


@register_pass
class Fuse(Pass):
    """Group anchors with their epilogues, reductions with neighbours, injective chains."""

    name = "fuse"
    max_group_size: int = 32
    pointwise_depthwise: bool = True  # a depthwise conv shares a kernel with a 1x1 conv next to it (see below)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        groups = self._form_groups(graph)
        changed = False
        for group in groups:
            if len(group.nodes) > 1 or group.anchor is not None:
                _materialize(graph, group)
                changed = True
        return changed

    # ----- grouping ---------------------------------------------------------------------
    def _form_groups(self, graph: Graph) -> list[_Group]:
        group_of: dict[int, _Group] = {}
        groups: list[_Group] = []
        for node in graph.nodes:
            pattern = _pattern(node)
            target = None if pattern == "opaque" else self._join_target(node, pattern, group_of)
            if target is None:
                target = _Group(kind=_initial_kind(node, pattern), anchor=node.op if pattern == "anchor" else None)
                if pattern == "opaque":
                    target.kind = "opaque"
                groups.append(target)
            elif pattern == "reduction":
                target.kind = "reduction"
            target.nodes.append(node)
            group_of[id(node)] = target
        return groups

    def _join_target(self, node: Node, pattern: str, group_of: dict[int, _Group]) -> _Group | None:
        """The producer group this node may join, or None."""
        for value in node.inputs:
            if value is None or value.producer is None:
                continue
            group = group_of.get(id(value.producer))
            if group is None or len(group.nodes) >= self.max_group_size or group.kind == "opaque":
                continue
            if group.nodes[-1] is not value.producer or not _sole_reader(value, node):
                continue
            if _compatible(group, node, pattern, value):
                return group
            if _layout_then_padded_conv(group, node, value):
                group.kind, group.anchor = _anchor_kind(node), node.op
                return group
            if self.pointwise_depthwise and _pointwise_then_depthwise(group, node, value):
                group.kind = "conv_depthwise"
                return group
            if self.pointwise_depthwise and _depthwise_then_pointwise(group, node, value):
                group.kind = "depthwise_pointwise" if group.kind == "depthwise_conv" else "conv_depthwise_pointwise"
                return group
        return None


def _initial_kind(node: Node, pattern: str) -> str:
    if pattern == "anchor":
        return _anchor_kind(node)
    return "reduction" if pattern == "reduction" else "injective"


def _anchor_kind(node: Node) -> str:
    """The group's schedule family: `pool` for anchors that reduce over a window, `depthwise_conv`,
    else the anchor's op."""
    if node.opdef.has(Trait.REDUCTION):
        return "pool"
    kind = node.op
    if node.op == "conv":
        groups = node.attrs.get("group", 1)
        if groups > 1 and groups == node.outputs[0].type.shape[1] * _block(node.outputs[0]):
            return "depthwise_conv"
    return kind


def _block(value: Value) -> int:
    from edgecc.ir import layout_of

    layout = value.type.layout
    return (layout_of(layout).block("C") or 1) if layout else 1


def _compatible(group: _Group, node: Node, pattern: str, value: Value) -> bool:
    """May `node` (reading `value`, the group's last output) join `group`?"""
    out = node.outputs[0].type
    if group.anchor is not None or group.kind == "reduction":
        # epilogues: elementwise on the group's result, same shape (broadcast operands allowed)
        return pattern == "elementwise" and out.shape == value.type.shape
    if pattern == "reduction":
        # prologue: a purely elementwise group feeding a reduction
        return all(_pattern(n) == "elementwise" for n in group.nodes)
    return pattern in ("elementwise", "injective")


#: a 1x1 conv's output from this size on (it no longer fits a core's L2 cache) is not written to
#: memory when a stride-2 depthwise conv reads it: MobileNetV2's 112x112x96 tensor, 0.58 -> 0.50 ms
#: for the two layers on 1 thread; for its smaller ones the fused kernel was slower
POINTWISE_DEPTHWISE_BYTES = 2 << 20


def _pointwise_then_depthwise(group: _Group, node: Node, value: Value) -> bool:
    """A float32 stride-2 depthwise conv reading (only) the large output of a 1x1 stride-1 conv
    group (with its epilogue): one kernel computes the 1x1 conv rows the depthwise output rows
    read, so the intermediate is never written to memory."""
    if group.kind != "conv" or node.op != "conv" or _anchor_kind(node) != "depthwise_conv":
        return False
    if not value.type.is_static or value.type.size * 4 < POINTWISE_DEPTHWISE_BYTES:
        return False
    first = group.nodes[0]
    if first.op != "conv" or not all(_pattern(n) == "elementwise" for n in group.nodes[1:]):
        return False
    stride2 = tuple(node.attrs["strides"] or (1, 1)) == (2, 2) and tuple(node.attrs["dilations"] or (1, 1)) == (1, 1)
    static = all(v.type.is_static for v in (first.inputs[0], node.outputs[0]))
    return _is_pointwise(first) and stride2 and static and _float32(first, node)


#: a depthwise conv's output from this size on is not written to memory when a 1x1 conv reads it:
#: MobileNetV2 (11 of its 17 depthwise layers, 112x112x32 down to 14x14x384), 2 threads, 3.03 ->
#: 2.84 ms; fusing the 7x7 layers as well was no faster (2.88 ms), from 1 MiB on 2.92 ms
DEPTHWISE_POINTWISE_BYTES = 256 << 10


def _depthwise_then_pointwise(group: _Group, node: Node, value: Value) -> bool:
    """A 1x1 stride-1 float32 conv reading (only) the large output of a depthwise conv group (with
    its epilogue), or of a `conv_depthwise` group: one kernel computes a few depthwise output rows
    of every channel, then the 1x1 conv rows from them, so the intermediate is never written to
    memory (MobileNetV2's 112x112x96 1x1 -> stride-2 depthwise -> 1x1: 0.42 -> 0.38 ms, 2 threads)."""
    if group.kind not in ("depthwise_conv", "conv_depthwise") or node.op != "conv":
        return False
    if _anchor_kind(node) == "depthwise_conv" or not value.type.is_static or value.type.rank != 5:
        return False  # (rank 5: the blocked layout NCHW{b}c its schedule tiles)
    if value.type.size * 4 < DEPTHWISE_POINTWISE_BYTES:
        return False
    first = group.nodes[0]  # (a conv_depthwise group was checked when its depthwise conv joined)
    if group.kind == "depthwise_conv" and not all(_pattern(n) == "elementwise" for n in group.nodes[1:]):
        return False
    if group.nodes[-1].op == "conv":
        return False  # the schedule writes the depthwise rows from an epilogue (bias, activation)
    reads_data = node.inputs[0] is value and node.outputs[0].type.is_static
    return reads_data and _is_pointwise(node) and _float32(first, node)


def _layout_then_padded_conv(group: _Group, node: Node, value: Value) -> bool:
    """A padded float32 conv (not depthwise) reading (only) a lone layout transform into the blocked
    layout, as a model's first conv reads its NCHW input: the transform becomes part of the conv's
    padded copy of its input, one pass over the image instead of two (MobileNetV2's 224x224x3
    input, 2 threads: the separate transform took 0.03 ms of 2.5)."""
    if group.kind != "injective" or [n.op for n in group.nodes] != ["layout_transform"] or node.op != "conv":
        return False
    if _anchor_kind(node) != "conv" or node.inputs[0] is not value or not any(node.attrs["pads"] or ()):
        return False
    static = all(v.type.is_static for v in (group.nodes[0].inputs[0], value, node.outputs[0]))
    return static and value.type.rank == 5 and _float32(group.nodes[0], node)


def _is_pointwise(conv: Node) -> bool:
    """A 1x1 conv with unit strides and dilations, no padding and no groups."""
    unit = all(tuple(conv.attrs[a] or (1, 1)) == (1, 1) for a in ("strides", "dilations"))
    kernel_1x1 = conv.inputs[1].type.shape[2:4] == (1, 1)
    return kernel_1x1 and unit and not any(conv.attrs["pads"] or ()) and conv.attrs["group"] == 1


def _float32(*nodes: Node) -> bool:
    return all(n.outputs[0].type.dtype == "float32" for n in nodes)


def _materialize(graph: Graph, group: _Group) -> Node:
    """Replace the group's nodes by one `fused` node holding them as its body."""
    return outline(graph, group.nodes, "fused", {"kind": group.kind, "anchor": group.anchor},
                   name=f"fused.{group.anchor or group.nodes[-1].op}")
