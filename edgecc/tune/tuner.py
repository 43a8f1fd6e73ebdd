"""Tune a model's kernels: edgecc's own rules' knobs and MetaSchedule's schedules, each searched
with an XGBoost cost model.

For each task, heaviest first, the tuner:

1. measures edgecc's default schedule of the kernel once and stores its time in the log;
2. searches the knob space of the kernel's default rule (`knob_search`: register tiles, blocks,
   unrolling, parallel loop), up to `trials` points, each appended to the log as a knob record;
3. seeds MetaSchedule's in-memory database with the task's records already in the log (the
   search starts from the best known candidates) and runs its search for the trials still
   missing; each measured candidate is appended to the log as soon as its batch is measured.
   Candidates measured before (in this run or an earlier one) are recognised at build time and
   not measured again;
4. measures the default and the fastest record of either search together, interleaved, several
   rounds (`compare`), and logs whether the record won by more than the measured noise: compile
   applies it only then.

Candidates are built by `build_candidate`, which skips MetaSchedule's default builder's import of
`tvm.s_tir.tensor_intrin` (tens of seconds per build worker; only tensorized schedules need it, and
edgecc's CPU targets use none), and timed by a LocalRunner or, with an RPC tracker, on a board.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass, field

from edgecc.errors import EdgeccError

from .apply import MIN_ROUNDS
from .compare import ROUNDS, compare_with_default
from .database import FAILED, TuningLog, workload_module
from .knob_search import search_knobs
from .tasks import TuningTask, extract_tasks, select_tasks

__all__ = ["TaskResult", "TuneOptions", "build_candidate", "tune_model"]

#: builder error of a candidate that was measured before (not built, not measured, not logged)
ALREADY_MEASURED = "edgecc: already measured"
#: the searches `edgecc tune` runs per kernel, in this order
SEARCHES = ("knobs", "metaschedule")


@dataclass
class TuneOptions:
    """How much to tune and where to measure."""

    trials: int = 64  # per task
    top: int | None = None  # tune only the N tasks with most work
    kinds: tuple[str, ...] = ()  # only kernels of these kinds (conv, dense, depthwise, ...)
    skip_kinds: tuple[str, ...] = ()  # not kernels of these kinds
    time_budget: float | None = None  # seconds; no new task starts after it
    trials_per_iter: int = 16
    rpc_tracker: str | None = None  # HOST:PORT
    rpc_key: str | None = None
    seed: int = 0
    repeat: int = 3  # timed repeats of each candidate
    population: int = 256  # evolutionary search population (smaller: faster search, less explored)
    searches: tuple[str, ...] = SEARCHES  # "knobs" (edgecc's rules), "metaschedule"
    compare_rounds: int = ROUNDS  # interleaved rounds of the default against the best record


@dataclass
class TaskResult:
    name: str
    kind: str
    trials: int  # MetaSchedule records in the log after this run
    measured: int  # MetaSchedule candidates measured in this run
    best: float | None  # seconds, of either search
    default: float | None  # seconds of edgecc's default schedule
    skipped: str = ""  # why the task was not tuned in this run
    knob_points: int = 0  # knob records in the log after this run
    knob_measured: int = 0  # knob points measured in this run
    verdict: str = ""  # the comparison with the default: "knobs 1.21x", "default kept (within 4% noise)"


@dataclass
class TuneSummary:
    folder: str
    tasks: list[TaskResult] = field(default_factory=list)
    seconds: float = 0.0


# ----- building and measuring candidates ----------------------------------------------------------
def build_candidate(mod, target, _params=None):
    """MetaSchedule f_build: MetaSchedule's default build without the tensor-intrinsic import."""
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm_build(mod, target=target)


class LocalBuild:
    """Builds in this process (edgecc's own schedules need no isolation) and exports each module
    the way MetaSchedule's builder does; `build` answers like a MetaSchedule builder."""

    def build(self, build_inputs):
        from tvm.s_tir.meta_schedule.builder import BuilderResult
        from tvm.s_tir.meta_schedule.builder.local_builder import default_export

        results = []
        for item in build_inputs:
            try:
                results.append(BuilderResult(default_export(build_candidate(item.mod, item.target)), None))
            except Exception as exc:  # noqa: BLE001 - a module that does not build is a failed candidate
                text = str(exc).strip()
                results.append(BuilderResult(None, f"{type(exc).__name__}: {text.splitlines()[-1] if text else ''}"))
        return results


def _make_builder(measured: set):
    """A builder that builds in worker processes and refuses candidates already in `measured`."""
    import tvm_ffi
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, LocalBuilder, PyBuilder

    inner = LocalBuilder(max_workers=max(1, min(2, os.cpu_count() or 1)), f_build=build_candidate)

    @derived_object
    class DedupBuilder(PyBuilder):
        def build(self, build_inputs):
            results, todo = [None] * len(build_inputs), []
            for i, item in enumerate(build_inputs):
                key = tvm_ffi.structural_hash(item.mod)
                if key in measured:
                    results[i] = BuilderResult(None, ALREADY_MEASURED)
                else:
                    measured.add(key)
                    todo.append(i)
            for i, result in zip(todo, inner.build([build_inputs[i] for i in todo]) if todo else []):
                results[i] = result
            return results

    return DedupBuilder(), inner


def _make_runner(options: TuneOptions):
    from tvm.s_tir.meta_schedule.runner import (
        EvaluatorConfig,
        LocalRunner,
        RPCConfig,
        RPCRunner,
    )

    config = EvaluatorConfig(number=1, repeat=options.repeat, min_repeat_ms=40, enable_cpu_cache_flush=False)
    if not options.rpc_tracker:
        return LocalRunner(timeout_sec=30, evaluator_config=config)
    from .rpc import parse_tracker

    host, port = parse_tracker(options.rpc_tracker)
    if not options.rpc_key:
        raise EdgeccError("--rpc-tracker needs --rpc-key (the key the board's RPC server registered)")
    rpc = RPCConfig(tracker_host=host, tracker_port=port, tracker_key=options.rpc_key, session_timeout_sec=60)
    return RPCRunner(rpc_config=rpc, evaluator_config=config, max_workers=1)


def _measure_default(task: TuningTask, target, builder, runner) -> float | None:
    """Seconds of edgecc's default schedule of the task's kernel, timed like the candidates."""
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo
    from tvm.s_tir.meta_schedule.builder import BuilderInput
    from tvm.s_tir.meta_schedule.runner import RunnerInput

    from edgecc.lower.schedules import make_scheduler

    mod = workload_module(make_scheduler(target).schedule(task.kernel).func)
    tvm_target = target.tvm_target()
    built = builder.build([BuilderInput(mod, tvm_target)])[0]
    if built.error_msg:
        return None
    device = "cpu" if tvm_target.kind.name in ("llvm", "c") else tvm_target.kind.name
    future = runner.run([RunnerInput(built.artifact_path, device,
                                     ArgInfo.from_prim_func(mod["main"]))])[0]
    result = future.result()
    if result.error_msg or not result.run_secs:
        return None
    secs = [float(s) for s in result.run_secs]
    return sum(secs) / len(secs)


# ----- MetaSchedule glue ------------------------------------------------------------------------
def _context(mod, tvm_target, name: str, seed: int, population: int):
    """A TuneContext built like `TuneContext(...)` minus its import of all tensor intrinsics."""
    from tvm.s_tir.meta_schedule import _ffi_api
    from tvm.s_tir.meta_schedule.logging import get_logger, get_logging_func
    from tvm.s_tir.meta_schedule.search_strategy import EvolutionarySearch
    from tvm.s_tir.meta_schedule.space_generator import SpaceGenerator
    from tvm.s_tir.meta_schedule.tune_context import TuneContext

    ctx = TuneContext.__new__(TuneContext)
    ctx.__init_handle_by_constructor__(
        _ffi_api.TuneContext, mod, tvm_target, SpaceGenerator.create("post-order-apply"),
        EvolutionarySearch(population_size=population, init_min_unmeasured=min(50, population // 2)), name,
        max(1, os.cpu_count() or 1), seed,
        get_logging_func(get_logger("edgecc.tune")))
    _ffi_api.TuneContextInitialize(ctx)
    return ctx


def _seeded_database(log: TuningLog, workload: int, mod):
    """A MetaSchedule MemoryDatabase holding the log's valid records of one workload."""
    from tvm.s_tir.meta_schedule.database import MemoryDatabase, TuningRecord

    db = MemoryDatabase()
    token = db.commit_workload(mod)
    for record in log.records_of(workload):
        if record.valid:
            db.commit_tuning_record(TuningRecord.from_json(record.raw, token))
    return db


def _measured_hashes(log: TuningLog, workload: int, mod) -> set:
    """Structural hashes of the scheduled modules of the records already in the log."""
    import tvm_ffi
    from tvm.s_tir import Schedule

    hashes = set()
    for record in log.records_of(workload):
        sch = Schedule(mod)
        try:
            log.trace_of(record).apply_to_schedule(sch, remove_postproc=False)
        except Exception:  # noqa: BLE001 - a trace that no longer replays is simply not deduplicated
            continue
        hashes.add(tvm_ffi.structural_hash(sch.mod))
    return hashes


def _record_writer(log: TuningLog, workload: int, tvm_target, on_batch):
    """A measure callback that appends each measured candidate to the log, then reports progress."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.database import TuningRecord, Workload
    from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

    token = Workload(log.workload_module(workload))

    @derived_object
    class RecordWriter(PyMeasureCallback):
        def apply(self, task_scheduler, task_id, candidates, builder_results, runner_results):
            measured = 0
            for cand, built, ran in zip(candidates, builder_results, runner_results):
                if built.error_msg == ALREADY_MEASURED:
                    continue
                ok = not built.error_msg and not ran.error_msg and ran.run_secs
                secs = [float(s) for s in ran.run_secs] if ok else [FAILED]
                record = TuningRecord(cand.sch.trace, token, secs, tvm_target, cand.args_info)
                log.add_record(workload, record.as_json())
                measured += 1
            on_batch(measured)

    return RecordWriter()


def _peak(target) -> dict:
    """The target's FP32 peak for reports, where it can be worked out here (the host CPU)."""
    if not target.runs_here:
        return {}
    try:
        with open("/proc/cpuinfo") as fh:
            mhz = max(float(line.split(":")[1]) for line in fh if line.startswith("cpu MHz"))
    except (OSError, ValueError):
        return {}
    # cores x GHz x SIMD lanes x 2 (fused multiply-add) x 2 (FMA units per core)
    return {"peak_gflops": round(target.num_cores * mhz / 1e3 * target.lanes() * 2 * 2, 1)}


# ----- the tuning loop ---------------------------------------------------------------------------
class _Progress:
    """Progress lines (task, trials done, best so far, time left) on `out`, and trials done against
    the total on `report(stage, done, total)` (the `CompileOptions.progress` callable)."""

    def __init__(self, out, options: TuneOptions, total_trials: int, report=None):
        self.out, self.options, self.report = out, options, report
        self.start = time.perf_counter()
        self.total, self.done = total_trials, 0

    def advance(self, trials: int) -> None:
        self.done += trials
        if self.report is not None:
            self.report("tune", min(self.done, self.total), self.total)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def time_left(self) -> str:
        if self.options.time_budget:
            return f"{max(0.0, self.options.time_budget - self.elapsed()):.0f} s left of the budget"
        if not self.done:
            return "time left unknown"
        return f"about {self.elapsed() / self.done * max(0, self.total - self.done):.0f} s left"

    def line(self, text: str) -> None:
        if self.out is not None:
            print(f"edgecc: tune: {text}", file=self.out, flush=True)


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None or seconds >= FAILED else f"{seconds * 1e3:.4f} ms"


def _tune_task(task: TuningTask, index: int, count: int, log: TuningLog, target, options: TuneOptions,
               progress: _Progress, runner) -> TaskResult:
    """One kernel: its default measured, the knob search, MetaSchedule's search, the comparison."""
    workload = log.add_workload(task.mod)
    if "name" not in log.task(workload):
        log.update_task(workload, name=task.name, kind=task.kind, flops=task.flops, calls=task.calls)
    measured = _measured_hashes(log, workload, task.mod)
    builder, _ = _make_builder(measured)
    plain_builder = LocalBuild()
    if log.task(workload).get("default_secs") is None:  # not measured yet, or the measurement failed
        log.update_task(workload, default_secs=_measure_default(task, target, plain_builder, runner))
    label = f"task {index}/{count} {task.name} ({task.kind})"
    knob_new = 0
    if "knobs" in options.searches:
        knob_new = _search_knobs(task, label, log, workload, target, options, progress, plain_builder, runner)
    ms_new, failed = 0, ""
    if "metaschedule" in options.searches:
        try:
            ms_new = _search_metaschedule(task, label, log, workload, target, options, progress, builder, runner)
        except EdgeccError:
            raise
        except Exception as exc:  # noqa: BLE001 - MetaSchedule failing on a kernel leaves the knob search's results
            if not knob_new and not log.knob_records_of(workload):
                raise
            failed = f"MetaSchedule {_failure(exc)}"
            progress.line(f"{label}: {failed}")
    verdict = _compare(task, label, log, workload, target, options, progress, plain_builder, runner,
                       fresh=bool(knob_new or ms_new))
    best = log.best_any(workload)
    return TaskResult(task.name, task.kind, len(log.records_of(workload)), ms_new, best and best.seconds,
                      log.task(workload).get("default_secs"), knob_points=len(log.knob_records_of(workload)),
                      knob_measured=knob_new, verdict="; ".join(x for x in (verdict, failed) if x))


def _search_knobs(task, label, log, workload, target, options, progress, builder, runner) -> int:
    done = len(log.knob_records_of(workload))

    def on_batch(new: int) -> None:
        progress.advance(new)
        best = log.best_knobs(workload)
        progress.line(f"{label}: knobs {len(log.knob_records_of(workload))}/{options.trials} points, best "
                      f"{_ms(best and best.seconds)} (default {_ms(log.task(workload).get('default_secs'))}), "
                      f"{progress.time_left()}")

    new = search_knobs(task, target, log, workload, builder, runner, options.trials, options.trials_per_iter,
                       options.seed, on_batch)
    progress.advance(max(0, options.trials - done - new))  # points it will never measure are not pending
    return new


def _search_metaschedule(task, label, log, workload, target, options, progress, builder, runner) -> int:
    import tvm.s_tir.meta_schedule as ms

    meta = log.task(workload)
    default = meta.get("default_secs")
    done = len(log.records_of(workload))
    remaining = options.trials - done
    if remaining <= 0 or meta.get("exhausted_at", -1) == done:
        best = log.best(workload)
        progress.line(f"{label}: {done} trials in the log, best {_ms(best and best.seconds)} "
                      f"(default {_ms(default)}); nothing to do"
                      + (" (search space exhausted)" if remaining > 0 else ""))
        progress.advance(max(remaining, 0))
        return 0
    state = {"measured": 0}

    def on_batch(new: int) -> None:
        state["measured"] += new
        progress.advance(new)
        best = log.best(workload)
        progress.line(f"{label}: {len(log.records_of(workload))}/{options.trials} trials, best "
                      f"{_ms(best and best.seconds)} (default {_ms(default)}), {progress.time_left()}")

    progress.line(f"{label}: {done} trials in the log, tuning {remaining} more")
    tvm_target = target.tvm_target()
    with tempfile.TemporaryDirectory(prefix="edgecc-tune-") as work_dir:
        ms.tune_tasks(
            tasks=[_context(task.mod, tvm_target, task.name, options.seed + done, options.population)],
            task_weights=[1.0], work_dir=work_dir, max_trials_global=remaining,
            num_trials_per_iter=min(options.trials_per_iter, remaining), builder=builder, runner=runner,
            database=_seeded_database(log, workload, task.mod),
            cost_model=ms.cost_model.XGBModel(num_tuning_cores=max(1, os.cpu_count() or 1)),
            measure_callbacks=[*ms.measure_callback.MeasureCallback.create("default"),
                               _record_writer(log, workload, tvm_target, on_batch)],
            task_scheduler="round-robin")
    if state["measured"] < remaining:  # the search found no new candidates: do not search again
        log.update_task(workload, exhausted_at=len(log.records_of(workload)))
        progress.advance(remaining - state["measured"])
    return state["measured"]


def _compare(task, label, log, workload, target, options, progress, builder, runner, fresh: bool) -> str:
    """Compare the best record with the default (again when this run measured something new)."""
    meta = log.task(workload)
    best = log.best_any(workload)
    if best is None:
        return "no valid record"
    current = meta.get("compare")
    if fresh or current is None or current["record"] != [best.kind, best.line]:
        progress.line(f"{label}: measuring the default and the best record ({best.kind}) together, "
                      f"{options.compare_rounds} rounds")
        current = compare_with_default(task, target, log, workload, builder, runner, options.compare_rounds)
    text = _verdict(current)
    progress.line(f"{label}: {text}")
    return text


def _verdict(compare: dict) -> str:
    import statistics

    default, candidate = compare["default"], compare["candidate"]
    if len(default) < MIN_ROUNDS:
        return f"default kept: {len(default)} rounds measured both (fewer than {MIN_ROUNDS})"
    ratio = 1 / statistics.median(c / d for d, c in zip(default, candidate))  # the default's time over the record's
    kind, noise = compare["record"][0], f"noise {compare['noise']:.0%}"
    if compare["wins"]:
        return f"{kind} record kept: {ratio:.2f}x the default's speed ({noise})"
    if ratio <= 1:
        return f"default kept: the {kind} record is slower ({ratio:.2f}x, {noise})"
    return f"default kept: the {kind} record's {ratio:.2f}x is within the {noise}"


def _failure(exc: Exception) -> str:
    text = str(exc).strip()
    return f"failed: {type(exc).__name__}: {text.splitlines()[-1] if text else ''}".rstrip(": ")


def _tune_task_or_skip(task: TuningTask, index: int, count: int, log: TuningLog, target, options: TuneOptions,
                       progress: _Progress, runner) -> TaskResult:
    """`_tune_task`, with a failure of MetaSchedule on this kernel recorded instead of raised."""
    try:
        return _tune_task(task, index, count, log, target, options, progress, runner)
    except EdgeccError:
        raise
    except Exception as exc:  # noqa: BLE001 - one kernel MetaSchedule cannot handle must not end the run
        reason = _failure(exc)
        progress.line(f"task {index}/{count} {task.name} ({task.kind}): {reason}")
        return TaskResult(task.name, task.kind, 0, 0, None, None, reason)


def tune_model(model, target="host", logs=None, options: TuneOptions | None = None, out=sys.stderr,
               progress=None, **compile_options) -> TuneSummary:
    """Tune the kernels of `model` for `target`; records go to `<logs>/<target tag>/`.

    Lines about each task go to `out` (None: none); `progress(stage, done, total)` hears the trials
    measured against all trials planned (stage "tune"). A task MetaSchedule fails on is reported
    as skipped, with the error's first line, and the run goes on with the next one.
    """
    options = options or TuneOptions()
    if options.trials < 1:
        raise EdgeccError(f"--trials must be at least 1, not {options.trials}")
    unknown = [s for s in options.searches if s not in SEARCHES]
    if unknown or not options.searches:
        raise EdgeccError(f"--search takes {', '.join(SEARCHES)} (one or both), not '{','.join(options.searches)}'")
    runner = _make_runner(options) if options.rpc_tracker else None  # bad RPC settings fail before any work
    tasks, target_obj = extract_tasks(model, target, **compile_options)
    if runner is None:  # measure on the cores a compiled model runs on (TVM would take half on x86)
        from edgecc.runtime.threads import reserve_threads

        reserve_threads(target_obj.num_cores)
        runner = _make_runner(options)  # (its worker process reads TVM_NUM_THREADS when it starts)
    from edgecc.lower.schedules.x86_int8 import register_metaschedule_intrinsics

    register_metaschedule_intrinsics(target_obj)  # what MetaSchedule's rules for this CPU look up
    if not target_obj.runs_here and not options.rpc_tracker:
        raise EdgeccError(f"code for target '{target_obj.tag}' cannot run on this machine: measure it on a board "
                          f"with --rpc-tracker HOST:PORT --rpc-key KEY (see docs/tuning.md)")
    tasks = select_tasks(tasks, options.top, options.kinds, options.skip_kinds)
    log = TuningLog.for_target(target_obj, logs, create=True, header_extra=_peak(target_obj))
    summary = TuneSummary(str(log.folder))
    progress = _Progress(out, options, options.trials * len(tasks) * len(options.searches), progress)
    progress.line(f"{len(tasks)} tasks for target {target_obj.tag}, {options.trials} trials each "
                  f"({' and '.join(options.searches)}); log {log.folder}")
    for i, task in enumerate(tasks, start=1):
        if options.time_budget and progress.elapsed() >= options.time_budget:
            summary.tasks.append(TaskResult(task.name, task.kind, 0, 0, None, None, "time budget spent"))
            continue
        summary.tasks.append(_tune_task_or_skip(task, i, len(tasks), log, target_obj, options, progress, runner))
    summary.seconds = progress.elapsed()
    log.add_run(model=os.path.basename(str(model)), trials=options.trials, top=options.top,
                tasks=[t.name for t in summary.tasks if not t.skipped],
                measured=sum(t.measured for t in summary.tasks),
                knob_measured=sum(t.knob_measured for t in summary.tasks), searches=list(options.searches),
                seconds=round(summary.seconds, 1), rpc=bool(options.rpc_tracker))
    return summary


def format_summary(summary: TuneSummary) -> str:
    """A table of the tuned tasks: trials of each search, best time against the default schedule,
    and what the interleaved comparison decided."""
    lines = [f"{'kernel':<24}{'kind':<14}{'trials':>7}{'new':>5}{'default ms':>12}{'best ms':>10}{'speed-up':>9}"
             f"{'knobs':>7}{'new':>5}  compared with the default"]
    for t in summary.tasks:
        gain = f"{t.default / t.best:.2f}x" if t.best and t.default else "-"
        lines.append(f"{t.name:<24}{t.kind:<14}{t.trials:>7}{t.measured:>5}"
                     f"{_ms(t.default).replace(' ms', ''):>12}{_ms(t.best).replace(' ms', ''):>10}{gain:>9}"
                     f"{t.knob_points:>7}{t.knob_measured:>5}  {t.skipped or t.verdict}")
    lines.append(f"tuned {sum(t.measured for t in summary.tasks)} MetaSchedule candidates and "
                 f"{sum(t.knob_measured for t in summary.tasks)} knob points in {summary.seconds:.0f} s; "
                 f"log {summary.folder}")
    return "\n".join(lines)
