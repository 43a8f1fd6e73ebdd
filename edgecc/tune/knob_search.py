"""Search the knob space of edgecc's own schedule rule for one kernel, guided by XGBoost.

The space (`edgecc.lower.schedules.knobs`) lists the rule's constants for this kernel (register
tile, block sizes, unrolling, parallel loop, Winograd GEMM tile), the default point first. Each
round measures a batch of points, the way MetaSchedule's candidates are measured (same builder
and runner), and appends each to the log as a knob record at once. The first round is the
default and random points; later rounds fit an XGBoost regressor on the measured points
(features: the knob values and the kernel's shape; target: log run time) and measure the points
it predicts fastest, plus one random point per round so the model keeps seeing the rest of the
space. Points measured in an earlier run are not measured again.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable

from .database import FAILED, TuningLog, workload_module

__all__ = ["knob_space_of", "search_knobs"]

#: measured points before the cost model takes over from random picks
MIN_FIT_POINTS = 4


def knob_space_of(kernel, target):
    """The kernel's knob space, or None when its rule takes no knobs or does not apply to it."""
    from edgecc.lower.schedules import RuleDoesNotApply
    from edgecc.lower.schedules.knobs import knob_space

    try:
        return knob_space(kernel, target)
    except (RuleDoesNotApply, ValueError):
        return None


def _key(point: dict) -> str:
    return json.dumps(point, sort_keys=True)


def _fit_and_rank(space, measured: list[tuple[dict, float]], todo: list[dict], seed: int) -> list[dict]:
    """`todo` ordered by the run time an XGBoost model fitted on `measured` predicts, fastest first."""
    import numpy as np
    import xgboost

    worst = max(s for _, s in measured if s < FAILED)
    x = np.array([space.features(p) for p, _ in measured], dtype=np.float64)
    y = np.array([math.log(s if s < FAILED else 2 * worst) for _, s in measured])  # failures: slow
    model = xgboost.XGBRegressor(n_estimators=60, max_depth=4, learning_rate=0.3, random_state=seed, n_jobs=1)
    model.fit(x, y)
    predicted = model.predict(np.array([space.features(p) for p in todo], dtype=np.float64))
    return [todo[i] for i in np.argsort(predicted, kind="stable")]


def _next_batch(space, measured, todo: list[dict], size: int, rng: random.Random, seed: int) -> list[dict]:
    default = space.default()
    batch = [default] if _key(default) in {_key(p) for p in todo} else []
    rest = [p for p in todo if p != default]
    valid = [m for m in measured if m[1] < FAILED]
    if len(valid) < MIN_FIT_POINTS:
        return batch + rng.sample(rest, min(size - len(batch), len(rest)))
    ranked = _fit_and_rank(space, measured, rest, seed)
    take = max(size - len(batch) - 1, 1) if len(ranked) > 1 else len(ranked)
    chosen = ranked[:take]
    explore = ranked[take:]
    if explore and len(batch) + len(chosen) < size:
        chosen.append(rng.choice(explore))
    return batch + chosen


def _measure(points: list[dict], kernel, target, builder, runner) -> list[float]:
    """Seconds of the rule's schedule at each point (FAILED where it did not build or run)."""
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo
    from tvm.s_tir.meta_schedule.builder import BuilderInput
    from tvm.s_tir.meta_schedule.runner import RunnerInput

    from edgecc.lower.schedules import RULE_SETS

    rule = RULE_SETS[target.schedule_rules][kernel.kind]
    tvm_target = target.tvm_target()
    device = "cpu" if tvm_target.kind.name in ("llvm", "c") else tvm_target.kind.name
    mods: list = []
    for point in points:
        try:
            mods.append(workload_module(rule(kernel, target, knobs=dict(point))))
        except Exception:  # noqa: BLE001 - a point the rule cannot build counts as failed
            mods.append(None)
    built = builder.build([BuilderInput(m, tvm_target) for m in mods if m is not None])
    secs, inputs, where = [FAILED] * len(points), [], []
    results = iter(built)
    for i, mod in enumerate(mods):
        if mod is None:
            continue
        result = next(results)
        if not result.error_msg:
            inputs.append(RunnerInput(result.artifact_path, device, ArgInfo.from_prim_func(mod["main"])))
            where.append(i)
    for i, future in zip(where, runner.run(inputs) if inputs else []):
        ran = future.result()
        if not ran.error_msg and ran.run_secs:
            run = [float(s) for s in ran.run_secs]
            secs[i] = sum(run) / len(run)
    return secs


def search_knobs(task, target, log: TuningLog, workload: int, builder, runner, trials: int, batch: int,
                 seed: int = 0, on_batch: Callable[[int], None] | None = None) -> int:
    """Measure up to `trials` points of the kernel's knob space in all (counting earlier runs'
    records); returns how many were measured now (0 when the kernel's rule has no knobs)."""
    space = knob_space_of(task.kernel, target)
    if space is None:
        return 0
    measured = [(r.knobs, r.seconds) for r in log.knob_records_of(workload)]
    done = {_key(p) for p, _ in measured}
    rng = random.Random(seed + len(done))
    count = 0
    while len(done) < trials:
        todo = [p for p in space.points() if _key(p) not in done]
        if not todo:
            break
        picks = _next_batch(space, measured, todo, min(batch, trials - len(done)), rng, seed)
        for point, secs in zip(picks, _measure(picks, task.kernel, target, builder, runner)):
            log.add_knob_record(workload, task.kind, point, None if secs >= FAILED else [secs])
            measured.append((point, secs))
            done.add(_key(point))
        count += len(picks)
        if on_batch is not None:
            on_batch(len(picks))
    return count
