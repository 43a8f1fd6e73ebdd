"""Semantic fuzzer: valid ONNX models with a wrong meaning must compile or be refused in one line.

Takes the ONNX node conformance cases (those whose ops edgecc converts) and the bundled models in
tests/data, and mutates each one a little: attributes set negative, zero or huge, lists of the wrong
length, attributes of another type, declared input shapes and dtypes changed, run-time inputs
frozen into constants with hostile contents. Every case is compiled in a worker process (frontend
and passes, through the Python API) under a memory cap; the outcome must be a compile or an
EdgeccError of one line. A sample also goes through `edgecc compile` (exit 0 or 2, one line on
stderr, no output file left behind) and, when it compiles, `edgecc run` (exit 0 or 2).

    python3 tools/fuzz.py                                       # 300 cases, seed 0, 6 through the CLI
    python3 tools/fuzz.py --cases 5000 --cli 60 --report docs/robustness.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import select
import struct
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "tests" / "data"

INTS = (-(2**31), -7, -1, 0, 1, 3, 2**31 - 1, 2**62)
FLOATS = (float("nan"), float("inf"), float("-inf"), -1.0, 0.0, 1e30)
DIMS = (0, 1, 3, 2**31 - 1, 2**40)
#: ONNX element types a declared input may be switched to (names of onnx.TensorProto fields)
DTYPES = ("FLOAT", "DOUBLE", "FLOAT16", "BFLOAT16", "INT8", "UINT8", "INT32", "INT64", "BOOL", "STRING",
          "COMPLEX64")
MEMORY_CAP = 4 << 30  # address space of a worker, so a runaway case cannot take the machine down
CASE_TIMEOUT = 120.0


@dataclass
class Case:
    name: str  # base model / mutations
    model: bytes


@dataclass
class Result:
    case: str
    outcome: str  # "compiled", "refused", or a failure: "internal", "multi-line", "crash", "timeout", "cli"
    message: str
    seconds: float

    @property
    def failed(self) -> bool:
        return self.outcome not in ("compiled", "refused")


# ----- base models --------------------------------------------------------------------------------
def base_models() -> list[tuple[str, object, list]]:
    """(name, ModelProto, run-time input arrays) of every node case edgecc converts, and the bundled models."""
    import onnx
    from onnx.backend.test.case.node import collect_testcases

    from edgecc.frontend.onnx_ops import find_converter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            cases = collect_testcases(None)
    bases = []
    for case in sorted(cases, key=lambda c: c.name):
        if case.model is None:
            continue
        opset = max((i.version for i in case.model.opset_import if i.domain in ("", "ai.onnx")), default=0)
        if all(find_converter(n.op_type, n.domain, opset)[0] is not None for n in case.model.graph.node):
            data = list(case.data_sets[0][0]) if case.data_sets else []
            bases.append((case.name, case.model, data))
    for path in sorted(BUNDLED.glob("*.onnx")):
        bases.append((path.stem, onnx.load(str(path)), []))
    return bases


# ----- mutations ----------------------------------------------------------------------------------
def _schema(node, model):
    import onnx.defs

    opset = max((i.version for i in model.opset_import if i.domain == node.domain), default=None)
    try:
        return onnx.defs.get_schema(node.op_type, opset or 1, node.domain)
    except Exception:  # noqa: BLE001 - SchemaError for contrib ops
        return None


def _hostile_attribute(name: str, attr_type: int, rng):
    """An attribute of `attr_type` with a hostile value."""
    from onnx import AttributeProto, helper

    if attr_type == AttributeProto.INT:
        return helper.make_attribute(name, int(rng.choice(INTS)))
    if attr_type == AttributeProto.FLOAT:
        return helper.make_attribute(name, float(rng.choice(FLOATS)))
    if attr_type == AttributeProto.INTS:
        return helper.make_attribute(name, [int(v) for v in rng.choice(INTS, size=int(rng.integers(0, 5)))],
                                     attr_type=attr_type)
    if attr_type == AttributeProto.FLOATS:
        return helper.make_attribute(name, [float(v) for v in rng.choice(FLOATS, size=int(rng.integers(0, 5)))],
                                     attr_type=attr_type)
    if attr_type == AttributeProto.STRING:
        return helper.make_attribute(name, str(rng.choice(["", "bogus", "NCHW", "constant"])))
    return None


def _mutate_attribute(model, node, rng) -> str | None:
    """Change one attribute's value: negative, zero, huge, or a list of the wrong length."""
    from onnx import AttributeProto

    attrs = [a for a in node.attribute if a.type in (AttributeProto.INT, AttributeProto.INTS, AttributeProto.FLOAT,
                                                       AttributeProto.FLOATS, AttributeProto.STRING)]
    if not attrs:
        return None
    attr = attrs[int(rng.integers(len(attrs)))]
    if attr.type == AttributeProto.INTS and attr.ints and rng.random() < 0.6:
        values = list(attr.ints)
        how = rng.choice(["drop", "extra", "element"])
        if how == "drop":
            values.pop()
        elif how == "extra":
            values.append(int(rng.choice(INTS)))
        else:
            values[int(rng.integers(len(values)))] = int(rng.choice(INTS))
        del attr.ints[:]
        attr.ints.extend(values)
        return f"{attr.name}={values}"
    new = _hostile_attribute(attr.name, attr.type, rng)
    attr.CopyFrom(new)
    return f"{attr.name}={_describe(new)}"


def _add_attribute(model, node, rng) -> str | None:
    """Set an attribute the op declares but the node leaves at its default, to a hostile value."""
    schema = _schema(node, model)
    if schema is None:
        return None
    present = {a.name for a in node.attribute}
    missing = sorted(set(schema.attributes) - present)
    if not missing:
        return None
    name = missing[int(rng.integers(len(missing)))]
    new = _hostile_attribute(name, int(schema.attributes[name].type), rng)
    if new is None:
        return None
    node.attribute.append(new)
    return f"+{name}={_describe(new)}"


def _retype_attribute(model, node, rng) -> str | None:
    """Give an attribute another type than the op declares (an int where ints are due, ...)."""
    from onnx import AttributeProto

    if not node.attribute:
        return None
    attr = node.attribute[int(rng.integers(len(node.attribute)))]
    choices = [t for t in (AttributeProto.INT, AttributeProto.FLOAT, AttributeProto.INTS, AttributeProto.STRING)
               if t != attr.type]
    new = _hostile_attribute(attr.name, int(rng.choice(choices)), rng)
    attr.CopyFrom(new)
    return f"{attr.name}:{AttributeProto.AttributeType.Name(new.type)}={_describe(new)}"


def _drop_attribute(model, node, rng) -> str | None:
    if not node.attribute:
        return None
    index = int(rng.integers(len(node.attribute)))
    name = node.attribute[index].name
    del node.attribute[index]
    return f"-{name}"


def _graph_inputs(model):
    inits = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits and i.type.HasField("tensor_type")]


def _mutate_shape(model, node, rng) -> str | None:
    """Change a declared input shape: one dimension, or the rank."""
    inputs = _graph_inputs(model)
    if not inputs:
        return None
    inp = inputs[int(rng.integers(len(inputs)))]
    dims = inp.type.tensor_type.shape.dim
    if dims and rng.random() < 0.7:
        axis = int(rng.integers(len(dims)))
        dims[axis].Clear()
        dims[axis].dim_value = int(rng.choice(DIMS))
        return f"{inp.name}.shape[{axis}]={dims[axis].dim_value}"
    if dims and rng.random() < 0.5:
        del dims[len(dims) - 1]
        return f"{inp.name}.rank-1"
    dims.add().dim_value = int(rng.choice((1, 2)))
    return f"{inp.name}.rank+1"


def _mutate_dtype(model, node, rng) -> str | None:
    from onnx import TensorProto

    inputs = _graph_inputs(model)
    if not inputs:
        return None
    inp = inputs[int(rng.integers(len(inputs)))]
    name = str(rng.choice(DTYPES))
    inp.type.tensor_type.elem_type = getattr(TensorProto, name)
    return f"{inp.name}.dtype={name}"


def _freeze_input(model, node, rng, data) -> str | None:
    """Turn a run-time input into a constant holding its test data, often with hostile contents
    (shapes, sizes, repeats and indices are then read at compile time)."""
    from onnx import numpy_helper

    inputs = [i for i in _graph_inputs(model) if any(i.name == n for n in _names_with_data(model, data))]
    if not inputs:
        return None
    inp = inputs[int(rng.integers(len(inputs)))]
    array = np.array(_names_with_data(model, data)[inp.name])
    how = "as is"
    if array.dtype.kind in "iu" and array.size and rng.random() < 0.8:
        how = str(rng.choice(["negate", "zero", "huge", "max"]))
        if how == "negate":
            array = -array
        elif how == "zero":
            array = np.zeros_like(array)
        elif how == "huge":
            info = np.iinfo(array.dtype)
            array = np.clip(array.astype(np.int64) * (1 << 20), info.min, info.max).astype(array.dtype)
        else:
            array = np.full_like(array, np.iinfo(array.dtype).max)
    model.graph.initializer.append(numpy_helper.from_array(array, inp.name))
    model.graph.input.remove(inp)
    return f"{inp.name}:=const({how})"


def _names_with_data(model, data) -> dict:
    names = [i.name for i in _graph_inputs(model)]
    return {n: d for n, d in zip(names, data) if isinstance(d, np.ndarray)}


MUTATIONS = {
    "attribute": _mutate_attribute,
    "add-attribute": _add_attribute,
    "retype-attribute": _retype_attribute,
    "drop-attribute": _drop_attribute,
    "shape": _mutate_shape,
    "dtype": _mutate_dtype,
}


def _describe(attr) -> str:
    from onnx import helper

    value = helper.get_attribute_value(attr)
    return repr(value.decode() if isinstance(value, bytes) else value)


def make_cases(seed: int, count: int, bases=None) -> list[Case]:
    """`count` mutated models, the same for the same seed."""
    import onnx

    bases = bases if bases is not None else base_models()
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        name, base, data = bases[int(rng.integers(len(bases)))]
        model = onnx.ModelProto()
        model.CopyFrom(base)
        steps = []
        for _ in range(1 if rng.random() < 0.7 else 2):
            node = model.graph.node[int(rng.integers(len(model.graph.node)))]
            kind = str(rng.choice([*MUTATIONS, "freeze-input"]))
            if kind == "freeze-input":
                step = _freeze_input(model, node, rng, data)
            else:
                step = MUTATIONS[kind](model, node, rng)
            if step is not None:
                steps.append(f"{node.op_type}:{step}" if kind.endswith("attribute") else step)
        if steps:
            cases.append(Case(f"{name} [{'; '.join(steps)}]", model.SerializeToString()))
    return cases


# ----- running a case ----------------------------------------------------------------------------
def compile_in_process(model_bytes: bytes) -> tuple[str, str]:
    """(outcome, message) of the frontend and the passes on one model, through the Python API."""
    import onnx

    from edgecc.driver import prepare
    from edgecc.errors import EdgeccError

    model = onnx.ModelProto()
    model.ParseFromString(model_bytes)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            prepare(model, "host")
    except EdgeccError as exc:
        text = str(exc)
        if not text.strip() or "\n" in text.strip():
            return "multi-line", text
        return "refused", text
    except Exception as exc:  # noqa: BLE001 - every other exception is the finding
        return "internal", f"{type(exc).__name__}: {str(exc)[:300]}"
    return "compiled", ""


def _worker() -> None:
    """Read cases from stdin (4-byte length, then the model), answer one JSON line each."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    stdin = sys.stdin.buffer
    while True:
        head = stdin.read(4)
        if len(head) < 4:
            return
        payload = stdin.read(struct.unpack("<I", head)[0])
        outcome, message = compile_in_process(payload)
        sys.stdout.write(json.dumps({"outcome": outcome, "message": message}) + "\n")
        sys.stdout.flush()


class Worker:
    """One worker process, restarted after a crash or a timeout."""

    def __init__(self):
        self.proc = None

    def _start(self):
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)

    def run(self, case: Case, timeout: float = CASE_TIMEOUT) -> Result:
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        start = time.perf_counter()
        try:
            self.proc.stdin.write(struct.pack("<I", len(case.model)) + case.model)
            self.proc.stdin.flush()
        except BrokenPipeError:
            return self._lost(case, start, "the worker died before reading the case")
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            return self._lost(case, start, f"no answer within {timeout:.0f} s" if not ready else "")
        answer = json.loads(line)
        return Result(case.name, answer["outcome"], answer["message"], time.perf_counter() - start)

    def _lost(self, case: Case, start: float, why: str) -> Result:
        self.proc.kill()
        code = self.proc.wait()
        outcome = "timeout" if why.startswith("no answer") else "crash"
        self.proc = None
        return Result(case.name, outcome, why or f"worker exited with {code}", time.perf_counter() - start)

    def close(self):
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait()


def run_cli(case: Case, folder: Path) -> Result:
    """`edgecc compile` (exit 0 or 2; on 2 one line and no output file), then `edgecc run` on success."""
    start = time.perf_counter()
    model = folder / "model.onnx"
    model.write_bytes(case.model)
    out = folder / "model.so"
    before = set(os.listdir(folder))
    rc, err = _edgecc("compile", model, "-o", out, "-q")
    problem = _cli_problem("compile", rc, err)
    if problem is None and rc == 2 and set(os.listdir(folder)) != before:
        problem = f"compile exit 2 left files behind: {sorted(set(os.listdir(folder)) - before)}"
    if problem is None and rc == 0:
        rc, err = _edgecc("run", out)
        problem = _cli_problem("run", rc, err)
    for leftover in folder.iterdir():
        leftover.unlink()
    if problem is not None:
        return Result(case.name, "cli", problem, time.perf_counter() - start)
    return Result(case.name, "compiled" if rc == 0 else "refused", err.strip(), time.perf_counter() - start)


def _edgecc(*args) -> tuple[int, str]:
    limit = f"ulimit -v {MEMORY_CAP >> 10}; exec \"$0\" -m edgecc \"$@\""
    try:
        proc = subprocess.run(["/bin/sh", "-c", limit, sys.executable, *map(str, args)], capture_output=True,
                              text=True, timeout=600, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return -1, "timed out after 600 s"
    return proc.returncode, proc.stderr


def _cli_problem(command: str, rc: int, err: str) -> str | None:
    lines = [line for line in err.splitlines() if line.strip()]
    if rc not in (0, 2):
        return f"{command} exit {rc}: {' | '.join(lines)[:300]}"
    if rc == 2 and (len(lines) != 1 or not lines[0].startswith("edgecc: error: ")):
        return f"{command} exit 2 without one error line: {' | '.join(lines)[:300]}"
    return None


def fuzz(seed: int = 0, cases: int = 300, cli: int = 6, progress=None) -> tuple[list[Result], list[Result]]:
    """Run `cases` mutated models in a worker process, and a sample of `cli` of them through the CLI;
    returns (in-process results, CLI results)."""
    generated = make_cases(seed, cases)
    worker = Worker()
    results = []
    try:
        for i, case in enumerate(generated):
            results.append(worker.run(case))
            if progress:
                progress(i + 1, len(generated), results[-1])
    finally:
        worker.close()
    through_cli = []
    with tempfile.TemporaryDirectory(prefix="edgecc-fuzz-") as tmp:
        for case in pick_cli_sample(generated, results, cli):
            through_cli.append(run_cli(case, Path(tmp)))
            if progress:
                progress(len(results) + len(through_cli), len(generated) + cli, through_cli[-1])
    return results, through_cli


def pick_cli_sample(cases: list[Case], results: list[Result], count: int) -> list[Case]:
    """Up to `count` cases for the CLI: half that compiled in process, half that were refused."""
    by_name = {c.name: c for c in cases}
    compiled = [by_name[r.case] for r in results if r.outcome == "compiled"]
    refused = [by_name[r.case] for r in results if r.outcome == "refused"]
    half = count // 2
    return compiled[: count - min(half, len(refused))] + refused[:half]


# ----- the report ---------------------------------------------------------------------------------
def summarize(results: list[Result]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    return counts


def write_report(path: Path, in_process: list[Result], through_cli: list[Result], command: str,
                 seconds: float) -> None:
    from edgecc._files import atomic_write

    results = in_process + through_cli
    lines = [
        "# Robustness: the semantic fuzzer",
        "",
        "Generated by `tools/fuzz.py`; do not edit by hand.",
        "",
        "`tools/fuzz.py` mutates the ONNX node conformance models that edgecc converts and the bundled models "
        "(attributes negative, zero, huge or of the wrong length or type; declared input shapes and dtypes; "
        "run-time inputs frozen into constants with hostile contents) and checks that each one either compiles "
        "or is refused with one line. Cases compile in a worker process (frontend and passes, Python API) "
        f"under a {MEMORY_CAP >> 30} GiB address-space cap; a sample also goes through `edgecc compile` "
        "(exit 0 or 2, one line, no output left behind) and `edgecc run` on what compiled. "
        "`tests/test_fuzz.py` runs 300 cases of the same fuzzer in the test suite.",
        "",
        f"- command: `{command}`",
        f"- machine: {_machine()}",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- wall time: {seconds:.0f} s",
        "",
        "| run | cases | compiled | refused (exit 2) | failures |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, group in (("in process", in_process), ("through the CLI", through_cli)):
        counts = summarize(group)
        failed = sum(1 for r in group if r.failed)
        compiled, refused = counts.get("compiled", 0), counts.get("refused", 0)
        lines.append(f"| {label} | {len(group)} | {compiled} | {refused} | {failed} |")
    failures = [r for r in results if r.failed]
    lines += ["", "## Failures", ""]
    lines += [f"- `{r.case}`: {r.outcome}: {r.message}" for r in failures] or ["None."]
    refusals: dict[str, int] = {}
    for r in results:
        if r.outcome == "refused":
            key = _kind_of_refusal(r.message)
            refusals[key] = refusals.get(key, 0) + 1
    lines += ["", "## How the refused cases were refused", "", "| refused for | cases |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(refusals.items(), key=lambda kv: -kv[1])]
    lines += ["", *_limits_section()]
    atomic_write(path, "\n".join(lines) + "\n")


def _limits_section() -> list[str]:
    """The compile limits, their defaults and what they bound (from edgecc.ir.limits)."""
    from dataclasses import fields

    from edgecc.ir.limits import LIMIT_HELP, Limits

    lines = [
        "## What is checked, and the limits",
        "",
        "Before a node is converted, its attributes are checked against the ONNX schema (declared types, required "
        "attributes) and its inputs against the schema's type constraints; each converter declares the ranges of "
        "its attributes and the ranks of its inputs (`@converter(..., checks=..., ranks=...)`, "
        "`edgecc/frontend/onnx_ops/checks.py`); IR ops declare the allowed values of their attributes next to "
        "their definition (`Attr(..., check=...)`) and inference checks the rest. A node outside its definition is one line naming the node, the attribute and "
        "the allowed range (exit 2).",
        "",
        "What a model may ask for is bounded by limits (`edgecc/ir/limits.py`); exceeding one is one line naming "
        "the limit (exit 2), raised with `edgecc compile --limit NAME=VALUE` (VALUE takes k/m/g/t suffixes) or "
        "`CompileOptions.limits`. A constant fold over its limits is not an error: the node runs in the library.",
        "",
        "| limit | default | bounds |",
        "|---|---:|---|",
    ]
    defaults = Limits()
    lines += [f"| `{f.name}` | {getattr(defaults, f.name)} | {LIMIT_HELP[f.name]} |" for f in fields(defaults)]
    return lines


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0))
    return f"{cpu}, {cores} cores available, {platform.system()}, Python {platform.python_version()}"


#: (words in the message, what the refusal was for), first match wins
_REFUSALS = (
    (("exceeds the limit",), "a compile limit"),
    (("unsupported op",), "an op, op version or attribute value edgecc does not convert"),
    (("must be known at compile time",), "a run-time value where a static one is needed"),
    (("the op takes", "differ in type", "element type", "dtype", "needs a floating-point"), "an input's element type"),
    (("attribute",), "an attribute's type or range"),
    (("rank", "shape", "broadcast", "axis", "dimension", "window", "channels"), "an input's shape or rank"),
)


def _kind_of_refusal(message: str) -> str:
    text = message.removeprefix("edgecc: error: ")
    return next((label for words, label in _REFUSALS if any(w in text for w in words)), "other")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--cli", type=int, default=6, help="cases also run through edgecc compile/run")
    parser.add_argument("--report", type=Path, help="write the results as markdown (docs/robustness.md)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker()
        return 0

    def show(done, total, result):
        if result.failed:
            print(f"FAIL {result.case}: {result.outcome}: {result.message}", flush=True)
        elif done % 100 == 0:
            print(f"{done}/{total}", flush=True)

    start = time.perf_counter()
    in_process, through_cli = fuzz(args.seed, args.cases, args.cli, show)
    seconds = time.perf_counter() - start
    results = in_process + through_cli
    counts = summarize(results)
    print(" ".join(f"{k}={v}" for k, v in sorted(counts.items())), f"({seconds:.0f} s)")
    if args.report:
        command = "python3 tools/fuzz.py " + " ".join(argv if argv is not None else sys.argv[1:])
        write_report(args.report, in_process, through_cli, command.strip(), seconds)
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
