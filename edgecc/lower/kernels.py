"""Kernels: one TIR PrimFunc per node or fused group, built from the ops' TE lowerings.

A kernel's parameters are its tensor inputs followed by its outputs (destination passing).
Small scalar constants inside a fused group are folded into the kernel; other constants are
parameters, so layers that differ only in weights share one kernel (`kernel_key`). Which kernels
a whole graph needs is `edgecc.lower.plan.plan_kernels`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from edgecc.errors import LoweringError
from edgecc.ir import Graph, Node, Value

__all__ = ["Kernel", "body_of", "build_kernel", "call_args", "kernel_flops", "kernel_key"]

#: constants of at most this many elements are baked into the kernel instead of passed in
INLINE_CONST_ELEMENTS = 1


@dataclass
class Kernel:
    """A built PrimFunc and how to call it (from the node it was built for)."""

    name: str
    func: object  # tvm.tirx.PrimFunc
    args: list[Value]  # outer values passed as inputs, in parameter order
    outputs: list[Value]  # outer values the kernel writes
    kind: str  # fusion-group kind (selects the default schedule)
    anchor: str | None  # op heading the group
    body: list[Node]  # the nodes it computes (the fused group's, or the node itself)

    @property
    def flops(self) -> float:
        return kernel_flops(self.body)


def body_of(node: Node) -> tuple[Graph | None, list[Node]]:
    """The subgraph of a fused node (None for a single op) and the nodes the kernel computes."""
    if node.op == "fused":
        return node.subgraph, list(node.subgraph.nodes)
    return None, [node]


def kernel_flops(nodes: list[Node]) -> float:
    """Multiply-adds x 2 of the conv/dense/matmul (float or integer) among `nodes` (0 for others)."""
    from edgecc.ir.ops.nn import macs

    return 2.0 * sum(macs(node) for node in nodes)


def _inlined(value: Value) -> bool:
    return value.const is not None and 0 < value.const.size <= INLINE_CONST_ELEMENTS


def _parameters(node: Node) -> Iterator[tuple[Value, Value]]:
    """(inner value, outer value) of each kernel input, in parameter order, inlined ones included."""
    body, _ = body_of(node)
    inner_inputs = body.inputs if body is not None else node.inputs
    seen: set[int] = set()
    for inner, outer in zip(inner_inputs, node.inputs):
        if outer is None or id(inner) in seen:
            continue
        seen.add(id(inner))
        yield inner, outer


def call_args(node: Node) -> list[Value]:
    """The values a call of `node`'s kernel passes, in parameter order (inlined constants left out)."""
    return [outer for _, outer in _parameters(node) if not _inlined(outer)]


def kernel_key(node: Node) -> str:
    """A key equal for nodes that compute the same function of their (non-inlined) inputs."""
    from edgecc.ir.printer import format_attr_value, format_type

    h = hashlib.sha1()

    def add_node(n: Node, env: dict[int, str]) -> None:
        h.update(n.op.encode())
        for k in sorted(n.attrs):
            h.update(f"{k}={format_attr_value(n.attrs[k])};".encode())
        for v in n.inputs:
            if v is not None and id(v) not in env:  # an argument: identity, type, inlined value
                env[id(v)] = f"arg{len(env)}"
                h.update(format_type(v.type).encode() + _inlined_bytes(v))
            h.update(b"|" + (env[id(v)] if v is not None else "_").encode())
        for i, o in enumerate(n.outputs):
            env[id(o)] = f"n{len(env)}:{i}"  # position, not name: equal layers share a key
            h.update(format_type(o.type).encode())

    body, nodes = body_of(node)
    env: dict[int, str] = {}
    if body is not None:
        for i, (v, outer) in enumerate(zip(body.inputs, node.inputs)):
            env[id(v)] = env.setdefault(id(outer), f"in{i}")  # repeated outer values share a name
            h.update(format_type(v.type).encode() + _inlined_bytes(outer))
        for c in body.constants.values():
            env[id(c)] = "c" + hashlib.sha1(c.const.tobytes()).hexdigest()
            h.update(format_type(c.type).encode())
        for n in nodes:
            add_node(n, env)
        h.update(("out:" + ",".join(env[id(v)] for v in body.outputs)).encode())
        h.update(node.attrs.get("kind", "").encode())
    else:
        add_node(node, env)
    return h.hexdigest()[:16]


def _inlined_bytes(value: Value | None) -> bytes:
    """The data of a constant the kernel bakes in (it is part of the kernel's identity)."""
    if value is not None and _inlined(value):
        return value.const.tobytes()
    return b""


def _inline_const(value: Value):
    from tvm import te, tirx

    data = value.const
    scalar = data.reshape(-1)[0].item()
    dtype = value.type.dtype
    shape = value.type.shape
    return te.compute(shape, lambda *i: tirx.const(scalar, dtype), name=f"const_{value.name}")


def _half(t):
    """A float32 tensor read as float16 (other tensors unchanged): the start of an fp16 kernel."""
    from tvm import te

    if str(t.dtype) != "float32":
        return t
    return te.compute(t.shape, lambda *i: t(*i).astype("float16"), name=f"{t.op.name}_fp16")


def _restore_dtype(t, dtype: str, i: int):
    """An fp16 kernel's result written in the output value's dtype."""
    from tvm import te

    if str(t.dtype) == dtype:
        return t
    return te.compute(t.shape, lambda *idx: t(*idx).astype(dtype), name=f"out{i}_{dtype}")


def build_kernel(node: Node, name: str, precision: str = "fp32") -> Kernel:
    """Lower a node (or the body of a fused node) to one PrimFunc.

    With `precision` "fp16" the kernel reads its float32 inputs as float16, computes in half
    precision (ops that name a wider output dtype, convolutions and matrix products, accumulate
    in it) and writes its outputs in their own dtypes: tensors between kernels stay float32."""
    from tvm import te

    from .te_ops import get_lowering

    cast = _half if precision == "fp16" else (lambda t: t)

    body, nodes = body_of(node)
    env: dict[int, object] = {}
    params, args = [], []
    for inner, outer in _parameters(node):
        if _inlined(outer):
            env[id(inner)] = cast(_inline_const(outer))
            continue
        ph = te.placeholder(outer.type.shape, outer.type.dtype, name=f"p{len(params)}")
        env[id(inner)] = cast(ph)
        params.append(ph)
        args.append(outer)
    if body is not None:
        for c in body.constants.values():
            if _inlined(c):
                env[id(c)] = cast(_inline_const(c))
            else:
                raise LoweringError(f"fused group {node.name}: constant %{c.name} must be a group input")
    for n in nodes:
        lower = get_lowering(n.op)
        if lower is None:
            raise LoweringError(f"op '{n.op}' (node {n.name}) has no lowering")
        ins = [env[id(v)] if v is not None else None for v in n.inputs]
        try:
            outs = lower(n, ins)
        except LoweringError:
            raise
        except Exception as exc:
            raise LoweringError(f"cannot lower {n.op} (node {n.name}): {exc}") from exc
        for v, t in zip(n.outputs, outs):
            env[id(v)] = t
    result_values = body.outputs if body is not None else node.outputs
    results = [env[id(v)] for v in result_values]
    results = [_restore_dtype(_materialize(t, params, i), v.type.dtype, i)
               for i, (t, v) in enumerate(zip(results, result_values))]
    func = te.create_prim_func(params + results).with_attr("global_symbol", name)
    kind = node.attrs.get("kind", _single_kind(node)) if node.op == "fused" else _single_kind(node)
    anchor = node.attrs.get("anchor") if node.op == "fused" else node.op
    return Kernel(name, func, args, list(node.outputs), kind, anchor, nodes)


def _materialize(t, params, i):
    """Outputs must be computed tensors distinct from inputs: copy a pass-through input."""
    from tvm import te

    if any(t is p for p in params) or isinstance(t.op, te.PlaceholderOp):
        return te.compute(t.shape, lambda *idx: t(*idx), name=f"copy{i}")
    return t


def _single_kind(node: Node) -> str:
    from edgecc.ir import Trait

    opdef = node.opdef
    if opdef.has(Trait.ANCHOR):
        return "pool" if opdef.has(Trait.REDUCTION) else node.op  # as passes/fuse.py names groups
    if opdef.has(Trait.REDUCTION):
        return "reduction"
    if opdef.has(Trait.ELEMENTWISE) or opdef.has(Trait.INJECTIVE):
        return "injective"
    return "opaque"
