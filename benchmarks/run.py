"""Benchmark edgecc against ONNX Runtime (and TVM's default Relax pipeline) side by side.

    python benchmarks/run.py [--models resnet18,resnet50,mobilenetv2,bert_encoder] [--repeat 30]
                             [--threads 2] [--output docs/benchmarks.md] [--no-tvm-default]

For each model (exported from PyTorch with seeded weights by benchmarks/model_zoo.py; needs
torch) it compiles the variants in a child process (so compile time and peak memory are the
compile's own), then times every variant and ONNX Runtime in this process on the same inputs with
the same thread count: rounds that alternate between the variants (each gets a few untimed calls,
then a block of timed ones) so machine noise hits all of them alike; the median is reported.
ONNX Runtime's idle threads are told not to spin, so they do not steal the CPU from the others. Variants:

  edgecc            default pipeline (-O2), untuned
  edgecc-nofuse     the `fuse` pass disabled
  edgecc-nolayout   the `convert-layout` pass disabled
  edgecc-tuned      with the committed tuning logs (when any record applies)
  tvm-default       tvm.relax.frontend.onnx + tvm.compile's default pipeline, no tuning

Results go to a Markdown table (with machine, versions, date and command) and a PNG plot.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
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


# ----- timing ---------------------------------------------------------------------------------------
class Runner:
    def __init__(self, label: str, call):
        self.label, self.call, self.times = label, call, []


def edgecc_runner(label: str, lib: str, inputs: dict):
    import edgecc

    module = edgecc.runtime.load(lib)
    arrays = module._arrays(inputs)
    return Runner(label, lambda: module._call(arrays)), module.run(inputs)


def tvm_default_runner(lib: str, inputs: dict, names: list[str]):
    import tvm
    from tvm import relax

    vm = relax.VirtualMachine(tvm.runtime.load_module(lib), tvm.cpu())
    args = [tvm.runtime.tensor(inputs[n]) for n in names]
    out = vm["main"](*args)
    first = out[0] if not hasattr(out, "numpy") else out
    return Runner("tvm-default", lambda: vm["main"](*args)), first.numpy()


def ort_runner(model: str, inputs: dict, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads yield the CPU
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    return Runner("onnxruntime", lambda: sess.run(None, inputs)), sess.run(None, inputs)


def time_round_robin(runners: list[Runner], repeat: int, warmup: int = 3, block: int = 5) -> None:
    """Rounds over the runners; in each, a runner gets `warmup` untimed calls (its thread pool
    wakes up) and then `block` timed ones, until each has `repeat` timings."""
    while any(len(r.times) < repeat for r in runners):
        for r in runners:
            for _ in range(warmup):
                r.call()
            for _ in range(min(block, repeat - len(r.times))):
                start = time.perf_counter()
                r.call()
                r.times.append(time.perf_counter() - start)


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
    result = {"model": name, "variants": {}}
    runners = []
    ort, expected = ort_runner(model, inputs, args.threads)
    runners.append(ort)
    for label, flags in VARIANTS.items():
        out = os.path.join(folder, f"{name}.{label}.so")
        log(f"{name}: compiling {label}")
        seconds, rss, stdout = compile_edgecc(model, out, flags, shapes)
        if label == "edgecc-tuned" and " tuned" not in stdout:
            log(f"{name}: no tuning record applies; skipping {label}")
            continue
        runner, got = edgecc_runner(label, out, inputs)
        err = max(float(np.max(np.abs(g - e))) for g, e in zip(got.values(), expected))
        result["variants"][label] = {"compile_s": seconds, "compile_rss_mb": rss, "max_abs_err": err,
                                     "summary": stdout.strip()}
        runners.append(runner)
    if args.tvm_default:
        out = os.path.join(folder, f"{name}.tvm-default.so")
        log(f"{name}: compiling with TVM's default pipeline")
        seconds, rss, _ = compile_tvm_default(model, out)
        runner, got = tvm_default_runner(out, inputs, list(inputs))
        result["variants"]["tvm-default"] = {"compile_s": seconds, "compile_rss_mb": rss,
                                             "max_abs_err": float(np.max(np.abs(got - expected[0])))}
        runners.append(runner)
    log(f"{name}: timing {', '.join(r.label for r in runners)}")
    fast = [r for r in runners if r.label != "tvm-default"]
    time_round_robin(fast, args.repeat)
    slow = [r for r in runners if r.label == "tvm-default"]
    time_round_robin(slow, max(3, args.repeat // 10), warmup=1, block=1)
    for r in runners:
        entry = result["variants"].setdefault(r.label, {})
        entry["median_ms"] = statistics.median(r.times) * 1e3
        entry["runs"] = len(r.times)
    base = result["variants"]["onnxruntime"]["median_ms"]
    for entry in result["variants"].values():
        entry["ratio"] = entry["median_ms"] / base
    return result


# ----- report ---------------------------------------------------------------------------------------
def machine_info(threads: int) -> dict:
    import onnxruntime
    import tvm

    import edgecc

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "threads": threads,
        "llvm_cpu": tvm.target.codegen.llvm_get_system_cpu(),
        "edgecc": edgecc.__version__,
        "tvm": tvm.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
    }


def write_report(results: list[dict], info: dict, command: str, path: str) -> None:
    order = ["onnxruntime", "edgecc", "edgecc-tuned", "edgecc-nofuse", "edgecc-nolayout", "tvm-default"]
    lines = [
        "# Benchmarks",
        "",
        "Latency of whole models on the host CPU: edgecc untuned (and tuned, where tuning records",
        "apply) against ONNX Runtime in the same process, with the same inputs and thread count.",
        "Median of alternating rounds after warm-up; ratio = latency / ONNX Runtime latency",
        "(below 1 is faster than ONNX Runtime). Compile time and peak memory are measured on the",
        "compile's own process. `nofuse` and `nolayout` turn one pass off to show what it contributes.",
        "",
        f"- date: {info['date']}",
        f"- machine: {info['cpu']} ({info['cores']} cores), LLVM CPU `{info['llvm_cpu']}`, {info['threads']} threads",
        f"- versions: edgecc {info['edgecc']}, TVM {info['tvm']}, ONNX Runtime {info['onnxruntime']}, Python {info['python']}",
        f"- command: `{command}`",
        "",
        "| model | variant | latency (ms) | ratio to ORT | compile (s) | compile peak RSS (MB) | max abs err |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        for label in order:
            v = res["variants"].get(label)
            if not v:
                continue
            compile_s = f"{v['compile_s']:.1f}" if "compile_s" in v else "-"
            rss = f"{v['compile_rss_mb']:.0f}" if "compile_rss_mb" in v else "-"
            err = f"{v['max_abs_err']:.1e}" if "max_abs_err" in v else "-"
            lines.append(f"| {res['model']} | {label} | {v['median_ms']:.2f} | {v['ratio']:.2f} | {compile_s} | {rss} | {err} |")
    lines += ["", "![ratio to ONNX Runtime](benchmarks.png)", ""]
    lines += _contributions(results)
    with open(path + ".tmp", "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)


def _contributions(results: list[dict]) -> list[str]:
    lines = ["## What each pass contributes", "",
             "| model | without fusion | without layout transform |", "|---|---:|---:|"]
    for res in results:
        v = res["variants"]
        if "edgecc" not in v:
            continue
        base = v["edgecc"]["median_ms"]
        cells = []
        for label in ("edgecc-nofuse", "edgecc-nolayout"):
            cells.append(f"{v[label]['median_ms'] / base:.2f}x slower" if label in v else "-")
        lines.append(f"| {res['model']} | {cells[0]} | {cells[1]} |")
    return lines + [""]


def plot(results: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["edgecc", "edgecc-tuned", "edgecc-nofuse", "edgecc-nolayout"]
    models = [r["model"] for r in results]
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.2
    for i, label in enumerate(labels):
        vals = [r["variants"].get(label, {}).get("ratio", np.nan) for r in results]
        ax.bar(np.arange(len(models)) + i * width, vals, width, label=label)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(np.arange(len(models)) + width * 1.5, models)
    ax.set_ylabel("latency / ONNX Runtime latency")
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
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--output", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    parser.add_argument("--work-dir", default=None, help="where models and libraries go (default: a temp dir)")
    parser.add_argument("--no-tvm-default", dest="tvm_default", action="store_false")
    args = parser.parse_args()
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    folder = args.work_dir or tempfile.mkdtemp(prefix="edgecc-bench-")
    os.makedirs(folder, exist_ok=True)
    results = []
    for name in args.models.split(","):
        results.append(bench_model(name, folder, args))
        r = results[-1]["variants"]
        log(f"{name}: " + ", ".join(f"{k} {v['median_ms']:.2f} ms ({v['ratio']:.2f}x)" for k, v in r.items()))
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:])
    write_report(results, machine_info(args.threads), command.strip(), args.output)
    plot(results, os.path.join(os.path.dirname(args.output), "benchmarks.png"))
    with open(os.path.splitext(args.output)[0] + ".json", "w") as fh:
        json.dump(results, fh, indent=1)
    log(f"wrote {args.output}")


if __name__ == "__main__":
    main()
