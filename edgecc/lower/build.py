"""Build a lowered graph with `tvm.compile` and export the shared library atomically."""

from __future__ import annotations

import os

from edgecc._files import atomic_output
from edgecc.errors import LoweringError, ScheduleError
from edgecc.ir import Graph

from .plan import plan_kernels
from .relax_module import LoweringStats, build_relax_module

__all__ = ["compile_graph", "export_atomic", "refuse_runtime_sizes", "LoweringStats"]


def compile_graph(graph: Graph, target, schedule=None, metadata: dict | None = None, progress=None,
                  strict_schedules: bool = False):
    """Graph -> (tvm Executable, LoweringStats) for `target` (an edgecc Target).

    `schedule` is `Scheduler.schedule` (None: kernels left as generated); with `strict_schedules`
    a kernel that did not get its intended schedule raises ScheduleError before the build. For a
    GPU target every kernel must be bound to GPU threads (ScheduleError naming those that are not)
    and the metadata gains the device and, for OpenCL, each kernel's launches (`device.py`).
    Symbolic input dimensions build on every target; a size computed from a tensor's values
    (NonZero's count) only on CPU targets (`refuse_runtime_sizes`).
    """
    import tvm
    from tvm.relax.pipeline import default_build_pipeline

    plan = plan_kernels(graph, target.precision)
    if target.device_type != "cpu":
        refuse_runtime_sizes(plan, target)
    mod, stats = build_relax_module(graph, schedule, metadata, progress, plan)
    if strict_schedules and stats.fallbacks:
        raise ScheduleError(f"{len(stats.fallbacks)} kernel(s) did not get their intended schedule: "
                            + "; ".join(str(f) for f in stats.fallbacks))
    if target.device_type != "cpu":
        from .device import add_device_metadata, check_thread_binding

        check_thread_binding(mod)
        mod = add_device_metadata(mod, target)
    tvm_target = target.tvm_target()
    with tvm_target, target.build_context():
        executable = tvm.compile(mod, target=tvm_target, relax_pipeline=default_build_pipeline())
    return executable, stats


def refuse_runtime_sizes(plan, target) -> None:
    """LoweringError naming the first node whose output size comes from a tensor's values: a
    device target's kernels take sizes from the inputs' dimensions only (the shape function that
    counts such a size reads its tensor on the host)."""
    for planned in plan:
        if planned.kernel.runtime_sizes:
            node = planned.sites[0]
            raise LoweringError(f"target '{target.tag}' cannot build node {node.name} ({node.op}): its size "
                                f"comes from a tensor's values at run time, which only CPU targets build")


def export_atomic(executable, target, path: str | os.PathLike) -> None:
    """Write the library to a temporary file beside `path`, then rename it into place."""
    with atomic_output(path, suffix=".so") as tmp:
        target.export_library(executable, tmp)
