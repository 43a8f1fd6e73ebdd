"""Check edgecc's CUDA libraries on a real NVIDIA GPU: outputs against ONNX Runtime, speed against
PyTorch eager on the same GPU.

Two steps, which may run on different machines:

    python3 tools/gpu_check.py package OUT --arch sm_90 [--models resnet18,mobilenetv2,bert_encoder]
    python3 tools/gpu_check.py measure OUT [--repeat 50]
    python3 tools/gpu_check.py all OUT                      # both here; the arch read from nvidia-smi

`package` (needs edgecc with the `.[cuda]` extra and torch; no GPU) exports each benchmark model
from benchmarks/model_zoo.py with seeded weights, compiles it for `cuda --arch`, writes its example
input as .npy, and builds the x86-64 CUDA deploy runner with TVM's runtime beside it. OUT then holds
everything `measure` needs, with a copy of model_zoo.py and of this script.

`measure` (needs the GPU, numpy, onnxruntime and torch; not TVM nor edgecc) runs each library
through OUT's deploy runner (outputs written once, then the median of `--repeat` timed runs), runs
the ONNX model in ONNX Runtime on the CPU and compares (fp32: rtol and atol 1e-3), times the same
PyTorch model in eager mode on the GPU, and writes OUT/gpu_check.md (a table for
docs/benchmarks.md) and OUT/gpu_check.json. Exit status: 0 all outputs match, 1 a mismatch, 2 no
GPU or an incomplete package.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_MODELS = ("resnet18", "resnet50", "mobilenetv2", "bert_encoder")
MANIFEST = "manifest.json"
RTOL = ATOL = 1e-3


class CheckError(Exception):
    """A one-line reason the check cannot go on (exit 2)."""


def _model_zoo(folder: Path):
    """benchmarks/model_zoo.py (or the copy in a package folder) as a module."""
    sys.path.insert(0, str(folder))
    import model_zoo

    return model_zoo


# ----- package: edgecc, TVM and torch; no GPU ---------------------------------------------------------
def package(out: Path, arch: str, models: list[str]) -> dict:
    """Compile `models` for `cuda --arch` into `out`, with their inputs and the deploy runner."""
    import numpy as np

    import edgecc
    from edgecc.runtime.deploy import deploy_folder

    zoo = _model_zoo(ROOT / "benchmarks")
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for name in models:
        onnx_path, library = out / f"{name}.onnx", out / f"{name}_{arch}.so"
        zoo.export(name, str(onnx_path))
        _, example = zoo.build(name)
        input_name = "input_ids" if str(example.dtype) == "torch.int64" else "input"
        np.save(out / f"{name}_input.npy", example.numpy())
        start = time.perf_counter()
        edgecc.compile(str(onnx_path), target="cuda", target_options={"arch": arch}).export(library)
        print(f"{name}: compiled for {arch} in {time.perf_counter() - start:.1f} s", flush=True)
        entries.append({"name": name, "onnx": onnx_path.name, "library": library.name,
                        "inputs": {input_name: f"{name}_input.npy"}})
    deploy_folder("x86_64", out / "deploy", device="cuda")
    for source in (ROOT / "benchmarks" / "model_zoo.py", Path(__file__)):
        shutil.copy2(source, out / source.name)
    manifest = {"arch": arch, "models": entries, "runner": "deploy/edgecc-runner",
                "edgecc": edgecc.__version__, "created": datetime.datetime.now().isoformat(timespec="seconds")}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


# ----- measure: the GPU machine; no TVM --------------------------------------------------------------
def gpu_info() -> tuple[str, str]:
    """(GPU name, arch such as sm_90) from nvidia-smi; CheckError when there is no GPU."""
    if shutil.which("nvidia-smi") is None:
        raise CheckError("no NVIDIA GPU here (nvidia-smi not found)")
    done = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap", "--format=csv,noheader"],
                          capture_output=True, text=True, check=False)
    line = done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else ""
    if "," not in line:
        raise CheckError(f"nvidia-smi lists no GPU ({(done.stderr.strip() or 'no output').splitlines()[0]})")
    name, capability = (part.strip() for part in line.split(",", 1))
    return name, "sm_" + capability.replace(".", "")


def run_runner(out: Path, runner: Path, entry: dict, repeat: int) -> tuple[list, float]:
    """The library's outputs (numpy arrays, in order) and its median latency in ms, from the runner."""
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        cmd = [str(runner), str(out / entry["library"]), "--output-dir", tmp, "--repeat", str(repeat)]
        for name, file in entry["inputs"].items():
            cmd += ["--input", f"{name}={out / file}"]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip() or "no output").splitlines()[-1]
            raise CheckError(f"{entry['library']}: the runner failed: {last}")
        files = sorted(Path(tmp).glob("output*.npy"), key=lambda p: int(p.stem[len("output"):]))
        outputs = [np.load(path) for path in files]
    median = re.search(r"^median ([0-9.]+) ms", done.stdout, re.MULTILINE)
    if median is None:
        raise CheckError(f"{entry['library']}: no timing line in the runner's output")
    return outputs, float(median.group(1))


def onnxruntime_outputs(out: Path, entry: dict) -> list:
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(out / entry["onnx"]), providers=["CPUExecutionProvider"])
    return session.run(None, {name: np.load(out / file) for name, file in entry["inputs"].items()})


def torch_eager_ms(out: Path, entry: dict, repeat: int, warmup: int = 5) -> float | None:
    """Median latency of the PyTorch model in eager mode on the GPU (None: torch has no CUDA)."""
    import numpy as np
    import torch

    if not torch.cuda.is_available():
        return None
    model, _ = _model_zoo(out).build(entry["name"])
    model = model.cuda()
    (file,) = entry["inputs"].values()
    example = torch.from_numpy(np.load(out / file)).cuda()
    times = []
    with torch.no_grad():
        for i in range(warmup + repeat):
            torch.cuda.synchronize()
            start = time.perf_counter()
            model(example)
            torch.cuda.synchronize()
            if i >= warmup:
                times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def compare(got: list, expected: list) -> tuple[bool, float]:
    """(every output within rtol/atol of ONNX Runtime's, the largest absolute error)."""
    import numpy as np

    if len(got) != len(expected) or any(g.shape != e.shape for g, e in zip(got, expected)):
        return False, float("inf")
    errors = [float(np.max(np.abs(g.astype(np.float64) - e))) if g.size else 0.0 for g, e in zip(got, expected)]
    ok = all(np.allclose(g, e, rtol=RTOL, atol=ATOL) for g, e in zip(got, expected))
    return ok, max(errors, default=0.0)


def measure(out: Path, repeat: int) -> list[dict]:
    """Run, compare and time every packaged model; writes the report files into `out`."""
    manifest_path = out / MANIFEST
    if not manifest_path.is_file():
        raise CheckError(f"{out}: no {MANIFEST}; run `gpu_check.py package {out} --arch ...` first")
    manifest = json.loads(manifest_path.read_text())
    gpu, arch = gpu_info()
    if arch != manifest["arch"]:
        raise CheckError(f"{out} was compiled for {manifest['arch']}, this GPU ({gpu}) is {arch}")
    results = []
    for entry in manifest["models"]:
        outputs, edgecc_ms = run_runner(out, out / manifest["runner"], entry, repeat)
        ok, max_err = compare(outputs, onnxruntime_outputs(out, entry))
        eager = torch_eager_ms(out, entry, repeat)
        results.append({"model": entry["name"], "edgecc_ms": edgecc_ms, "torch_eager_ms": eager,
                        "matches_onnxruntime": ok, "max_abs_err": max_err})
        eager_text = "n/a" if eager is None else f"{eager:.3f} ms"
        print(f"{entry['name']}: edgecc {edgecc_ms:.3f} ms, PyTorch eager {eager_text}, "
              f"max |err| {max_err:.2e} {'ok' if ok else 'MISMATCH'}", flush=True)
    write_report(out, results, gpu, manifest, repeat)
    return results


def write_report(out: Path, results: list[dict], gpu: str, manifest: dict, repeat: int) -> None:
    lines = [f"GPU: {gpu} ({manifest['arch']}); edgecc {manifest['edgecc']}, untuned, through the deploy "
             f"runner; median of {repeat} runs; outputs against ONNX Runtime (CPU), rtol = atol = {RTOL:g}.", "",
             "| model | edgecc (ms) | PyTorch eager (ms) | speed-up | max abs err | matches |",
             "|---|---:|---:|---:|---:|---|"]
    for r in results:
        eager = r["torch_eager_ms"]
        speedup = f"{eager / r['edgecc_ms']:.2f}x" if eager else "n/a"
        lines.append(f"| {r['model']} | {r['edgecc_ms']:.3f} | {'n/a' if eager is None else f'{eager:.3f}'} | "
                     f"{speedup} | {r['max_abs_err']:.2e} | {'yes' if r['matches_onnxruntime'] else 'NO'} |")
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    (out / "gpu_check.json").write_text(json.dumps({"gpu": gpu, **manifest, "results": results}, indent=1))


# ----- command line ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    for step in ("package", "measure", "all"):
        p = sub.add_parser(step)
        p.add_argument("out", type=Path)
        if step != "measure":
            p.add_argument("--models", default=",".join(DEFAULT_MODELS))
        if step == "package":
            p.add_argument("--arch", required=True, help="sm_80, sm_86, sm_87, sm_89 or sm_90")
        if step != "package":
            p.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args(argv)
    try:
        if args.step in ("package", "all"):
            arch = args.arch if args.step == "package" else gpu_info()[1]
            package(args.out, arch, [m for m in args.models.split(",") if m])
        if args.step in ("measure", "all"):
            results = measure(args.out, args.repeat)
            return 0 if all(r["matches_onnxruntime"] for r in results) else 1
    except CheckError as exc:
        print(f"gpu_check: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
