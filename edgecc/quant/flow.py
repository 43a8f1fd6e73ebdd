"""The quantization step of the compile driver: float graph -> graph with quantize/dequantize
pairs around the layers chosen for integer execution.

    1. the float clean-ups of the opt level (batch norm folded, constants folded)
    2. calibration: an instrumented copy compiled by edgecc and run on the samples
    3. activation parameters from the ranges onto the graph's values (`annotate`)
    4. optionally per-layer sensitivity, and the layers kept in float32 (--keep-fp32,
       --accuracy-budget)
    5. the `quantize` pass; `lower-qdq` in the normal pipeline then forms the integer kernels
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # options.py calls this module: no import at run time
    from .options import QuantizeOptions

__all__ = ["quantize_graph"]


def quantize_graph(graph, qopts: QuantizeOptions, opt_level: int = 2, disabled_passes=(),
                   progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Quantize `graph` in place; returns a report (also stored as graph.meta['quantization']).

    `progress(stage, done, total)` hears the steps of calibration, sensitivity and the accuracy
    budget (the compile driver's progress callable).
    """
    from edgecc.passes import PassContext, PassManager, get_pass, opt_level_pipeline, without_passes
    from edgecc.passes.quantize import Quantize, calibration_values, quantizable_nodes

    from .calibrate import calibrate
    from .data import load_calibration
    from .scheme import annotate
    from .sensitivity import choose_fp32_layers, evaluate, layer_sensitivity

    qopts.check()
    step = progress or (lambda stage, done, total: None)
    for name in disabled_passes:
        get_pass(name)
    pipeline = without_passes(opt_level_pipeline(opt_level), set(disabled_passes))
    PassManager(pipeline).run(graph, PassContext(opt_level=opt_level))

    samples = load_calibration(qopts.calibration, graph, qopts.max_samples)
    layers = quantizable_nodes(graph, qopts.quantize_outputs)
    values = calibration_values(graph, layers, outputs=qopts.quantize_outputs)
    compile_options = {"opt_level": opt_level}
    found = calibrate(graph, samples, values, qopts.method, qopts.percentile, qopts.symmetric, compile_options,
                      progress=lambda done, total: step("calibrate", done, total))
    annotate(graph, found.ranges, qopts.activation_dtype, qopts.symmetric)

    report: dict = {"method": qopts.method, "activation_dtype": qopts.activation_dtype,
                    "symmetric": qopts.symmetric, "per_channel": qopts.per_channel, "samples": len(samples),
                    "layers": [n.name for n in layers]}
    skip = list(qopts.skip)
    if qopts.needs_sensitivity and layers:
        count = min(qopts.eval_samples, len(samples)) if qopts.eval_samples else len(samples)
        eval_feeds, refs = samples[:count], found.outputs[:count]
        common = dict(dtype=qopts.activation_dtype, per_channel=qopts.per_channel, quantize_outputs=qopts.quantize_outputs,
                      compile_options=compile_options)
        sens = layer_sensitivity(graph, layers, eval_feeds, refs,
                                 progress=lambda done, total: step("sensitivity", done, total), **common)
        report["sensitivity"] = sens
        kept, result = choose_fp32_layers(
            sens, keep=qopts.keep_fp32, budget=qopts.accuracy_budget, metric=qopts.budget_metric,
            evaluate_with=lambda kept: evaluate(graph, eval_feeds, refs, skip=tuple(skip) + kept, **common),
            progress=lambda kept, layers: step("accuracy budget", kept, layers))
        skip += [k for k in kept if k not in skip]
        if result is None:
            result = evaluate(graph, eval_feeds, refs, skip=tuple(skip), **common)
        report["evaluation"] = {"samples": count, **result}
    report["kept_fp32"] = skip
    Quantize(dtype=qopts.activation_dtype, per_channel=qopts.per_channel, skip=tuple(skip),
             weight_bits=qopts.resolved_weight_bits, outputs=qopts.quantize_outputs).run(graph, PassContext())
    report["quantized"] = [n for n in report["layers"] if n not in skip]
    graph.meta["quantization"] = report
    return report
