"""Per-kernel times: each distinct kernel of a model built and timed on its own.

Times are measured with random inputs of the kernel's argument shapes, so they show where a
model spends its time (kernel median x number of calls), not its end-to-end latency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgecc.ir import Graph

__all__ = ["KernelTime", "profile_kernels", "format_profile", "plot_profile"]


@dataclass
class KernelTime:
    name: str
    kind: str
    calls: int
    seconds: float  # median of one call
    scheduled_by: str
    flops: float  # per call, from the anchor op (0 when not counted)

    @property
    def total(self) -> float:
        return self.seconds * self.calls


def profile_kernels(graph: Graph, target, schedule=None, repeat: int = 5, number: int = 3,
                    progress=None) -> list[KernelTime]:
    """Build every distinct kernel of `graph` alone and time it on this machine.

    `schedule` is `Scheduler.schedule` (None: kernels as generated); `progress(stage, done, total)`.
    """
    import tvm

    from edgecc.runtime.specs import random_inputs

    from .plan import plan_kernels

    dev = tvm.device(target.device_type)  # a GPU target's kernels are timed on its GPU
    results = []
    plan = plan_kernels(graph)
    for i, planned in enumerate(plan):
        kernel = planned.kernel
        scheduled = schedule(kernel) if schedule is not None else None
        func, how = (scheduled.func, scheduled.how) if scheduled is not None else (kernel.func, "none")
        with target.tvm_target(), target.build_context():
            mod = tvm.compile(func.with_attr("global_symbol", "main"), target=target.tvm_target()).jit()
        specs = [{"name": str(k), "shape": v.type.shape, "dtype": v.type.dtype} for k, v in enumerate(kernel.args)]
        inputs = random_inputs(specs, seed=i, integer_high=1)  # integer inputs zero: indices stay in range
        args = [tvm.runtime.tensor(inputs[spec["name"]], dev) for spec in specs]
        args += [tvm.runtime.empty(v.type.shape, v.type.dtype, dev) for v in kernel.outputs]
        timer = mod.time_evaluator("main", dev, number=number, repeat=repeat)
        seconds = float(np.median(timer(*args).results))
        results.append(KernelTime(kernel.name, kernel.kind, planned.calls, seconds, how, kernel.flops))
        if progress:
            progress("profile", i + 1, len(plan))
    return results


def format_profile(times: list[KernelTime]) -> str:
    total = sum(t.total for t in times) or 1e-12
    lines = [f"{'kernel':<28}{'kind':<16}{'calls':>6}{'ms/call':>10}{'total ms':>10}{'share':>7}{'GFLOP/s':>9}  schedule"]
    for t in sorted(times, key=lambda t: -t.total):
        gf = f"{t.flops / t.seconds / 1e9:.1f}" if t.flops else "-"
        lines.append(f"{t.name:<28}{t.kind:<16}{t.calls:>6}{t.seconds * 1e3:>10.3f}{t.total * 1e3:>10.3f}"
                     f"{t.total / total:>7.1%}{gf:>9}  {t.scheduled_by}")
    lines.append(f"{'sum of kernel times':<50}{total * 1e3:>10.3f} ms")
    return "\n".join(lines) + "\n"


def plot_profile(times: list[KernelTime], path: str, title: str = "") -> None:
    """A horizontal bar chart of the kernels' total time (the 25 largest), written to PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = sorted(times, key=lambda t: -t.total)[:25][::-1]
    fig, ax = plt.subplots(figsize=(9, 0.3 * len(top) + 1.5))
    ax.barh([f"{t.name} x{t.calls}" for t in top], [t.total * 1e3 for t in top], color="#3b7dd8")
    ax.set_xlabel("time per inference (ms)")
    ax.set_title(title or "kernel times")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
