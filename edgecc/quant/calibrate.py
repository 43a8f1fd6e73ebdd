"""Activation ranges from running the float model, compiled by edgecc, on calibration samples.

An instrumented copy of the graph returns, besides its outputs, every value to be observed; it is
compiled for the host and run once per sample. Range methods:
  * minmax      the observed minimum and maximum;
  * percentile  the given percentile of the values (both tails; of |x| when symmetric);
  * entropy     the clipping threshold whose quantized histogram is closest to the observed
                one in KL divergence (TensorRT's calibration), from a histogram of the nonzero
                |x|: exact zeros (ReLU outputs, padding) are exact on every candidate grid and
                say nothing about where to clip, while their spike, smeared into its neighbours
                by the quantized histogram, would pull the search towards small thresholds.
Histogram methods take a second pass over the samples (the first one fixes the histogram range).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgecc.errors import CalibrationError

__all__ = ["calibrate", "Calibration", "METHODS", "kl_threshold"]

METHODS = ("minmax", "percentile", "entropy")
BINS = 2048


@dataclass
class _Stats:
    lo: float = np.inf
    hi: float = -np.inf
    raw: np.ndarray | None = None  # histogram over [lo, hi]
    mag: np.ndarray | None = None  # histogram of |x| over [0, max(|lo|, |hi|)]
    zeros: int = 0  # exact zeros among the values (all in the first bin of `mag`)

    def observe_range(self, x: np.ndarray) -> None:
        if x.size:
            self.lo = min(self.lo, float(x.min()))
            self.hi = max(self.hi, float(x.max()))

    def observe_hist(self, x: np.ndarray) -> None:
        x = x.reshape(-1).astype(np.float64)
        raw, _ = np.histogram(x, bins=BINS, range=(self.lo, self.hi) if self.hi > self.lo else (self.lo, self.lo + 1))
        amax = max(abs(self.lo), abs(self.hi)) or 1.0
        mag, _ = np.histogram(np.abs(x), bins=BINS, range=(0.0, amax))
        self.raw = raw if self.raw is None else self.raw + raw
        self.mag = mag if self.mag is None else self.mag + mag
        self.zeros += int(np.count_nonzero(x == 0))

    def nonzero_mag(self) -> np.ndarray:
        """The histogram of |x| without the exact zeros."""
        hist = self.mag.copy()
        hist[0] -= self.zeros
        return hist


@dataclass
class Calibration:
    """What a calibration run found: a range per observed value, and the float outputs per sample."""

    ranges: dict[str, tuple[float, float]]
    outputs: list[dict[str, np.ndarray]] = field(default_factory=list)


def _instrumented(graph, values):
    """A copy of `graph` returning its outputs and then each of `values` (by name)."""
    probe = graph.clone()
    names = [v.name for v in values]
    extra = [probe.value(n) for n in names]
    out_names = list(probe.meta.get("output_names") or [v.name for v in probe.outputs])
    probe.set_outputs(list(probe.outputs) + extra)
    probe.meta["output_names"] = out_names + [f"__calibration_{i}" for i in range(len(extra))]
    return probe, out_names


def calibrate(graph, samples, values, method: str = "minmax", percentile: float = 99.99,
              symmetric: bool = False, compile_options: dict | None = None,
              progress: Callable[[int, int], None] | None = None) -> Calibration:
    """Observe `values` of `graph` on `samples`; returns their ranges under `method`.
    `progress(done, total)` hears each run of a sample (two passes for the histogram methods)."""
    import edgecc

    if method not in METHODS:
        raise CalibrationError(f"unknown calibration method '{method}' (use {', '.join(METHODS)})")
    if not 0 < percentile <= 100:
        raise CalibrationError(f"percentile must be in (0, 100], got {percentile}")
    probe, out_names = _instrumented(graph, values)
    module = edgecc.compile(probe, "host", **(compile_options or {})).load()
    stats = [_Stats() for _ in values]
    outputs = []
    runs = len(samples) * (1 if method == "minmax" else 2)
    tick = progress or (lambda done, total: None)
    for i, feed in enumerate(samples):
        results = list(module.run(feed).values())
        outputs.append(dict(zip(out_names, results[:len(out_names)])))
        for s, r in zip(stats, results[len(out_names):]):
            s.observe_range(r)
        tick(i + 1, runs)
    if method != "minmax":
        for i, feed in enumerate(samples):
            results = list(module.run(feed).values())[len(out_names):]
            for s, r in zip(stats, results):
                s.observe_hist(r)
            tick(len(samples) + i + 1, runs)
    ranges = {}
    for v, s in zip(values, stats):
        if not np.isfinite(s.lo) or not np.isfinite(s.hi):
            raise CalibrationError(f"value %{v.name} is not finite on the calibration data")
        ranges[v.name] = _range(s, method, percentile, symmetric)
    return Calibration(ranges, outputs)


def _range(s: _Stats, method: str, percentile: float, symmetric: bool) -> tuple[float, float]:
    if method == "minmax":
        return s.lo, s.hi
    amax = max(abs(s.lo), abs(s.hi))
    if method == "percentile":
        if symmetric:
            t = _hist_percentile(s.mag, 0.0, amax, percentile)
            return max(s.lo, -t), min(s.hi, t)
        lo = _hist_percentile(s.raw, s.lo, s.hi, 100.0 - percentile)
        hi = _hist_percentile(s.raw, s.lo, s.hi, percentile)
        return lo, hi
    levels = 128 if (symmetric or s.lo < 0) else 256
    t = kl_threshold(s.nonzero_mag(), amax, levels)
    return max(s.lo, -t), min(s.hi, t)


def _hist_percentile(hist: np.ndarray, lo: float, hi: float, pct: float) -> float:
    total = hist.sum()
    if total == 0 or hi <= lo:
        return lo
    cdf = np.cumsum(hist) / total
    idx = int(np.searchsorted(cdf, pct / 100.0))
    width = (hi - lo) / len(hist)
    return float(lo + min(idx + 1, len(hist)) * width)


def kl_threshold(hist: np.ndarray, amax: float, levels: int = 128, stride: int = 4) -> float:
    """The |x| threshold minimizing KL(P || Q), P the histogram clipped at the threshold, Q its
    quantization to `levels` levels (TensorRT's entropy calibration)."""
    hist = np.asarray(hist, np.float64)
    n = len(hist)
    if hist.sum() == 0 or amax == 0:
        return amax
    best_kl, best_i = np.inf, n
    for i in range(levels, n + 1, stride):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()
        edges = np.linspace(0, i, levels + 1).astype(np.int64)
        edges = np.unique(edges)
        sums = np.add.reduceat(hist[:i], edges[:-1])
        nonzero = np.add.reduceat((hist[:i] != 0).astype(np.float64), edges[:-1])
        average = np.divide(sums, nonzero, out=np.zeros_like(sums), where=nonzero > 0)
        bucket = np.repeat(np.arange(len(edges) - 1), np.diff(edges))
        q = np.where(hist[:i] != 0, average[bucket], 0.0)
        ps, qs = p.sum(), q.sum()
        if ps == 0 or qs == 0:
            continue
        p /= ps
        q /= qs
        mask = p > 0
        qm = np.where(q[mask] > 0, q[mask], 1e-12)
        kl = float(np.sum(p[mask] * np.log(p[mask] / qm)))
        if kl < best_kl:
            best_kl, best_i = kl, i
    return float(amax * best_i / n)
