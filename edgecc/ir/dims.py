"""Symbolic dimensions: a size known at compile time only as a formula over named size variables.

A tensor type's shape holds ints and `Dim`s: `f32[batch,seq,768]`, `f32[batch,(h+1)//2]`.
A `Dim` is kept in a normal form, a polynomial with integer coefficients over atoms (size
variables and floor divisions of a formula by a positive integer), so equal formulas compare
equal and `seq*12//12` is `seq` again. Arithmetic with ints and other `Dim`s gives a `Dim`, or a
plain int when the variables cancel.

Every size variable is at least 1. A question the formula cannot settle at compile time
(`seq < 3`, `int(seq)`) raises `UndecidableDim`, an IRError: the op asking it refuses the
symbolic shape with one clear line instead of guessing.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from .errors import IRError

__all__ = ["Dim", "UndecidableDim", "DimBinding", "require_size", "variable_name", "dim_vars", "is_static",
           "parse_dim", "evaluate_dim", "format_dim", "format_shape", "symbolic_array", "has_dims", "upper_bound"]


class UndecidableDim(IRError, ValueError):
    """A question about a symbolic dimension that only the run time can answer."""


class DimBinding(UndecidableDim):
    """An op works only if size variable `var` is `value` (a convolution's input channels are
    the weight's): a frontend may fix the variable and convert again."""

    def __init__(self, var: str, value: int, message: str):
        super().__init__(f"{message} (the model works only with {var} = {value})")
        self.var, self.value = var, value


def require_size(have, want, message: str) -> None:
    """IRError(`message`) unless sizes `have` and `want` are equal; `DimBinding` when one of them
    is a bare size variable and the other a plain int."""
    if have == want:
        return
    for var, value in ((have, want), (want, have)):
        if isinstance(var, Dim) and not isinstance(value, Dim) and variable_name(var) and value >= 1:
            raise DimBinding(variable_name(var), int(value), message)
    raise IRError(message)


def variable_name(d) -> str | None:
    """The name of `d` when it is a bare size variable (`seq`, not `seq*2`), else None."""
    if isinstance(d, Dim) and len(d.terms) == 1 and d.terms[0][1] == 1 and len(d.terms[0][0]) == 1 \
            and isinstance(d.terms[0][0][0], str):
        return d.terms[0][0][0]
    return None


# A monomial is a sorted tuple of atoms; an atom is a variable name (str) or a floor division
# ("//", numerator terms, divisor). A formula is a sorted tuple of (monomial, coefficient) pairs.
_Terms = tuple


def _atom_key(atom) -> str:
    if isinstance(atom, str):
        return atom
    numerator = _format_terms(atom[1])
    if len(atom[1]) > 1 or atom[1][0][1] != 1:
        numerator = f"({numerator})"
    return f"({numerator}//{atom[2]})"


def _mono_key(mono) -> tuple:
    return (len(mono), tuple(_atom_key(a) for a in mono))


def _normal(terms: dict) -> _Terms:
    return tuple(sorted(((m, c) for m, c in terms.items() if c != 0), key=lambda mc: _mono_key(mc[0])))


def _as_terms(x) -> _Terms:
    if isinstance(x, Dim):
        return x.terms
    if isinstance(x, bool) or not isinstance(x, int):
        try:
            x = operator.index(x)
        except TypeError:
            raise TypeError(f"a dimension cannot be combined with {x!r}") from None
    return (((), x),) if x else ()


def _wrap(terms: _Terms):
    """An int when the formula is a constant, else a Dim."""
    if not terms:
        return 0
    if len(terms) == 1 and terms[0][0] == ():
        return terms[0][1]
    d = Dim.__new__(Dim)
    d.terms = terms
    return d


def _add(a: _Terms, b: _Terms, sign: int = 1) -> _Terms:
    out = dict(a)
    for m, c in b:
        out[m] = out.get(m, 0) + sign * c
    return _normal(out)


def _mul(a: _Terms, b: _Terms) -> _Terms:
    out: dict = {}
    for ma, ca in a:
        for mb, cb in b:
            m = tuple(sorted(ma + mb, key=_atom_key))
            out[m] = out.get(m, 0) + ca * cb
    return _normal(out)


def _floordiv_int(a: _Terms, k: int) -> _Terms:
    if k <= 0:
        raise UndecidableDim(f"a dimension divided by {k}")
    if k == 1:
        return a
    const = dict(a).get((), 0)
    rest = tuple((m, c) for m, c in a if m != ())
    if all(c % k == 0 for _, c in rest):  # (k*p + c) // k == p + c // k for integer p
        return _normal({**{m: c // k for m, c in rest}, (): const // k})
    if len(rest) == 1 and rest[0][1] == 1 and len(rest[0][0]) == 1 and not isinstance(rest[0][0][0], str):
        _, p, j = rest[0][0][0]  # (p // j + c) // k == (p + j*c) // (j*k)
        return _floordiv_int(_add(p, (((), j * const),)), j * k)
    if const // k:  # (p + q*k + r) // k == (p + r) // k + q, with 0 <= r < k
        inner = _floordiv_int(_normal({**dict(rest), (): const % k}), k)
        return _add(inner, (((), const // k),))
    return ((((("//", a, k),), 1)),)


def _floordiv(a: _Terms, b: _Terms) -> _Terms:
    if not b:
        raise UndecidableDim("a dimension divided by 0")
    if len(b) == 1 and b[0][0] == ():
        return _floordiv_int(a, b[0][1])
    if a == b:
        return (((), 1),)
    if len(b) == 1:  # division by one monomial c*m: exact when every term holds m and c
        mb, cb = b[0]
        out = {}
        for m, c in a:
            rest = list(m)
            for atom in mb:
                if atom not in rest:
                    break
                rest.remove(atom)
            else:
                if c % cb == 0:
                    out[tuple(rest)] = c // cb
                    continue
            break
        else:
            return _normal(out)
    raise UndecidableDim(f"({_format_terms(a)}) // ({_format_terms(b)}) is not known at compile time")


def _atom_low(atom) -> int:
    if isinstance(atom, str):
        return 1
    return max(0, _lower(atom[1]) // atom[2])


def _lower(terms: _Terms) -> float:
    """A lower bound of the formula's value (-inf when a negative term has no upper bound)."""
    total = 0
    for m, c in terms:
        if c < 0 and m != ():
            return -math.inf
        total += c * math.prod(_atom_low(a) for a in m)
    return total


class Dim:
    """A symbolic dimension (see the module docstring). Build one with `Dim.var("seq")`."""

    __slots__ = ("terms",)

    @staticmethod
    def var(name: str) -> Dim:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise IRError(f"bad dimension name {name!r} (letters, digits and _, not first a digit)")
        return _wrap(((((name,), 1)),))

    # ----- arithmetic ------------------------------------------------------------------------------
    def __add__(self, other):
        return _wrap(_add(self.terms, _as_terms(other)))

    __radd__ = __add__

    def __sub__(self, other):
        return _wrap(_add(self.terms, _as_terms(other), -1))

    def __rsub__(self, other):
        return _wrap(_add(_as_terms(other), self.terms, -1))

    def __neg__(self):
        return _wrap(_add((), self.terms, -1))

    def __mul__(self, other):
        return _wrap(_mul(self.terms, _as_terms(other)))

    __rmul__ = __mul__

    def __floordiv__(self, other):
        return _wrap(_floordiv(self.terms, _as_terms(other)))

    def __rfloordiv__(self, other):
        return _wrap(_floordiv(_as_terms(other), self.terms))

    def __mod__(self, other):
        return self - (self // other) * other

    def __rmod__(self, other):
        return other - (other // self) * self

    # ----- questions -------------------------------------------------------------------------------
    def __eq__(self, other) -> bool:
        try:
            return self.terms == _as_terms(other)
        except TypeError:
            return NotImplemented

    def __ne__(self, other) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self.terms)

    def _sign_question(self, other, what: str, decide: Callable[[float], bool | None]) -> bool:
        low = _lower(_add(self.terms, _as_terms(other), -1))
        answer = decide(low)
        if answer is None:
            raise UndecidableDim(f"whether {self} {what} {format_dim(other)} is not known at compile time")
        return answer

    def __lt__(self, other) -> bool:
        return self._sign_question(other, "<", lambda low: False if low >= 0 else None)

    def __le__(self, other) -> bool:
        return self._sign_question(other, "<=", lambda low: False if low >= 1 else (True if self == other else None))

    def __gt__(self, other) -> bool:
        return self._sign_question(other, ">", lambda low: True if low >= 1 else None)

    def __ge__(self, other) -> bool:
        return self._sign_question(other, ">=", lambda low: True if low >= 0 else None)

    def __int__(self) -> int:
        raise UndecidableDim(f"dimension {self} is not known at compile time")

    __index__ = __int__

    def __bool__(self) -> bool:
        if _lower(self.terms) >= 1:
            return True
        raise UndecidableDim(f"whether {self} is zero is not known at compile time")

    # ----- text ------------------------------------------------------------------------------------
    def __str__(self) -> str:
        return _format_terms(self.terms)

    def __repr__(self) -> str:
        return f"Dim({str(self)!r})"

    def __reduce__(self):
        return (parse_dim, (str(self),))

    @property
    def vars(self) -> frozenset[str]:
        return frozenset(_terms_vars(self.terms))


def _terms_vars(terms: _Terms) -> Iterable[str]:
    for m, _ in terms:
        for atom in m:
            if isinstance(atom, str):
                yield atom
            else:
                yield from _terms_vars(atom[1])


def _format_terms(terms: _Terms) -> str:
    if not terms:
        return "0"
    text = ""
    for m, c in sorted(terms, key=lambda mc: mc[0] == ()):  # the constant last: seq*12+1
        factors = "*".join(_atom_key(a) for a in m)
        body = factors if factors and abs(c) == 1 else "*".join(filter(None, (factors, str(abs(c)))))
        text += ("-" if c < 0 else "+" if text else "") + body
    return text


def format_dim(d) -> str:
    return str(d)


def format_shape(shape: Iterable) -> str:
    """`(batch, seq, 768)`: a shape as text, symbolic dimensions by their formulas."""
    dims = [str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def has_dims(array) -> bool:
    """Whether a numpy array (of object dtype) holds a symbolic dimension."""
    return getattr(array, "dtype", None) == object and any(isinstance(v, Dim) for v in array.reshape(-1))


def symbolic_array(array, dtype: str):
    """An object array of ints and Dims (a shape vector computed from symbolic shapes) in its
    canonical form: plain `dtype` when no Dim is left, else object. ValueError when Dims would
    become a non-integer dtype."""
    array = np.asarray(array, dtype=object)
    if not has_dims(array):
        return array.astype(dtype)
    if not (dtype.startswith("int") or dtype.startswith("uint") or dtype == "bool"):
        raise ValueError(f"symbolic dimensions as {dtype}")
    if dtype == "bool":
        return array.astype(bool)
    return array


def upper_bound(d, bounds: Mapping[str, tuple]) -> int | None:
    """`d` at the upper bounds of its variables (None when one has none): the largest value of a
    formula that grows with its variables, as the sizes of shapes do."""
    if not isinstance(d, Dim):
        return d
    env = {}
    for name in d.vars:
        hi = (bounds.get(name) or (None, None))[1]
        if hi is None:
            return None
        env[name] = hi
    return evaluate_dim(d, env)


def is_static(shape: Iterable) -> bool:
    """Whether every dimension of `shape` is a plain int."""
    return not any(isinstance(d, Dim) for d in shape)


def dim_vars(shape: Iterable) -> frozenset[str]:
    """The size variables a shape mentions."""
    out: set[str] = set()
    for d in shape:
        if isinstance(d, Dim):
            out |= d.vars
    return frozenset(out)


def evaluate_dim(d, env: Mapping[str, object], floordiv: Callable = operator.floordiv):
    """The value of `d` with its variables taken from `env`: ints give an int, TVM expressions
    (with floordiv=tvm.tir.floordiv) an expression."""
    if not isinstance(d, Dim):
        return d
    return _evaluate(d.terms, env, floordiv)


def _evaluate(terms: _Terms, env, floordiv):
    total = None
    for m, c in terms:
        value = c
        for atom in m:
            if isinstance(atom, str):
                try:
                    value = value * env[atom]
                except KeyError:
                    raise UndecidableDim(f"no value for dimension {atom}") from None
            else:
                value = value * floordiv(_evaluate(atom[1], env, floordiv), atom[2])
        total = value if total is None else total + value
    return 0 if total is None else total


# ----- the text form: a + b, a - b, a * b, a // k, (...), names and integers -------------------------
_TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z_][A-Za-z0-9_]*)|(//|[-+*()]))")


def parse_dim(text: str):
    """The Dim (or int) a text such as `batch*seq`, `(h+1)//2` or `8` describes."""
    tokens = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise IRError(f"bad dimension {text!r}")
        tokens.append(m.group(1) or m.group(2) or m.group(3))
        pos = m.end()
    parser = _DimParser(tokens, text)
    value = parser.sum()
    if parser.i != len(tokens):
        raise IRError(f"bad dimension {text!r}")
    return value


class _DimParser:
    def __init__(self, tokens: list[str], text: str):
        self.tokens, self.text, self.i = tokens, text, 0

    def _peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def sum(self):
        value = self.product()
        while self._peek() in ("+", "-"):
            op = self.tokens[self.i]
            self.i += 1
            value = value + self.product() if op == "+" else value - self.product()
        return value

    def product(self):
        value = self.unary()
        while self._peek() in ("*", "//"):
            op = self.tokens[self.i]
            self.i += 1
            value = value * self.unary() if op == "*" else value // self.unary()
        return value

    def unary(self):
        if self._peek() == "-":
            self.i += 1
            return -self.unary()
        return self.atom()

    def atom(self):
        tok = self._peek()
        if tok is None:
            raise IRError(f"bad dimension {self.text!r}")
        self.i += 1
        if tok == "(":
            value = self.sum()
            if self._peek() != ")":
                raise IRError(f"bad dimension {self.text!r}")
            self.i += 1
            return value
        if tok.isdigit():
            return int(tok)
        if tok[0].isalpha() or tok[0] == "_":
            return Dim.var(tok)
        raise IRError(f"bad dimension {self.text!r}")
