"""Apply tuning records at compile time.

For each kernel, `TunedSchedules.lookup` finds its workload in the target's tuning log (structural
hash, then structural equality) and picks the record to use:

- where the tuner compared its best record with edgecc's default schedule (measured together,
  interleaved, several rounds: the task's `compare` entry), that record, if it won by more than
  the measured noise (`comparison_wins`: the rounds' time ratios), else none;
- in logs from before that comparison, the fastest MetaSchedule record, if it beat the default's
  single tune-time measurement by more than `MIN_GAIN`; none where that time is missing.

A MetaSchedule record's trace is replayed onto the kernel with `tvm.s_tir.Schedule`; a knob record
(`edgecc_knob_records.json`) runs the kernel's default rule with the record's knob values, after
checking them against the rule's knob space for this kernel. Kernels without a usable record get
the default schedules. Only records of the compile's own target are considered, or, when
`--tuning-logs` names one target's folder, of a CPU of the same ISA family (with a remark).

`TunedSchedules` is the `edgecc.lower.schedules.ScheduleSource` the driver hands to lowering: a
record that does not apply raises, and the scheduler reports the kernel as a fallback.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from edgecc.errors import TuningLogError

from .database import TASKS, TuningLog, default_logs_root, isa_family_name, workload_module

__all__ = ["MIN_GAIN", "MIN_ROUNDS", "TunedSchedules", "comparison_noise", "comparison_wins", "record_wins"]

#: logs without a tune-time comparison: the fraction by which a record must beat the default's time
MIN_GAIN = 0.05
#: measurements of each side a comparison needs before a record can win it
MIN_ROUNDS = 3


def record_wins(record_secs: float, default_secs: float | None) -> bool:
    """Whether a record measured `record_secs` beats a default measured `default_secs` beyond the noise."""
    return default_secs is not None and default_secs > 0 and record_secs < default_secs * (1 - MIN_GAIN)


def _ratios(default: list[float], candidate: list[float]) -> list[float]:
    return [c / d for d, c in zip(default, candidate)]


def comparison_noise(default: list[float], candidate: list[float]) -> float:
    """The measured noise of a comparison: the relative spread (max - min over the median) of the
    candidate-to-default ratios of its rounds (each round measures both, one right after the
    other, so a load that lasts longer than a round cancels out)."""
    ratios = _ratios(default, candidate)
    return (max(ratios) - min(ratios)) / statistics.median(ratios)


def comparison_wins(default: list[float], candidate: list[float]) -> bool:
    """Whether the candidate beats the default by more than the measured noise: the median ratio
    of their times is below 1 - noise. Never with fewer than MIN_ROUNDS rounds where both were
    measured (a default that failed to measure has none)."""
    if len(default) != len(candidate) or len(default) < MIN_ROUNDS or min(default) <= 0:
        return False
    return statistics.median(_ratios(default, candidate)) < 1 - comparison_noise(default, candidate)


class TunedSchedules:
    """The record chosen per workload for one target."""

    def __init__(self, log: TuningLog, target=None):
        self.log = log
        self.target = target
        self.applied = 0  # kernels scheduled from a record
        self.kept_default = 0  # kernels whose best record did not beat the default schedule
        self.remarks: list = []  # edgecc.passes.Remark: what the compile's user should know
        if log.borrowed_from is not None:
            from edgecc.passes.base import Remark

            family = isa_family_name(log.identity)
            self.remarks.append(Remark("tuning-logs", f"records of {log.borrowed_from} ({family}) applied to "
                                       f"{log.tag}: another CPU of the same ISA family; they were timed on "
                                       f"{log.borrowed_from}"))

    @classmethod
    def for_target(cls, target, folder: str | None) -> TunedSchedules | None:
        """The target's records under `folder` (None: the committed tuning_logs/); None if there are none.

        A folder given explicitly must exist; the default folder may be missing. A folder of one
        target's log (holding edgecc_tasks.json) may be of another CPU of the same ISA family.
        """
        if folder is not None and not Path(folder).is_dir():
            raise TuningLogError(f"{folder}: no such tuning log folder")
        root = Path(folder) if folder is not None else default_logs_root()
        if not root.is_dir():
            return None
        log = TuningLog.for_target(target, root, borrow=folder is not None and (root / TASKS).is_file())
        if not log.records and not log.knob_records:
            return None
        from edgecc.lower.schedules.x86_int8 import register_metaschedule_intrinsics

        register_metaschedule_intrinsics(target)  # records of tensorized kernels name them
        return cls(log, target)

    def chosen(self, index: int):
        """The record to apply to workload `index`, or None to keep the default schedule."""
        task = self.log.task(index)
        compare = task.get("compare")
        if compare is not None:
            if not comparison_wins(compare["default"], compare["candidate"]):
                return None
            return self.log.record_at(*compare["record"])
        best = self.log.best(index)  # a log from before tune-time comparisons
        return best if best is not None and record_wins(best.seconds, task.get("default_secs")) else None

    def lookup(self, kernel):
        """The kernel's PrimFunc scheduled by its chosen record, or None to use the defaults.

        Raises when the chosen record does not apply to the kernel.
        """
        mod = workload_module(kernel.func)
        index = self.log.find_workload(mod)
        if index is None:
            return None
        record = self.chosen(index)
        if record is None:
            if self.log.records_of(index) or self.log.knob_records_of(index):
                self.kept_default += 1
            return None
        func = self._apply_knobs(kernel, record) if record.kind == "knobs" else self._replay(index, record)
        self.applied += 1
        return func

    def _replay(self, index: int, record):
        from tvm.s_tir import Schedule

        trace = self.log.trace_of(record)
        sch = Schedule(self.log.workload_module(index))
        trace.apply_to_schedule(sch, remove_postproc=False)
        return sch.mod["main"]

    def _apply_knobs(self, kernel, record):
        """The kernel's default rule run with the record's knobs (checked against its knob space)."""
        from edgecc.lower.schedules import RULE_SETS
        from edgecc.lower.schedules.knobs import knob_space

        if record.rule != kernel.kind:
            raise ValueError(f"knob record of a {record.rule} rule for a {kernel.kind} kernel")
        space = knob_space(kernel, self.target)
        if space is None:
            raise ValueError(f"the {kernel.kind} rule of target {self.target.tag} takes no knobs")
        space.check(record.knobs)
        return RULE_SETS[self.target.schedule_rules][kernel.kind](kernel, self.target, knobs=dict(record.knobs))

