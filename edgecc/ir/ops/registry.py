"""The op registry: everything about an op (inputs, attributes, traits, type inference,
verification, constant folding) declared in one place."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..dims import Dim, format_shape, parse_dim, symbolic_array
from ..errors import IRError
from ..limits import check_count, check_tensor_bytes
from ..types import TensorType

if TYPE_CHECKING:  # the op registry sits below the graph classes
    from ..graph import Node

__all__ = [
    "Attr",
    "OpDef",
    "Trait",
    "register_op",
    "get_op",
    "all_ops",
    "REQUIRED",
]

REQUIRED = object()


class Trait:
    """Op properties that passes query instead of matching op names."""

    ELEMENTWISE = "elementwise"  # out[i] = f(in[i]) with identical shapes (after broadcast)
    BROADCAST = "broadcast"  # elementwise with numpy broadcasting of inputs
    INJECTIVE = "injective"  # each output element reads at most one element of each input
    REDUCTION = "reduction"  # reduces over some axes
    ANCHOR = "anchor"  # compute-heavy (conv, matmul, pooling): heads a fusion group
    OPAQUE = "opaque"  # never fused
    LAYOUT_SENSITIVE = "layout_sensitive"  # result depends on which axis is which
    LAYOUT_AGNOSTIC = "layout_agnostic"  # runs unchanged in any layout (same-shape elementwise)
    QUANTIZABLE = "quantizable"  # has an integer kernel
    COMMUTATIVE = "commutative"
    SHAPE = "shape"  # computes on shapes: always statically known in edgecc


_ATTR_KINDS = ("int", "float", "str", "ints", "dims", "floats", "bool", "tensor", "any")


def _as_dim(value: Any) -> int | Dim:
    """An int or a Dim (text such as "batch*2" is parsed) for a `dims` attribute entry."""
    if isinstance(value, Dim):
        return value
    if isinstance(value, str):
        return parse_dim(value)
    return int(value)


@dataclass(frozen=True)
class Attr:
    """An attribute's kind, default (REQUIRED when it has none) and allowed values: `check(value)`
    says what is wrong with a value, or None (ranges that depend on input ranks are checked by
    the op's inference)."""

    kind: str
    default: Any = REQUIRED
    check: Callable[[Any], str | None] | None = None

    def __post_init__(self):
        if self.kind not in _ATTR_KINDS:
            raise ValueError(f"unknown attribute kind {self.kind}")

    def coerce(self, value: Any) -> Any:
        """Bring a value to this attribute's canonical Python form."""
        if value is None:
            return None
        kind = self.kind
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "bool":
            return bool(value)
        if kind == "str":
            return value.decode() if isinstance(value, bytes) else str(value)
        if kind == "ints":
            return tuple(int(v) for v in np.asarray(value).reshape(-1))
        if kind == "dims":
            return tuple(_as_dim(v) for v in np.asarray(value, dtype=object).reshape(-1))
        if kind == "floats":
            return tuple(float(v) for v in np.asarray(value).reshape(-1))
        if kind == "tensor":
            return np.asarray(value)
        return value


def _is_canonical(value: Any, canonical: Any) -> bool:
    """Whether `value` already is its coerced form (same type, same content)."""
    if isinstance(canonical, np.ndarray):
        return value is canonical
    if type(value) is not type(canonical):
        return False
    if isinstance(value, tuple):
        return len(value) == len(canonical) and all(map(_is_canonical, value, canonical))
    return value is canonical or repr(value) == repr(canonical)


InferFn = Callable[["Node"], Sequence[TensorType]]
FoldFn = Callable[["Node", list], list]


@dataclass
class OpDef:
    """The declaration of one op.

    inputs: names; a trailing `?` marks an optional input, a trailing `*` a variadic one (last only).
    infer: returns the output types from the node's input types and attributes.
    fold: numpy evaluation from constant inputs (None when the op cannot be folded).
    verify: extra checks beyond arity, attributes and re-inference.
    """

    name: str
    inputs: tuple[str, ...]
    infer_fn: InferFn
    attrs: dict[str, Attr] = field(default_factory=dict)
    traits: frozenset[str] = frozenset()
    fold_fn: FoldFn | None = None
    verify_fn: Callable[[Node], None] | None = None
    num_outputs: int | None = 1  # None: decided by inference
    doc: str = ""

    # ----- arity --------------------------------------------------------------------------
    @property
    def min_inputs(self) -> int:
        return sum(1 for n in self.inputs if not n.endswith(("?", "*")))

    @property
    def max_inputs(self) -> int | None:
        return None if self.inputs and self.inputs[-1].endswith("*") else len(self.inputs)

    def has(self, trait: str) -> bool:
        return trait in self.traits

    # ----- attributes ---------------------------------------------------------------------
    def normalize_attrs(self, node: Node) -> None:
        """Fill defaults, coerce kinds, reject unknown or missing attributes."""
        for key in node.attrs:
            if key not in self.attrs:
                raise IRError(f"{self.name}: unknown attribute '{key}'")
        for key, spec in self.attrs.items():
            if key in node.attrs:
                node.attrs[key] = spec.coerce(node.attrs[key])
            elif spec.default is REQUIRED:
                raise IRError(f"{self.name}: missing attribute '{key}'")
            else:
                node.attrs[key] = spec.default

    def check_attrs(self, node: Node) -> None:
        """Raise IRError unless the attributes are exactly what `normalize_attrs` leaves: no
        unknown or missing key, every value in its canonical form. Never changes the node."""
        for key in node.attrs:
            if key not in self.attrs:
                raise IRError(f"{self.name}: unknown attribute '{key}'")
        for key, spec in self.attrs.items():
            if key not in node.attrs:
                raise IRError(f"{self.name}: attribute '{key}' is missing (nodes are made by Graph.create_node)")
            value = node.attrs[key]
            if not _is_canonical(value, spec.coerce(value)):
                raise IRError(f"{self.name}: attribute {key}={value!r} is not a canonical {spec.kind} "
                              "(set attributes through Graph.create_node)")

    def check_attr_values(self, node: Node) -> None:
        """IRError naming the first attribute whose value its declaration does not allow."""
        for key, spec in self.attrs.items():
            value = node.attrs.get(key)
            if spec.check is not None and value is not None:
                problem = spec.check(value)
                if problem is not None:
                    raise IRError(f"{self.name} '{node.name}': attribute {key}={value!r} {problem}")

    def check_arity(self, node: Node) -> None:
        n = len(node.inputs)
        hi = self.max_inputs
        if n < self.min_inputs or (hi is not None and n > hi):
            want = f"{self.min_inputs}" if hi == self.min_inputs else f"{self.min_inputs}..{hi or 'n'}"
            raise IRError(f"{self.name}: takes {want} inputs, got {n}")
        for i, name in enumerate(self.inputs):
            if not name.endswith(("?", "*")) and i < n and node.inputs[i] is None:
                raise IRError(f"{self.name}: input '{name}' is missing")

    # ----- inference, verification, folding -----------------------------------------------
    def infer(self, node: Node) -> list[TensorType]:
        """The output types; IRError for an attribute its declaration does not allow, LimitError
        when they ask for more outputs or bytes than the current `edgecc.ir.limits` allow."""
        self.check_arity(node)
        self.check_attr_values(node)
        types = list(self.infer_fn(node))
        if self.num_outputs is not None and len(types) != self.num_outputs:
            raise IRError(f"{self.name}: inference gave {len(types)} outputs")
        check_count(f"{self.name} '{node.name}'", len(types), "outputs")
        bounds = dim_bounds_of(node.graph) if any(not t.is_static for t in types) else None
        for i, ttype in enumerate(types):
            check_tensor_bytes(f"{self.name} '{node.name}' output {i} {format_shape(ttype.shape)}", ttype.nbytes,
                               bounds)
        return types

    def verify(self, node: Node) -> None:
        """Raise IRError if the node is not a well-formed instance of this op; read-only."""
        self.check_attrs(node)
        expected = self.infer(node)
        if len(expected) != len(node.outputs):
            raise IRError(f"{self.name}: has {len(node.outputs)} outputs, expected {len(expected)}")
        for out, want in zip(node.outputs, expected):
            got = out.type
            if got.dtype != want.dtype or got.shape != want.shape:
                raise IRError(
                    f"{self.name}: output %{out.name} is {got}, inference gives {want}"
                )
        if self.verify_fn is not None:
            self.verify_fn(node)

    def fold(self, node: Node, values: list) -> list[np.ndarray] | None:
        if self.fold_fn is None:
            return None
        results = self.fold_fn(node, values)
        if results is None:
            return None
        out = []
        for value, ttype in zip(results, (o.type for o in node.outputs)):
            arr = np.asarray(value)
            if arr.dtype == object:  # a shape vector with symbolic entries
                out.append(symbolic_array(arr, ttype.dtype).reshape(ttype.shape))
            else:
                out.append(arr.astype(ttype.dtype, copy=False).reshape(ttype.shape))
        return out


def dim_bounds_of(graph) -> dict:
    """The bounds of the size variables (`meta["dim_bounds"]` of the outermost graph)."""
    while graph is not None and graph.parent is not None:
        graph = graph.parent.graph
    return {} if graph is None else graph.meta.get("dim_bounds") or {}


_REGISTRY: dict[str, OpDef] = {}


def register_op(
    name: str,
    inputs: Sequence[str],
    infer: InferFn,
    *,
    attrs: dict[str, Attr] | None = None,
    traits: Sequence[str] = (),
    fold: FoldFn | None = None,
    verify: Callable[[Node], None] | None = None,
    num_outputs: int | None = 1,
    doc: str = "",
) -> OpDef:
    """Declare an op; returns its OpDef. Names are unique."""
    if name in _REGISTRY:
        raise ValueError(f"op {name} is registered twice")
    opdef = OpDef(
        name=name,
        inputs=tuple(inputs),
        infer_fn=infer,
        attrs=dict(attrs or {}),
        traits=frozenset(traits),
        fold_fn=fold,
        verify_fn=verify,
        num_outputs=num_outputs,
        doc=doc,
    )
    _REGISTRY[name] = opdef
    return opdef


def get_op(name: str) -> OpDef:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise IRError(f"unknown op '{name}'") from None


def all_ops() -> dict[str, OpDef]:
    return dict(sorted(_REGISTRY.items()))
