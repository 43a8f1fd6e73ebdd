"""Reports from tuning logs: per-workload results, tuning curves, two targets side by side.

    edgecc report tuning_logs/x86_64-znver3 [--plot curves.png]
    edgecc report tuning_logs/x86_64-znver3 tuning_logs/aarch64-cortex-a72

For each workload: MetaSchedule trials and knob points measured, the best measured latency of
either, edgecc's default schedule's latency, GFLOP/s and the fraction of the target's peak (FP32,
from the log's header or --peak-gflops) for kernels whose FLOPs are counted (convolutions, dense
layers, matrix products), and whether compile applies a record (`TunedSchedules.chosen`: it won
the tune-time comparison with the default).
"""

from __future__ import annotations

from dataclasses import dataclass

from .apply import TunedSchedules
from .database import TuningLog

__all__ = ["WorkloadSummary", "plot_curves", "report_logs", "summarize"]


@dataclass
class WorkloadSummary:
    workload: int
    shash: str
    name: str
    kind: str
    calls: int
    flops: float
    trials: int  # MetaSchedule records
    best: float | None  # seconds, of either kind of record
    default: float | None  # seconds
    curve: list[float]  # best-so-far seconds after each knob point, then each trial (None until a valid one)
    knob_points: int = 0
    applied: bool = False  # compile applies a record of this workload

    @property
    def gflops(self) -> float | None:
        return self.flops / self.best / 1e9 if self.flops and self.best else None


def summarize(log: TuningLog) -> list[WorkloadSummary]:
    """One summary per workload of the log, most time per inference first."""
    out = []
    chooser = TunedSchedules(log)
    for index, (shash, _) in enumerate(log.workloads):
        records = log.records_of(index)
        knobs = log.knob_records_of(index)
        task = log.task(index)
        best, curve = None, []
        for record in [*knobs, *records]:
            if record.valid and (best is None or record.seconds < best):
                best = record.seconds
            curve.append(best)
        out.append(WorkloadSummary(index, shash, task.get("name", f"workload{index}"), task.get("kind", "?"),
                                   int(task.get("calls", 1)), float(task.get("flops") or 0.0), len(records),
                                   best, task.get("default_secs"), curve, len(knobs),
                                   chooser.chosen(index) is not None))
    return sorted(out, key=lambda w: -((w.best or w.default or 0.0) * w.calls))


def _ms(seconds: float | None) -> str:
    return f"{seconds * 1e3:.4g}" if seconds else "-"


def format_table(log: TuningLog, peak_gflops: float | None = None) -> str:
    peak = peak_gflops or log.header.get("peak_gflops")
    rows = summarize(log)
    lines = [f"tuning log {log.folder}: target {log.tag}, {len(rows)} workloads, {len(log.records)} records, "
             f"{len(log.knob_records)} knob points"
             + (f", peak {peak:.1f} GFLOP/s" if peak else "")
             + (f"; {len(log.runs)} tuning runs, {sum(r.get('seconds', 0) for r in log.runs):.0f} s"
                if log.runs else "")
             + (f"; {log.foreign} records of other targets ignored" if log.foreign else ""),
             f"{'kernel':<22}{'kind':<13}{'calls':>6}{'trials':>7}{'knobs':>6}{'best ms':>10}{'default ms':>11}"
             f"{'vs default':>11}{'GFLOP/s':>9}{'of peak':>8}{'applied':>8}"]
    for w in rows:
        gain = f"{w.default / w.best:.2f}x" if w.best and w.default else "-"
        gf = f"{w.gflops:.3g}" if w.gflops else "-"
        frac = f"{w.gflops / peak:.0%}" if w.gflops and peak else "-"
        lines.append(f"{w.name:<22}{w.kind:<13}{w.calls:>6}{w.trials:>7}{w.knob_points:>6}{_ms(w.best):>10}"
                     f"{_ms(w.default):>11}{gain:>11}{gf:>9}{frac:>8}{'yes' if w.applied else 'no':>8}")
    used = sum(1 for w in rows if w.applied)
    lines.append(f"{used} of {len(rows)} workloads have a record that beat the default schedule "
                 f"(compile applies only those)")
    return "\n".join(lines)


def format_comparison(a: TuningLog, b: TuningLog) -> str:
    """Workloads of two targets side by side, matched by workload (else by kernel name)."""
    rows_b = summarize(b)
    by_hash = {w.shash: w for w in rows_b}
    by_name = {w.name: w for w in rows_b}
    lines = [f"{'kernel':<22}{'kind':<13}{a.tag + ' ms':>22}{b.tag + ' ms':>22}{'ratio':>8}"]
    for w in summarize(a):
        other = by_hash.get(w.shash) or by_name.get(w.name)
        tb = other.best if other else None
        ratio = f"{tb / w.best:.2f}" if tb and w.best else "-"
        lines.append(f"{w.name:<22}{w.kind:<13}{_ms(w.best):>22}{_ms(tb):>22}{ratio:>8}")
    lines.append(f"ratio = {b.tag} / {a.tag} (above 1: {a.tag} is faster)")
    return "\n".join(lines)


def plot_curves(logs: list[TuningLog], path: str, top: int = 12) -> None:
    """Best-so-far latency (relative to the default schedule) against trials, one line per workload;
    the image is written atomically."""
    import matplotlib

    from edgecc._files import atomic_output

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(logs), figsize=(7 * len(logs), 4.5), squeeze=False)
    for ax, log in zip(axes[0], logs):
        for w in [w for w in summarize(log) if w.curve][:top]:
            base = w.default or next((c for c in w.curve if c), None)
            ys = [c / base if c and base else float("nan") for c in w.curve]
            ax.plot(range(1, len(ys) + 1), ys, label=f"{w.name} ({w.kind})")
        ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
        ax.set_yscale("log")
        ax.set_xlabel("knob points, then MetaSchedule trials")
        ax.set_ylabel("best latency so far / default schedule")
        ax.set_title(f"tuning curves: {log.tag}")
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    try:
        with atomic_output(path) as tmp:  # the format follows the extension, as savefig's
            fig.savefig(tmp, dpi=110)
    finally:
        plt.close(fig)


def report_logs(folders: list[str], plot: str | None = None, peak_gflops: float | None = None) -> str:
    """The text report of one log folder, or of two side by side; writes the PNG if asked."""
    from edgecc.errors import EdgeccError

    if len(folders) > 2:
        raise EdgeccError("report takes one tuning log folder, or two to compare")
    logs = [TuningLog.open(f) for f in folders]
    parts = [format_table(log, peak_gflops) for log in logs]
    if len(logs) == 2:
        parts.append(format_comparison(*logs))
    if plot:
        plot_curves(logs, plot)
        parts.append(f"wrote {plot}")
    return "\n\n".join(parts)
