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
from edgecc.ir import Dim, Graph, Node, Value

from .te_ops.shapes import bare_vars, dim_env, te_shape

__all__ = ["Kernel", "body_of", "build_kernel", "build_shape_kernel", "call_args", "kernel_flops", "kernel_key"]

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
    #: size variables passed as int64 scalar parameters after the tensor inputs (Relax PrimValue
    #: arguments of call_tir): those no input or output dimension of the kernel holds by itself
    tir_vars: tuple[str, ...] = ()
    #: whether some extent is a size known only from a tensor's values at run time (it may be 0)
    runtime_sizes: bool = False

    @property
    def symbolic(self) -> bool:
        """Whether some extent of the kernel is a size variable (not known at compile time)."""
        return any(not v.type.is_static for v in (*self.args, *self.outputs))

    @property
    def flops(self) -> float | Dim:
        return kernel_flops(self.body)


def body_of(node: Node) -> tuple[Graph | None, list[Node]]:
    """The subgraph of a fused node (None for a single op) and the nodes the kernel computes."""
    if node.op == "fused":
        return node.subgraph, list(node.subgraph.nodes)
    return None, [node]


def kernel_flops(nodes: list[Node]) -> float | Dim:
    """Multiply-adds x 2 of the conv/dense/matmul (float or integer) among `nodes` (0 for others);
    a formula over size variables for a kernel with symbolic extents."""
    from edgecc.ir.ops.nn import macs

    total = sum(macs(node) for node in nodes)
    return total * 2 if isinstance(total, Dim) else 2.0 * total


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
    return te.compute(te_shape(value.type.shape), lambda *i: tirx.const(scalar, dtype), name=f"const_{value.name}")


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
    in it) and writes its outputs in their own dtypes: tensors between kernels stay float32.

    Symbolic dimensions become one int64 `tirx.Var` per size variable (`te_ops.shapes`); a
    variable that no parameter's dimension holds by itself is passed as a scalar parameter
    after the tensor inputs (`Kernel.tir_vars`)."""
    from tvm import tirx

    env = {var: tirx.Var(var, "int64") for var in sorted(_kernel_dim_vars(node))}
    with dim_env(env):
        func_params, results, args = _lower_body(node, precision)
    tir_vars = tuple(sorted(set(env) - set().union(*(bare_vars(v.type.shape) for v in [*args, *node.outputs]))))
    from tvm import te

    index_dtype = "int64" if env else None  # one index type: static and symbolic loops fuse without casts
    func = te.create_prim_func(func_params + [env[v] for v in tir_vars] + results, index_dtype_override=index_dtype)
    func = func.with_attr("global_symbol", name)
    kind = node.attrs.get("kind", _single_kind(node)) if node.op == "fused" else _single_kind(node)
    anchor = node.attrs.get("anchor") if node.op == "fused" else node.op
    return Kernel(name, func, args, list(node.outputs), kind, anchor, body_of(node)[1], tir_vars)


def _kernel_dim_vars(node: Node) -> set[str]:
    """The size variables of every value the kernel reads, computes or writes."""
    _, nodes = body_of(node)
    out: set[str] = set()
    for n in [node, *nodes]:
        for v in (*n.inputs, *n.outputs):
            if v is not None:
                out |= v.type.dim_vars
    return out


def _lower_body(node: Node, precision: str):
    """(placeholders, result tensors, outer values passed) of the node's kernel."""
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
        ph = te.placeholder(te_shape(outer.type.shape), outer.type.dtype, name=f"p{len(params)}")
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
    return params, results, args


def build_shape_kernel(node: Node, name: str):
    """(PrimFunc, outer values it reads) computing the run-time shapes of `node`'s outputs with
    its op's shape function (`te_ops.shape_function`): one int64 tensor of shape (rank,) per output."""
    from tvm import te, tirx

    from .te_ops import get_shape_function

    shape_fn = get_shape_function(node.op)
    if shape_fn is None:
        raise LoweringError(f"node {node.name} ({node.op}): its output shape is known only at run time and "
                            f"op '{node.op}' has no shape function")
    inputs = [v for v in node.inputs if v is not None]
    env = {var: tirx.Var(var, "int64") for var in sorted(set().union(*(v.type.dim_vars for v in inputs)))}
    with dim_env(env):
        params = {id(v): te.placeholder(te_shape(v.type.shape), v.type.dtype, name=f"p{i}")
                  for i, v in enumerate(inputs)}
        try:
            outs = shape_fn(node, [params[id(v)] if v is not None else None for v in node.inputs])
        except LoweringError:
            raise
        except Exception as exc:
            raise LoweringError(f"cannot compute the shape of {node.op} (node {node.name}): {exc}") from exc
    unique = list({id(v): v for v in inputs}.values())
    func = te.create_prim_func([params[id(v)] for v in unique] + list(outs)).with_attr("global_symbol", name)
    return func, unique


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
