"""Per-kernel times of a loaded library, measured inside whole-model runs.

The Relax VM calls an instrument before and after every call it makes; timing the calls of each
kernel (CPU kernels run synchronously) gives the time the model spends in it. The library's
metadata (`kernels`: name, kind, schedule, FLOPs, calls) says what each kernel is. The instrument
itself costs a few microseconds per call, which shows on tiny kernels only. A kernel the VM never
calls (TVM's build turns a kernel that only reshapes into a view) has no record.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from dataclasses import dataclass

__all__ = ["KernelProfile", "profile_vm", "format_kernel_profile"]


@dataclass
class KernelProfile:
    """One kernel's share of an inference."""

    name: str
    kind: str
    scheduled_by: str
    calls: int  # calls per inference
    ms: float  # time per inference, all calls together (median over the runs)
    share: float  # fraction of the time of all kernels
    gflops: float | None  # GFLOP/s over its calls; None when its FLOPs are not counted


def profile_vm(vm, args, kernels: list[dict], repeat: int = 10) -> list[KernelProfile]:
    """Run `vm["main"](*args)` once to warm up, then `repeat` times with every kernel call timed."""
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")
    known = {k["name"]: k for k in kernels}
    runs: list[dict[str, float]] = []
    calls: dict[str, int] = {}
    started: dict[str, float] = {}

    def instrument(func, symbol, before_run, ret_value, *call_args):
        symbol = str(symbol)
        if symbol in known:
            if before_run:
                started[symbol] = time.perf_counter()
            else:
                runs[-1][symbol] += time.perf_counter() - started.pop(symbol)
                calls[symbol] = calls.get(symbol, 0) + 1
        return 0  # VMInstrumentReturnKind.NO_OP

    main = vm["main"]
    main(*args)
    vm.set_instrument(instrument)
    for _ in range(repeat):
        runs.append(defaultdict(float))
        main(*args)
    return _records(known, runs, {name: n // repeat for name, n in calls.items()})


def _records(known: dict[str, dict], runs: list[dict[str, float]], calls: dict[str, int]) -> list[KernelProfile]:
    seconds = {name: statistics.median(run.get(name, 0.0) for run in runs) for name in calls}
    total = sum(seconds.values()) or 1e-12
    records = []
    for name, secs in seconds.items():
        meta = known[name]
        flops = meta.get("flops") or 0.0  # text for a kernel with symbolic extents: not counted
        flops = float(flops) * calls[name] if isinstance(flops, (int, float)) else 0.0
        records.append(KernelProfile(name, meta.get("kind", "?"), meta.get("scheduled_by", "?"), calls[name],
                                     secs * 1e3, secs / total, flops / secs / 1e9 if flops and secs else None))
    return sorted(records, key=lambda r: -r.ms)


def format_kernel_profile(records: list[KernelProfile]) -> str:
    """A table of the records, slowest first, with the sum of the kernel times."""
    lines = [f"{'kernel':<28}{'kind':<16}{'calls':>6}{'ms':>10}{'share':>8}{'GFLOP/s':>9}  schedule"]
    for r in records:
        gflops = f"{r.gflops:.1f}" if r.gflops else "-"
        lines.append(f"{r.name:<28}{r.kind:<16}{r.calls:>6}{r.ms:>10.3f}{r.share:>8.1%}{gflops:>9}  {r.scheduled_by}")
    lines.append(f"{'sum of kernel times':<50}{sum(r.ms for r in records):>10.3f} ms")
    return "\n".join(lines) + "\n"
