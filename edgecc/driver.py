"""The compile pipeline: ONNX -> IR -> passes -> target lowering -> shared library.

The driver connects the layers below it: the frontend, the pass pipeline, the target, the
lowering (handed the target's tuning records through `edgecc.lower.schedules.ScheduleSource`)
and the build. The quantization workflow and the tuner sit above it and call it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from edgecc.errors import EdgeccError
from edgecc.ir import Graph
from edgecc.ir.limits import Limits, use_limits

__all__ = ["CompileOptions", "CompiledModel", "Prepared", "compile", "load_model", "optimize", "prepare",
           "prepare_model"]


@dataclass
class CompileOptions:
    """Everything `edgecc compile` can be told, with the CLI's defaults."""

    target: Any = "host"
    target_options: dict[str, Any] = field(default_factory=dict)
    opt_level: int = 2
    passes: str | None = None  # explicit pipeline string; replaces the opt-level pipeline
    disabled_passes: Sequence[str] = ()
    #: input name -> dimensions, each an int (fixed), (lo, hi or None) (symbolic within bounds),
    #: a name (symbolic, that size variable) or None (symbolic, as the model names it)
    input_shapes: Mapping[str, Sequence[int | tuple | str | None]] | None = None
    verify_each: bool = False
    time_passes: bool = False
    print_ir_after: Sequence[str] = ()
    tuning_logs: str | None = None  # folder of tuning logs ("" disables them)
    schedules: str = "default"  # "default" rule-based schedules, or "none"
    quantize: Any = None  # edgecc.quant.QuantizeOptions: post-training int8 quantization
    strict_schedules: bool = False  # a kernel without its intended schedule is a ScheduleError
    limits: Limits | None = None  # what the model may ask for (edgecc.ir.limits); None: the defaults
    log: TextIO | None = None
    progress: Callable[[str, int, int], None] | None = None  # progress(stage, done, total)


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
    remarks: list = field(default_factory=list)  # what the passes noted (edgecc.passes.Remark)

    def export(self, path: str | os.PathLike) -> None:
        """Write the deployable shared library (atomically)."""
        from edgecc.lower.build import export_atomic

        export_atomic(self.executable, self.target, path)

    def load(self, threads: int | None = None):
        """The compiled model as an in-process `edgecc.runtime.Module` (host targets only), its
        kernels run on `threads` threads (None: every core this process may run on)."""
        from edgecc.runtime import Module

        if not self.target.runs_here:
            raise EdgeccError(f"a library for target '{self.target.tag}' cannot run on this machine")
        return Module(self.executable.jit(), "<compiled>", threads)


def load_model(model, input_shapes=None, warnings: list[str] | None = None, symbolic: bool | None = None) -> Graph:
    """An ONNX path, a ModelProto or an IR Graph -> Graph. `symbolic`: whether the symbolic
    dimensions of inputs that `input_shapes` does not name stay symbolic (None: the frontend's default)."""
    from edgecc.frontend.onnx import from_onnx, load_onnx

    if isinstance(model, Graph):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load_onnx(model, input_shapes, warnings, symbolic=symbolic)
    return from_onnx(model, input_shapes, warnings=warnings, symbolic=symbolic)


def compiles_symbolic_shapes(target) -> bool:
    """Whether `target` builds kernels with symbolic extents: CPU and GPU targets, not those with an
    NPU (NPU regions are built for fixed sizes; there a model's symbolic dimensions become 1)."""
    return target.npu_backend is None


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
    for name in [*options.disabled_passes, *(set(options.print_ir_after) - {"all"})]:
        get_pass(name)  # unknown names are an error, not a silent no-op
    pipeline = without_passes(pipeline, set(options.disabled_passes))
    manager = PassManager(pipeline, verify_each=options.verify_each, print_ir_after=set(options.print_ir_after),
                          out=options.log or sys.stderr)
    try:
        manager.run(graph, PassContext(target=target, opt_level=options.opt_level))
    finally:
        if remarks is not None:
            remarks.extend(manager.remarks)
    return manager.timing_report() if options.time_passes else ""


def _scheduler(target, options: CompileOptions):
    """The kernel scheduler: the target's tuning records (unless disabled), then the default rules."""
    if options.schedules == "none":
        return None
    from edgecc.lower.schedules import make_scheduler

    records = None
    if options.tuning_logs != "":
        from edgecc.tune.apply import TunedSchedules

        records = TunedSchedules.for_target(target, options.tuning_logs)
    return make_scheduler(target, records)


@dataclass
class Prepared:
    """A model through the frontend and, unless `raw`, quantization and the passes."""

    graph: Graph
    target: Any
    options: CompileOptions
    warnings: list[str]  # what the frontend noted
    remarks: list  # what the passes noted (edgecc.passes.Remark)
    pass_report: str = ""  # per-pass times, when options.time_passes
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


def prepare(model, target: Any = "host", **kwargs):
    """Frontend and passes only: returns (optimized Graph, Target, CompileOptions, warnings)."""
    prepared = prepare_model(model, target, **kwargs)
    return prepared.graph, prepared.target, prepared.options, prepared.warnings


def prepare_model(model, target: Any = "host", raw: bool = False, **kwargs) -> Prepared:
    """Frontend, then (unless `raw`) quantization and passes, with what they said and took."""
    from edgecc.targets import get_target

    options = CompileOptions(target=target, **kwargs)
    with use_limits(options.limits):
        return _prepare(model, get_target(options.target, **options.target_options), options, raw)


def _prepare(model, target_obj, options: CompileOptions, raw: bool = False) -> Prepared:
    prepared = Prepared(None, target_obj, options, [], [])
    with _stage("frontend", options, prepared.timings):
        prepared.graph = load_model(model, options.input_shapes, prepared.warnings, compiles_symbolic_shapes(target_obj))
        if isinstance(model, Graph):
            prepared.graph = prepared.graph.clone()
    if raw:
        return prepared
    if options.quantize is not None:
        with _stage("quantize", options, prepared.timings, announce=False):  # it reports its own steps
            _quantize(prepared.graph, target_obj, options)
    with _stage("passes", options, prepared.timings):
        prepared.pass_report = optimize(prepared.graph, target_obj, options, prepared.remarks)
    prepared.target = target_obj.for_graph(prepared.graph)  # code generation options for what it computes
    return prepared


def _quantize(graph: Graph, target, options: CompileOptions) -> None:
    """Post-training quantization (calibration, quantize/dequantize pairs) when asked for.

    `options.quantize` (an `edgecc.quant.QuantizeOptions`) runs the quantization workflow, which
    lives above the driver: the driver calls it through the options object, never imports it.
    The target settles what the options leave open (`QuantizeOptions.for_target`): 7-bit weights
    where its CPU multiplies those with a wider instruction (x86 AVX2 without VNNI), and for a target
    with an NPU backend everything that NPU runs in int8 (`quantize_outputs`).
    """
    if options.quantize is None:
        return
    qopts = options.quantize.for_target(target)
    qopts.quantize(graph, options.opt_level, options.disabled_passes, options.progress)


@contextmanager
def _stage(name: str, options: CompileOptions, timings: dict[str, float], announce: bool = True) -> Iterator[None]:
    """Time a compile stage into `timings` and, if `announce`, report its start and end to
    `options.progress` (stages that report their own steps do not announce themselves)."""
    announce = announce and options.progress is not None
    if announce:
        options.progress(name, 0, 1)
    start = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - start
    if announce:
        options.progress(name, 1, 1)


def compile(model, target: Any = "host", **kwargs) -> CompiledModel:  # noqa: A001 - the verb users expect
    """Compile an ONNX model (path or ModelProto) or an IR graph for `target`."""
    options = CompileOptions(target=target, **kwargs)
    with use_limits(options.limits):
        return _compile(model, options)


def _compile(model, options: CompileOptions) -> CompiledModel:
    from edgecc.lower.build import compile_graph
    from edgecc.targets import get_target

    target_obj = get_target(options.target, **options.target_options)
    target_obj.check_toolchain()
    prepared = _prepare(model, target_obj, options)
    target_obj = prepared.target
    with _stage("build", options, prepared.timings, announce=False):  # lowering reports its kernels
        scheduler = _scheduler(target_obj, options)
        if scheduler is not None and scheduler.records is not None:
            prepared.remarks.extend(scheduler.records.remarks)  # e.g. records tuned on another CPU of the same ISA family
        executable, stats = compile_graph(prepared.graph, target_obj, scheduler.schedule if scheduler else None,
                                          metadata={"target": target_obj.tag}, progress=options.progress,
                                          strict_schedules=options.strict_schedules)
    return CompiledModel(prepared.graph, executable, target_obj, stats, prepared.timings, prepared.warnings,
                         prepared.pass_report, prepared.remarks)
