"""Two revisions of edgecc side by side: compile the benchmark models with each, time both libraries
in one process, and report the ratio. Answers "did this change make any model slower?".

    git worktree add /tmp/edgecc-base <rev>
    python3 -m pip install --no-deps --target /tmp/edgecc-base-pkgs /tmp/edgecc-base
    python3 benchmarks/compare_revisions.py --baseline /tmp/edgecc-base-pkgs --baseline-name <rev>

Each revision compiles in its own process (the baseline with its install folder first on
PYTHONPATH), untuned and with default options, for the host. The libraries need only TVM's runtime,
so one process loads both and times them in alternating blocks with the same thread count.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

DEFAULT_MODELS = ("resnet18", "resnet50", "mobilenetv2", "bert_encoder")
COMPILE = ("import sys, edgecc; lib = edgecc.compile(sys.argv[1], 'host', tuning_logs=''); "
           "lib.export(sys.argv[2]); print(edgecc.__file__)")


def compile_with(python_path: str | None, model: str, out: str) -> str:
    """Compile `model` in a fresh process; `python_path` puts another revision's install first."""
    env = dict(os.environ)
    if python_path:
        env["PYTHONPATH"] = python_path + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", COMPILE, model, out], env=env, cwd=tempfile.gettempdir(),
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"compile of {model} failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def load(path: str):
    import tvm
    from tvm import relax

    return relax.VirtualMachine(tvm.runtime.load_module(path), tvm.cpu())


def time_blocks(vms: dict, args: list, blocks: int, per_block: int) -> dict[str, list[float]]:
    """Seconds per run of each VM, in alternating blocks so neither gets a quieter stretch."""
    times: dict[str, list[float]] = {name: [] for name in vms}
    for vm in vms.values():
        vm["main"](*args)  # warm-up
    for _ in range(blocks):
        for name, vm in vms.items():
            for _ in range(per_block):
                start = time.perf_counter()
                vm["main"](*args)
                times[name].append(time.perf_counter() - start)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, metavar="DIR", help="install folder of the baseline revision")
    parser.add_argument("--baseline-name", default="baseline", help="what to call the baseline in the table")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--per-block", type=int, default=5)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "edgecc-compare"))
    args = parser.parse_args(argv)
    os.environ["TVM_NUM_THREADS"] = str(args.threads)  # the same pool size for both libraries

    import model_zoo
    import run
    import tvm

    os.makedirs(args.work, exist_ok=True)
    rows = []
    for name in args.models.split(","):
        onnx_path = os.path.join(args.work, f"{name}.onnx")
        if not os.path.exists(onnx_path):
            model_zoo.export(name, onnx_path)
        libs = {}
        for label, path in ((args.baseline_name, args.baseline), ("this tree", None)):
            out = os.path.join(args.work, f"{name}.{'base' if path else 'head'}.so")
            where = compile_with(path, onnx_path, out)
            print(f"{name}: compiled by {label} ({where})", file=sys.stderr)
            libs[label] = out
        vms = {label: load(path) for label, path in libs.items()}
        inputs, _ = run.model_inputs(onnx_path)
        times = time_blocks(vms, [tvm.runtime.tensor(a) for a in inputs.values()], args.blocks, args.per_block)
        base, head = times[args.baseline_name], times["this tree"]
        rows.append((name, min(base), statistics.median(base), min(head), statistics.median(head)))
    print(f"# edgecc: {args.baseline_name} against this tree\n")
    print(f"- command: `python3 benchmarks/compare_revisions.py {' '.join(argv or sys.argv[1:])}`")
    cpu, flags = run.lscpu()
    print(f"- machine: {cpu or run.cpu_model()}, {os.cpu_count()} CPUs, ISA flags: {' '.join(flags)}")
    print(f"- date: {datetime.date.today().isoformat()}; {args.threads} threads for both; "
          f"{args.blocks} alternating blocks of {args.per_block} runs\n")
    print(f"| model | {args.baseline_name} min / median (ms) | this tree min / median (ms) | median ratio |")
    print("|---|---:|---:|---:|")
    for name, bmin, bmed, hmin, hmed in rows:
        print(f"| {name} | {bmin * 1e3:.2f} / {bmed * 1e3:.2f} | {hmin * 1e3:.2f} / {hmed * 1e3:.2f} | "
              f"{hmed / bmed:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
