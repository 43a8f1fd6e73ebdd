"""What a partitioned graph runs where: per NPU region its ops, MACs and the compiler's estimates;
the ops left on the CPU with the reason; "N of M ops on the NPU" and the share of the model's
multiply-accumulates (convolutions and matrix products) on the NPU.

Reads what `partition-npu` left in `graph.meta` (regions compiled, ops kept on the CPU) or the
"npu" entry of a built library's metadata (`library_report`).
"""

from __future__ import annotations

__all__ = ["partition_report", "library_report", "plot_regions"]

_CONVERSIONS = ("quantize", "dequantize")


def _estimate_line(est: dict) -> str:
    parts = []
    if "cycles_npu" in est:
        parts.append(f"{est['cycles_npu']:.0f} NPU cycles")
    if "npu_ms" in est:
        parts.append(f"{est['npu_ms'] * 1e3:.1f} us")
    if "sram_kib" in est:
        parts.append(f"SRAM {est['sram_kib']:.1f} KiB")
    if "dram_kib" in est:
        parts.append(f"DRAM {est['dram_kib']:.1f} KiB")
    if "flash_kib" in est and est["flash_kib"]:
        parts.append(f"flash {est['flash_kib']:.1f} KiB")
    return ", ".join(parts) + (f" ({est['accelerator']}, Vela)" if "accelerator" in est else "")


def _format(regions: list[dict], cpu_ops: list[tuple[str, str, str]], cpu_macs: int = 0) -> str:
    lines = []
    for r in regions:
        lines.append(f"{r['name']} on {r['backend']}: {len(r['ops'])} ops ({', '.join(r['ops'])}), "
                     f"{r['macs']:,} MACs; {_estimate_line(r['estimates'])}")
    if cpu_ops:
        lines.append(f"on the CPU: {len(cpu_ops)} ops")
        lines += [f"  {name} ({op}): {reason}" for name, op, reason in cpu_ops]
    npu = sum(len(r["ops"]) for r in regions)
    total = npu + len(cpu_ops)
    conversions = sum(op in _CONVERSIONS for _, op, _ in cpu_ops)
    npu_macs = sum(r["macs"] for r in regions)
    summary = f"{npu} of {total} ops on the NPU"
    if conversions:
        summary += f" ({conversions} of the CPU's are quantize/dequantize)"
    if npu_macs or cpu_macs:
        summary += f"; {npu_macs:,} of {npu_macs + cpu_macs:,} MACs on the NPU ({npu_macs / (npu_macs + cpu_macs):.1%})"
    lines.append(summary)
    return "\n".join(lines)


def partition_report(graph) -> str:
    """The report of a graph after `partition-npu` ('' when the pass did not run)."""
    if "npu_cpu_ops" not in graph.meta:
        return ""
    compiled = graph.meta.get("npu_regions", {})
    regions = [{"name": n.attrs["region"], "backend": n.attrs["backend"], "ops": compiled[n.attrs["region"]].ops,
                "macs": compiled[n.attrs["region"]].macs, "estimates": compiled[n.attrs["region"]].estimates}
               for n in graph.nodes if n.op == "npu_region"]
    return _format(regions, [tuple(x) for x in graph.meta["npu_cpu_ops"]], graph.meta.get("npu_cpu_macs", 0))


def library_report(metadata: dict) -> str:
    """The report of a built library, from its metadata ('' for a library without NPU regions)."""
    npu = metadata.get("npu")
    if not npu:
        return ""
    return _format(npu["regions"], [tuple(x) for x in npu.get("cpu_ops", [])], npu.get("cpu_macs", 0))


def plot_regions(npu: dict, path: str) -> None:
    """A PNG of a library's NPU regions: the NPU's estimated time per region, and the MACs on the
    NPU against those left on the CPU. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from edgecc._files import atomic_output

    regions = npu["regions"]
    names = [r["name"] for r in regions]
    times = [r["estimates"].get("npu_ms", 0.0) * 1e3 for r in regions]
    npu_macs, cpu_macs = sum(r["macs"] for r in regions), npu.get("cpu_macs", 0)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [3, 1]})
    left.bar(names, times)
    for x, (t, r) in enumerate(zip(times, regions)):
        left.annotate(f"{len(r['ops'])} ops\n{r['macs']:,} MACs", (x, t), ha="center", va="bottom", fontsize=7)
    accelerator = regions[0]["estimates"].get("accelerator", npu["backend"]) if regions else npu["backend"]
    left.set_ylim(0, max(times, default=0) * 1.25 or 1)  # room for the labels
    left.set_ylabel("estimated NPU time (us)")
    left.set_title(f"NPU regions on {accelerator} (Vela's estimate)")
    right.bar(["NPU", "CPU"], [npu_macs, cpu_macs], color=["tab:green", "tab:gray"])
    right.set_ylabel("multiply-accumulates")
    total = npu_macs + cpu_macs
    right.set_title(f"{npu_macs / total:.1%} of MACs on the NPU" if total else "no MACs")
    fig.tight_layout()
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
