"""ONNX node conformance: onnx's node test cases through edgecc and through TVM's Relax ONNX frontend.

    python tools/conformance.py [--ops Conv,Relu] [--jobs 2] [--timeout 60] [--strict] [--output docs/conformance.md]

Each case of `onnx.backend.test.case.node.collect_testcases` is compiled for the host with edgecc
(`edgecc.compile(model, "host")`) and with TVM's frontend (`tvm.relax.frontend.onnx.from_onnx`,
then `tvm.compile` with the default pipeline and a Relax VirtualMachine), run on the case's data
sets and compared with the expected outputs as onnx's backend test runner does
(`edgecc.compare`: `np.testing.assert_allclose`'s test with the case's rtol/atol; exact for integers,
booleans, strings).

Static parameters. Many cases feed values that fix an output shape or stand in for an attribute
(Reshape's shape, Slice's starts, Pad's pads, TopK's k, Resize's scales, ...) as graph inputs. When
the first attempt fails and a case has such inputs (`PARAMETER_INPUTS`), a second attempt turns
them into initializers holding the case's data. Both frontends get the same two attempts.

Isolation. Cases run in worker processes (`--jobs`), one frontend and one attempt per task, with a
per-task timeout; a worker that crashes or runs past the timeout is replaced and the task is
recorded as a crash or a timeout.

The module is also the harness of `tests/test_conformance.py`: `collect_cases`, `run_case`, and the
list of cases edgecc is known to fail, `KNOWN_FAILURES` (checked both ways: `unexpected_result`).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FRONTENDS = ("edgecc", "tvm")

#: (op type) -> positions of inputs that are compile-time parameters: they fix an output shape
#: or stand in for an attribute. Such graph inputs are frozen into initializers on the retry.
PARAMETER_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "Slice": (1, 2, 3, 4), "Pad": (1, 2, 3),
    "TopK": (1,), "Squeeze": (1,), "Unsqueeze": (1,), "Split": (1,), "SplitToSequence": (1,),
    "ReduceSum": (1,), "ReduceMean": (1,), "ReduceMax": (1,), "ReduceMin": (1,), "ReduceProd": (1,),
    "ReduceL1": (1,), "ReduceL2": (1,), "ReduceLogSum": (1,), "ReduceLogSumExp": (1,),
    "ReduceSumSquare": (1,), "Resize": (1, 2, 3), "Upsample": (1,), "OneHot": (1,), "Trilu": (1,),
    "CumSum": (1,), "CumProd": (1,), "ConstantOfShape": (0,), "Range": (0, 1, 2),
    "CenterCropPad": (1,), "Col2Im": (1, 2), "DFT": (1, 2), "STFT": (1, 3), "AffineGrid": (1,),
    "MaxUnpool": (2,), "NonMaxSuppression": (2, 3, 4), "Dropout": (1, 2), "Compress": (1,),
    "MelWeightMatrix": (0, 1, 2, 3, 4), "HannWindow": (0,), "HammingWindow": (0,),
    "BlackmanWindow": (0,), "Loop": (0, 1),
}

#: (case-name pattern, why those cases fail) for edgecc: every case a pattern matches must fail,
#: and every other case of the ops `tests/test_conformance.py` checks must pass. A listed case that
#: passes is an error too (as pytest's strict xfail): take it off the list.
KNOWN_FAILURES: list[tuple[str, str]] = [
    (r"test_cast_.*(FLOAT8|FLOAT4|INT4|INT2|e8m0).*",
     "element types the IR does not have (float8, float4, int4, int2)"),
    (r"test_batchnorm_.*_training_mode", "training-mode BatchNormalization (running statistics) is not converted"),
    (r"test_maxpool_with_argmax_.*", "MaxPool's Indices output is not converted"),
    (r"test_identity_(opt|sequence)", "sequence and optional-sequence values are not tensors"),
    (r"test_(if|loop\d+)_(opt|seq|seq_none)", "sequence and optional values are not tensors"),
    (r"test_scan_sum", "opset 8 Scan: upgrading the model to opset 11 drops the batch axis from its declared "
                       "inputs, while the case's data keeps it"),
    (r"test_dft_inverse(_opset19)?",
     "the expected output is numpy's float32 FFT, 1.9e-7 where the exact value is 0, beyond the case's atol of "
     "1e-7; edgecc's float64 DFT is 4.4e-7 from the exact transform, the expected output 1.5e-6"),
]

#: per-task timeout in seconds (compile and run of one attempt)
DEFAULT_TIMEOUT = 60.0
#: a worker is replaced after this many tasks, which bounds what builds up in one process
TASKS_PER_WORKER = 250


# ----- cases ------------------------------------------------------------------------------
@dataclass
class Case:
    """One node test case, with its inputs and outputs as numpy arrays (or lists for sequences)."""

    name: str
    op: str  # the op the case tests (its expanded variants count for the same op)
    domain: str
    model: bytes  # serialized ModelProto
    data_sets: list[tuple[list[Any], list[Any]]]  # (inputs, expected outputs)
    rtol: float
    atol: float
    parameters: list[str] = field(default_factory=list)  # graph inputs frozen on the retry

    @property
    def op_label(self) -> str:
        return self.op if self.domain in ("", "ai.onnx") else f"{self.domain}.{self.op}"


class _OpFilter:
    """Passed as `op_type` to onnx's collector, which keeps a case when `op_type != filter` is
    False: compares unequal to every op type outside the set."""

    def __init__(self, ops: Iterable[str]):
        self.ops = frozenset(ops)

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other) -> bool:
        return other in self.ops

    def __ne__(self, other) -> bool:
        return other not in self.ops

    __hash__ = None  # type: ignore[assignment]


def _to_numpy(value):
    from onnx import TensorProto, numpy_helper

    if isinstance(value, TensorProto):
        return numpy_helper.to_array(value)
    if isinstance(value, (list, tuple)):
        return [_to_numpy(v) for v in value]
    if value is None or isinstance(value, np.ndarray):
        return value
    return np.asarray(value)


_UNCOLLECTED = object()
_collected_for: object = _UNCOLLECTED  # the op set of this process's collection (None: every op)


def collect_cases(ops: Iterable[str] | None = None) -> list[Case]:
    """onnx's node test cases (all, or those of the given op types), in onnx's order.

    onnx builds its cases once per process, for the op types of the first call; a later call may
    ask for those op types (or fewer) only.
    """
    import warnings

    import onnx.backend.test.case.node as node_cases

    global _collected_for
    wanted = frozenset(ops) if ops else None
    if _collected_for is _UNCOLLECTED:
        _collected_for = wanted
    elif _collected_for is not None and (wanted is None or not wanted <= _collected_for):
        raise RuntimeError("onnx's node test cases were already collected for other op types in this process")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            raw = node_cases.collect_testcases(_OpFilter(wanted) if wanted else None)
    known = getattr(node_cases, "_existing_names", {})
    cases = []
    for tc in raw:
        op, domain = _case_op(tc, known)
        if wanted and op not in wanted:
            continue
        model = tc.model
        data_sets = [([_to_numpy(v) for v in inputs], [_to_numpy(v) for v in outputs])
                     for inputs, outputs in tc.data_sets]
        case = Case(tc.name, op, domain, model.SerializeToString(), data_sets, float(tc.rtol), float(tc.atol))
        case.parameters = parameter_inputs(model)
        cases.append(case)
    # an expanded variant has its base case's graph inputs: freeze the same ones
    by_name = {c.name: c for c in cases}
    for case in cases:
        base = by_name.get(_base_name(case.name))
        if base is not None and base is not case and not case.parameters:
            case.parameters = list(base.parameters)
    return cases


def _base_name(name: str) -> str:
    return re.sub(r"_expanded(_ver\d+)?$", "", name)


def _case_op(tc, known: dict) -> tuple[str, str]:
    base = _base_name(tc.name)
    node = known.get(tc.name) or known.get(base)
    if node is not None:
        return node.op_type, node.domain
    nodes = tc.model.graph.node
    if len(nodes) == 1:
        return nodes[0].op_type, nodes[0].domain
    return base.removeprefix("test_"), ""


def parameter_inputs(model) -> list[str]:
    """Graph inputs that feed a compile-time parameter position (`PARAMETER_INPUTS`)."""
    graph_inputs = {i.name for i in model.graph.input} - {t.name for t in model.graph.initializer}
    found: list[str] = []
    for node in model.graph.node:
        for pos in PARAMETER_INPUTS.get(node.op_type, ()):
            if pos < len(node.input) and node.input[pos] in graph_inputs and node.input[pos] not in found:
                found.append(node.input[pos])
    return found


def _graph_input_names(model) -> list[str]:
    inits = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def freeze_inputs(model_bytes: bytes, values: dict[str, Any]) -> bytes:
    """The model with the named graph inputs turned into initializers holding `values`."""
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto()
    model.ParseFromString(model_bytes)
    keep = [i for i in model.graph.input if i.name not in values]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    for name, data in values.items():
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(data), name))
    return model.SerializeToString()


# ----- one attempt (in a worker) ------------------------------------------------------------
@dataclass
class Attempt:
    """What a worker runs: one case, one frontend, frozen parameters or not."""

    case: Case
    frontend: str
    frozen: bool = False


@dataclass
class Result:
    passed: bool
    category: str = ""  # for failures: see CATEGORIES
    message: str = ""
    seconds: float = 0.0
    frozen: bool = False  # the passing or last attempt ran with frozen parameters
    first: Result | None = None  # the failed first attempt, when a second one followed


CATEGORIES = ("unsupported op", "compile error", "run error", "wrong result", "crash", "timeout")


class _Failure(Exception):
    def __init__(self, category: str, message: str):
        super().__init__(message)
        self.category = category


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("Traceback", "File ", "File\"")):
            return f"{type(exc).__name__}: {line}"[:300]
    return type(exc).__name__


def _prepare(attempt: Attempt, data_set: int = 0):
    """(model bytes, feeds by name) for an attempt on one of the case's data sets."""
    case = attempt.case
    names = _graph_input_names_from_bytes(case.model)
    feeds = dict(zip(names, case.data_sets[data_set][0]))
    model = case.model
    if attempt.frozen and case.parameters:
        frozen = {n: feeds.pop(n) for n in case.parameters if n in feeds and isinstance(feeds[n], np.ndarray)}
        model = freeze_inputs(model, frozen)
    return model, feeds


def _graph_input_names_from_bytes(model_bytes: bytes) -> list[str]:
    import onnx

    model = onnx.ModelProto()
    model.ParseFromString(model_bytes)
    return _graph_input_names(model)


def _concrete_shapes(model, feeds: dict[str, Any]) -> dict[str, list[int]]:
    """Shapes of the inputs whose declared shape is missing or symbolic, from the case's data."""
    shapes = {}
    for inp in model.graph.input:
        data = feeds.get(inp.name)
        if not isinstance(data, np.ndarray) or not inp.type.HasField("tensor_type"):
            continue
        tt = inp.type.tensor_type
        static = tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim)
        if not static:
            shapes[inp.name] = list(data.shape)
    return shapes


def _compile_edgecc(model, feeds: dict[str, Any]) -> Callable[[dict[str, Any]], list[Any]]:
    """edgecc's build of the model; returns a function from feeds to outputs."""
    import edgecc
    from edgecc.errors import UnsupportedOpError

    _check_tensors(feeds)
    try:
        compiled = edgecc.compile(model, "host", input_shapes=_concrete_shapes(model, feeds) or None)
        module = compiled.load()
    except UnsupportedOpError as exc:
        raise _Failure("unsupported op", _first_line(exc)) from None
    except Exception as exc:  # noqa: BLE001 - every failure is a result here
        raise _Failure("compile error", _first_line(exc)) from None

    def run(data: dict[str, Any]) -> list[Any]:
        try:
            return list(module.run(data).values())
        except Exception as exc:  # noqa: BLE001
            raise _Failure("run error", _first_line(exc)) from None

    return run


def _check_tensors(feeds: dict[str, Any]) -> None:
    for name, data in feeds.items():
        if not isinstance(data, np.ndarray):
            raise _Failure("unsupported op", f"input '{name}' is a {type(data).__name__}, not a tensor")


def _tvm_to_numpy(value):
    import tvm

    if isinstance(value, tvm.runtime.Tensor):
        return value.numpy()
    if isinstance(value, tvm.runtime.ShapeTuple):
        return np.array(list(value), dtype=np.int64)
    if isinstance(value, (list, tuple)) or type(value).__name__ in ("Array", "List"):
        return [_tvm_to_numpy(v) for v in value]
    if isinstance(value, (bool, int, float, np.generic)):
        return np.asarray(value)
    return value


def _compile_tvm(model, feeds: dict[str, Any]) -> Callable[[dict[str, Any]], list[Any]]:
    """TVM's Relax ONNX frontend and default pipeline; returns a function from feeds to outputs."""
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    names = _graph_input_names(model)
    _check_tensors({n: feeds.get(n) for n in names})
    try:
        mod = from_onnx(model, shape_dict=_concrete_shapes(model, feeds) or None, keep_params_in_input=False)
    except tvm.error.OpNotImplemented as exc:
        raise _Failure("unsupported op", _first_line(exc)) from None
    except Exception as exc:  # noqa: BLE001
        raise _Failure("compile error", _first_line(exc)) from None
    try:
        executable = tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"}))
        vm = relax.VirtualMachine(executable, tvm.cpu())
    except Exception as exc:  # noqa: BLE001
        raise _Failure("compile error", _first_line(exc)) from None

    def run(data: dict[str, Any]) -> list[Any]:
        try:
            out = vm["main"](*[tvm.runtime.tensor(np.require(data[n], requirements="C")) for n in names])
            result = _tvm_to_numpy(out)
        except Exception as exc:  # noqa: BLE001
            raise _Failure("run error", _first_line(exc)) from None
        if len(model.graph.output) == 1:
            return [result]
        return result if isinstance(result, list) else [result]

    return run


def compare_outputs(got: Sequence[Any], expected: Sequence[Any], rtol: float, atol: float) -> str | None:
    """None when `got` matches `expected` as onnx's backend runner checks it, else what differs.

    The comparison is `edgecc.compare`'s; bfloat16 outputs get two bfloat16 ulps of relative
    tolerance at least, as in onnx's runner.
    """
    from edgecc.compare import compare_outputs as compare

    if len(got) != len(expected):
        return f"{len(got)} outputs, expected {len(expected)}"
    for i, (g, e) in enumerate(zip(got, expected)):
        tol = max(rtol, 2**-6) if getattr(e, "dtype", None) is not None and e.dtype.name == "bfloat16" else rtol
        name = f"output {i}"
        (record,) = compare({name: g}, {name: e}, rtol=tol, atol=atol)
        if not record.ok:
            return record.problem
    return None


def run_attempt(attempt: Attempt) -> Result:
    """Compile, run and check one attempt (every data set of the case) in this process."""
    import onnx

    start = time.perf_counter()
    case = attempt.case
    build = _compile_edgecc if attempt.frontend == "edgecc" else _compile_tvm
    try:
        run = None
        for index, (_, expected) in enumerate(case.data_sets):
            model_bytes, feeds = _prepare(attempt, index)
            if run is None or attempt.frozen:  # frozen parameters come from each data set
                model = onnx.ModelProto()
                model.ParseFromString(model_bytes)
                with np.errstate(all="ignore"):
                    run = build(model, feeds)
            with np.errstate(all="ignore"):
                got = run(feeds)
            problem = compare_outputs(got, expected, case.rtol, case.atol)
            if problem:
                where = f"data set {index}: " if len(case.data_sets) > 1 else ""
                raise _Failure("wrong result", where + problem)
    except _Failure as exc:
        return Result(False, exc.category, str(exc), time.perf_counter() - start, attempt.frozen)
    except Exception as exc:  # noqa: BLE001
        return Result(False, "compile error", _first_line(exc), time.perf_counter() - start, attempt.frozen)
    return Result(True, seconds=time.perf_counter() - start, frozen=attempt.frozen)


def should_retry(case: Case, attempt: Attempt, result: Result) -> bool:
    """A failed first attempt of a case with parameter inputs is tried again with them frozen."""
    return not result.passed and not attempt.frozen and bool(case.parameters)


def run_case(case: Case, frontend: str, strict: bool = False) -> Result:
    """Both attempts of a case in this process (no isolation, no timeout); with `strict` only
    the first, every graph input fed at run time."""
    attempt = Attempt(case, frontend)
    result = run_attempt(attempt)
    if not strict and should_retry(case, attempt, result):
        first, result = result, run_attempt(Attempt(case, frontend, frozen=True))
        result.first = first
    return result


# ----- known failures -----------------------------------------------------------------------
def known_failure(name: str) -> str | None:
    """Why edgecc is expected to fail the case `name` (None: it is expected to pass)."""
    return next((reason for pattern, reason in KNOWN_FAILURES if re.fullmatch(pattern, name)), None)


def unexpected_result(case: Case, result: Result) -> str | None:
    """None when edgecc's result is the expected one; else what is wrong, in one line."""
    reason = known_failure(case.name)
    if result.passed and reason:
        return f"{case.name}: passes, but KNOWN_FAILURES says it fails ({reason}): take it off the list"
    if not result.passed and not reason:
        return f"{case.name}: {result.category}: {result.message}"
    return None


def unused_known_failures(names: Iterable[str]) -> list[str]:
    """The KNOWN_FAILURES patterns that match none of the case names."""
    names = list(names)
    return [p for p, _ in KNOWN_FAILURES if not any(re.fullmatch(p, n) for n in names)]


# ----- worker processes ---------------------------------------------------------------------
def _worker_main(conn, quiet: bool) -> None:
    os.environ["TVM_NUM_THREADS"] = "1"
    if quiet:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    import warnings

    warnings.simplefilter("ignore")
    import onnx  # noqa: F401
    import tvm  # noqa: F401
    import tvm.relax.frontend.onnx  # noqa: F401

    import edgecc.driver  # noqa: F401

    conn.send("ready")
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        key, attempt = msg
        conn.send((key, run_attempt(attempt)))


class _Worker:
    def __init__(self, mp, quiet: bool):
        self.conn, child = mp.Pipe()
        self.proc = mp.Process(target=_worker_main, args=(child, quiet), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False
        self.task = None  # (key, Attempt)
        self.started = 0.0
        self.done = 0

    def assign(self, key, attempt: Attempt) -> None:
        self.task = (key, attempt)
        self.started = time.monotonic()
        self.conn.send((key, attempt))

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.proc.kill()
        else:
            try:
                self.conn.send(None)
            except (OSError, BrokenPipeError):
                self.proc.kill()
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def _death_message(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"worker killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            pass
    return f"worker exited with status {exitcode}"


Key = tuple[str, str]  # (case name, frontend)


def run_cases(cases: Sequence[Case], frontends: Sequence[str] = FRONTENDS, jobs: int = 2,
              timeout: float = DEFAULT_TIMEOUT, progress: Callable[[int, int, dict], None] | None = None,
              quiet: bool = True, strict: bool = False) -> dict[Key, Result]:
    """Run every case with every frontend in `jobs` worker processes; (case, frontend) -> Result.

    A failed first attempt of a case with parameter inputs is retried with them frozen, unless
    `strict`.
    """
    import multiprocessing
    from multiprocessing.connection import wait

    mp = multiprocessing.get_context("spawn")
    by_name = {c.name: c for c in cases}
    pending = collections.deque(((c.name, f), Attempt(c, f)) for c in cases for f in frontends)
    total = len(pending)
    results: dict[Key, Result] = {}
    workers = [_Worker(mp, quiet) for _ in range(max(1, jobs))]

    firsts: dict[Key, Result] = {}

    def finish(key: Key, attempt: Attempt, result: Result) -> None:
        case = by_name[key[0]]
        if not strict and should_retry(case, attempt, result):
            firsts[key] = result
            pending.appendleft((key, Attempt(case, key[1], frozen=True)))
            return
        result.first = firsts.pop(key, None)
        results[key] = result
        if progress is not None:
            progress(len(results), total, results)

    try:
        while pending or any(w.task is not None for w in workers):
            for i, w in enumerate(workers):
                if w.ready and w.task is None and pending:
                    if w.done >= TASKS_PER_WORKER:
                        w.stop()
                        workers[i] = w = _Worker(mp, quiet)
                        continue
                    w.assign(*pending.popleft())
            waitables = [w.conn for w in workers] + [w.proc.sentinel for w in workers]
            wait(waitables, timeout=1.0)
            now = time.monotonic()
            for i, w in enumerate(workers):
                message = None
                try:
                    if w.conn.poll():
                        message = w.conn.recv()
                except (EOFError, OSError):
                    message = None
                if message == "ready":
                    w.ready = True
                elif message is not None:
                    key, result = message
                    _, attempt = w.task
                    w.task = None
                    w.done += 1
                    finish(key, attempt, result)
                    continue
                if w.proc.is_alive() and not (w.task is not None and now - w.started > timeout):
                    continue
                if w.task is not None:
                    key, attempt = w.task
                    if w.proc.is_alive():
                        w.stop(kill=True)
                        result = Result(False, "timeout", f"no result within {timeout:g} s",
                                        now - w.started, attempt.frozen)
                    else:
                        w.proc.join()
                        result = Result(False, "crash", _death_message(w.proc.exitcode),
                                        now - w.started, attempt.frozen)
                    w.task = None
                    finish(key, attempt, result)
                elif not w.proc.is_alive() and not w.ready:
                    raise RuntimeError(f"a conformance worker failed to start ({_death_message(w.proc.exitcode)})")
                workers[i] = _Worker(mp, quiet)
    finally:
        for w in workers:
            w.stop(kill=w.task is not None)
    return results


# ----- report -------------------------------------------------------------------------------
_NOISE = [
    (re.compile(r" at (node '[^']*'|an unnamed node), opset \d+"), ""),
    (re.compile(r"node '[^']*' \((\w+)\)"), r"\1"),
    (re.compile(r" \(node [^)]*\)"), ""),
    (re.compile(r"%[\w.:-]+"), "%v"),
    (re.compile(r"<model>: "), ""),
    (re.compile(r"input '[^']*'"), "an input"),
    (re.compile(r"element type (FLOAT8\w*|FLOAT4\w*|U?INT[24]\b|float8\w*|float4\w*|u?int[24]\b)"),
     "element type float8/float4/int4/int2"),
    (re.compile(r"\s+"), " "),
]


def failure_reason(result: Result) -> str:
    """A failure's message without node and value names, for grouping."""
    text = result.message
    for pattern, repl in _NOISE:
        text = pattern.sub(repl, text)
    if result.category == "wrong result":
        text = re.sub(r"\d+ of \d+ elements differ.*", "values differ", text)
    return text.strip()[:160]


#: the headline count: cases passed at the first attempt, with no input frozen into a constant
STRICT = "passed, no input frozen (strict)"


def summarize(cases: Sequence[Case], results: dict[Key, Result], frontends: Sequence[str]):
    """Per-op rows and per-frontend totals (`STRICT`: passed without frozen parameters)."""
    per_op: dict[str, dict[str, int]] = {}
    totals = {f: collections.Counter() for f in frontends}
    for case in cases:
        row = per_op.setdefault(case.op_label, {"cases": 0, **{f: 0 for f in frontends},
                                                **{f"{f} strict": 0 for f in frontends}})
        row["cases"] += 1
        for f in frontends:
            r = results.get((case.name, f))
            if r is None:
                continue
            totals[f]["cases"] += 1
            if r.passed:
                row[f] += 1
                totals[f]["passed"] += 1
                if r.frozen:
                    totals[f]["passed with frozen parameters"] += 1
                else:
                    row[f"{f} strict"] += 1
                    totals[f][STRICT] += 1
            else:
                totals[f][r.category] += 1
    return dict(sorted(per_op.items(), key=lambda kv: kv[0].lower())), totals


def render_report(cases: Sequence[Case], results: dict[Key, Result], frontends: Sequence[str], *,
                  command: str, seconds: float, jobs: int, timeout: float, max_reasons: int = 60,
                  strict: bool = False) -> str:
    import importlib.metadata

    import onnx

    import edgecc

    per_op, totals = summarize(cases, results, frontends)
    try:
        tvm_version = importlib.metadata.version("apache-tvm")
    except importlib.metadata.PackageNotFoundError:
        tvm_version = "unknown"
    names = {"edgecc": "edgecc", "tvm": "TVM Relax frontend"}
    lines = [
        "# ONNX node conformance",
        "",
        "Generated by `tools/conformance.py`; do not edit by hand.",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.date.today().isoformat()}",
        f"- versions: edgecc {edgecc.__version__}, onnx {onnx.__version__}, apache-tvm {tvm_version}, "
        f"numpy {np.__version__}",
        f"- {len(cases)} node test cases (`onnx.backend.test.case.node.collect_testcases`), "
        f"{len(per_op)} ops; {jobs} worker processes, {timeout:g} s per attempt; "
        f"the sweep took {seconds / 60:.1f} min",
        "",
        "Each case is compiled for the host CPU by edgecc (`edgecc.compile(model, \"host\")`) and by TVM's "
        "Relax ONNX frontend (`from_onnx(model, keep_params_in_input=False)`, `tvm.compile` with the default "
        "pipeline, `relax.VirtualMachine`), run, and compared with the expected outputs as onnx's backend "
        "runner does (`assert_allclose` with the case's rtol/atol; exact for integers, booleans and strings).",
        "",
        "Inputs that fix an output shape or stand in for an attribute (Reshape's shape, Slice's starts, "
        "Pad's pads, TopK's k, Resize's scales, ...; `PARAMETER_INPUTS` in the script) are graph inputs in "
        "many cases. The headline is the strict count: cases passed with every graph input fed at run "
        "time, as the case defines it. "
        + ("This run is strict only (`--strict`): no second attempt." if strict else
           "Beside it, a failed first attempt of a case with such inputs is tried again with them turned "
           "into initializers holding the case's data (both frontends get the same two attempts); passes "
           "that needed the second one are counted apart."),
        "",
        "**Strict (no input frozen): "
        + ", ".join(f"{names.get(f, f)} {totals[f][STRICT]} of {totals[f]['cases']}" for f in frontends)
        + "**" + ("" if strict else "; with frozen parameters allowed: "
                  + ", ".join(f"{names.get(f, f)} {totals[f]['passed']}" for f in frontends)) + ".",
        "",
        "## Totals",
        "",
        "| | " + " | ".join(names.get(f, f) for f in frontends) + " |",
        "|---|" + "---:|" * len(frontends),
    ]
    rows = ["cases", STRICT] + ([] if strict else ["passed", "passed with frozen parameters"]) + list(CATEGORIES)
    labels = {"passed": "passed, frozen parameters allowed", "passed with frozen parameters":
              "of which needed frozen parameters"}
    for key in rows:
        label = labels.get(key, key) if key in ("cases", STRICT, *labels) else f"failed: {key}"
        lines.append(f"| {label} | " + " | ".join(str(totals[f][key]) for f in frontends) + " |")
    columns = [(f"{f} strict", f"{names.get(f, f)} strict") for f in frontends]
    if not strict:
        columns = [c for f in frontends for c in ((f"{f} strict", f"{names.get(f, f)} strict"),
                                                    (f, f"{names.get(f, f)} with frozen"))]
    lines += [
        "",
        "## Per op",
        "",
        "| op | cases | " + " | ".join(title for _, title in columns) + " |",
        "|---|---:|" + "---:|" * len(columns),
    ]
    for op, row in per_op.items():
        lines.append(f"| {op} | {row['cases']} | " + " | ".join(str(row[key]) for key, _ in columns) + " |")
    if "edgecc" in frontends:
        groups: dict[tuple[str, str], list[Case]] = collections.defaultdict(list)
        for case in cases:
            r = results.get((case.name, "edgecc"))
            if r is not None and not r.passed:
                groups[(r.category, failure_reason(r))].append(case)
        lines += _grouped_table("edgecc failures, grouped", "reason", groups, max_reasons)
        lines += _frozen_only_section(cases, results, max_reasons)
        lines += _known_failures_section(cases, results)
    return "\n".join(lines) + "\n"


def _frozen_only_section(cases: Sequence[Case], results: dict[Key, Result], max_reasons: int) -> list[str]:
    """Why the cases edgecc passed only with frozen parameters failed at their first attempt."""
    groups: dict[tuple[str, str], list[Case]] = collections.defaultdict(list)
    for case in cases:
        r = results.get((case.name, "edgecc"))
        if r is not None and r.passed and r.frozen and r.first is not None:
            groups[(r.first.category, failure_reason(r.first))].append(case)
    if not groups:
        return []
    return _grouped_table("edgecc strict failures that pass with frozen parameters, grouped",
                          "reason at the first attempt", groups, max_reasons)


def _grouped_table(title: str, reason_column: str, groups: dict[tuple[str, str], list[Case]],
                   max_reasons: int) -> list[str]:
    """A section of (kind, reason) groups of cases, largest first, with their ops."""
    lines = ["", f"## {title}", "", f"| kind | {reason_column} | cases | ops |", "|---|---|---:|---|"]
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    for (category, reason), group in ordered[:max_reasons]:
        ops = sorted({c.op_label for c in group}, key=str.lower)
        shown = ", ".join(ops[:8]) + (f" and {len(ops) - 8} more" if len(ops) > 8 else "")
        lines.append(f"| {category} | {reason.replace('|', '/')} | {len(group)} | {shown} |")
    if len(ordered) > max_reasons:
        rest = sum(len(g) for _, g in ordered[max_reasons:])
        lines.append(f"| | {len(ordered) - max_reasons} more reasons | {rest} | |")
    return lines


def _known_failures_section(cases: Sequence[Case], results: dict[Key, Result]) -> list[str]:
    """The KNOWN_FAILURES list with how many of its cases failed in this run."""
    lines = [
        "",
        "## Known failures",
        "",
        "`tests/test_conformance.py` checks the node cases of its core and extended ops both ways: the "
        "cases below (`KNOWN_FAILURES` in the script) must fail, every other case of those ops must pass.",
        "",
        "| case names | reason | cases | failed here |",
        "|---|---|---:|---:|",
    ]
    for pattern, reason in KNOWN_FAILURES:
        matched = [c for c in cases if re.fullmatch(pattern, c.name) and (c.name, "edgecc") in results]
        failed = sum(not results[(c.name, "edgecc")].passed for c in matched)
        escaped = pattern.replace("|", "\\|")  # a bar inside a table cell, even in code
        lines.append(f"| `{escaped}` | {reason.replace('|', '/')} | {len(matched)} | {failed} |")
    passing = unexpected_passes(cases, results)
    if passing:
        lines += ["", "Listed but passing (take them off the list): " + ", ".join(passing)]
    return lines


def unexpected_passes(cases: Sequence[Case], results: dict[Key, Result]) -> list[str]:
    """Cases on the KNOWN_FAILURES list that edgecc passed."""
    return [c.name for c in cases if known_failure(c.name)
            and (c.name, "edgecc") in results and results[(c.name, "edgecc")].passed]


# ----- command line -------------------------------------------------------------------------
def write_text(path: str, text: str) -> None:
    """Write a file atomically (temporary file, then rename); a device or pipe is written directly."""
    if os.path.exists(path) and not os.path.isfile(path):
        with open(path, "w") as fh:
            fh.write(text)
        return
    from edgecc._files import atomic_write

    atomic_write(path, text)



def _progress_printer(stream=sys.stdout):
    start = time.monotonic()
    last = [0.0]

    def show(done: int, total: int, results: dict[Key, Result]) -> None:
        now = time.monotonic()
        if done != total and now - last[0] < 10:
            return
        last[0] = now
        passed = collections.Counter(f for (_, f), r in results.items() if r.passed)
        counts = ", ".join(f"{f} {passed[f]} passed" for f in FRONTENDS if any(k[1] == f for k in results))
        print(f"[{done}/{total}] {now - start:6.0f} s  {counts}", file=stream, flush=True)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", help="comma-separated op types (default: every op)")
    parser.add_argument("--cases", help="comma-separated case names (default: every case of the ops)")
    parser.add_argument("--frontends", default=",".join(FRONTENDS), help="edgecc,tvm (default: both)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default: 2)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds per attempt (default: {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--output", default="docs/conformance.md", help="report path ('-' for stdout)")
    parser.add_argument("--json", help="also write every case's result to this JSON file")
    parser.add_argument("--verbose", action="store_true", help="keep the workers' own output")
    parser.add_argument("--strict", action="store_true",
                        help="no second attempt with frozen parameters (only the strict count)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # stop the workers too

    frontends = [f.strip() for f in args.frontends.split(",") if f.strip()]
    unknown = set(frontends) - set(FRONTENDS)
    if unknown:
        parser.error(f"unknown frontend {', '.join(sorted(unknown))}")
    ops = [o.strip() for o in args.ops.split(",")] if args.ops else None
    start = time.monotonic()
    print("collecting onnx node test cases ...", flush=True)
    cases = collect_cases(ops)
    if args.cases:
        names = {n.strip() for n in args.cases.split(",")}
        cases = [c for c in cases if c.name in names]
    if not cases:
        print("no test cases match", file=sys.stderr)
        return 2
    print(f"{len(cases)} cases, {len({c.op_label for c in cases})} ops, frontends {', '.join(frontends)}, "
          f"{args.jobs} workers", flush=True)
    results = run_cases(cases, frontends, jobs=args.jobs, timeout=args.timeout,
                        progress=_progress_printer(), quiet=not args.verbose, strict=args.strict)
    seconds = time.monotonic() - start
    command = "python tools/conformance.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = render_report(cases, results, frontends, command=command.strip(), seconds=seconds,
                           jobs=args.jobs, timeout=args.timeout, strict=args.strict)
    if args.output == "-":
        sys.stdout.write(report)
    else:
        write_text(args.output, report)
        print(f"wrote {args.output}")
    if args.json:
        import json

        op_of = {c.name: c.op_label for c in cases}
        data = {f"{name}/{frontend}": {"op": op_of[name],
                                       "passed": r.passed, "category": r.category, "message": r.message,
                                       "frozen": r.frozen, "seconds": round(r.seconds, 3),
                                       **({"first": f"{r.first.category}: {r.first.message}"} if r.first else {})}
                for (name, frontend), r in sorted(results.items())}
        write_text(args.json, json.dumps(data, indent=1) + "\n")
    _, totals = summarize(cases, results, frontends)
    print("  ".join(f"{f}: {totals[f][STRICT]}/{totals[f]['cases']} passed strict"
                    + ("" if args.strict else f", {totals[f]['passed']} with frozen parameters") for f in frontends))
    print(f"took {seconds / 60:.1f} min")
    passing = unexpected_passes(cases, results)
    if passing:
        print(f"{len(passing)} cases on KNOWN_FAILURES pass; take them off the list: {', '.join(passing)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
