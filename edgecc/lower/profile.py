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


def _random_array(shape, dtype, rng):
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if np.issubdtype(np.dtype(dtype), np.integer):
        return np.zeros(shape, dtype=dtype)  # indices stay in range
    return rng.standard_normal(shape).astype(dtype)


def kernel_flops(kernel) -> float:
    """Multiply-adds x 2 of the conv/dense/matmul (float or integer) a kernel is built around (0 for others)."""
    from edgecc.ir.ops.nn import conv_geometry

    node_list = _body_of_kernel(kernel)
    total = 0.0
    for node in node_list:
        out = node.outputs[0].type
        if node.op in ("conv", "qconv"):
            g = conv_geometry(node)
            total += 2.0 * out.size * (g["C"] // g["group"]) * int(np.prod(g["kernel"]))
        elif node.op in ("dense", "matmul", "qdense"):
            k = node.inputs[0].type.shape[-1]
            total += 2.0 * out.size * k
    return total


def _body_of_kernel(kernel):
    node = kernel.outputs[0].producer if kernel.outputs else None
    if node is None:
        return []
    return list(node.subgraph.nodes) if node.subgraph is not None else [node]


def profile_kernels(graph: Graph, target, schedule, repeat: int = 5, number: int = 3,
                    progress=None) -> list[KernelTime]:
    """Build every distinct kernel of `graph` alone and time it on this machine."""
    import tvm

    from .kernels import collect_kernels

    rng = np.random.default_rng(0)
    dev = tvm.cpu()
    results = []
    kernels = collect_kernels(graph)
    for i, (kernel, calls) in enumerate(kernels):
        func, how = schedule(kernel) if schedule is not None else (kernel.func, "none")
        with target.tvm_target():
            mod = tvm.compile(func.with_attr("global_symbol", "main"), target=target.tvm_target()).jit()
        args = [tvm.runtime.tensor(_random_array(v.type.shape, v.type.dtype, rng)) for v in kernel.args]
        args += [tvm.runtime.empty(v.type.shape, v.type.dtype, dev) for v in kernel.outputs]
        timer = mod.time_evaluator("main", dev, number=number, repeat=repeat)
        seconds = float(np.median(timer(*args).results))
        results.append(KernelTime(kernel.name, kernel.kind, calls, seconds, how, kernel_flops(kernel)))
        if progress:
            progress(f"kernel {i + 1}/{len(kernels)} {kernel.name}: {seconds * 1e3:.3f} ms x {calls}")
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
