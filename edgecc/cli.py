"""The `edgecc` command line: argument parsing and presentation (docs/cli.md).

Exit codes: 0 success; 2 a problem with the input (bad model, unsupported op, unknown target,
missing file, wrong shape, bad option, a schedule fallback under --strict-schedules); 3
`run --compare-onnxruntime` found outputs outside the tolerance; 1 an internal error; 130
interrupted. A user error is an `EdgeccError` or `CliError`, raised directly or as the cause of a
`PassError`; it is one line on stderr, `edgecc: error: ...`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

__all__ = ["main"]

EXIT_USER_ERROR = 2
EXIT_MISMATCH = 3
EXIT_INTERNAL = 1


class CliError(Exception):
    """A bad command line value discovered after parsing."""


_SIZE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _dim_arg(text: str, whole: str):
    """One --input-shape dimension: 8 (fixed), 1..512 or 1.. (symbolic within bounds), a name
    (symbolic, that variable) or ? (symbolic, as the model names it)."""
    text = text.strip()
    if text == "?":
        return None
    if _SIZE_NAME.fullmatch(text):
        return text
    lo, dots, hi = text.partition("..")
    try:
        bounds = (int(lo), int(hi) if hi else None) if dots else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad dimensions in {whole!r}") from None
    values = [b for b in (bounds if dots else (bounds,)) if b is not None]
    if any(b <= 0 for b in values):
        raise argparse.ArgumentTypeError(f"dimensions must be positive in {whole!r}")
    if dots and hi and bounds[1] < bounds[0]:
        raise argparse.ArgumentTypeError(f"empty range {text} in {whole!r}")
    return bounds


def _shape_arg(text: str) -> tuple[str, tuple]:
    name, eq, dims = text.rpartition("=")
    if not eq or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=D1,D2,..., got {text!r}")
    if re.fullmatch(r"\s*\d+(\s*x\s*\d+)+\s*", dims):  # 1x3x224x224
        dims = dims.replace("x", ",")
    return name, tuple(_dim_arg(d, text) for d in dims.split(",") if d.strip())


def _size_arg(text: str) -> tuple[str, int]:
    name, eq, value = text.partition("=")
    if not eq or not _SIZE_NAME.fullmatch(name.strip()):
        raise argparse.ArgumentTypeError(f"expected NAME=N, got {text!r}")
    try:
        size = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=N with a whole number N, got {text!r}") from None
    return name.strip(), size


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _input_arg(text: str) -> tuple[str, str]:
    name, eq, path = text.partition("=")
    if not eq or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=FILE.npy, got {text!r}")
    return name, path


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-shape", action="append", type=_shape_arg, default=[], metavar="NAME=D1,D2,...",
                   help="an input's shape (repeatable); each D is a size (fixed), LO..HI or LO.. (symbolic within "
                        "bounds), a name or ? (symbolic) (see docs/cli.md)")
    p.add_argument("-O", dest="opt_level", type=int, choices=range(3), default=2, metavar="LEVEL",
                   help="optimization level 0-2 (default 2)")
    p.add_argument("--passes", metavar="PIPELINE",
                   help='explicit pass pipeline, e.g. "fold-constants,eliminate-dead-code" (replaces -O)')
    p.add_argument("--disable-pass", action="append", default=[], metavar="PASS",
                   help="leave a pass out of the pipeline (repeatable)")
    p.add_argument("--print-ir-after", action="append", default=[], metavar="PASS",
                   help="print the IR after PASS ('all' for every pass) to stderr")
    p.add_argument("--time-passes", action="store_true", help="print how long each pass took")
    p.add_argument("--verify-each", action="store_true", help="run the IR verifier after every pass")
    p.add_argument("--limit", action="append", default=[], metavar="NAME=VALUE",
                   help="raise a limit on what the model may ask for (repeatable; VALUE takes k/m/g suffixes): "
                        "outputs, tensor_bytes, unroll, fold_bytes, fold_work (see docs/robustness.md)")


def _add_remark_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--remarks", action="store_true", help="print the passes' notes on what they changed")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print every pass remark, also why rewrites did not apply (implies --remarks)")


def _add_target_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", default="host", help="target or preset name (see `edgecc targets`; default host)")
    p.add_argument("--cpu", help="CPU model for CPU targets and AArch64 GPU hosts (e.g. cortex-a72, znver3)")
    p.add_argument("--arch", help="architecture: CUDA sm_80, sm_86, sm_87, sm_89, sm_90; ARM aarch64 or armv7")
    p.add_argument("--precision", choices=["fp32", "fp16"], help="GPU kernel precision (default fp32)")
    p.add_argument("--accelerator", help="NPU configuration of NPU targets (ethos-u55-128, ethos-u65-256, ...)")
    p.add_argument("--target-option", action="append", default=[], metavar="KEY=VALUE", type=_key_value,
                   help="any other option of the target (e.g. host=aarch64, gpu=mali-g610); repeatable")


def _add_quantize_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("quantization (post-training, see docs/quantization.md)")
    g.add_argument("--quantize", choices=["int8"], help="quantize weights and activations to int8 (integer kernels)")
    g.add_argument("--calibration", metavar="DATA", help="calibration samples: an .npz file or a folder of .npy/.npz files")
    g.add_argument("--calibration-method", choices=["minmax", "percentile", "entropy"], default="minmax",
                   help="how activation ranges are chosen (default minmax)")
    g.add_argument("--percentile", type=float, default=99.99, help="percentile of the percentile method (default 99.99)")
    g.add_argument("--calibration-samples", type=int, metavar="N", help="use at most N calibration samples")
    g.add_argument("--activation-dtype", choices=["int8", "uint8"], default="int8", help="activation type (default int8)")
    g.add_argument("--symmetric", action="store_true", help="symmetric activation ranges (default asymmetric)")
    g.add_argument("--per-tensor-weights", action="store_true", help="one weight scale per layer (default per channel)")
    g.add_argument("--keep-fp32", type=int, default=0, metavar="N", help="keep the N most sensitive layers in float32")
    g.add_argument("--keep-fp32-layer", action="append", default=[], metavar="NAME",
                   help="keep this layer (IR node name) in float32 (repeatable)")
    g.add_argument("--accuracy-budget", type=float, metavar="X",
                   help="keep the most sensitive layers in float32 until the error against float32 is at most X")
    g.add_argument("--budget-metric", choices=["error", "top1"], default="error",
                   help="error: relative L2 error of the outputs; top1: fraction of changed top-1 classes")
    g.add_argument("--sensitivity", action="store_true", help="print each layer's sensitivity to quantization")
    g.add_argument("--sensitivity-plot", metavar="PNG", help="also plot each layer's sensitivity to this PNG file")


def _quantize_options(args):
    """QuantizeOptions from the command line (None without --quantize)."""
    args.sensitivity = args.sensitivity or bool(args.sensitivity_plot)
    given = args.calibration or args.keep_fp32 or args.accuracy_budget is not None or args.sensitivity
    if not args.quantize:
        if given:
            raise CliError("--calibration, --keep-fp32, --accuracy-budget and --sensitivity need --quantize int8")
        return None
    if not args.calibration:
        raise CliError("--quantize int8 needs --calibration DATA (an .npz file or a folder of .npy/.npz files)")
    from edgecc.quant import QuantizeOptions

    return QuantizeOptions(
        calibration=args.calibration, dtype=args.quantize, method=args.calibration_method,
        percentile=args.percentile, activation_dtype=args.activation_dtype, symmetric=args.symmetric,
        per_channel=not args.per_tensor_weights, skip=tuple(args.keep_fp32_layer), keep_fp32=args.keep_fp32,
        accuracy_budget=args.accuracy_budget, budget_metric=args.budget_metric, sensitivity=args.sensitivity,
        max_samples=args.calibration_samples)


def _report_quantization(report: dict, args) -> None:
    """The quantization summary (and sensitivity table) on stdout, the sensitivity plot to PNG."""
    if not args.quiet or args.sensitivity:
        print(_quantization_report(report))
    if args.sensitivity_plot and report.get("sensitivity"):
        from edgecc.quant.sensitivity import plot_sensitivity

        plot_sensitivity(report["sensitivity"], args.sensitivity_plot, report["kept_fp32"])


def _quantization_report(report: dict) -> str:
    lines = []
    if report.get("sensitivity"):
        lines.append(f"{'layer':<32}{'op':<8}{'error':>10}{'top-1 agree':>13}   (only this layer in int8)")
        for e in sorted(report["sensitivity"], key=lambda e: -e["error"]):
            agree = "-" if e["top1_agreement"] is None else f"{e['top1_agreement']:.1%}"
            lines.append(f"{e['layer']:<32}{e['op']:<8}{e['error']:>10.4g}{agree:>13}")
    done = len(report["quantized"])
    lines.append(f"quantized {done} of {len(report['layers'])} layers to int8 ({report['method']} calibration on "
                 f"{report['samples']} samples, {report['activation_dtype']} activations)"
                 + (f"; float32: {', '.join(report['kept_fp32'])}" if report["kept_fp32"] else ""))
    if report.get("evaluation"):
        e = report["evaluation"]
        agree = "" if e["top1_agreement"] is None else f", top-1 agreement {e['top1_agreement']:.1%}"
        lines.append(f"error against float32 on {e['samples']} calibration samples: {e['error']:.4g}{agree}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from edgecc import __version__

    parser = argparse.ArgumentParser(prog="edgecc", description="Compile ONNX models into fast shared libraries for edge devices.")
    parser.add_argument("--version", action="version", version=f"edgecc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("compile", help="compile an ONNX model to a shared library")
    c.add_argument("model", help="ONNX model file")
    c.add_argument("-o", "--output", help="output library (default: MODEL with .so)")
    _add_target_options(c)
    _add_model_options(c)
    _add_remark_options(c)
    c.add_argument("--tuning-logs", metavar="DIR",
                   help="tuning logs to apply (default: the committed tuning_logs/ for the target; '' for none)")
    c.add_argument("--no-default-schedules", action="store_true",
                   help="leave kernels without tuning records unscheduled (for measurements)")
    c.add_argument("--strict-schedules", action="store_true",
                   help="fail (exit 2) when a kernel does not get its intended schedule")
    c.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    _add_quantize_options(c)
    c.set_defaults(func=cmd_compile)

    r = sub.add_parser("run", help="run a compiled library")
    r.add_argument("library", help="library built by `edgecc compile`")
    r.add_argument("--input", action="append", type=_input_arg, default=[], metavar="NAME=FILE.npy",
                   help="an input from a .npy file (repeatable)")
    r.add_argument("--inputs", metavar="FILE.npz", help="all inputs from an .npz file")
    r.add_argument("--output", metavar="FILE.npz", help="save outputs to an .npz file, by output name")
    r.add_argument("--compare-onnxruntime", metavar="MODEL.onnx",
                   help="run MODEL with ONNX Runtime on the same inputs (random unless given) and report errors")
    r.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance for --compare-onnxruntime")
    r.add_argument("--atol", type=float, default=1e-4, help="absolute tolerance for --compare-onnxruntime")
    r.add_argument("--benchmark", type=int, metavar="N", default=0, help="time N runs after warm-up; print median, mean and spread")
    r.add_argument("--profile", type=_positive_int, nargs="?", const=10, metavar="N",
                   help="time every kernel over N runs (default 10); print a table, slowest first")
    r.add_argument("--threads", type=_positive_int, metavar="N",
                   help="run the kernels on N threads (default: every core this process may use)")
    r.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    r.add_argument("--dim", action="append", type=_size_arg, default=[], metavar="NAME=N",
                   help="size of a symbolic dimension for random inputs (repeatable; default: its lowest value)")
    r.set_defaults(func=cmd_run)

    i = sub.add_parser("inspect", help="print a model's edgecc IR, op counts, shapes and parameter size")
    i.add_argument("model", help="ONNX model file")
    _add_target_options(i)
    _add_model_options(i)
    _add_remark_options(i)
    i.add_argument("--fusion", action="store_true", help="list the fusion groups the target's pipeline forms")
    i.add_argument("--partitions", action="store_true",
                   help="NPU targets: list which ops run on the NPU and on the CPU, and why not the NPU")
    i.add_argument("--raw", action="store_true", help="show the IR as imported, before any pass")
    i.add_argument("--full", action="store_true", help="print constants in full")
    i.set_defaults(func=cmd_inspect)

    d = sub.add_parser("runner", help="build the deploy runner for a board and collect what to copy to it")
    _add_target_options(d)
    d.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="folder to fill with edgecc-runner and the TVM runtime libraries")
    d.add_argument("--model", metavar="MODEL.so", help="also copy this library into DIR")
    d.set_defaults(func=cmd_runner)

    _add_tune_parsers(sub)

    t = sub.add_parser("targets", help="list targets and presets")
    t.set_defaults(func=cmd_targets)

    ps = sub.add_parser("passes", help="list passes and the opt-level pipelines")
    ps.set_defaults(func=cmd_passes)

    return parser


def _kinds_arg(text: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in text.split(",") if k.strip())


def _add_tune_parsers(sub) -> None:
    tu = sub.add_parser("tune", help="auto-tune a model's kernels with MetaSchedule (see docs/tuning.md)")
    tu.add_argument("model", help="ONNX model file")
    _add_target_options(tu)
    _add_model_options(tu)
    tu.add_argument("--trials", type=int, default=64, metavar="N", help="measured candidates per kernel (default 64)")
    tu.add_argument("--logs", metavar="DIR",
                    help="tuning log folder; records go to DIR/<target tag>/ (default: the committed tuning_logs/)")
    tu.add_argument("--top", type=int, metavar="N", help="tune only the N kernels with most work per inference")
    tu.add_argument("--kinds", type=_kinds_arg, default=(), metavar="K1,K2",
                    help="tune only kernels of these kinds (conv, depthwise, dense, injective, reduction, ...)")
    tu.add_argument("--skip-kinds", type=_kinds_arg, default=(), metavar="K1,K2",
                    help="do not tune kernels of these kinds")
    tu.add_argument("--time-budget", type=float, metavar="SECONDS", help="start no new kernel after this time")
    tu.add_argument("--trials-per-iter", type=int, default=16, metavar="N", help="candidates per search round")
    tu.add_argument("--population", type=int, default=256, metavar="N", help="evolutionary search population")
    tu.add_argument("--seed", type=int, default=0, help="seed of the search")
    tu.add_argument("--rpc-tracker", metavar="HOST:PORT", help="time candidates on boards behind this TVM RPC tracker")
    tu.add_argument("--rpc-key", metavar="KEY", help="the key the boards registered with the tracker")
    tu.add_argument("--search", type=_kinds_arg, default=("knobs", "metaschedule"), metavar="S1,S2",
                    help="searches per kernel: knobs (edgecc's own schedule rules), metaschedule; default both")
    tu.set_defaults(func=cmd_tune)

    rp = sub.add_parser("report", help="report tuning logs (per-kernel results, tuning curves, two targets) "
                                       "or a library's NPU regions (edgecc report model.so)")
    rp.add_argument("logs", nargs="+", metavar="DIR",
                    help="a target's tuning log folder (tuning_logs/<tag>); two to compare; or one library "
                         "built for an NPU target, to list its NPU regions")
    rp.add_argument("--plot", metavar="FILE.png", help="plot best-so-far latency against trials")
    rp.add_argument("--peak-gflops", type=float, metavar="X", help="the target's peak (default: from the log)")
    rp.set_defaults(func=cmd_report)


# ----- commands ---------------------------------------------------------------------------------
def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{text}'")
    return key.strip().replace("-", "_"), value.strip()


def _target_options(args) -> dict:
    """--cpu, --arch, --precision and every --target-option KEY=VALUE, for `get_target`."""
    options = {name: getattr(args, name, None) for name in ("cpu", "arch", "precision", "accelerator")}
    options.update(getattr(args, "target_option", None) or [])
    return options


def _compile_kwargs(args) -> dict:
    return dict(
        target_options=_target_options(args),
        opt_level=args.opt_level,
        passes=args.passes,
        disabled_passes=args.disable_pass,
        input_shapes=dict(args.input_shape) or None,
        verify_each=args.verify_each,
        time_passes=args.time_passes,
        print_ir_after=args.print_ir_after,
        limits=_limits(args.limit),
    )


def _limits(texts: list[str]):
    """Limits from --limit NAME=VALUE options (None: the defaults)."""
    if not texts:
        return None
    from edgecc.ir.limits import Limits, parse_limit

    return Limits().with_values(dict(parse_limit(text) for text in texts))


def cmd_compile(args) -> int:
    import edgecc

    out = args.output or os.path.splitext(args.model)[0] + ".so"
    kwargs = _compile_kwargs(args)
    kwargs["tuning_logs"] = args.tuning_logs
    if args.no_default_schedules:
        kwargs["schedules"] = "none"
    kwargs["strict_schedules"] = args.strict_schedules
    kwargs["quantize"] = _quantize_options(args)
    with _progress(args.quiet) as progress:
        compiled = edgecc.compile(args.model, args.target, progress=progress, log=progress, **kwargs)
        compiled.export(out)
    for w in compiled.warnings:
        print(f"edgecc: warning: {w}", file=sys.stderr)
    _print_remarks(compiled.remarks, args)
    if compiled.pass_report:
        sys.stderr.write(compiled.pass_report)
    if "quantization" in compiled.graph.meta:
        _report_quantization(compiled.graph.meta["quantization"], args)
    if not args.quiet:
        print(_compile_summary(compiled, out))
        _print_partitions(compiled.graph)
    return 0


def _print_partitions(graph) -> None:
    """For an NPU target: what runs on the NPU and what on the CPU, and why (edgecc.targets.npu)."""
    from edgecc.targets.npu.report import partition_report

    report = partition_report(graph)
    if report:
        print(report)


def _progress(quiet: bool):
    """The progress reporter of a command (none with --quiet), as a context manager."""
    import contextlib

    from edgecc.progress import Progress

    return contextlib.nullcontext() if quiet else Progress(sys.stderr)


def _print_remarks(remarks, args) -> None:
    """Pass remarks on stderr: notes with --remarks, every remark with -v."""
    from edgecc.passes import NOTE

    if not (args.remarks or args.verbose):
        return
    for remark in remarks:
        if args.verbose or remark.kind == NOTE:
            print(f"edgecc: remark: {remark}", file=sys.stderr)


def _compile_summary(compiled, out: str) -> str:
    """What `compile` built: size, kernels and how they were scheduled, stage times, fallbacks."""
    s = compiled.stats
    how = ", ".join(f"{n} {k}" for k, n in sorted(s.scheduled_by.items()))
    times = ", ".join(f"{stage} {secs:.1f}s" for stage, secs in compiled.timings.items())
    lines = [f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB): {s.kernels} kernels ({how}), {s.calls} calls, "
             f"target {compiled.target.tag}; {times}",
             f"{s.scheduled_by.get('tuned', 0)} of {s.kernels} kernels from tuning records"]
    symbolic = _symbolic_dims(compiled.graph)
    if symbolic:
        lines.append(f"symbolic dimensions: {symbolic} (one library for every allowed size)")
    if s.fallbacks:
        lines.append(f"{len(s.fallbacks)} kernels did not get their intended schedule:")
        lines += [f"  {f}" for f in s.fallbacks]  # kernel (kind): intended -> got: reason
    return "\n".join(lines)


def cmd_tune(args) -> int:
    from edgecc.tune.tuner import TuneOptions, format_summary, tune_model

    options = TuneOptions(trials=args.trials, top=args.top, kinds=args.kinds, skip_kinds=args.skip_kinds,
                          time_budget=args.time_budget,
                          trials_per_iter=args.trials_per_iter, population=args.population, seed=args.seed,
                          rpc_tracker=args.rpc_tracker, rpc_key=args.rpc_key, searches=args.search)
    kwargs = _compile_kwargs(args)
    with _progress(quiet=False) as progress:  # task lines go through it: above the live bar on a terminal
        summary = tune_model(args.model, args.target, args.logs, options, out=progress, progress=progress, **kwargs)
    print(format_summary(summary))
    return 0


def cmd_report(args) -> int:
    from edgecc.tune.report import report_logs

    if len(args.logs) == 1 and os.path.isfile(args.logs[0]):  # a library: its NPU regions
        from edgecc.runtime.npu import library_npu_metadata
        from edgecc.targets.npu.report import library_report

        npu = library_npu_metadata(args.logs[0])
        print(library_report({"npu": npu}) if npu else f"{args.logs[0]}: no NPU regions")
        if npu and args.plot:
            from edgecc.targets.npu.report import plot_regions

            plot_regions(npu, args.plot)
            print(f"wrote {args.plot}")
        return 0
    print(report_logs(args.logs, plot=args.plot, peak_gflops=args.peak_gflops))
    return 0


def _read_inputs(args, module) -> dict:
    import numpy as np

    from edgecc.errors import InputError

    inputs = {}
    if args.inputs:
        if not os.path.isfile(args.inputs):
            raise InputError(f"{args.inputs}: no such file")
        try:
            with np.load(args.inputs, allow_pickle=False) as data:
                inputs.update({k: data[k] for k in data.files})
        except (ValueError, OSError) as exc:
            raise InputError(f"{args.inputs}: not a readable .npz file ({exc})") from None
    for name, path in args.input:
        if not os.path.isfile(path):
            raise InputError(f"{path}: no such file (input '{name}')")
        try:
            inputs[name] = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"{path}: not a readable .npy file ({exc})") from None
    if not inputs:
        sizes = dict(args.dim)
        dims = getattr(module, "dims", {})
        if dims:
            from edgecc.runtime.specs import dim_sizes

            sizes = dim_sizes(args.library, dims, sizes)
            if set(sizes) - {name for name, _ in args.dim}:
                print("edgecc: random inputs with " + ", ".join(f"{k}={v}" for k, v in sizes.items())
                      + " (set sizes with --dim NAME=N)", file=sys.stderr)
            return module.random_inputs(args.seed, sizes)
        if args.dim:
            raise InputError(f"{args.library}: --dim given, but the library's input shapes are fixed")
        return module.random_inputs(args.seed)
    if args.dim:
        raise InputError("--dim sizes random inputs; the inputs are given")
    return inputs


def _save_outputs(path: str, outputs: dict) -> None:
    import numpy as np

    from edgecc._files import atomic_output

    with atomic_output(path, suffix=".npz") as tmp:
        np.savez(tmp, **outputs)


def cmd_run(args) -> int:
    from edgecc.runtime import format_kernel_profile, load_any

    module = load_any(args.library, threads=args.threads)
    for flag, given in (("--benchmark", args.benchmark), ("--profile", args.profile)):
        if given:  # before the run: an emulated one may take long, only to be refused
            module.refuse_emulated_timing(flag)
    if module.emulated:
        print(f"edgecc: {module.emulation_note}", file=sys.stderr)
    inputs = _read_inputs(args, module)
    outputs = module.run(inputs)
    if args.output:
        _save_outputs(args.output, outputs)
        print(f"wrote {args.output}: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in outputs.items()))
    status = 0
    if args.compare_onnxruntime:
        status = _compare(args, inputs, outputs)
    if args.benchmark:
        timing = module.benchmark(inputs, repeat=args.benchmark)
        print(f"latency: {timing}, {module.threads} thread{'s' if module.threads != 1 else ''}")
    if args.profile:
        print(format_kernel_profile(module.profile(inputs, repeat=args.profile)), end="")
    if not (args.output or args.compare_onnxruntime or args.benchmark or args.profile):
        for name, value in outputs.items():
            print(f"{name}: {value.dtype}{list(value.shape)} min {value.min():.6g} max {value.max():.6g} "
                  f"mean {value.astype('float64').mean():.6g}")
    return status


def _compare(args, inputs, outputs) -> int:
    """Print each output's errors against ONNX Runtime; EXIT_MISMATCH when one is outside the tolerance."""
    from edgecc.compare import compare_outputs, format_comparison

    expected = _onnxruntime_outputs(args.compare_onnxruntime, inputs)
    records = compare_outputs(outputs, expected, rtol=args.rtol, atol=args.atol)
    print(format_comparison(records, args.rtol, args.atol), end="")
    if not all(r.ok for r in records):
        print("edgecc: outputs differ from ONNX Runtime beyond the tolerance", file=sys.stderr)
        return EXIT_MISMATCH
    return 0


def _onnxruntime_outputs(model: str, inputs) -> dict:
    """ONNX Runtime's outputs of `model` on `inputs`, by output name."""
    from edgecc.errors import InputError

    try:
        import onnxruntime as ort
    except ImportError:
        raise InputError("--compare-onnxruntime needs onnxruntime (pip install onnxruntime)") from None
    if not os.path.isfile(model):
        raise InputError(f"{model}: no such file")
    try:
        sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{model}: ONNX Runtime cannot load it ({str(exc).splitlines()[0]})") from None
    feed = {i.name: inputs[i.name] for i in sess.get_inputs() if i.name in inputs}
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feed)))


def cmd_inspect(args) -> int:
    from edgecc.driver import prepare_model
    from edgecc.ir import print_graph

    kwargs = _compile_kwargs(args)
    prepared = prepare_model(args.model, args.target, raw=args.raw, **kwargs)
    for w in prepared.warnings:
        print(f"edgecc: warning: {w}", file=sys.stderr)
    _print_remarks(prepared.remarks, args)
    if prepared.pass_report:
        sys.stderr.write(prepared.pass_report)
    graph = prepared.graph
    if args.fusion:
        print(_fusion_report(graph))
        return 0
    if args.partitions:
        from edgecc.targets.npu.report import partition_report

        print(partition_report(graph) or f"target '{prepared.target.tag}' has no NPU: nothing is partitioned")
        return 0
    print(print_graph(graph, elide_constants=not args.full), end="")
    print(_summary(graph))
    return 0


def _summary(graph) -> str:
    from edgecc.ir import format_type

    lines = ["", f"// {len(graph.nodes)} nodes, {len(graph.constants)} constants, "
             f"{graph.parameter_bytes() / 1e6:.3f} MB of parameters"]
    names_in = graph.meta.get("input_names") or [v.name for v in graph.inputs]
    names_out = graph.meta.get("output_names") or [v.name for v in graph.outputs]
    for name, v in zip(names_in, graph.inputs):
        lines.append(f"// input  {name}: {format_type(v.type)}")
    for name, v in zip(names_out, graph.outputs):
        lines.append(f"// output {name}: {format_type(v.type)}")
    symbolic = _symbolic_dims(graph)
    if symbolic:
        lines.append(f"// symbolic dimensions: {symbolic}")
    lines.append("// op counts: " + ", ".join(f"{op} {n}" for op, n in graph.op_counts().items()))
    return "\n".join(lines)


def _symbolic_dims(graph) -> str:
    """The graph inputs' size variables with their bounds ("batch 1..8, seq 1 or more"), or ''."""
    names = sorted(set().union(*(v.type.dim_vars for v in graph.inputs))) if graph.inputs else []
    bounds = graph.meta.get("dim_bounds") or {}

    def allowed(var):
        lo, hi = bounds.get(var, (1, None))
        return f"{lo}..{hi}" if hi is not None else f"{lo} or more"

    return ", ".join(f"{var} {allowed(var)}" for var in names)


def _fusion_report(graph) -> str:
    from edgecc.ir import format_type

    lines = []
    groups = [n for n in graph.nodes if n.op == "fused"]
    singles = [n for n in graph.nodes if n.op != "fused"]
    for i, node in enumerate(groups):
        ops = " -> ".join(n.op for n in node.subgraph.nodes)
        lines.append(f"group {i:3d} {node.attrs.get('kind', '?'):<16} {ops}  => "
                     + ", ".join(format_type(o.type) for o in node.outputs))
    lines.append(f"// {len(groups)} fused groups, {len(singles)} unfused nodes"
                 + (": " + ", ".join(sorted({n.op for n in singles})) if singles else ""))
    return "\n".join(lines)


def cmd_runner(args) -> int:
    from edgecc.runtime.deploy import deploy_folder
    from edgecc.runtime.module import library_arch
    from edgecc.errors import TargetError
    from edgecc.targets import get_target

    target = get_target(args.target, **_target_options(args))
    try:
        arch, device = target.deploy_runner()
    except TargetError as exc:
        raise CliError(f"no deploy runner for '{args.target}': {exc}") from None
    if args.model:
        got = library_arch(args.model)
        if got != {"aarch64": "aarch64", "armv7": "arm", "x86_64": "x86_64"}[arch]:
            raise CliError(f"{args.model}: built for {got or 'no known CPU'}, not {arch}")
    out = deploy_folder(arch, args.output, args.model, device=device)
    print(f"wrote {out}: " + ", ".join(sorted(p.name for p in out.iterdir())))
    if device == "cuda":
        from edgecc.targets.cuda_toolchain import CUDA_RUNTIME

        print(f"the board needs the NVIDIA driver (libcuda.so.1) and the CUDA 13 runtime ({CUDA_RUNTIME}) "
              f"on its library path")
    print("copy it to the board and run: ./edgecc-runner model.so --input NAME=FILE.npy --output-dir . --repeat 20")
    return 0


def cmd_targets(args) -> int:
    from edgecc.targets import list_presets, list_targets

    for name, desc in list_targets().items():
        print(f"{name:<16} {desc}")
    print("\npresets (boards):")
    for name, desc in list_presets().items():
        print(f"{name:<16} {desc}")
    return 0


def cmd_passes(args) -> int:
    from edgecc.passes import Fixpoint, all_passes
    from edgecc.passes.pipeline import OPT_LEVELS

    for name, cls in all_passes().items():
        opts = ", ".join(f"{k}={f.default}" for k, f in cls.options().items())
        print(f"{name:<36} {cls.summary()}" + (f"  [{opts}]" if opts else ""))
    print()
    for level, names in OPT_LEVELS.items():
        print(f"-O{level} adds: {', '.join(names) or '(nothing)'}")
    print(f"fixpoint{{max-iterations=N}}(a,b,...) repeats its passes until none changes the graph "
          f"(N: default {Fixpoint.max_iterations})")
    print("targets add their own passes (layout, fusion) at -O2")
    return 0


# ----- entry point ------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("edgecc: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into exit codes
        return _report(exc)


def _user_error(exc: BaseException) -> BaseException | None:
    """The user error behind `exc` (itself, or the cause a failing pass carries); None if internal."""
    from edgecc.errors import EdgeccError
    from edgecc.passes import PassError

    while isinstance(exc, PassError):
        exc = exc.cause
    return exc if isinstance(exc, (EdgeccError, CliError)) else None


def _report(exc: BaseException) -> int:
    user = _user_error(exc)
    if user is not None:
        msg = str(user).strip().splitlines()[0] if str(user).strip() else type(user).__name__
        if user is not exc:
            msg = f"{msg} (in pass '{exc.pass_name}')"
        print(f"edgecc: error: {msg}", file=sys.stderr)
        return EXIT_USER_ERROR
    if os.environ.get("EDGECC_DEBUG"):
        import traceback

        traceback.print_exception(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    print(f"edgecc: internal error: {type(exc).__name__}: {text} (set EDGECC_DEBUG=1 for a traceback)",
          file=sys.stderr)
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
