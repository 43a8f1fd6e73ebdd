"""One library for every size against one library per size: the BERT encoder with symbolic batch and length.

    python benchmarks/dynamic_shapes.py [--shapes 1x16,1x128,4x128,2x64] [--bounds 1..8,1..128] [--repeat 30]
                                        [--threads N] [--ort-threads 1,N] [--output docs/dynamic-shapes.md]

The encoder of benchmarks/model_zoo.py (`bert_encoder`: 4 post-norm layers, d_model 256, 4 heads,
feed-forward 1024, at most 128 positions; needs torch) is exported once with both input axes
symbolic and compiled

  symbolic   once, `edgecc compile --input-shape input_ids=<--bounds>`: one library for every
             (batch, seq) within the bounds;
  fixed      once per measured shape, `--input-shape input_ids=B,S`: the fixed-size path;

both untuned (`--tuning-logs ""`). At each shape the two libraries and ONNX Runtime (the same
model, with 1 and --threads threads) run on the same inputs, each in its own process, taking turns
(benchmarks/run.py's workers: a few untimed calls, then a block of timed ones); the minimum and the
median of --repeat runs are reported, with the ratios symbolic / fixed and to ONNX Runtime's best
configuration (lowest median). The report (machine from lscpu, versions, date, command, compile
times) is written to --output with a plot beside it (PNG, same name).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from run import Worker, compile_edgecc, log, machine_info, time_round_robin

MODEL = "bert_encoder"
INPUT = "input_ids"


# ----- building -----------------------------------------------------------------------------------
def export_dynamic(folder: str) -> str:
    """The encoder exported with symbolic batch and sequence axes."""
    path = os.path.join(folder, f"{MODEL}.dynamic.onnx")
    if not os.path.exists(path):
        subprocess.run([sys.executable, os.path.join(HERE, "model_zoo.py"), MODEL, path, "--dynamic"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


def build(model: str, out: str, input_shape: str) -> dict:
    """Compile untuned in a child process: compile seconds, peak RSS (MB) and library size (MB)."""
    seconds, rss, _ = compile_edgecc(model, out, ["--tuning-logs", ""], [f"{INPUT}={input_shape}"])
    return {"path": out, "compile_s": seconds, "compile_rss_mb": rss, "size_mb": os.path.getsize(out) / 2**20}


# ----- timing -------------------------------------------------------------------------------------
def bench_shape(shape: tuple[int, int], model: str, symbolic: dict, fixed: dict, folder: str, args) -> dict:
    """Time the symbolic library, the fixed one and ONNX Runtime at one shape, taking turns."""
    batch, seq = shape
    ids = np.random.default_rng(batch * 1000 + seq).integers(0, 1000, shape).astype(np.int64)
    inputs = os.path.join(folder, f"inputs_{batch}x{seq}.npz")
    np.savez(inputs, **{INPUT: ids})
    tag = f"{batch}x{seq}"
    ort = [Worker(f"onnxruntime-{t}t-{tag}", "onnxruntime", model, inputs, [INPUT], t, folder) for t in args.ort_threads]
    ours = [Worker(f"{label}-{tag}", "tvm", lib["path"], inputs, [INPUT], args.threads, folder)
            for label, lib in (("symbolic", symbolic), ("fixed", fixed))]
    workers = ours + ort
    expected = ort[0].output()
    try:
        time_round_robin(workers, args.repeat)
    finally:
        for w in workers:
            w.close()
    result = {"shape": [batch, seq], "variants": {}}
    for w in workers:
        label = w.label.rsplit("-", 1)[0]
        q1, _, q3 = statistics.quantiles(w.times, n=4) if len(w.times) > 1 else (w.times[0],) * 3
        entry = {"min_ms": min(w.times) * 1e3, "median_ms": statistics.median(w.times) * 1e3,
                 "spread": (q3 - q1) / statistics.median(w.times), "runs": len(w.times),
                 "threads": args.threads if w in ours else int(label.split("-")[1][:-1])}
        if w in ours:
            entry["max_abs_err"] = float(np.max(np.abs(w.output() - expected)))
        result["variants"][label] = entry
    v = result["variants"]
    result["ort_best"] = min((k for k in v if k.startswith("onnxruntime")), key=lambda k: v[k]["median_ms"])
    return result


def measure(args) -> dict:
    folder = args.work_dir or tempfile.mkdtemp(prefix="edgecc-dynamic-")
    os.makedirs(folder, exist_ok=True)
    model = export_dynamic(folder)
    log(f"compiling the symbolic library ({INPUT}={args.bounds})")
    symbolic = build(model, os.path.join(folder, "symbolic.so"), args.bounds)
    results = []
    fixed_builds = {}
    for shape in args.shapes:
        tag = f"{shape[0]}x{shape[1]}"
        log(f"{tag}: compiling the fixed-size library")
        fixed = fixed_builds[tag] = build(model, os.path.join(folder, f"fixed_{tag}.so"), f"{shape[0]},{shape[1]}")
        log(f"{tag}: timing symbolic, fixed, ONNX Runtime ({', '.join(f'{t}t' for t in args.ort_threads)})")
        results.append(bench_shape(shape, model, symbolic, fixed, folder, args))
        v = results[-1]["variants"]
        log(f"{tag}: " + ", ".join(f"{k} {e['median_ms']:.2f} ms" for k, e in v.items()))
    return {"symbolic": symbolic, "fixed": fixed_builds, "results": results}


# ----- report -------------------------------------------------------------------------------------
def write_report(record: dict, info: dict, args, command: str, path: str) -> None:
    sym = record["symbolic"]
    lines = [
        "# Symbolic shapes: one library for every size",
        "",
        "`edgecc compile model.onnx --input-shape input_ids=1..8,1..128` builds one library that runs",
        "any batch and sequence length within the bounds (see [cli.md](cli.md)); memory is planned",
        "once, for the largest size. Its kernels have symbolic loop extents, so they get the",
        "`symbolic` rule set (`edgecc/lower/schedules/symbolic.py`), which keeps the fixed-size",
        "kernels' tiles: matrix products pad a symbolic row count (and a symbolic column count, as in",
        "attention scores) to whole register tiles, so their reductions run the same unguarded tile as",
        "the fixed-size kernel on a padded copy of the rows, and only the output carries guards; dense",
        "layers take each block of weights for every row tile, as the fixed-size rule does.",
        "Elementwise kernels tile their static axes as the CPU rules do; layer norm and softmax",
        "accumulate in vector lanes, the softmax over the symbolic sequence in whole groups of 16",
        "with a guarded scalar tail.",
        "",
        "Here the BERT-style encoder of `benchmarks/model_zoo.py` (4 layers, d_model 256, 4 heads,",
        "feed-forward 1024) is compiled once with symbolic batch and length, and once per shape with",
        "fixed sizes, both untuned; the two libraries and ONNX Runtime (1 and",
        f"{args.threads} threads; ratios to its best configuration, `*`) run on the same inputs, each in",
        "its own process, taking turns. Latency is the minimum and the median of the runs after",
        "warm-up; spread is their interquartile range over the median. The machine is shared: compare",
        "ratios within one run; where the spread is large, the minimums are the steadier comparison.",
        "This file is written by `benchmarks/dynamic_shapes.py`; do not edit it by hand.",
        "",
        f"- date: {info['date']}",
        f"- machine: {info['cpu']} ({info['cores']} cores), LLVM CPU `{info['llvm_cpu']}`",
        f"- ISA flags (lscpu): {' '.join(info.get('isa_flags', [])) or 'unknown'}",
        (f"- versions: edgecc {info['edgecc']}, TVM {info['tvm']}, ONNX Runtime {info['onnxruntime']}, "
         f"Python {info['python']}"),
        f"- command: `{command}`",
        (f"- symbolic library: bounds `{INPUT}={args.bounds}`, compiled in {sym['compile_s']:.1f} s "
         f"(peak RSS {sym['compile_rss_mb']:.0f} MB), {sym['size_mb']:.1f} MB"),
        "",
        ("| batch x seq | variant | threads | min (ms) | median (ms) | spread | symbolic / fixed (min) | "
         "symbolic / fixed (median) | ratio to best ORT (median) | max abs err to ORT |"),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in record["results"]:
        v, tag = res["variants"], "x".join(map(str, res["shape"]))
        base = v[res["ort_best"]]["median_ms"]
        for label in ("symbolic", "fixed", *sorted((k for k in v if k.startswith("onnxruntime")),
                                                   key=lambda k: v[k]["threads"])):
            e = v[label]
            ratio_min = ratio_med = "-"
            if label == "symbolic":
                ratio_min = f"{e['min_ms'] / v['fixed']['min_ms']:.2f}"
                ratio_med = f"{e['median_ms'] / v['fixed']['median_ms']:.2f}"
            err = f"{e['max_abs_err']:.1e}" if "max_abs_err" in e else "-"
            name = label + (" *" if label == res["ort_best"] else "")
            lines.append(f"| {tag} | {name} | {e['threads']} | {e['min_ms']:.2f} | {e['median_ms']:.2f} | "
                         f"{e['spread']:.0%} | {ratio_min} | {ratio_med} | {e['median_ms'] / base:.2f} | {err} |")
    lines += ["", f"![latency per shape]({os.path.splitext(os.path.basename(path))[0]}.png)", "",
              "Fixed-size libraries, one per shape:", "",
              "| batch x seq | compile (s) | compile peak RSS (MB) | library (MB) |", "|---|---:|---:|---:|"]
    for tag, b in record["fixed"].items():
        lines.append(f"| {tag} | {b['compile_s']:.1f} | {b['compile_rss_mb']:.0f} | {b['size_mb']:.1f} |")
    from edgecc._files import atomic_write

    atomic_write(path, "\n".join(lines) + "\n")


def plot(record: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    results = record["results"]
    tags = ["x".join(map(str, r["shape"])) for r in results]
    series = {"symbolic (one library)": [r["variants"]["symbolic"]["min_ms"] for r in results],
              "fixed (one per shape)": [r["variants"]["fixed"]["min_ms"] for r in results],
              "ONNX Runtime (fastest)": [min(e["min_ms"] for k, e in r["variants"].items()
                                             if k.startswith("onnxruntime")) for r in results]}
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.27
    for i, (label, values) in enumerate(series.items()):
        ax.bar(np.arange(len(tags)) + i * width, values, width, label=label)
    ax.set_xticks(np.arange(len(tags)) + width, [f"{t}" for t in tags])
    ax.set_xlabel("batch x seq")
    ax.set_ylabel("minimum latency (ms)")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=8)
    ax.set_title("BERT encoder on the host CPU (lower is faster)")
    fig.tight_layout()
    from edgecc._files import atomic_output

    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def parse_shapes(text: str) -> list[tuple[int, int]]:
    shapes = []
    for item in text.split(","):
        batch, _, seq = item.partition("x")
        if not (batch.isdigit() and seq.isdigit()) or int(batch) < 1 or int(seq) < 1:
            raise argparse.ArgumentTypeError(f"shape '{item}' is not BATCHxSEQ (for example 1x128)")
        shapes.append((int(batch), int(seq)))
    return shapes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", type=parse_shapes, default=parse_shapes("1x16,1x128,4x128,2x64"),
                        help="batch x seq shapes to time, comma-separated (default 1x16,1x128,4x128,2x64)")
    parser.add_argument("--bounds", default="1..8,1..128",
                        help="the symbolic library's --input-shape bounds (default 1..8,1..128; the encoder has "
                             "128 positions)")
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="threads of the edgecc libraries (default: every core this process may use)")
    parser.add_argument("--ort-threads", default=None,
                        help="ONNX Runtime thread counts to try, comma-separated (default: 1 and --threads)")
    parser.add_argument("--output", default=os.path.join(ROOT, "docs", "dynamic-shapes.md"))
    parser.add_argument("--work-dir", default=None, help="where the model and libraries go (default: a temp dir)")
    args = parser.parse_args(argv)
    args.ort_threads = sorted({int(t) for t in (args.ort_threads or f"1,{args.threads}").split(",")})
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    record = measure(args)
    command = ("python benchmarks/dynamic_shapes.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    write_report(record, machine_info(args.threads), args, command, args.output)
    plot(record, os.path.splitext(args.output)[0] + ".png")
    log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
