"""Benchmark edgecc against ONNX Runtime (and TVM's default Relax pipeline) side by side.

    python benchmarks/run.py [--models resnet18,resnet50,mobilenetv2,bert_encoder] [--repeat 30]
                             [--threads 2] [--ort-threads 1,2] [--variants edgecc,edgecc-tuned,...]
                             [--output docs/benchmarks.md] [--no-tvm-default]

For each model (exported from PyTorch with seeded weights by benchmarks/model_zoo.py; needs
torch) it compiles the variants in a child process (so compile time and peak memory are the
compile's own), then times every variant and ONNX Runtime on the same inputs. Each variant runs
in its own worker process, as deployed; the workers take turns (a few untimed calls, then a block
of timed ones, each round starting one worker later, with a pause between turns) so machine noise
hits all of them alike; the minimum and the median are reported.
ONNX Runtime runs once per thread count of --ort-threads (default 1 and --threads) and the ratios
are taken to its best (lowest median) configuration. Variants:

  edgecc             default pipeline (-O2), untuned, on --threads threads
  edgecc-tuned       with the committed tuning logs, tuning_logs/<target tag>/ (when any record applies)
  edgecc-nowinograd  the `winograd` pass disabled (3x3 convolutions stay direct)
  edgecc-nofuse      the `fuse` pass disabled
  edgecc-nolayout    the `convert-layout` pass disabled
  tvm-default        tvm.relax.frontend.onnx + tvm.compile's default pipeline, no tuning

Results go to a Markdown table (with machine, versions, date and command) and a PNG plot.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

VARIANTS = {
    "edgecc": ["--tuning-logs", ""],
    "edgecc-nowinograd": ["--tuning-logs", "", "--disable-pass", "winograd"],
    "edgecc-nofuse": ["--tuning-logs", "", "--disable-pass", "fuse"],
    "edgecc-nolayout": ["--tuning-logs", "", "--disable-pass", "convert-layout"],
    "edgecc-tuned": [],
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----- building -----------------------------------------------------------------------------------
def export_model(name: str, folder: str) -> str:
    path = os.path.join(folder, f"{name}.onnx")
    if not os.path.exists(path):
        subprocess.run([sys.executable, os.path.join(HERE, "model_zoo.py"), name, path], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


def _child_peak_rss(cmd: list[str]) -> tuple[float, float, str]:
    """Run cmd; returns (seconds, peak RSS in MB of the child, stdout)."""
    code = (
        "import json, resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "dt = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps({'rc': p.returncode, 'seconds': dt, 'rss': rss, 'out': p.stdout, 'err': p.stderr}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True, check=True)
    result = json.loads(proc.stdout)
    if result["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {result['err'].strip().splitlines()[-1:]}")
    return result["seconds"], result["rss"], result["out"]


def compile_edgecc(model: str, out: str, flags: list[str], shapes: list[str]) -> tuple[float, float, str]:
    cmd = [sys.executable, "-m", "edgecc", "compile", model, "-o", out, *flags]
    for s in shapes:
        cmd += ["--input-shape", s]
    return _child_peak_rss(cmd)


TVM_DEFAULT_BUILD = """
import sys, onnx, tvm
from tvm import relax
from tvm.relax.frontend.onnx import from_onnx
model = onnx.load(sys.argv[1])
mod = from_onnx(model, keep_params_in_input=False)
target = tvm.target.Target({"kind": "llvm", "mcpu": tvm.target.codegen.llvm_get_system_cpu()})
ex = tvm.compile(mod, target=target)
ex.export_library(sys.argv[2])
"""


def compile_tvm_default(model: str, out: str) -> tuple[float, float, str]:
    return _child_peak_rss([sys.executable, "-c", TVM_DEFAULT_BUILD, model, out])


def tuning_info(model: str, shapes: list[str]) -> dict:
    """What the committed logs hold for a model: kernels searched (MetaSchedule or knob records),
    kernels whose record compile applies (it beat the default), trials of both searches, tuning time."""
    from edgecc.targets import get_target
    from edgecc.tune.apply import TunedSchedules
    from edgecc.tune.database import TuningLog
    from edgecc.tune.tasks import extract_tasks

    input_shapes = {s.split("=")[0]: [int(d) for d in s.split("=")[1].split(",")] for s in shapes}
    tasks, target = extract_tasks(model, "host", input_shapes=input_shapes or None)
    log = TuningLog.for_target(get_target("host"), None)
    schedules = TunedSchedules(log, target)
    workloads = [w for w in (log.find_workload(t.mod) for t in tasks) if w is not None]
    searched = [w for w in workloads if log.records_of(w) or log.knob_records_of(w)]
    runs = [r for r in log.runs if r.get("model") == os.path.basename(model)]
    return {"target": target.tag, "kernels": len(tasks), "searched": len(searched),
            "tuned": sum(1 for w in searched if schedules.chosen(w) is not None),
            "trials": sum(len(log.records_of(w)) for w in workloads),
            "knob_points": sum(len(log.knob_records_of(w)) for w in workloads),
            "seconds": sum(r.get("seconds", 0.0) for r in runs),
            "budget": sorted({r.get("trials") for r in runs if r.get("trials")})}


# ----- timing ---------------------------------------------------------------------------------------
# Each variant runs in its own worker process (as it would be deployed), so one runtime's thread
# pool never competes with another's. The main process sends the workers turns in rotation; a
# worker waiting for its turn is blocked on a pipe and uses no CPU.
WORKER = r"""
import json, sys, time
import numpy as np
spec = json.loads(sys.argv[1])
inputs = dict(np.load(spec["inputs"]))
if spec["kind"] == "onnxruntime":
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = spec["threads"]
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(spec["path"], opts, providers=["CPUExecutionProvider"])
    call = lambda: sess.run(None, inputs)
    outputs = call()
else:
    import tvm
    from tvm import relax
    vm = relax.VirtualMachine(tvm.runtime.load_module(spec["path"]), tvm.cpu())
    args = [tvm.runtime.tensor(inputs[n]) for n in spec["names"]]
    call = lambda: vm["main"](*args)
    out = call()
    outputs = [out.numpy()] if hasattr(out, "numpy") else [o.numpy() for o in out]
np.save(spec["first_output"], outputs[0])
print("ready", flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    for _ in range(cmd["warmup"]):
        call()
    times = []
    for _ in range(cmd["n"]):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    print(json.dumps(times), flush=True)
"""


class Worker:
    def __init__(self, label: str, kind: str, path: str, inputs_file: str, names: list[str], threads: int,
                 folder: str):
        import subprocess

        self.label = label
        self.times: list[float] = []
        self.first_output = os.path.join(folder, f"{label}.out.npy")
        spec = {"kind": kind, "path": path, "inputs": inputs_file, "names": names, "threads": threads,
                "first_output": self.first_output}
        env = dict(os.environ, TVM_NUM_THREADS=str(threads))
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(spec)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env=env)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{label}: the benchmark worker failed to start")

    def output(self) -> np.ndarray:
        return np.load(self.first_output)

    def turn(self, n: int, warmup: int) -> None:
        self.proc.stdin.write(json.dumps({"n": n, "warmup": warmup}) + "\n")
        self.proc.stdin.flush()
        self.times += json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


#: seconds between two turns, so the threads of the worker before are idle when the next one starts:
#: after a parallel job TVM's pool threads spin, yielding, up to 300,000 times before they sleep, and
#: ONNX Runtime's spin after a run. With 0.05 s, three idle edgecc workers beside ONNX Runtime's
#: 2-thread worker (MobileNetV2) took its median from 4.7 to 17 ms (its minimum stayed at 4.0); with
#: 0.3 s its median was 4.1 ms. Without a pause the variant right after ONNX Runtime's 2-thread
#: worker measured 10% slower than the same library timed later in the rotation.
SETTLE = 0.3


def time_round_robin(workers: list[Worker], repeat: int, warmup: int = 3, block: int = 5) -> None:
    """Turns in rotation: `warmup` untimed calls, then up to `block` timed ones, until `repeat`.
    Each round starts one worker later, so no worker always follows the same one."""
    start = 0
    while any(len(w.times) < repeat for w in workers):
        for w in workers[start:] + workers[:start]:
            if len(w.times) < repeat:
                time.sleep(SETTLE)
                w.turn(min(block, repeat - len(w.times)), warmup)
        start = (start + 1) % len(workers)


# ----- one model ------------------------------------------------------------------------------------
def model_inputs(model_path: str) -> tuple[dict, list[str]]:
    import onnx

    model = onnx.load(model_path, load_external_data=False)
    rng = np.random.default_rng(0)
    inits = {i.name for i in model.graph.initializer}
    inputs, shapes = {}, []
    for inp in model.graph.input:
        if inp.name in inits:
            continue
        tt = inp.type.tensor_type
        shape = [d.dim_value if d.dim_value > 0 else 1 for d in tt.shape.dim]
        if tt.elem_type == onnx.TensorProto.INT64:
            inputs[inp.name] = rng.integers(0, 1000, shape).astype(np.int64)
        else:
            inputs[inp.name] = rng.standard_normal(shape).astype(np.float32)
        shapes.append(f"{inp.name}={','.join(map(str, shape))}")
    return inputs, shapes


def bench_model(name: str, folder: str, args) -> dict:
    model = export_model(name, folder)
    inputs, shapes = model_inputs(model)
    inputs_file = os.path.join(folder, f"{name}.inputs.npz")
    np.savez(inputs_file, **inputs)
    names = list(inputs)
    result = {"model": name, "variants": {}}
    workers = [Worker(f"onnxruntime-{t}t", "onnxruntime", model, inputs_file, names, t, folder)
               for t in args.ort_threads]
    ort_labels = [w.label for w in workers]
    expected = workers[0].output()
    for label, flags in VARIANTS.items():
        if label not in args.variants:
            continue
        out = os.path.join(folder, f"{name}.{label}.so")
        log(f"{name}: compiling {label}")
        seconds, rss, stdout = compile_edgecc(model, out, flags, shapes)
        tuned = re.search(r"(\d+) of (\d+) kernels from tuning records", stdout)
        if label == "edgecc-tuned" and (not tuned or tuned.group(1) == "0"):
            log(f"{name}: no tuning record applies; skipping {label}")
            continue
        workers.append(Worker(label, "tvm", out, inputs_file, names, args.threads, folder))
        result["variants"][label] = {"compile_s": seconds, "compile_rss_mb": rss, "summary": stdout.strip()}
        if label == "edgecc-tuned":
            result["variants"][label]["tuned_kernels"] = f"{tuned.group(1)}/{tuned.group(2)}"
            result["tuning"] = tuning_info(model, shapes)
    if args.tvm_default:
        out = os.path.join(folder, f"{name}.tvm-default.so")
        log(f"{name}: compiling with TVM's default pipeline")
        seconds, rss, _ = compile_tvm_default(model, out)
        workers.append(Worker("tvm-default", "tvm", out, inputs_file, names, args.threads, folder))
        result["variants"]["tvm-default"] = {"compile_s": seconds, "compile_rss_mb": rss}
    for w in workers:
        if w.label not in ort_labels:
            result["variants"][w.label]["max_abs_err"] = float(np.max(np.abs(w.output() - expected)))
    log(f"{name}: timing {', '.join(w.label for w in workers)}")
    time_round_robin([w for w in workers if w.label != "tvm-default"], args.repeat)
    time_round_robin([w for w in workers if w.label == "tvm-default"], max(3, args.repeat // 10), 1, 1)
    for w in workers:
        w.close()
        entry = result["variants"].setdefault(w.label, {})
        entry["median_ms"] = statistics.median(w.times) * 1e3
        entry["min_ms"] = min(w.times) * 1e3
        entry["threads"] = args.threads if w.label not in ort_labels else int(w.label.split("-")[1][:-1])
        entry["runs"] = len(w.times)
        q1, _, q3 = statistics.quantiles(w.times, n=4) if len(w.times) > 1 else (w.times[0],) * 3
        entry["spread"] = (q3 - q1) / statistics.median(w.times)
    add_ratios(result)
    return result


def add_ratios(result: dict) -> None:
    """Ratios of every variant to ONNX Runtime's best configuration: the lowest median (marked
    `ort_best`) for the medians, the lowest minimum for the minimums."""
    ort = {k: v for k, v in result["variants"].items() if k.startswith("onnxruntime")}
    result["ort_best"] = min(ort, key=lambda label: ort[label]["median_ms"])
    base = ort[result["ort_best"]]["median_ms"]
    base_min = min(v["min_ms"] for v in ort.values())
    for entry in result["variants"].values():
        entry["ratio"] = entry["median_ms"] / base
        entry["ratio_min"] = entry["min_ms"] / base_min


# ----- report ---------------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else what platform knows)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return cpu


#: lscpu flags that decide which kernels a CPU gets (vector widths, FMA, dot products, matrix units)
ISA_FLAGS = re.compile(r"^(sse4_2|avx|avx2|fma|f16c|avx512\w*|avx_vnni\w*|amx\w*|neon|asimd\w*|sve\w*)$")


def lscpu() -> tuple[str, list[str]]:
    """(model name, ISA flags) as lscpu reports them (empty when lscpu is missing)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "", []
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    model = fields.get("Model name", "").strip()
    flags = [f for f in fields.get("Flags", "").split() if ISA_FLAGS.match(f)]
    return model, flags


def machine_info(threads: int) -> dict:
    import onnxruntime
    import tvm

    import edgecc

    model, flags = lscpu()
    return {
        "date": datetime.date.today().isoformat(),
        "cpu": model or cpu_model(),
        "isa_flags": flags,
        "cores": os.cpu_count(),
        "threads": threads,
        "llvm_cpu": tvm.target.codegen.llvm_get_system_cpu(),
        "edgecc": edgecc.__version__,
        "tvm": tvm.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def write_report(results: list[dict], info: dict, command: str, path: str) -> None:
    variants = ["edgecc", "edgecc-tuned", "edgecc-nowinograd", "edgecc-nofuse", "edgecc-nolayout", "tvm-default"]
    lines = [
        "# Benchmarks",
        "",
        "Latency of whole models on the host CPU: edgecc untuned (and tuned, where tuning records",
        "apply) against ONNX Runtime on the same inputs, each in its own process, taking turns.",
        "ONNX Runtime runs with 1 thread and with as many threads as edgecc; the ratios are to its best",
        "configuration: `*` in the table, the lowest median, for the ratios of the medians; the lowest",
        "minimum for the ratios of the minimums. Latency is the minimum and the median of the runs after",
        "warm-up; ratio = edgecc latency / ONNX Runtime latency (below 1 is faster than ONNX Runtime).",
        "Compile time and peak memory are measured on the compile's own process. `nowinograd`,",
        "`nofuse` and `nolayout` turn one pass off to show what it contributes. Spread is the",
        "interquartile range of the runs over their median: the machine is shared and noisy, so compare",
        "ratios from one run, not absolute times across runs; where the spread is large, the minimums",
        "are the steadier comparison.",
        "This file is written by `benchmarks/run.py`; do not edit it by hand.",
        "",
        f"- date: {info['date']}",
        f"- machine: {info['cpu']} ({info['cores']} cores), LLVM CPU `{info['llvm_cpu']}`",
        f"- ISA flags (lscpu): {' '.join(info.get('isa_flags', [])) or 'unknown'}",
        f"- versions: edgecc {info['edgecc']}, TVM {info['tvm']}, ONNX Runtime {info['onnxruntime']}, Python {info['python']}",
        f"- command: `{command}`",
        "",
        "| model | variant | threads | min (ms) | median (ms) | spread | ratio to best ORT (median) | "
        "ratio (min) | tuned | compile (s) | compile peak RSS (MB) | max abs err |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        ort = sorted((k for k in res["variants"] if k.startswith("onnxruntime")), key=_threads_of)
        for label in ort + variants:
            v = res["variants"].get(label)
            if not v:
                continue
            compile_s = f"{v['compile_s']:.1f}" if "compile_s" in v else "-"
            rss = f"{v['compile_rss_mb']:.0f}" if "compile_rss_mb" in v else "-"
            err = f"{v['max_abs_err']:.1e}" if "max_abs_err" in v else "-"
            spread = f"{v['spread']:.0%}" if "spread" in v else "-"
            tuned = v.get("tuned_kernels", "-")
            name = label + (" *" if label == res.get("ort_best") else "")
            lines.append(f"| {res['model']} | {name} | {v.get('threads', '-')} | {v['min_ms']:.2f} | "
                         f"{v['median_ms']:.2f} | {spread} | {v['ratio']:.2f} | {v['ratio_min']:.2f} | "
                         f"{tuned} | {compile_s} | {rss} | {err} |")
    lines += ["", "![ratio to ONNX Runtime](benchmarks.png)", ""]
    lines += _tuning_section(results)
    lines += _contributions(results)
    from edgecc._files import atomic_write

    atomic_write(path, "\n".join(lines) + "\n")


def _threads_of(label: str) -> int:
    return int(label.rsplit("-", 1)[1].rstrip("t"))


def _tuning_section(results: list[dict]) -> list[str]:
    tuned = [r for r in results if r.get("tuning")]
    if not tuned:
        return []
    lines = ["## Tuning", "",
             "`edgecc-tuned` compiles with the committed logs in `tuning_logs/<target tag>/` (see",
             "[tuning.md](tuning.md)). `tuned` is the number of kernels scheduled from a tuning record out of",
             "the model's kernels: a record is used only where it beat edgecc's default schedule of that kernel",
             "by more than the measured noise when both were measured together during tuning. Searched kernels",
             "have records of either search; trials are MetaSchedule's candidates and knob points the points",
             "of edgecc's own rules measured for the model's kernels (all runs together); tuning time is the",
             "wall time of the `edgecc tune` runs on this machine.", "",
             "| model | target | kernels searched | kernels tuned | MetaSchedule trials | knob points | "
             "trials per kernel | tuning time (s) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for res in tuned:
        t = res["tuning"]
        budget = ", ".join(str(b) for b in t["budget"]) or "-"
        # runs recorded before knob records were counted: their `tuned` counted the kernels with records
        searched, applied = (t["searched"], t["tuned"]) if "searched" in t else (t["tuned"], "-")
        lines.append(f"| {res['model']} | {t['target']} | {searched} of {t['kernels']} | {applied} | "
                     f"{t['trials']} | {t.get('knob_points', 0)} | {budget} | {t['seconds']:.0f} |")
    return lines + [""]


def _contributions(results: list[dict]) -> list[str]:
    lines = ["## What each pass contributes", "",
             "Minimum latency with the pass turned off over the minimum of `edgecc` (above 1: the pass makes",
             "the model faster). A model the pass leaves unchanged shows the run's noise.", "",
             "| model | without Winograd | without fusion | without layout transform |", "|---|---:|---:|---:|"]
    for res in results:
        v = res["variants"]
        if "edgecc" not in v:
            continue
        base = v["edgecc"]["min_ms"]
        cells = []
        for label in ("edgecc-nowinograd", "edgecc-nofuse", "edgecc-nolayout"):
            cells.append(f"{v[label]['min_ms'] / base:.2f}" if label in v else "-")
        lines.append(f"| {res['model']} | {cells[0]} | {cells[1]} | {cells[2]} |")
    return lines + [""]


def plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["edgecc", "edgecc-tuned", "edgecc-nowinograd", "edgecc-nofuse", "edgecc-nolayout"]
    models = [r["model"] for r in results]
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.16
    for i, label in enumerate(labels):
        vals = [r["variants"].get(label, {}).get("ratio", np.nan) for r in results]
        ax.bar(np.arange(len(models)) + i * width, vals, width, label=label)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(models)) + width * 2, models)
    ax.set_ylabel("latency / best ONNX Runtime latency")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("edgecc on the host CPU (lower is faster)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,resnet50,mobilenetv2,bert_encoder")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="threads of edgecc's variants (default: every core this process may use)")
    parser.add_argument("--ort-threads", default=None,
                        help="ONNX Runtime thread counts to try, comma-separated (default: 1 and --threads)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"edgecc variants to build and time (default: all of {', '.join(VARIANTS)})")
    parser.add_argument("--output", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    parser.add_argument("--work-dir", default=None, help="where models and libraries go (default: a temp dir)")
    parser.add_argument("--no-tvm-default", dest="tvm_default", action="store_false")
    parser.add_argument("--from-json", default=None,
                        help="write the report from the results of an earlier run (its .json) instead of measuring")
    args = parser.parse_args()
    args.ort_threads = sorted({int(t) for t in (args.ort_threads or f"1,{args.threads}").split(",")})
    args.variants = args.variants.split(",")
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)} (known: {', '.join(VARIANTS)})")
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    if args.from_json:
        with open(args.from_json) as fh:
            recorded = json.load(fh)
        results, command = recorded["results"], recorded["command"]
        for result in results:
            add_ratios(result)
    else:
        results = measure(args)
        command = "python benchmarks/run.py " + " ".join(sys.argv[1:])
    write_report(results, machine_info(args.threads), command.strip(), args.output)
    plot(results, os.path.join(os.path.dirname(args.output), "benchmarks.png"))
    from edgecc._files import atomic_write

    record = {"command": command.strip(), "results": results}
    atomic_write(os.path.splitext(args.output)[0] + ".json", json.dumps(record, indent=1))
    log(f"wrote {args.output}")


def measure(args) -> list[dict]:
    folder = args.work_dir or tempfile.mkdtemp(prefix="edgecc-bench-")
    os.makedirs(folder, exist_ok=True)
    results = []
    for name in args.models.split(","):
        results.append(bench_model(name, folder, args))
        r = results[-1]["variants"]
        log(f"{name}: " + ", ".join(f"{k} {v['median_ms']:.2f} ms ({v['ratio']:.2f}x)" for k, v in r.items()))
    return results


if __name__ == "__main__":
    main()
