"""Data layouts: `NCHW`, `NHWC`, and blocked forms such as `NCHW8c` or `OIHW8i16o`.

An upper-case letter is a logical axis; a number followed by the same letter in lower case is an
inner block of that axis (`NCHW8c`: channels split into C//8 outer and 8 inner).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .graph import IRError

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
        for a, b in self.axes:
            if a == axis.lower() and b is not None:
                return b
        return None

    @property
    def is_blocked(self) -> bool:
        return any(b is not None for _, b in self.axes)

    def physical_shape(self, dims: dict[str, int]) -> tuple[int, ...]:
        """Physical shape from logical sizes (`{'N':1,'C':64,'H':56,'W':56}`)."""
        shape = []
        for axis, block in self.axes:
            if block is None:
                size = dims[axis]
                inner = self.block(axis)
                if inner:
                    if size % inner:
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
            dims[key] = dims.get(key, 1) * int(size)
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


def _unblock(data: np.ndarray, layout: Layout) -> np.ndarray:
    if not layout.is_blocked:
        return data
    logical = layout.logical
    # move each inner block right after its outer axis, then merge
    names = [a if b is None else a + "_in" for a, b in layout.axes]
    target = []
    for a in logical:
        target.append(a)
        if layout.block(a):
            target.append(a.lower() + "_in")
    data = data.transpose([names.index(n) for n in target])
    shape = [data.shape[target.index(a)] * (layout.block(a) or 1) for a in logical]
    return data.reshape(shape)


def _block(plain: np.ndarray, layout: Layout, dims: dict[str, int]) -> np.ndarray:
    if not layout.is_blocked:
        return np.ascontiguousarray(plain)
    logical = layout.logical
    split_shape, split_names = [], []
    for a in logical:
        blk = layout.block(a)
        if blk:
            split_shape += [dims[a] // blk, blk]
            split_names += [a, a.lower() + "_in"]
        else:
            split_shape.append(dims[a])
            split_names.append(a)
    data = plain.reshape(split_shape)
    names = [a if b is None else a + "_in" for a, b in layout.axes]
    return np.ascontiguousarray(data.transpose([split_names.index(n) for n in names]))
