"""Auto-tuning: records from real MetaSchedule runs and from the knob search of edgecc's own
rules, the tune-time comparison with the default schedule, resume after a kill, log errors,
target and ISA-family checks, reports, and measurement through a TVM RPC tracker and server on
loopback."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from ort_compare import run_ort

from edgecc.tune.apply import TunedSchedules, comparison_wins
from edgecc.tune.database import KNOB_RECORDS, RECORDS, TASKS, WORKLOADS, TuningLog

#: small searches: a few candidates per round, a small population
SMALL = ["--trials-per-iter", "4", "--population", "32"]
TAG = "x86_64-znver3"  # tuning and compiling with --cpu znver3 pins the tag on any x86 machine


def edgecc(*args, timeout=600):
    proc = subprocess.run([sys.executable, "-m", "edgecc", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line_error(rc, err, *patterns):
    assert rc == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("edgecc: error: "), err
    for pattern in patterns:
        assert pattern in lines[0], lines[0]


def dense_model(path, n=8, k=32, m=64):
    """Gemm + Relu: one dense kernel."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((m, k)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.standard_normal((m,)).astype(np.float32), "B")
    nodes = [helper.make_node("Gemm", ["x", "W", "B"], ["y"], transB=1), helper.make_node("Relu", ["y"], ["z"])]
    graph = helper.make_graph(nodes, "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, k])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [n, m])], [w, b])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def record_lines(folder):
    return (folder / TAG / RECORDS).read_text().splitlines()


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A dense model tuned for 8 trials: (model path, log root)."""
    root = tmp_path_factory.mktemp("tuned")
    model = dense_model(root / "dense.onnx")
    rc, _, err = edgecc("tune", model, "--cpu", "znver3", "--trials", "8", "--logs", root / "logs", *SMALL)
    assert rc == 0, err
    assert "trials" in err and "best" in err  # progress lines
    return model, root / "logs"


def copy_logs(tuned, tmp_path):
    shutil.copytree(tuned[1], tmp_path / "logs")
    return tmp_path / "logs"


def test_tuning_produces_records_and_the_default_schedule_time(tuned):
    _, logs = tuned
    log = TuningLog.open(logs / TAG)
    assert len(log.workloads) == 1
    assert len(log.records) == 8
    assert sum(r.valid for r in log.records) >= 1
    task = log.task(0)
    assert task["name"] == "k0_dense" and task["kind"] == "dense" and task["flops"] == 2 * 8 * 32 * 64
    assert task["default_secs"] > 0
    assert log.runs[-1]["measured"] == 8 and log.runs[-1]["trials"] == 8 and log.runs[-1]["seconds"] > 0
    header = json.loads((logs / TAG / TASKS).read_text().splitlines()[0])
    assert header["tag"] == TAG and header["target"]["mcpu"] == "znver3"


def test_compile_applies_the_best_record_when_it_beats_the_default(tuned, tmp_path):
    model, logs = tuned
    log = TuningLog.open(logs / TAG)
    compare = log.task(0)["compare"]  # the default and the best record, measured together at tune time
    assert len(compare["default"]) == len(compare["candidate"]) == 5
    assert compare["wins"] == comparison_wins(compare["default"], compare["candidate"])
    expect_tuned = compare["wins"]
    out = tmp_path / "dense.so"
    rc, stdout, err = edgecc("compile", model, "-o", out, "--cpu", "znver3", "--tuning-logs", logs)
    assert rc == 0, err
    assert f"{int(expect_tuned)} of 1 kernels from tuning records" in stdout
    from edgecc.runtime import load

    x = np.random.default_rng(1).standard_normal((8, 32)).astype(np.float32)
    got = load(str(out)).run({"x": x})["z"]
    np.testing.assert_allclose(got, run_ort(onnx.load(model), {"x": x})[0], rtol=1e-4, atol=1e-4)


def _set_comparison(logs, default, candidate, record=None):
    """Replace the tune-time comparison of workload 0 (the best record against the default)."""
    log = TuningLog.open(logs / TAG)
    best = log.best_any(0)
    record = record or [best.kind, best.line]
    log.update_task(0, compare={"record": record, "default": default, "candidate": candidate, "noise": 0.0,
                                "wins": comparison_wins(default, candidate)})


def _tuned_kernels(model, logs, tmp_path, *args):
    rc, stdout, err = edgecc("compile", model, "-o", tmp_path / "d.so", "--cpu", "znver3", "--tuning-logs", logs, *args)
    assert rc == 0, err
    return int(next(line for line in stdout.splitlines() if "kernels from tuning records" in line).split()[0])


@pytest.mark.parametrize("case", ["slower", "default missing", "within the noise", "wins"])
def test_only_a_record_that_beat_the_default_by_more_than_the_noise_is_applied(tuned, tmp_path, case):
    model, _ = tuned
    logs = copy_logs(tuned, tmp_path)
    default = [1.00e-4, 1.02e-4, 0.99e-4, 1.01e-4, 1.00e-4]  # 3% spread
    candidate = {"slower": [1.2e-4] * 5, "default missing": [0.5e-4] * 5,
                 "within the noise": [0.97e-4, 1.03e-4, 0.98e-4, 0.99e-4, 1.0e-4], "wins": [0.8e-4] * 5}[case]
    if case == "default missing":  # the default failed to measure: the record cannot be checked
        default = []
    _set_comparison(logs, default, candidate)
    assert comparison_wins(default, candidate) == (case == "wins")
    assert _tuned_kernels(model, logs, tmp_path) == (1 if case == "wins" else 0)


@pytest.mark.parametrize("default", ["missing", "within the noise", "faster"])
def test_logs_without_a_comparison_apply_a_record_only_past_the_default_time(tuned, tmp_path, default):
    """Logs written before tune-time comparisons: the record against the default's one measurement."""
    model, _ = tuned
    logs = copy_logs(tuned, tmp_path)
    path = logs / TAG / TASKS
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines() if '"compare"' not in line))
    (logs / TAG / KNOB_RECORDS).unlink()  # such logs have no knob records either
    log = TuningLog.open(logs / TAG)
    best = log.best(0).seconds
    log.update_task(0, default_secs={"missing": None, "within the noise": best * 1.02, "faster": best / 2}[default])
    assert _tuned_kernels(model, logs, tmp_path) == 0


def test_records_of_another_target_are_not_applied(tuned, tmp_path):
    model, _ = tuned
    logs = copy_logs(tuned, tmp_path)
    # another CPU: its own folder (absent), so nothing applies
    rc, stdout, err = edgecc("compile", model, "-o", tmp_path / "a.so", "--cpu", "skylake", "--tuning-logs", logs)
    assert rc == 0, err
    assert "target x86_64-skylake" in stdout and "0 of 1 kernels from tuning records" in stdout
    # a znver3 folder handed to a compile for a CPU without AVX2 and FMA is refused, naming both targets
    rc, _, err = edgecc("compile", model, "-o", tmp_path / "b.so", "--cpu", "sandybridge", "--tuning-logs", logs / TAG)
    assert_one_line_error(rc, err, TASKS, "x86_64-znver3", "x86_64-sandybridge", "another ISA family", "avx2")
    # records inside the right folder whose own target is another CPU are skipped
    path = logs / TAG / RECORDS
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for entry in lines:
        entry[1][2]["mcpu"] = "skylake"
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    rc, stdout, err = edgecc("compile", model, "-o", tmp_path / "c.so", "--cpu", "znver3", "--tuning-logs", logs)
    assert rc == 0, err
    assert "0 of 1 kernels from tuning records" in stdout
    assert TuningLog.open(logs / TAG).foreign == len(lines)


@pytest.mark.parametrize("damage, message", [
    ("truncate", "truncated last line"),
    ("garbage", ":3: corrupt JSON"),
    ("shape", ":2: not a tuning record"),
    ("foreign", ":1: not an edgecc tuning log"),
    ("workload", "not a workload entry"),
    ("knob garbage", ":2: corrupt JSON"),
    ("knob object", ":1: not a knob record"),
    ("knob workload", ":1: record of workload 7"),
    ("comparison", "not a comparison of a record"),
    ("comparison line", "comparison with line 999"),
])
def test_a_damaged_log_is_a_clear_error_naming_the_file(tuned, tmp_path, damage, message):
    model, _ = tuned
    logs = copy_logs(tuned, tmp_path)
    folder = logs / TAG
    records = (folder / RECORDS).read_text().splitlines(keepends=True)
    knobs = (folder / KNOB_RECORDS).read_text().splitlines(keepends=True)
    entry = json.loads(knobs[0])
    if damage.startswith("knob"):
        name = KNOB_RECORDS
        if damage == "knob garbage":
            knobs[1] = '{"workload": 0, "rule": "dense", "kno\n'
        elif damage == "knob object":  # a value that is not an int, bool or string is not read as anything
            knobs[0] = json.dumps({**entry, "knobs": {**entry["knobs"], "rows": {"py/object": "os.system"}}}) + "\n"
        else:
            knobs[0] = json.dumps({**entry, "workload": 7}) + "\n"
        (folder / KNOB_RECORDS).write_text("".join(knobs))
    elif damage.startswith("comparison"):
        name = TASKS
        compare = {"record": ["knobs", 999], "default": [1e-4] * 5, "candidate": [1e-4] * 5, "noise": 0.0,
                   "wins": False}
        if damage == "comparison":
            compare["record"] = ["pickle", 1]
        with open(folder / TASKS, "a") as fh:
            fh.write(json.dumps({"workload": 0, "compare": compare}) + "\n")
    elif damage == "truncate":  # a write cut short
        (folder / RECORDS).write_text("".join(records)[:-40])
        name = RECORDS
    elif damage == "garbage":
        records[2] = '[0, [[["GetSBlock"'  + "\n"
        (folder / RECORDS).write_text("".join(records))
        name = RECORDS
    elif damage == "shape":
        records[1] = '{"not": "a record"}\n'
        (folder / RECORDS).write_text("".join(records))
        name = RECORDS
    elif damage == "foreign":  # some other JSON-lines file in place of the task file
        (folder / TASKS).write_text('{"format": "something-else"}\n')
        name = TASKS
    else:
        (folder / WORKLOADS).write_text('{"x": 1}\n')
        name = WORKLOADS
    rc, _, err = edgecc("compile", model, "-o", tmp_path / "x.so", "--cpu", "znver3", "--tuning-logs", logs)
    assert_one_line_error(rc, err, str(folder / name), message)
    rc, _, err = edgecc("report", folder)
    assert_one_line_error(rc, err, name)


def test_a_missing_log_folder_is_an_error(tuned, tmp_path):
    rc, _, err = edgecc("compile", tuned[0], "-o", tmp_path / "x.so", "--tuning-logs", tmp_path / "nowhere")
    assert_one_line_error(rc, err, "nowhere", "no such tuning log folder")


def test_report_table_curves_and_comparison(tuned, tmp_path):
    _, logs = tuned
    png = tmp_path / "curves.png"
    rc, out, err = edgecc("report", logs / TAG, "--plot", png, "--peak-gflops", "100")
    assert rc == 0, err
    row = next(line for line in out.splitlines() if line.startswith("k0_dense"))
    fields = row.split()
    assert fields[1] == "dense" and fields[3] == "8" and fields[4] == "8"  # kind, trials, knob points
    log = TuningLog.open(logs / TAG)
    best_ms = log.best_any(0).seconds * 1e3
    assert float(fields[5]) == pytest.approx(best_ms, rel=1e-3)
    assert float(fields[8]) == pytest.approx(2 * 8 * 32 * 64 / (best_ms / 1e3) / 1e9, rel=1e-2)
    assert fields[10] == ("yes" if log.task(0)["compare"]["wins"] else "no")
    assert png.stat().st_size > 5000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rc, out, err = edgecc("report", logs / TAG, logs / TAG)
    assert rc == 0, err
    assert "ratio" in out and "1.00" in out


def test_a_failed_plot_leaves_the_previous_image(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from matplotlib.figure import Figure

    from edgecc.tune import report

    def fail_halfway(self, path, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"\x89PNG half")
        raise OSError("disk full")

    png = tmp_path / "curves.png"
    png.write_bytes(b"previous image")
    monkeypatch.setattr(report, "summarize", lambda log: [])
    monkeypatch.setattr(Figure, "savefig", fail_halfway)
    with pytest.raises(OSError, match="disk full"):
        report.plot_curves([SimpleNamespace(tag="x86_64-znver3")], str(png))
    assert png.read_bytes() == b"previous image" and os.listdir(tmp_path) == ["curves.png"]


@pytest.mark.slow
def test_a_killed_run_resumes_without_losing_or_remeasuring_records(tmp_path):
    model = dense_model(tmp_path / "dense.onnx", n=16, k=64, m=64)
    logs = tmp_path / "logs"
    args = [sys.executable, "-m", "edgecc", "tune", str(model), "--cpu", "znver3", "--trials", "16",
            "--logs", str(logs), *SMALL]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if (logs / TAG / RECORDS).exists() and len(record_lines(logs)) >= 1:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "tuning ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # the tuner and its build/measure workers
    finally:
        proc.wait()
    before = record_lines(logs)
    assert 1 <= len(before) < 16
    assert len(TuningLog.open(logs / TAG).records) == len(before)  # every line parses
    rc, out, err = edgecc("tune", model, "--cpu", "znver3", "--trials", "16", "--logs", logs, *SMALL)
    assert rc == 0, err
    assert f"{len(before)} trials in the log, tuning {16 - len(before)} more" in err
    after = record_lines(logs)
    assert after[:len(before)] == before  # nothing lost, nothing rewritten
    new = int(next(line for line in out.splitlines() if line.startswith("k0_dense")).split()[3])
    assert len(after) == len(before) + new and new <= 16 - len(before)
    # no candidate was measured twice: all scheduled modules differ
    from edgecc.tune.tuner import _measured_hashes

    log = TuningLog.open(logs / TAG)
    assert len(_measured_hashes(log, 0, log.workload_module(0))) == len(after)
    # a third run has nothing left to do once the count is reached, or continues where it stopped
    rc, out, err = edgecc("tune", model, "--cpu", "znver3", "--trials", str(len(after)), "--logs", logs, *SMALL)
    assert rc == 0, err
    assert "nothing to do" in err and record_lines(logs) == after


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def rpc_tracker():
    """A TVM RPC tracker and one server registered under a key, on loopback."""
    port, key = _free_port(), "edgecc-test-board"
    env = {**os.environ, "TVM_NUM_THREADS": "2"}
    procs = [subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1",
                               "--port", str(port), "--port-end", str(port + 1)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                              start_new_session=True)]
    try:
        _wait_for_port(port)
        procs.append(subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_server", "--host", "127.0.0.1",
                                       "--tracker", f"127.0.0.1:{port}", "--key", key],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                      start_new_session=True))
        _wait_for_key(port, key)
        yield f"127.0.0.1:{port}", key
    finally:
        for proc in reversed(procs):  # each in its own session: its worker processes go with it
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def _wait_for_port(port, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on port {port}")


def _wait_for_key(port, key, timeout=60):
    from tvm import rpc

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        summary = rpc.connect_tracker("127.0.0.1", port).summary()
        if any(key in str(s.get("key", "")) for s in summary.get("server_info", [])):
            return
        time.sleep(0.3)
    raise TimeoutError(f"no RPC server registered as {key}")


@pytest.mark.slow
def test_tuning_through_an_rpc_tracker_on_loopback(rpc_tracker, tmp_path):
    tracker, key = rpc_tracker
    model = dense_model(tmp_path / "dense.onnx")
    rc, _, err = edgecc("tune", model, "--cpu", "znver3", "--trials", "4", "--logs", tmp_path / "logs",
                          "--rpc-tracker", tracker, "--rpc-key", key, *SMALL)
    assert rc == 0, err
    log = TuningLog.open(tmp_path / "logs" / TAG)
    assert len(log.records) == 4
    assert all(r.valid for r in log.records), [r.raw[1] for r in log.records]
    assert log.task(0)["default_secs"] > 0


def test_candidates_are_timed_on_every_core_a_model_runs_on(tmp_path, monkeypatch):
    """The runner's worker process reads TVM_NUM_THREADS when it starts: the tuner sets it first
    (else TVM would time candidates on half the cores of an x86 machine)."""
    from edgecc.runtime.threads import available_cores
    from edgecc.tune import tuner

    monkeypatch.delenv("TVM_NUM_THREADS", raising=False)
    seen = []
    make_runner = tuner._make_runner

    def recording(options):
        seen.append(os.environ.get("TVM_NUM_THREADS"))
        return make_runner(options)

    monkeypatch.setattr(tuner, "_make_runner", recording)
    options = tuner.TuneOptions(trials=1, searches=("knobs",), compare_rounds=3)
    tuner.tune_model(str(dense_model(tmp_path / "dense.onnx")), "host", logs=str(tmp_path / "logs"), options=options,
                     out=None)
    assert seen == [str(len(available_cores()))]


def test_an_unknown_search_is_a_user_error(tmp_path):
    model = dense_model(tmp_path / "dense.onnx")
    rc, _, err = edgecc("tune", model, "--trials", "1", "--logs", tmp_path / "logs", "--search", "knobs,annealing")
    assert_one_line_error(rc, err, "--search", "knobs, metaschedule", "annealing")
    assert not (tmp_path / "logs").exists()


def test_bad_rpc_tracker_address_is_a_user_error(tmp_path):
    model = dense_model(tmp_path / "dense.onnx")
    rc, _, err = edgecc("tune", model, "--trials", "1", "--logs", tmp_path / "logs",
                        "--rpc-tracker", "localhost", "--rpc-key", "k")
    assert_one_line_error(rc, err, "HOST:PORT")


def test_tuning_a_target_that_cannot_run_here_needs_rpc(tmp_path):
    model = dense_model(tmp_path / "dense.onnx")
    rc, _, err = edgecc("tune", model, "--target", "rpi4", "--trials", "1", "--logs", tmp_path / "logs")
    assert_one_line_error(rc, err, "rpi4", "--rpc-tracker")
    assert not (tmp_path / "logs").exists()


def test_a_task_metaschedule_fails_on_is_skipped_and_the_run_goes_on(monkeypatch):
    from edgecc.errors import EdgeccError
    from edgecc.tune import tuner

    def failing(task, *args):
        if task.name == "k1_conv":
            raise RuntimeError("Traceback (most recent call last):\n  ...\nScheduleError: cannot reverse-compute-at")
        if task.name == "k2_conv":
            raise EdgeccError("the RPC tracker went away")
        return tuner.TaskResult(task.name, task.kind, 3, 3, 1e-3, 2e-3)

    monkeypatch.setattr(tuner, "_tune_task", failing)
    lines = []
    progress = tuner._Progress(None, tuner.TuneOptions(), 10)
    progress.line = lines.append

    def task(name):
        return tuner.TuningTask(name, "conv", None, None, 1, 0.0, 1)

    skipped = tuner._tune_task_or_skip(task("k1_conv"), 1, 3, None, None, None, progress, None)
    assert skipped.skipped == "failed: RuntimeError: ScheduleError: cannot reverse-compute-at"
    assert lines == ["task 1/3 k1_conv (conv): failed: RuntimeError: ScheduleError: cannot reverse-compute-at"]
    assert tuner._tune_task_or_skip(task("k3_conv"), 3, 3, None, None, None, progress, None).best == 1e-3
    with pytest.raises(EdgeccError):  # user errors still stop the run
        tuner._tune_task_or_skip(task("k2_conv"), 2, 3, None, None, None, progress, None)
    reports = []
    progress = tuner._Progress(None, tuner.TuneOptions(), 10, lambda *a: reports.append(a))
    progress.advance(4)
    progress.advance(8)
    assert reports == [("tune", 4, 10), ("tune", 10, 10)]


# ----- knob search over edgecc's own rules ----------------------------------------------------------
def conv_model(path, c=16, o=32, hw=14):
    """A 3x3 conv (a Winograd kernel on x86: enough channels to share the transforms) and a 1x1
    conv (a direct NCHW{b}c kernel), with Relu."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
             for name, shape in [("W1", (o, c, 3, 3)), ("B1", (o,)), ("W2", (o, o, 1, 1)), ("B2", (o,))]]
    nodes = [helper.make_node("Conv", ["x", "W1", "B1"], ["y1"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["y1"], ["r1"]),
             helper.make_node("Conv", ["r1", "W2", "B2"], ["y2"]), helper.make_node("Relu", ["y2"], ["z"])]
    graph = helper.make_graph(nodes, "convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, o, hw, hw])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _kernels(model, cpu=None, **options):
    from edgecc.driver import prepare
    from edgecc.lower.plan import plan_kernels

    graph, target, _, _ = prepare(model, "host", target_options={"cpu": cpu} if cpu else {}, **options)
    return [p.kernel for p in plan_kernels(graph)], target


@pytest.mark.parametrize("name, shapes", [("resnet_tiny", None), ("mobilenetv2_tiny", None),
                                          ("transformer_tiny", {"input_ids": (1, 16)})])
def test_knob_space_holds_the_default_and_it_builds_the_default_schedule(name, shapes):
    import tvm_ffi

    from edgecc.lower.schedules import RULES
    from edgecc.lower.schedules.knobs import knob_space
    from edgecc.tune.knob_search import knob_space_of

    kernels, target = _kernels(os.path.join(os.path.dirname(__file__), "data", f"{name}.onnx"), input_shapes=shapes)
    kinds = set()
    for kernel in kernels:
        space = knob_space_of(kernel, target)
        if space is None:
            continue
        kinds.add(kernel.kind)
        points = space.points()
        assert points[0] == space.default() and len(points) > 1
        assert len({json.dumps(p, sort_keys=True) for p in points}) == len(points)
        for point in points:
            space.check(point)
        with pytest.raises(ValueError):
            space.check({**space.default(), "no such knob": 1})
        plain = RULES[kernel.kind](kernel, target)
        assert tvm_ffi.structural_equal(plain, RULES[kernel.kind](kernel, target, knobs=space.default()))
        assert knob_space(kernel, target) is not None
    assert kinds >= {"resnet_tiny": {"conv", "winograd_conv"}, "mobilenetv2_tiny": {"conv", "depthwise_conv"},
                     "transformer_tiny": {"dense", "matmul"}}[name]


@pytest.fixture(scope="module")
def knob_tuned(tmp_path_factory):
    """The two-conv model tuned by the knob search alone, 4 points per kernel: (model, log root, summary)."""
    from edgecc.tune.tuner import TuneOptions, tune_model

    root = tmp_path_factory.mktemp("knobs")
    model = conv_model(root / "convs.onnx")
    options = TuneOptions(trials=4, trials_per_iter=2, searches=("knobs",), compare_rounds=3)
    summary = tune_model(str(model), "host", root / "logs", options, out=None, target_options={"cpu": "znver3"})
    return model, root / "logs", summary


def test_knob_search_measures_points_and_compares_the_best_with_the_default(knob_tuned):
    _, logs, summary = knob_tuned
    log = TuningLog.open(logs / TAG)
    assert not log.records  # MetaSchedule did not run
    kinds = {log.task(r.workload)["kind"] for r in log.knob_records}
    assert kinds == {"winograd_conv", "conv"}
    for workload in {r.workload for r in log.knob_records}:
        records = log.knob_records_of(workload)
        assert len(records) == 4 and records[0].valid  # the default point first, then the search's picks
        assert len({json.dumps(r.knobs, sort_keys=True) for r in records}) == 4
        compare = log.task(workload)["compare"]
        best = log.best_knobs(workload)
        assert compare["record"] == ["knobs", best.line] and len(compare["default"]) == 3
        assert compare["wins"] == comparison_wins(compare["default"], compare["candidate"])
    tasks = {t.kind: t for t in summary.tasks}
    assert tasks["conv"].knob_measured == 4 and tasks["conv"].verdict
    assert log.runs[-1]["knob_measured"] == 8 and log.runs[-1]["measured"] == 0


def test_the_cost_model_ranks_the_unmeasured_points(knob_tuned):
    """After a few measurements, the next batch is what an XGBoost model fitted on them predicts fastest."""
    import random

    from edgecc.tune.knob_search import _key, _next_batch, knob_space_of

    model, logs, _ = knob_tuned
    kernels, target = _kernels(str(model), cpu="znver3")
    kernel = next(k for k in kernels if k.kind == "conv")
    space = knob_space_of(kernel, target)
    points = space.points()
    # a made-up cost: fast when the tile is wide and the tile's columns are unrolled
    measured = [(p, 1e-4 / p["tile"] * (1 if p["unroll"] else 3)) for p in points[:12]]
    done = {_key(p) for p, _ in measured}
    todo = [p for p in points if _key(p) not in done]
    batch = _next_batch(space, measured, todo, 4, random.Random(0), 0)
    assert len(batch) == 4 and all(_key(p) not in done for p in batch)
    best_predicted = batch[0]
    assert best_predicted["unroll"] and best_predicted["tile"] >= max(p["tile"] for p, _ in measured) - 2


def test_a_knob_record_replays_to_the_rule_with_those_knobs_and_stays_correct(knob_tuned, tmp_path):
    import tvm_ffi

    from edgecc.lower.schedules import RULES
    from edgecc.targets import get_target
    from edgecc.tune.database import workload_module

    model, _, _ = knob_tuned
    logs = copy_logs(knob_tuned, tmp_path)
    log = TuningLog.open(logs / TAG)
    kernels, target = _kernels(str(model), cpu="znver3")
    for kernel in (k for k in kernels if k.kind in ("conv", "winograd_conv")):
        workload = log.find_workload(workload_module(kernel.func))
        record = next(r for r in log.knob_records_of(workload) if r.knobs != log.knob_records_of(workload)[0].knobs)
        log.update_task(workload, compare={"record": ["knobs", record.line], "default": [2e-4] * 3,
                                           "candidate": [1e-4] * 3, "noise": 0.0, "wins": True})
    schedules = TunedSchedules.for_target(get_target("host", cpu="znver3"), str(logs))
    for kernel in (k for k in kernels if k.kind in ("conv", "winograd_conv")):
        record = schedules.chosen(schedules.log.find_workload(workload_module(kernel.func)))
        assert record.kind == "knobs"
        expected = RULES[kernel.kind](kernel, target, knobs=record.knobs)
        assert tvm_ffi.structural_equal(schedules.lookup(kernel), expected)
    import edgecc

    compiled = edgecc.compile(str(model), "host", target_options={"cpu": "znver3"}, tuning_logs=str(logs),
                              strict_schedules=True)
    assert compiled.stats.scheduled_by.get("tuned") == 2
    x = np.random.default_rng(2).standard_normal((1, 16, 14, 14)).astype(np.float32)
    got = compiled.load().run({"x": x})["z"]
    np.testing.assert_allclose(got, run_ort(onnx.load(model), {"x": x})[0], rtol=1e-4, atol=1e-4)


def test_a_knob_record_outside_the_rules_space_is_a_fallback(knob_tuned, tmp_path):
    from edgecc.lower.schedules import make_scheduler
    from edgecc.targets import get_target
    from edgecc.tune.database import workload_module

    model, _, _ = knob_tuned
    logs = copy_logs(knob_tuned, tmp_path)
    log = TuningLog.open(logs / TAG)
    kernels, _ = _kernels(str(model), cpu="znver3")
    kernel = next(k for k in kernels if k.kind == "conv")
    workload = log.find_workload(workload_module(kernel.func))
    record = log.add_knob_record(workload, "conv", {**log.knob_records_of(workload)[0].knobs, "tile": 999}, [1e-6])
    log.update_task(workload, compare={"record": ["knobs", record.line], "default": [2e-4] * 3,
                                       "candidate": [1e-4] * 3, "noise": 0.0, "wins": True})
    target = get_target("host", cpu="znver3")
    scheduled = make_scheduler(target, TunedSchedules.for_target(target, str(logs))).schedule(kernel)
    assert scheduled.how == "default" and "tile=999" in str(scheduled.fallback)


@pytest.mark.parametrize("cpu", ["skylake", "alderlake"])  # AVX2 CPUs: the same 256-bit kernels as znver3's
def test_records_of_another_cpu_of_the_same_isa_family_apply_with_a_remark(tuned, tmp_path, cpu):
    from edgecc.targets import get_target

    model, _ = tuned
    logs = copy_logs(tuned, tmp_path)
    _set_comparison(logs, [2e-4] * 5, [1e-4] * 5)  # the best record won
    schedules = TunedSchedules.for_target(get_target("host", cpu=cpu), str(logs / TAG))
    assert schedules.log.borrowed_from == TAG
    (remark,) = schedules.remarks
    assert f"records of {TAG}" in str(remark) and f"x86_64-{cpu}" in str(remark) and "same ISA family" in str(remark)
    rc, stdout, err = edgecc("compile", model, "-o", tmp_path / "f.so", "--cpu", cpu, "--tuning-logs", logs / TAG,
                             "--remarks")
    assert rc == 0, err
    assert f"target x86_64-{cpu}" in stdout and "1 of 1 kernels from tuning records" in stdout
    assert f"edgecc: remark: tuning-logs: records of {TAG} (x86_64: sse4.2, avx, f16c, fma, avx2) applied to " \
           f"x86_64-{cpu}: another CPU of the same ISA family" in err
    # the root folder holds no log of this CPU's own: nothing is borrowed from there
    assert TunedSchedules.for_target(get_target("host", cpu=cpu), str(logs)) is None
