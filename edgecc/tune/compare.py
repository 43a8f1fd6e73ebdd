"""The tune-time comparison of a kernel's best record with edgecc's default schedule.

The search measures each candidate once, in its own batch, while the machine's load changes; the
default was measured at another moment. So, once a kernel's search is over, the default and the
fastest record (MetaSchedule's or a knob point's) are built and measured together: `rounds`
rounds, each timing both, in alternating order (default first in even rounds); a round's time is
the fastest of the runner's repeats, and a round counts only if both were measured. The log keeps
the two series, the measured noise (the relative spread of the rounds' candidate-to-default
ratios) and whether the record won by more than it (`edgecc.tune.apply.comparison_wins`);
compile applies the record only then.
"""

from __future__ import annotations

import statistics

from .apply import comparison_noise, comparison_wins
from .database import TuningLog, workload_module

__all__ = ["ROUNDS", "compare_with_default"]

#: rounds of the interleaved measurement
ROUNDS = 5


def _candidate_module(log: TuningLog, workload: int, record, kernel, target):
    if record.kind == "knobs":
        from edgecc.lower.schedules import RULE_SETS

        return workload_module(RULE_SETS[target.schedule_rules][kernel.kind](kernel, target, knobs=dict(record.knobs)))
    from tvm.s_tir import Schedule

    sch = Schedule(log.workload_module(workload))
    log.trace_of(record).apply_to_schedule(sch, remove_postproc=False)
    return sch.mod


def _built(mod, target, builder):
    from tvm.s_tir.meta_schedule.builder import BuilderInput

    result = builder.build([BuilderInput(mod, target.tvm_target())])[0]
    return None if result.error_msg else result.artifact_path


def compare_with_default(task, target, log: TuningLog, workload: int, builder, runner,
                         rounds: int = ROUNDS) -> dict | None:
    """Measure the default schedule and the workload's fastest record interleaved; log and return
    the comparison (None when the workload has no valid record)."""
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo
    from tvm.s_tir.meta_schedule.runner import RunnerInput

    from edgecc.lower.schedules import make_scheduler

    record = log.best_any(workload)
    if record is None:
        return None
    mods = [workload_module(make_scheduler(target).schedule(task.kernel).func),
            _candidate_module(log, workload, record, task.kernel, target)]
    kind = target.tvm_target().kind.name
    device = "cpu" if kind in ("llvm", "c") else kind
    inputs = []
    for mod in mods:
        path = _built(mod, target, builder)
        inputs.append(None if path is None else RunnerInput(path, device, ArgInfo.from_prim_func(mod["main"])))
    default, candidate = [], []
    for r in range(rounds if None not in inputs else 0):
        order = [0, 1] if r % 2 == 0 else [1, 0]
        times = [0.0, 0.0]
        for i, future in zip(order, runner.run([inputs[i] for i in order])):
            ran = future.result()
            if not ran.error_msg and ran.run_secs:  # a round's time: the fastest of its repeats
                times[i] = min(float(s) for s in ran.run_secs)
        if all(times):  # a round counts only with both measured
            default.append(times[0])
            candidate.append(times[1])
    noise = comparison_noise(default, candidate) if default and candidate else 0.0
    verdict = {"record": [record.kind, record.line], "default": default, "candidate": candidate,
               "noise": round(noise, 4), "wins": comparison_wins(default, candidate)}
    log.update_task(workload, compare=verdict, default_secs=statistics.median(default) if default else None)
    return verdict
