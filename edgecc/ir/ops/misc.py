"""Less common ops: one_hot, trilu, einsum."""

from __future__ import annotations

import numpy as np

from ..graph import IRError, Node
from ..types import TensorType
from ._util import in_type, norm_axis
from .attr_checks import at_least
from .registry import Attr, Trait, register_op


def _one_hot_infer(node: Node):
    idx, values = in_type(node, 0), in_type(node, 1)
    if values.size != 2:
        raise IRError("one_hot: values must hold [off, on]")
    axis = node.attrs["axis"]
    rank = idx.rank + 1
    axis = norm_axis(axis, rank, "one_hot")
    shape = list(idx.shape)
    shape.insert(axis, node.attrs["depth"])
    return [TensorType(values.dtype, shape)]


def _one_hot_fold(node, v):
    idx, values = v
    depth, axis = node.attrs["depth"], node.attrs["axis"]
    idx = np.where(idx < 0, idx + depth, idx).astype(np.int64)
    hot = np.arange(depth).reshape([-1] + [1] * idx.ndim) == idx[None]
    hot = np.moveaxis(hot, 0, axis % (idx.ndim + 1))
    return [np.where(hot, values[1], values[0])]


register_op(
    "one_hot",
    ["indices", "values"],
    _one_hot_infer,
    attrs={"depth": Attr("int", check=at_least(1)), "axis": Attr("int", -1)},
    traits=[Trait.INJECTIVE],
    fold=_one_hot_fold,
)


def _trilu_infer(node: Node):
    t = in_type(node, 0)
    if t.rank < 2:
        raise IRError("trilu: needs rank >= 2")
    return [t.with_quant(None)]


register_op(
    "trilu",
    ["x"],
    _trilu_infer,
    attrs={"upper": Attr("int", 1), "k": Attr("int", 0)},
    traits=[Trait.INJECTIVE, Trait.LAYOUT_SENSITIVE],
    fold=lambda node, v: [
        np.triu(v[0], node.attrs["k"]) if node.attrs["upper"] else np.tril(v[0], node.attrs["k"])
    ],
)


def parse_einsum(equation: str, shapes) -> tuple[list[str], str, dict[str, int]]:
    """Operand subscripts, output subscripts and letter sizes (ellipsis expanded)."""
    eq = equation.replace(" ", "")
    lhs, _, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise IRError(f"einsum: {equation!r} names {len(terms)} operands, got {len(shapes)}")
    spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in eq]
    ell_rank = max((len(s) - len(t.replace("...", "")) for t, s in zip(terms, shapes) if "..." in t), default=0)
    ell = "".join(spare[:ell_rank])
    sizes: dict[str, int] = {}
    expanded = []
    for term, shape in zip(terms, shapes):
        if "..." in term:
            n = len(shape) - len(term.replace("...", ""))
            term = term.replace("...", ell[ell_rank - n :])
        if len(term) != len(shape):
            raise IRError(f"einsum: term {term!r} does not fit shape {tuple(shape)}")
        for c, d in zip(term, shape):
            prev = sizes.get(c, 1)
            if prev != d and d != 1 and prev != 1:
                raise IRError(f"einsum: index {c} has sizes {prev} and {d}")
            sizes[c] = d if prev == 1 else prev  # 1 broadcasts (also against 0)
        expanded.append(term)
    if "->" in eq:
        out = rhs.replace("...", ell)
    else:
        counts = {c: "".join(expanded).count(c) for c in sizes}
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    return expanded, out, sizes


def _einsum_infer(node: Node):
    types = [v.type for v in node.inputs]
    _, out, sizes = parse_einsum(node.attrs["equation"], [t.shape for t in types])
    return [TensorType(types[0].dtype, [sizes[c] for c in out])]


register_op(
    "einsum",
    ["inputs*"],
    _einsum_infer,
    attrs={"equation": Attr("str")},
    traits=[Trait.REDUCTION],
    fold=lambda node, v: [np.einsum(node.attrs["equation"], *v)],
)
