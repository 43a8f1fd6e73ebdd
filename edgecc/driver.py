"""The compile pipeline: ONNX -> IR -> passes -> target lowering -> shared library."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from edgecc.errors import EdgeccError
from edgecc.ir import Graph

__all__ = ["CompileOptions", "CompiledModel", "compile", "load_model", "optimize", "prepare"]


@dataclass
class CompileOptions:
    """Everything `edgecc compile` can be told, with the CLI's defaults."""

    target: Any = "host"
    target_options: dict[str, Any] = field(default_factory=dict)
    opt_level: int = 2
    passes: str | None = None  # explicit pipeline string; replaces the opt-level pipeline
    disabled_passes: Sequence[str] = ()
    input_shapes: Mapping[str, Sequence[int]] | None = None
    verify_each: bool = False
    time_passes: bool = False
    print_ir_after: Sequence[str] = ()
    tuning_logs: str | None = None  # folder of tuning logs ("" disables them)
    schedules: str = "default"  # "default" rule-based schedules, or "none"
    quantize: Any = None  # edgecc.quant.QuantizeOptions: post-training int8 quantization
    log: TextIO | None = None
    progress: Callable[[str], None] | None = None


@dataclass
class CompiledModel:
    """A compiled model: the optimized IR, the built executable, and statistics."""

    graph: Graph
    executable: Any
    target: Any
    stats: Any
    timings: dict[str, float]
    warnings: list[str]
    pass_report: str = ""

    def export(self, path: str | os.PathLike) -> None:
        """Write the deployable shared library (atomically)."""
        from edgecc.lower.build import export_atomic

        export_atomic(self.executable, self.target, path)

    def load(self):
        """The compiled model as an in-process `edgecc.runtime.Module` (host targets only)."""
        from edgecc.runtime import Module

        if not self.target.runs_here:
            raise EdgeccError(f"a library for target '{self.target.tag}' cannot run on this machine")
        return Module(self.executable.jit(), "<compiled>")


def load_model(model, input_shapes=None, warnings: list[str] | None = None) -> Graph:
    """An ONNX path, a ModelProto or an IR Graph -> Graph."""
    from edgecc.frontend.onnx import from_onnx, load_onnx

    if isinstance(model, Graph):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load_onnx(model, input_shapes, warnings)
    return from_onnx(model, input_shapes, warnings=warnings)


def optimize(graph: Graph, target, options: CompileOptions, remarks: list | None = None) -> str:
    """Run the pass pipeline in place; returns the timing report ('' unless asked for).

    What the passes said is appended to `remarks` when given: `edgecc.passes.Remark`s (pass, node,
    message; `kind` is "note", or "rejection" for a rewrite rule that matched but declined).
    """
    from edgecc.passes import PassContext, PassManager, get_pass, opt_level_pipeline, parse_pipeline, without_passes

    if options.passes is not None:
        pipeline = parse_pipeline(options.passes)
    else:
        pipeline = opt_level_pipeline(options.opt_level, target.passes(options.opt_level))
    for name in options.disabled_passes:
        get_pass(name)  # unknown names are an error, not a silent no-op
    pipeline = without_passes(pipeline, set(options.disabled_passes))
    manager = PassManager(pipeline, verify_each=options.verify_each, print_ir_after=set(options.print_ir_after),
                          out=options.log or sys.stderr)
    ctx = PassContext(target=target, opt_level=options.opt_level)
    try:
        manager.run(graph, ctx)
    finally:
        if remarks is not None:
            remarks.extend(ctx.remarks)
    return manager.timing_report() if options.time_passes else ""


def _scheduler(target, options: CompileOptions):
    if options.schedules == "none":
        return None
    from edgecc.lower.schedules import make_scheduler

    return make_scheduler(target, options.tuning_logs)


def prepare(model, target: Any = "host", **kwargs):
    """Frontend and passes only: returns (optimized Graph, Target, CompileOptions, warnings)."""
    from edgecc.targets import get_target

    options = CompileOptions(target=target, **kwargs)
    target_obj = get_target(options.target, **options.target_options)
    warnings: list[str] = []
    graph = load_model(model, options.input_shapes, warnings)
    if isinstance(model, Graph):
        graph = graph.clone()
    _quantize(graph, options)
    optimize(graph, target_obj, options)
    return graph, target_obj, options, warnings


def _quantize(graph: Graph, options: CompileOptions) -> None:
    """Post-training quantization (calibration, quantize/dequantize pairs) when asked for."""
    if options.quantize is None:
        return
    from edgecc.quant.flow import quantize_graph

    quantize_graph(graph, options.quantize, options.opt_level, options.disabled_passes, options.progress)


def compile(model, target: Any = "host", **kwargs) -> CompiledModel:  # noqa: A001 - the verb users expect
    """Compile an ONNX model (path or ModelProto) or an IR graph for `target`."""
    from edgecc.lower.build import compile_graph
    from edgecc.targets import get_target

    options = CompileOptions(target=target, **kwargs)
    timings: dict[str, float] = {}
    target_obj = get_target(options.target, **options.target_options)
    target_obj.check_toolchain()
    warnings: list[str] = []
    start = time.perf_counter()
    graph = load_model(model, options.input_shapes, warnings)
    if isinstance(model, Graph):
        graph = graph.clone()
    timings["frontend"] = time.perf_counter() - start
    if options.quantize is not None:
        start = time.perf_counter()
        _quantize(graph, options)
        timings["quantize"] = time.perf_counter() - start
    start = time.perf_counter()
    report = optimize(graph, target_obj, options)
    timings["passes"] = time.perf_counter() - start
    start = time.perf_counter()
    scheduler = _scheduler(target_obj, options)
    progress = None
    if options.progress is not None:
        progress = lambda count, name: options.progress(f"kernel {count}: {name}")  # noqa: E731
    executable, stats = compile_graph(graph, target_obj, scheduler,
                                      metadata={"target": target_obj.tag}, progress=progress)
    timings["build"] = time.perf_counter() - start
    return CompiledModel(graph, executable, target_obj, stats, timings, warnings, report)
