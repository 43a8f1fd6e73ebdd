"""Output comparison: edgecc's outputs against reference outputs (ONNX Runtime's, a float model's).

`compare_outputs(got, expected, rtol, atol)` returns one `OutputComparison` per expected output:
floats match when |got - expected| <= atol + rtol * |expected| everywhere (NaN matches NaN), as
`numpy.testing.assert_allclose` checks; integers, booleans and strings must be equal; shapes and
dtypes must agree. The largest absolute and relative errors are reported for numbers. Outputs are given as mappings (name -> array) or as sequences (in order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["OutputComparison", "compare_outputs", "format_comparison"]


@dataclass
class OutputComparison:
    """How one output compares with its reference."""

    name: str
    ok: bool
    max_abs_err: float | None = None  # None when the values were not compared numerically
    max_rel_err: float | None = None  # relative to |expected| (at least 1e-12)
    mismatched: int = 0  # elements outside the tolerance
    problem: str | None = None  # one line saying what differs (None when ok)


def compare_outputs(got: Mapping[str, Any] | Sequence[Any], expected: Mapping[str, Any] | Sequence[Any],
                    rtol: float = 1e-4, atol: float = 1e-4) -> list[OutputComparison]:
    """One record per expected output (and one for each output of `got` that has no reference)."""
    got_items, expected_items = _named(got), _named(expected)
    records = [compare_output(name, got_items.get(name, _MISSING), value, rtol, atol)
               for name, value in expected_items.items()]
    for name in got_items.keys() - expected_items.keys():
        records.append(OutputComparison(name, False, problem=f"{name}: no reference output of that name"))
    return records


_MISSING = object()


def _named(outputs) -> dict[str, Any]:
    if isinstance(outputs, Mapping):
        return dict(outputs)
    return {f"output {i}": value for i, value in enumerate(outputs)}


def compare_output(name: str, got: Any, expected: Any, rtol: float, atol: float) -> OutputComparison:
    """Compare one output (an array, None, or a list of those) with its reference."""
    if got is _MISSING:
        return OutputComparison(name, False, problem=f"{name}: missing")
    if isinstance(expected, list) or isinstance(got, list):
        return _compare_sequence(name, got, expected, rtol, atol)
    if expected is None or got is None:
        ok = expected is None and got is None
        return OutputComparison(name, ok, problem=None if ok else f"{name}: {got is None and 'no value' or 'a value'}, "
                                                                    f"expected {expected is None and 'none' or 'one'}")
    g, e = np.asarray(got), np.asarray(expected)
    if g.shape != e.shape:
        return OutputComparison(name, False, problem=f"{name}: shape {g.shape}, expected {e.shape}")
    if g.dtype != e.dtype:
        return OutputComparison(name, False, problem=f"{name}: dtype {g.dtype}, expected {e.dtype}")
    if e.dtype == object or e.dtype == np.bool_:
        bad = int(np.sum(g != e))
        return OutputComparison(name, bad == 0, mismatched=bad,
                                problem=f"{name}: {bad} of {e.size} elements differ" if bad else None)
    exact = np.issubdtype(e.dtype, np.integer)
    return _compare_numbers(name, g, e, 0.0 if exact else rtol, 0.0 if exact else atol)


def _compare_sequence(name: str, got, expected, rtol: float, atol: float) -> OutputComparison:
    if not (isinstance(got, list) and isinstance(expected, list)):
        return OutputComparison(name, False, problem=f"{name}: a {type(got).__name__}, expected a "
                                                     f"{type(expected).__name__}")
    if len(got) != len(expected):
        return OutputComparison(name, False, problem=f"{name}: {len(got)} items, expected {len(expected)}")
    for i, (g, e) in enumerate(zip(got, expected)):
        item = compare_output(f"{name}[{i}]", g, e, rtol, atol)
        if not item.ok:
            return OutputComparison(name, False, item.max_abs_err, item.max_rel_err, item.mismatched, item.problem)
    return OutputComparison(name, True)


def _compare_numbers(name: str, got: np.ndarray, expected: np.ndarray, rtol: float, atol: float) -> OutputComparison:
    if not np.issubdtype(expected.dtype, np.number):  # types numpy cannot promote (bfloat16, float8)
        got, expected = got.astype(np.float32), expected.astype(np.float32)
    g, e = got.astype(np.float64), expected.astype(np.float64)
    with np.errstate(all="ignore"):
        diff = np.abs(g - e)
        same = (g == e) | (np.isnan(g) & np.isnan(e))  # equal infinities, NaN against NaN
        diff = np.where(same, 0.0, np.where(np.isnan(diff), np.inf, diff))
        excess = np.where(same, -1.0, diff - (atol + rtol * np.abs(e)))
        rel = np.where(same, 0.0, diff / np.maximum(np.nan_to_num(np.abs(e), nan=np.inf), 1e-12))
    abs_err = float(diff.max()) if diff.size else 0.0
    rel_err = float(rel.max()) if rel.size else 0.0
    bad = int(np.sum(excess > 0))
    if not bad:
        return OutputComparison(name, True, abs_err, rel_err)
    index = np.unravel_index(int(np.argmax(excess)), e.shape) if e.ndim else ()
    where = f" at {tuple(int(i) for i in index)}" if e.ndim else ""
    problem = (f"{name}: {bad} of {e.size} elements differ; worst{where}: got {g[index]:.6g}, expected "
               f"{e[index]:.6g} (rtol {rtol:g}, atol {atol:g})")
    return OutputComparison(name, False, abs_err, rel_err, bad, problem)


def format_comparison(records: list[OutputComparison], rtol: float, atol: float) -> str:
    """A table: output, max abs err, max rel err, within the tolerance (yes/NO)."""
    lines = [f"{'output':<24}{'max abs err':>14}{'max rel err':>14}  within rtol={rtol:g} atol={atol:g}"]
    for r in records:
        if r.max_abs_err is None and not r.ok:
            lines.append(f"{r.name:<24}  {r.problem}")
            continue
        abs_err = f"{r.max_abs_err:.3e}" if r.max_abs_err is not None else "exact"
        rel_err = f"{r.max_rel_err:.3e}" if r.max_rel_err is not None else "exact"
        lines.append(f"{r.name:<24}{abs_err:>14}{rel_err:>14}  {'yes' if r.ok else 'NO'}")
    return "\n".join(lines) + "\n"
