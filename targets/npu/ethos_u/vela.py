"""Compile a TFLite model for Ethos-U with Vela's Python API and read its estimates.

Vela writes `<name>_vela.tflite` (the model with each NPU-mapped part replaced by a custom
`ethos-u` operator holding the command stream and the weights) and a summary CSV (cycles, SRAM
and DRAM use, MACs) into an output folder; both are read back and the folder removed.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import tempfile

from edgecc.errors import ToolchainError

from ..backend import RegionRejected

__all__ = ["ACCELERATORS", "check_vela", "run_vela", "NPU_CLOCK_HZ"]

#: accelerator configurations Vela 5.2 knows
ACCELERATORS = ("ethos-u55-32", "ethos-u55-64", "ethos-u55-128", "ethos-u55-256", "ethos-u65-256", "ethos-u65-512")
#: the NPU clock Vela's default system configuration assumes (Hz), for times from cycles
NPU_CLOCK_HZ = {"ethos-u55": 500e6, "ethos-u65": 1e9}
_EXTRA = "pip install -e '.[npu]' (ethos-u-vela, ai-edge-litert)"


def check_vela() -> None:
    try:
        import ethosu.vela.vela  # noqa: F401
    except ImportError:
        raise ToolchainError(f"Ethos-U needs Vela: {_EXTRA}") from None


def _summary(folder: str) -> dict:
    path = next((os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".csv")), None)
    if path is None:
        return {}
    with open(path, newline="") as fh:
        row = next(csv.DictReader(fh), {})
    keys = {"cycles_npu": "cycles_npu", "cycles_total": "cycles_total", "sram_memory_used": "sram_kib",
            "off_chip_flash_memory_used": "flash_kib", "dram_memory_used": "dram_kib", "nn_macs": "macs",
            "inference_time": "time_s", "inferences_per_second": "inferences_per_s"}
    return {out: float(row[k]) for k, out in keys.items() if row.get(k) not in (None, "")}


def _cpu_ops(model: bytes) -> list[str]:
    """Operators Vela left outside its `ethos-u` custom ops (they would run on the CPU)."""
    from ethosu.vela.tflite.BuiltinOperator import BuiltinOperator
    from ethosu.vela.tflite.Model import Model

    names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    m = Model.GetRootAs(model, 0)
    codes = [m.OperatorCodes(i) for i in range(m.OperatorCodesLength())]
    sg = m.Subgraphs(0)
    left = []
    for i in range(sg.OperatorsLength()):
        code = codes[sg.Operators(i).OpcodeIndex()]
        custom = code.CustomCode()
        if not (custom and custom.decode() == "ethos-u"):
            left.append(names.get(code.BuiltinCode(), str(code.BuiltinCode())))
    return left


def run_vela(model: bytes, name: str, accelerator: str) -> tuple[bytes, dict]:
    """(Vela's output model, its estimates); RegionRejected when Vela fails or leaves an op on the CPU."""
    from ethosu.vela import vela

    with tempfile.TemporaryDirectory(prefix="edgecc-vela-") as folder:
        src = os.path.join(folder, f"{name}.tflite")
        with open(src, "wb") as fh:
            fh.write(model)
        out_dir = os.path.join(folder, "out")
        log = io.StringIO()
        try:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                rc = vela.main([src, "--accelerator-config", accelerator, "--output-dir", out_dir])
        except (Exception, SystemExit) as exc:  # Vela reports refusals by raising or exiting
            raise RegionRejected(f"Vela refused the region: {str(exc).strip().splitlines()[-1] if str(exc) else type(exc).__name__}") from None
        out = os.path.join(out_dir, f"{name}_vela.tflite")
        if rc not in (0, None) or not os.path.exists(out):
            last = (log.getvalue().strip().splitlines() or ["no output"])[-1]
            raise RegionRejected(f"Vela failed: {last}")
        with open(out, "rb") as fh:
            compiled = fh.read()
        estimates = _summary(out_dir)
    left = _cpu_ops(compiled)
    if left:
        raise RegionRejected(f"Vela would run {', '.join(left)} on the CPU")
    return compiled, estimates
