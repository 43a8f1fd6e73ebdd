"""Data layouts: `NCHW`, `NHWC`, and blocked forms such as `NCHW8c` or `OIHW8i16o`.

An upper-case letter is a logical axis; a number followed by the same letter in lower case is an
inner block of that axis (`NCHW8c`: channels split into C//8 outer and 8 inner). An axis may have
several inner blocks, coarser first: `OIHW4i16o2i` splits I into I//8, 4 and 2 (input channels in
pairs innermost, as integer dot-product instructions read them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .dims import Dim
from .errors import IRError

__all__ = ["Layout", "layout_of"]

_TOKEN = re.compile(r"(\d*)([A-Za-z])")


@dataclass(frozen=True)
class Layout:
    """A parsed layout: physical axes, each a logical axis letter with an optional block size."""

    name: str
    axes: tuple[tuple[str, int | None], ...]

    @property
    def logical(self) -> str:
        """The logical axes in physical order of their outer part (`NCHW8c` -> `NCHW`)."""
        return "".join(a for a, b in self.axes if b is None)

    @property
    def rank(self) -> int:
        return len(self.axes)

    def block(self, axis: str) -> int | None:
        """The total inner block of `axis` (the product of its blocks), or None."""
        blocks = self.blocks(axis)
        return int(np.prod(blocks)) if blocks else None

    def blocks(self, axis: str) -> list[int]:
        """The inner blocks of `axis` in physical order (coarser first)."""
        return [b for a, b in self.axes if a == axis.lower() and b is not None]

    def _axis_names(self) -> list[str]:
        """A distinct name per physical axis: `C` for an outer axis, `c0`, `c1`... for its blocks."""
        names, seen = [], {}
        for a, b in self.axes:
            if b is None:
                names.append(a)
            else:
                names.append(f"{a}{seen.get(a, 0)}")
                seen[a] = seen.get(a, 0) + 1
        return names

    @property
    def is_blocked(self) -> bool:
        return any(b is not None for _, b in self.axes)

    def physical_shape(self, dims: dict) -> tuple:
        """Physical shape from logical sizes (`{'N':1,'C':64,'H':56,'W':56}`; ints or Dims)."""
        shape = []
        for axis, block in self.axes:
            if block is None:
                size = dims[axis]
                inner = self.block(axis)
                if inner:
                    if size % inner != 0:  # a symbolic size divides when its formula does
                        raise IRError(f"layout {self.name}: {axis}={size} is not a multiple of {inner}")
                    size //= inner
                shape.append(size)
            else:
                shape.append(block)
        return tuple(shape)

    def logical_dims(self, shape) -> dict[str, int]:
        """Logical sizes from a physical shape."""
        if len(shape) != self.rank:
            raise IRError(f"layout {self.name} needs rank {self.rank}, got shape {tuple(shape)}")
        dims: dict[str, int] = {}
        for (axis, block), size in zip(self.axes, shape):
            key = axis.upper()
            if block is not None and size != block:
                raise IRError(f"layout {self.name}: inner block of {key} is {size}, expected {block}")
            dims[key] = dims.get(key, 1) * (size if isinstance(size, Dim) else int(size))
        return dims

    def to_plain(self, data: np.ndarray, plain: str) -> np.ndarray:
        """Rearrange an array in this layout into the unblocked layout `plain`."""
        return _convert(data, self, layout_of(plain))

    def from_plain(self, data: np.ndarray, plain: str) -> np.ndarray:
        """Rearrange an array in the unblocked layout `plain` into this layout."""
        return _convert(data, layout_of(plain), self)


@lru_cache(maxsize=None)
def layout_of(name: str) -> Layout:
    pos = 0
    axes = []
    for m in _TOKEN.finditer(name):
        if m.start() != pos:
            break
        pos = m.end()
        num, letter = m.groups()
        if num:
            if not letter.islower():
                raise IRError(f"layout {name}: a block size must precede a lower-case axis")
            axes.append((letter, int(num)))
        else:
            if not letter.isupper():
                raise IRError(f"layout {name}: lower-case axis {letter} needs a block size")
            axes.append((letter, None))
    if pos != len(name) or not axes:
        raise IRError(f"bad layout name {name!r}")
    outer = [a for a, b in axes if b is None]
    if len(set(outer)) != len(outer):
        raise IRError(f"layout {name}: repeated axis")
    for a, b in axes:
        if b is not None and a.upper() not in outer:
            raise IRError(f"layout {name}: block {b}{a} has no outer axis {a.upper()}")
    return Layout(name, tuple(axes))


def _convert(data: np.ndarray, src: Layout, dst: Layout) -> np.ndarray:
    """Rearrange `data` from layout src to dst (same logical axes)."""
    if sorted(src.logical) != sorted(dst.logical):
        raise IRError(f"cannot convert layout {src.name} to {dst.name}")
    dims = src.logical_dims(data.shape)
    # expand src into fully split axes (outer, inner) per logical axis, in a canonical order
    plain = _unblock(data, src)  # now in src.logical order
    order = [src.logical.index(a) for a in dst.logical]
    plain = plain.transpose(order)
    return _block(plain, dst, dims)


def _split_names(layout: Layout, axis: str) -> list[str]:
    """Names of an axis's outer part and its blocks, coarsest first (see Layout._axis_names)."""
    return [axis] + [f"{axis.lower()}{i}" for i in range(len(layout.blocks(axis)))]


def _unblock(data: np.ndarray, layout: Layout) -> np.ndarray:
    if not layout.is_blocked:
        return data
    logical = layout.logical
    # move each inner block right after its outer axis, then merge
    names = layout._axis_names()
    target = [n for a in logical for n in _split_names(layout, a)]
    data = data.transpose([names.index(n) for n in target])
    shape = [data.shape[target.index(a)] * (layout.block(a) or 1) for a in logical]
    return data.reshape(shape)


def _block(plain: np.ndarray, layout: Layout, dims: dict[str, int]) -> np.ndarray:
    if not layout.is_blocked:
        return np.ascontiguousarray(plain)
    split_shape, split_names = [], []
    for a in layout.logical:
        split_shape += [dims[a] // (layout.block(a) or 1), *layout.blocks(a)]
        split_names += _split_names(layout, a)
    data = plain.reshape(split_shape)
    return np.ascontiguousarray(data.transpose([split_names.index(n) for n in layout._axis_names()]))
