"""Post-training int8 quantization measured on a real trained model with real data.

    python benchmarks/quantization.py [--epochs 15] [--calibration 200] [--repeat 300] [--output docs/quantization.md]
    python benchmarks/quantization.py --models resnet18,mobilenetv2,bert_encoder --calibration 8 --repeat 30

A small CNN (three 3x3 convolutions with batch norm and ReLU, max pooling, two dense layers) is
trained with PyTorch (seeded, CPU, a few seconds) on scikit-learn's digits (8x8 grey images,
10 classes; 1,297 for training, 500 held out) and exported to ONNX. Then, on the same
calibration samples (the first --calibration training images):

  edgecc fp32   edgecc.compile(model)
  edgecc int8   edgecc.compile(model, quantize=QuantizeOptions(calibration=...)): min/max
                calibration, per-channel symmetric int8 weights, asymmetric int8 activations
  ORT fp32      onnxruntime.InferenceSession(model)
  ORT int8      onnxruntime.quantization.quantize_static(model): QDQ format, int8 activations and
                per-channel int8 weights, min/max calibration (its defaults but per_channel=True)

Each variant's top-1 accuracy on the held-out images, the bytes of its weights (the conv and dense
weight tensors) and of all its parameters, and its latency on this machine (batch 1 and batch 64;
the median of --repeat runs after warm-up, the variants taking turns in rounds, ONNX Runtime and
TVM with the same number of threads) are written between the result markers of the --output
Markdown file, with the command, machine and date.

With --models, real models from benchmarks/model_zoo.py (PyTorch definitions, random weights and
batch-norm statistics) are measured instead, calibrated on --calibration random inputs: edgecc
fp32, edgecc int8 (its own quantization), edgecc on ONNX Runtime's int8 model (QDQ, per-channel
int8 weights, int8 activations), ONNX Runtime fp32 and int8; batch-1 latency, how many kernels
got their own schedule, weight bytes. The table goes between the models markers of --output.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


# ----- data and model ---------------------------------------------------------------------------
def digits_split(test: int = 500, seed: int = 0):
    """(x_train, y_train, x_test, y_test): images as float32 (N, 1, 8, 8) in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None]
    y = digits.target.astype(np.int64)
    order = np.random.RandomState(seed).permutation(len(x))
    x, y = x[order], y[order]
    return x[:-test], y[:-test], x[-test:], y[-test:]


def make_cnn():
    import torch.nn as nn

    class DigitsCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16)
            self.c2, self.b2 = nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32)
            self.c3 = nn.Conv2d(32, 64, 3, padding=1)
            self.pool = nn.MaxPool2d(2)
            self.fc1, self.fc2 = nn.Linear(64 * 2 * 2, 64), nn.Linear(64, 10)

        def forward(self, x):
            x = self.b1(self.c1(x)).relu()
            x = self.pool(self.b2(self.c2(x)).relu())
            x = self.pool(self.c3(x).relu())
            return self.fc2(self.fc1(x.flatten(1)).relu())

    return DigitsCNN()


def train_cnn(x, y, epochs: int = 15, seed: int = 0, batch: int = 64, lr: float = 3e-3):
    """The CNN trained with Adam on (x, y); deterministic for a seed (CPU, one thread)."""
    import torch

    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net = make_cnn()
        opt = torch.optim.Adam(net.parameters(), lr)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            net.train()
            order = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), batch):
                idx = order[i:i + batch]
                loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        return net.eval()
    finally:
        torch.set_num_threads(threads)


def export_onnx(net, path: str) -> str:
    """ONNX (opset 17) with a dynamic batch axis; input `x`, output `logits`."""
    import torch

    torch.onnx.export(net, torch.zeros(1, 1, 8, 8), path, input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    return path


def ort_quantize(model: str, out: str, calibration: np.ndarray, quant_format: str = "QDQ",
                 activation: str = "int8", reduce_range: bool = False) -> str:
    """ONNX Runtime's quantize_static on the same samples: per-channel int8 weights, min/max."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": calibration[i:i + 1]} for i in range(len(calibration))])

        def get_next(self):
            return next(self.it, None)

    pre = out + ".pre.onnx"
    quant_pre_process(model, pre)
    quantize_static(pre, out, Reader(), quant_format=getattr(QuantFormat, quant_format), per_channel=True,
                    reduce_range=reduce_range, weight_type=QuantType.QInt8,
                    activation_type=QuantType.QInt8 if activation == "int8" else QuantType.QUInt8)
    os.unlink(pre)
    return out


# ----- measurements -------------------------------------------------------------------------------
def edgecc_compile(model: str, batch: int = 1, calibration: np.ndarray | None = None, **quant):
    import edgecc
    from edgecc.quant import QuantizeOptions

    q = None if calibration is None else QuantizeOptions(calibration={"x": calibration}, **quant)
    return edgecc.compile(model, "host", input_shapes={"x": (batch, 1, 8, 8)}, quantize=q)


def predictions(run, x: np.ndarray, batch: int = 1) -> np.ndarray:
    out = [run(x[i:i + batch]) for i in range(0, len(x) - len(x) % batch, batch)]
    return np.concatenate(out).argmax(axis=1)


def edgecc_runner(compiled):
    module = compiled.load()
    return lambda x: module.run({"x": x})["logits"]


def ort_runner(path: str, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return lambda x: sess.run(None, {"x": x})[0]


def weight_bytes(graph) -> int:
    """Bytes of the conv/dense weight tensors of an edgecc graph (fused bodies included)."""
    total = 0
    for node in graph.nodes:
        if node.subgraph is not None:
            outer = dict(zip((id(v) for v in node.subgraph.inputs), node.inputs))
            for inner in node.subgraph.nodes:
                if inner.op in ("conv", "qconv", "dense", "qdense", "matmul"):
                    w = outer.get(id(inner.inputs[1]))
                    if w is not None and w.const is not None:
                        total += w.const.nbytes
        elif node.op in ("conv", "qconv", "dense", "qdense", "matmul") and node.inputs[1].const is not None:
            total += node.inputs[1].const.nbytes
    return total


def onnx_bytes(path: str) -> tuple[int, int]:
    """(weight bytes, parameter bytes) of an ONNX model: weights are initializers read as the weight
    of a Conv/Gemm/MatMul, directly or through a DequantizeLinear, or by QLinearConv/QGemm."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    inits = {t.name: numpy_helper.to_array(t).nbytes for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    weight_inputs = {"Conv": 1, "Gemm": 1, "MatMul": 1, "QLinearConv": 3, "QGemm": 3, "QLinearMatMul": 3}
    weights = set()
    for node in model.graph.node:
        if node.op_type in weight_inputs and len(node.input) > weight_inputs[node.op_type]:
            name = node.input[weight_inputs[node.op_type]]
            src = producers.get(name)
            if src is not None and src.op_type in ("DequantizeLinear", "Transpose"):
                name = src.input[0]
                src = producers.get(name)
                if src is not None and src.op_type == "DequantizeLinear":
                    name = src.input[0]
            if name in inits:
                weights.add(name)
    return sum(inits[n] for n in weights), sum(inits.values())


def time_variants(libraries: dict[str, tuple], x: np.ndarray, repeat: int, threads: int,
                  folder: str, input_name: str = "x") -> dict[str, tuple[float, float]]:
    """(minimum, median) latency in ms of each (kind, path[, threads]) on x, each in its own worker
    process, taking turns (benchmarks/run.py's workers: edgecc libraries called with inputs already
    in TVM tensors, ONNX Runtime sessions with numpy inputs); `threads` unless the entry names its own."""
    sys.path.insert(0, HERE)
    from run import Worker, time_round_robin

    inputs = os.path.join(folder, f"inputs{len(x)}.npz")
    np.savez(inputs, **{input_name: x})
    workers = [Worker(name.replace(" ", "_") + f"_{len(x)}", entry[0], entry[1], inputs, [input_name],
                      entry[2] if len(entry) > 2 else threads, folder)
               for name, entry in libraries.items()]
    try:
        time_round_robin(workers, repeat, warmup=5, block=20)
    finally:
        for w in workers:
            w.close()
    return {name: (min(w.times) * 1e3, statistics.median(w.times) * 1e3) for name, w in zip(libraries, workers)}


def ort_thread_counts(threads: int) -> tuple[int, ...]:
    """ONNX Runtime's configurations: 1 thread and `threads`."""
    return tuple(sorted({1, threads}))


def best_ort(times: dict[str, tuple[float, float]], label: str, threads: int) -> tuple[str, tuple[float, float]]:
    """The ONNX Runtime configuration of `label` (e.g. "ORT int8") with the lowest median."""
    configs = {f"{label} {t}t": times[f"{label} {t}t"] for t in ort_thread_counts(threads)}
    name = min(configs, key=lambda k: configs[k][1])
    return name, configs[name]


# ----- real models (benchmarks/model_zoo.py) -----------------------------------------------------
def model_markers(cpu: str | None) -> tuple[str, str]:
    """The markers around the real-model table (one table per --cpu)."""
    name = f"models-{cpu}" if cpu else "models"
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def zoo_samples(name: str, count: int, seed: int) -> tuple[str, np.ndarray]:
    """(input name, `count` random inputs of model_zoo's `name`): images or token ids."""
    sys.path.insert(0, HERE)
    from model_zoo import MODELS

    example = MODELS[name][1]()
    rng = np.random.default_rng(seed)
    if str(example.dtype) == "torch.int64":
        return "input_ids", rng.integers(0, 100, (count, *example.shape)).astype(np.int64)
    return "input", rng.standard_normal((count, *example.shape)).astype(np.float32)


def ort_quantize_zoo(model: str, out: str, input_name: str, calibration: np.ndarray, reduce_range: bool = False) -> str:
    """ONNX Runtime's quantize_static (QDQ, per-channel int8 weights, 7-bit with `reduce_range`,
    int8 activations, min/max)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{input_name: c} for c in calibration])

        def get_next(self):
            return next(self.it, None)

    quantize_static(model, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=reduce_range,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QInt8)
    return out


def measure_zoo_model(name: str, work: str, calibration: int, repeat: int, threads: int, cpu: str | None = None,
                      reduce_range: bool = False) -> dict:
    """edgecc fp32 and int8 (its own quantization and the model ONNX Runtime quantized) beside
    ONNX Runtime fp32 and int8: median latency at batch 1, kernels scheduled by default/generic,
    weight bytes (the float model's for edgecc fp32: Winograd keeps transformed weights). One row
    per variant."""
    import edgecc
    from edgecc.quant import QuantizeOptions

    sys.path.insert(0, HERE)
    from model_zoo import export

    fp32 = export(name, os.path.join(work, f"{name}.onnx"))
    input_name, calib = zoo_samples(name, calibration, seed=0)
    ort_int8 = ort_quantize_zoo(fp32, os.path.join(work, f"{name}.ort_int8.onnx"), input_name, calib, reduce_range)
    from edgecc.targets import get_target

    target = get_target("host", cpu=cpu)
    rows, libraries = {}, {}
    own = QuantizeOptions(calibration={input_name: calib}, weight_bits=7 if reduce_range else 8)
    builds = {"edgecc fp32": (fp32, None), "edgecc int8": (fp32, own),
              "edgecc on ORT int8": (ort_int8, None)}
    for label, (src, quantize) in builds.items():
        log(f"{name}: compiling {label}")
        compiled = edgecc.compile(src, target, quantize=quantize)
        lib = os.path.join(work, f"{name}.{label.replace(' ', '_')}.so")
        compiled.export(lib)
        libraries[label] = ("tvm", lib)
        by = compiled.stats.scheduled_by
        tuned = f"{by['tuned']} tuned, " if by.get("tuned") else ""  # (records in tuning_logs/)
        rows[label] = {"kernels": f"{by.get('default', 0)} default, {tuned}{by.get('generic', 0)} generic",
                       "weights": weight_bytes(compiled.graph) if quantize or src != fp32 else onnx_bytes(fp32)[0]}
    for t in ort_thread_counts(threads):
        for label, path in (("ORT fp32", fp32), ("ORT int8", ort_int8)):
            libraries[f"{label} {t}t"] = ("onnxruntime", path, t)
            rows[f"{label} {t}t"] = {"kernels": "", "weights": onnx_bytes(path)[0], "threads": t}
    log(f"{name}: timing")
    x = zoo_samples(name, 1, seed=1)[1][0]
    for label, (low, mid) in time_variants(libraries, x, repeat, threads, work, input_name).items():
        rows[label].update(min=low, ms=mid)
        rows[label].setdefault("threads", threads)
    return rows


def write_model_results(path: str, results: dict[str, dict], command: str, threads: int, cpu: str | None = None) -> None:
    """The real-model table between the models markers of `path` (written atomically): minimum and
    median per variant, ratios to edgecc fp32, ONNX Runtime's best configuration marked `*`, and a
    line per model comparing edgecc int8 with edgecc fp32 and with ONNX Runtime int8's best."""
    code_for = f"code for --cpu {cpu}, " if cpu else ""
    lines = [f"`{command}` on {machine()} (SIMD flags: {simd_flags()}), {code_for}edgecc on {threads} threads, "
             f"ONNX Runtime on {' and '.join(map(str, ort_thread_counts(threads)))}, "
             f"{datetime.date.today()}; {versions()}.", "",
             "| model | variant | threads | kernels | weights (MB) | min (ms) | median (ms) | vs edgecc fp32 (min) "
             "| vs edgecc fp32 (median) |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|"]
    summary = []
    for name, rows in results.items():
        base = rows["edgecc fp32"]
        times = {label: (r["min"], r["ms"]) for label, r in rows.items()}
        best = {best_ort(times, label, threads)[0] for label in ("ORT fp32", "ORT int8")}
        for label, r in rows.items():
            star = " *" if label in best else ""
            lines.append(f"| {name} | {label}{star} | {r['threads']} | {r['kernels']} | {r['weights'] / 1e6:.1f} | "
                         f"{r['min']:.2f} | {r['ms']:.2f} | {r['min'] / base['min']:.2f}x | {r['ms'] / base['ms']:.2f}x |")
        summary.append(_model_summary(name, rows, times, threads))
    lines += ["", "`*`: ONNX Runtime's best configuration (lowest median) for its fp32 and its int8 model.", ""]
    lines += summary
    text = open(path).read()
    begin_marker, end_marker = model_markers(cpu)
    start, end = text.index(begin_marker) + len(begin_marker), text.index(end_marker)
    text = text[:start] + "\n" + "\n".join(lines) + "\n" + text[end:]
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)))
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _model_summary(name: str, rows: dict, times: dict, threads: int) -> str:
    """One line: edgecc int8 over edgecc fp32, and over ONNX Runtime int8's best (min / median)."""
    own, fp = rows["edgecc int8"], rows["edgecc fp32"]
    ort_name, (ort_min, ort_med) = best_ort(times, "ORT int8", threads)
    return (f"- {name}: edgecc int8 / edgecc fp32 = {own['min'] / fp['min']:.2f}x (min), "
            f"{own['ms'] / fp['ms']:.2f}x (median); edgecc int8 / {ort_name} = {own['min'] / ort_min:.2f}x (min), "
            f"{own['ms'] / ort_med:.2f}x (median)")


def simd_flags() -> str:
    """The x86 SIMD and dot-product flags of this machine's CPU (as lscpu prints them)."""
    from edgecc.targets.host import host_cpu_features

    wanted = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni")
    return " ".join(f for f in wanted if f in host_cpu_features()) or "none of AVX2/AVX-512/VNNI"


def machine() -> str:
    sys.path.insert(0, HERE)
    from run import cpu_model

    return f"{cpu_model()}, {len(os.sched_getaffinity(0))} cores, {platform.system()} {platform.release()}"


def versions() -> str:
    import onnxruntime
    import torch
    import tvm

    import edgecc

    return (f"edgecc {edgecc.__version__}, apache-tvm {tvm.__version__}, onnxruntime {onnxruntime.__version__}, "
            f"torch {torch.__version__}, numpy {np.__version__}")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--calibration", type=int, default=192,
                        help="calibration samples (training images; a multiple of --batch)")
    parser.add_argument("--repeat", type=int, default=300, help="timed runs per variant and batch size")
    parser.add_argument("--batch", type=int, default=64, help="the larger batch size timed besides 1")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--output", default=os.path.join(ROOT, "docs", "quantization.md"))
    parser.add_argument("--models", default="", metavar="M1,M2",
                        help="instead of the digits CNN, measure these benchmarks/model_zoo.py models "
                             "(resnet18, mobilenetv2, bert_encoder) with --calibration random inputs")
    parser.add_argument("--cpu", help="with --models: compile edgecc's variants for this LLVM CPU (e.g. haswell)")
    parser.add_argument("--reduce-range", action="store_true",
                        help="with --models: 7-bit weights in edgecc's and ONNX Runtime's int8 models (for AVX2 "
                             "without VNNI)")
    args = parser.parse_args(argv)
    os.environ["TVM_NUM_THREADS"] = str(args.threads)
    if args.models:
        work = tempfile.mkdtemp(prefix="edgecc-quant-")
        results = {m: measure_zoo_model(m, work, args.calibration, args.repeat, args.threads, args.cpu,
                                        args.reduce_range) for m in args.models.split(",")}
        write_model_results(args.output, results, "python benchmarks/quantization.py " + " ".join(argv or sys.argv[1:]),
                            args.threads, args.cpu)
        return 0

    xtr, ytr, xte, yte = digits_split()
    calib = xtr[:args.calibration]
    start = time.perf_counter()
    net = train_cnn(xtr, ytr, args.epochs)
    log(f"trained in {time.perf_counter() - start:.1f} s")
    work = tempfile.mkdtemp(prefix="edgecc-quant-")
    fp32 = export_onnx(net, os.path.join(work, "digits_cnn.onnx"))
    ort_int8 = ort_quantize(fp32, os.path.join(work, "digits_cnn_int8.onnx"), calib)

    rows, runners, libraries = {}, {}, {1: {}, args.batch: {}}
    for batch in (1, args.batch):
        for name, cal in (("edgecc fp32", None), ("edgecc int8", calib)):
            start = time.perf_counter()
            compiled = edgecc_compile(fp32, batch, cal)
            log(f"{name} batch {batch}: compiled in {time.perf_counter() - start:.1f} s")
            lib = os.path.join(work, f"{name.replace(' ', '_')}_{batch}.so")
            compiled.export(lib)
            libraries[batch][name] = ("tvm", lib)
            if batch == 1:
                runners[name] = edgecc_runner(compiled)
                rows[name] = {"weights": weight_bytes(compiled.graph), "params": compiled.graph.parameter_bytes()}
        for t in ort_thread_counts(args.threads):
            libraries[batch][f"ORT fp32 {t}t"] = ("onnxruntime", fp32, t)
            libraries[batch][f"ORT int8 {t}t"] = ("onnxruntime", ort_int8, t)
    runners["ORT fp32"] = ort_runner(fp32, args.threads)
    runners["ORT int8"] = ort_runner(ort_int8, args.threads)
    for name, path in (("ORT fp32", fp32), ("ORT int8", ort_int8)):
        w, p = onnx_bytes(path)
        rows[name] = {"weights": w, "params": p}
    for name, run in runners.items():
        rows[name]["accuracy"] = float((predictions(run, xte) == yte).mean())
    for batch in (1, args.batch):
        x = np.ascontiguousarray(xte[:batch])
        times = time_variants(libraries[batch], x, args.repeat, args.threads, work)
        for name in rows:
            config = best_ort(times, name, args.threads) if name.startswith("ORT") else (name, times[name])
            rows[name][f"ms{batch}"] = config[1]
            rows[name][f"config{batch}"] = config[0]
        log(f"batch {batch}: " + ", ".join(f"{rows[n][f'config{batch}']} {rows[n][f'ms{batch}'][1]:.3f} ms" for n in rows))

    command = "python benchmarks/quantization.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    write_results(args.output, rows, command, args, len(xtr), len(xte))
    log(f"wrote {args.output}")
    return 0


def _threads_note(name: str, config: str) -> str:
    """' (N)' with the thread count of ONNX Runtime's chosen configuration ("ORT int8 1t")."""
    return f" ({config.rsplit(' ', 1)[1][:-1]})" if config != name else ""


def write_results(path: str, rows: dict, command: str, args, n_train: int, n_test: int) -> None:
    fp = rows["edgecc fp32"]
    lines = [
        BEGIN,
        f"- command: `{command}`",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {machine()}; SIMD flags: {simd_flags()}; edgecc on {args.threads} threads, ONNX Runtime's best "
        f"of {' and '.join(map(str, ort_thread_counts(args.threads)))} threads (the count in brackets)",
        f"- versions: {versions()}",
        f"- data: scikit-learn digits, {n_train} training images ({args.epochs} epochs), {n_test} held-out test "
        f"images, the first {args.calibration} training images for calibration",
        "",
        f"| variant | top-1 accuracy | weight bytes | parameter bytes | batch 1 min / median (ms) | "
        f"batch {args.batch} min / median (ms) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        cells = [f"{r[f'ms{b}'][0]:.3f} / {r[f'ms{b}'][1]:.3f}" + _threads_note(name, r[f"config{b}"])
                 for b in (1, args.batch)]
        lines.append(f"| {name} | {r['accuracy']:.1%} | {r['weights']:,} ({fp['weights'] / r['weights']:.2f}x smaller) "
                     f"| {r['params']:,} | {cells[0]} | {cells[1]} |")
    lines.append(END)
    block = "\n".join(lines)
    text = open(path).read() if os.path.exists(path) else f"# Quantization\n\n{BEGIN}\n{END}\n"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    from edgecc._files import atomic_write

    atomic_write(path, text)


if __name__ == "__main__":
    sys.exit(main())
