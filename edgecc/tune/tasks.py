"""Tuning tasks: the kernels `edgecc compile` builds, as MetaSchedule workloads.

A model is run through the frontend and edgecc's passes (`edgecc.driver.prepare`), then every
distinct kernel is taken from the kernel plan the lowering builds from (`plan_kernels`), so a
tuned workload is the very PrimFunc compile will look up. A workload is the kernel's PrimFunc
under the name `main` in an IRModule (`edgecc.tune.database.workload_module`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TuningTask", "extract_tasks", "select_tasks"]

#: ops that only move data around; a kernel made only of these is not worth tuning
_DATA_MOVEMENT = {"reshape", "flatten", "squeeze", "unsqueeze", "identity"}


@dataclass
class TuningTask:
    """One distinct kernel to tune."""

    name: str  # kernel name in the compiled module (k3_conv)
    kind: str  # fusion-group kind (conv, depthwise, dense, injective, ...)
    mod: object  # tvm.IRModule: the workload
    kernel: object  # edgecc.lower.kernels.Kernel
    calls: int  # call sites in the model
    flops: float  # floating-point (or integer) operations of one call; 0 when not counted
    elements: int  # elements the kernel writes per call

    @property
    def weight(self) -> float:
        """Work per inference, for ordering tasks: FLOPs where counted, else output elements."""
        return (self.flops or float(self.elements)) * self.calls


def _is_trivial(kernel) -> bool:
    ops = {n.op for n in kernel.body}
    return not ops or ops <= _DATA_MOVEMENT


def extract_tasks(model, target="host", **options):
    """Model -> (tasks, edgecc Target): the model's distinct, non-trivial kernels after the passes."""
    import numpy as np

    from edgecc.driver import prepare
    from edgecc.lower.plan import plan_kernels

    from .database import workload_module

    graph, target_obj, _, _ = prepare(model, target, **options)
    tasks = []
    for planned in plan_kernels(graph):
        kernel = planned.kernel
        if _is_trivial(kernel):
            continue
        elements = int(sum(np.prod(v.type.shape, dtype=np.int64) for v in kernel.outputs))
        tasks.append(TuningTask(kernel.name, kernel.kind, workload_module(kernel.func), kernel, planned.calls,
                                kernel.flops, elements))
    return tasks, target_obj


def select_tasks(tasks: list[TuningTask], top: int | None = None, kinds=None, skip_kinds=None) -> list[TuningTask]:
    """The tasks in tuning order: most work per inference first; only the first `top` if given.

    `kinds` keeps only kernels of those fusion-group kinds; `skip_kinds` leaves those out.
    """
    chosen = [t for t in tasks if (not kinds or t.kind in kinds) and not (skip_kinds and t.kind in skip_kinds)]
    ordered = sorted(chosen, key=lambda t: -t.weight)
    return ordered[:top] if top else ordered
