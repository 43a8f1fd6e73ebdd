"""Apply tuning records at compile time.

For each kernel, `TunedSchedules.lookup` finds its workload in the target's tuning log (structural
hash, then structural equality), takes the fastest measured record, and replays that record's
trace onto the kernel with `tvm.s_tir.Schedule`. A record is used only if it beat edgecc's default
schedule of the same kernel, as measured during tuning, by more than `MIN_GAIN` (the run-to-run
noise of one kernel's measurement); a kernel whose default schedule has no measured time keeps
the default. Otherwise, and for kernels without records, the default schedules apply. Only
records of the compile's own target are considered
(`TuningLog` checks the target of the log and of every record).

`TunedSchedules` is the `edgecc.lower.schedules.ScheduleSource` the driver hands to lowering: a
record that does not replay raises, and the scheduler reports the kernel as a fallback.
"""

from __future__ import annotations

from pathlib import Path

from edgecc.errors import TuningLogError

from .database import TuningLog, default_logs_root, workload_module

__all__ = ["MIN_GAIN", "TunedSchedules", "record_wins"]

#: the fraction by which a record must beat the default schedule's time to be applied
MIN_GAIN = 0.05


def record_wins(record_secs: float, default_secs: float | None) -> bool:
    """Whether a record measured `record_secs` beats a default measured `default_secs` beyond the noise."""
    return default_secs is not None and default_secs > 0 and record_secs < default_secs * (1 - MIN_GAIN)


class TunedSchedules:
    """Best tuning record per workload for one target."""

    def __init__(self, log: TuningLog):
        self.log = log
        self.applied = 0  # kernels scheduled from a record
        self.kept_default = 0  # kernels whose best record did not beat the default schedule

    @classmethod
    def for_target(cls, target, folder: str | None) -> TunedSchedules | None:
        """The target's records under `folder` (None: the committed tuning_logs/); None if there are none.

        A folder given explicitly must exist; the default folder may be missing.
        """
        if folder is not None and not Path(folder).is_dir():
            raise TuningLogError(f"{folder}: no such tuning log folder")
        root = Path(folder) if folder is not None else default_logs_root()
        if not root.is_dir():
            return None
        log = TuningLog.for_target(target, root)
        if not log.records:
            return None
        from edgecc.lower.schedules.x86_int8 import register_metaschedule_intrinsics

        register_metaschedule_intrinsics(target)  # records of tensorized kernels name them
        return cls(log)

    def lookup(self, kernel):
        """The kernel's PrimFunc scheduled by its best record, or None to use the defaults.

        Raises the replay's error when the best record does not apply to the kernel.
        """
        mod = workload_module(kernel.func)
        index = self.log.find_workload(mod)
        if index is None:
            return None
        best = self.log.best(index)
        if best is None:
            return None
        if not record_wins(best.seconds, self.log.task(index).get("default_secs")):
            self.kept_default += 1
            return None
        func = self._replay(index, best)
        self.applied += 1
        return func

    def _replay(self, index: int, record):
        from tvm.s_tir import Schedule

        trace = self.log.trace_of(record)
        sch = Schedule(self.log.workload_module(index))
        trace.apply_to_schedule(sch, remove_postproc=False)
        return sch.mod["main"]
