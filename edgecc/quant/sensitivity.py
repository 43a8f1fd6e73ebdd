"""Per-layer sensitivity and the choice of layers kept in float32.

A layer's sensitivity is the output error of the model with only that layer quantized, against the
float model on the calibration samples: the relative L2 error of all outputs, and for classifier
outputs (last axis > 1) the fraction of samples whose top-1 class is unchanged. Each variant is
compiled by edgecc for the host and run, so the numbers are those of the integer kernels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

__all__ = ["evaluate", "layer_sensitivity", "choose_fp32_layers", "compare_outputs", "plot_sensitivity"]


def compare_outputs(outputs: Sequence[dict], references: Sequence[dict]) -> dict:
    """{'error': relative L2 error, 'top1_agreement': fraction or None} of outputs against references."""
    num = den = 0.0
    agree = total = 0
    for out, ref in zip(outputs, references):
        for name, r in ref.items():
            a, b = np.asarray(out[name], np.float64), np.asarray(r, np.float64)
            num += float(((a - b) ** 2).sum())
            den += float((b**2).sum())
        first = next(iter(ref))
        r = np.asarray(ref[first])
        if r.ndim >= 2 and r.shape[-1] > 1:
            a = np.asarray(out[first]).reshape(-1, r.shape[-1])
            b = r.reshape(-1, r.shape[-1])
            agree += int((a.argmax(-1) == b.argmax(-1)).sum())
            total += b.shape[0]
    error = math.sqrt(num / den) if den > 0 else math.sqrt(num)
    return {"error": error, "top1_agreement": (agree / total) if total else None}


def evaluate(graph, samples, references, *, skip=(), only=(), dtype="int8", per_channel=True,
             quantize_outputs=False, compile_options: dict | None = None) -> dict:
    """Quantize a copy of the annotated `graph` (all layers but `skip`, or just `only`; layer
    results too with `quantize_outputs`), compile it for the host, run it on `samples` and compare
    with the float `references`."""
    import edgecc
    from edgecc.passes import PassContext, PassManager
    from edgecc.passes.quantize import Quantize

    variant = graph.clone()
    quantize = Quantize(dtype=dtype, per_channel=per_channel, skip=tuple(skip), only=tuple(only),
                        outputs=quantize_outputs)
    PassManager([quantize]).run(variant, PassContext())
    module = edgecc.compile(variant, "host", **(compile_options or {})).load()
    outputs = [module.run(feed) for feed in samples]
    return compare_outputs(outputs, references)


def layer_sensitivity(graph, layers, samples, references, progress: Callable[[int, int], None] | None = None,
                      **kwargs) -> list[dict]:
    """For each layer (node) of `layers`: the error with only that layer quantized.
    `progress(done, total)` hears each layer done."""
    out = []
    for i, node in enumerate(layers):
        result = evaluate(graph, samples, references, only=(node.name,), **kwargs)
        out.append({"layer": node.name, "op": node.op, **result})
        if progress:
            progress(i + 1, len(layers))
    return out


def _worse(entry: dict, metric: str) -> float:
    if metric == "top1" and entry.get("top1_agreement") is not None:
        return 1.0 - entry["top1_agreement"]
    return entry["error"]


def choose_fp32_layers(sensitivity: list[dict], *, keep: int = 0, budget: float | None = None, metric: str = "error",
                       evaluate_with: Callable[[tuple[str, ...]], dict] | None = None,
                       progress: Callable[[int, int], None] | None = None) -> tuple[list[str], dict | None]:
    """Layers to keep in float32: the `keep` most sensitive, then more, most sensitive first, until
    the whole model's error (by `metric`) is within `budget`. Returns (layers, last evaluation).
    `progress(kept, layers)` hears each evaluation."""
    ranked = [e["layer"] for e in sorted(sensitivity, key=lambda e: _worse(e, metric), reverse=True)]
    kept = ranked[:keep]
    result = None
    if budget is not None and evaluate_with is not None:
        while True:
            result = evaluate_with(tuple(kept))
            if progress:
                progress(len(kept), len(ranked))
            if _worse(result, metric) <= budget or len(kept) == len(ranked):
                break
            kept.append(ranked[len(kept)])
    return kept, result


def plot_sensitivity(sensitivity: list[dict], path: str, kept_fp32: Sequence[str] = ()) -> None:
    """A bar chart of each layer's error with only that layer in int8, most sensitive on top,
    layers kept in float32 marked; written to PNG atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgecc._files import atomic_output

    ranked = sorted(sensitivity, key=lambda e: e["error"])
    fig, ax = plt.subplots(figsize=(9, 0.3 * len(ranked) + 1.6))
    colors = ["#d8553b" if e["layer"] in kept_fp32 else "#3b7dd8" for e in ranked]
    ax.barh([f"{e['layer']} ({e['op']})" for e in ranked], [e["error"] for e in ranked], color=colors)
    ax.set_xlabel("relative L2 error of the outputs, only this layer in int8")
    ax.set_title("quantization sensitivity per layer" + (" (red: kept in float32)" if kept_fp32 else ""))
    fig.tight_layout()
    try:
        with atomic_output(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, format="png")
    finally:
        plt.close(fig)
