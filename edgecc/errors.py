"""Errors a user can cause. Each carries one line naming what is wrong and where.

The CLI prints `edgecc: error: <message>` and exits 2 for these; anything else is an internal
error (exit 1).
"""

from __future__ import annotations

__all__ = [
    "EdgeccError", "FrontendError", "UnsupportedOpError", "TargetError", "InputError",
    "ToolchainError", "TuningLogError", "CalibrationError", "LoweringError", "ScheduleError",
    "ModelError", "LimitError",
]


class EdgeccError(Exception):
    """Base of user-facing errors."""


class FrontendError(EdgeccError):
    """The model file is unreadable or malformed."""


class ModelError(FrontendError):
    """The model reads, but a node breaks its op's definition (an attribute of the wrong type or
    out of range, an input of the wrong shape or dtype)."""


class LimitError(EdgeccError):
    """The model asks for more than a compile limit allows (outputs, tensor bytes, unrolled
    iterations); the limit's name says which `--limit NAME=VALUE` raises it."""


class UnsupportedOpError(FrontendError):
    """The model uses an op (or an op version or attribute value) edgecc does not convert."""

    def __init__(self, op_type: str, node_name: str, opset: int, version: int | None = None,
                 detail: str | None = None):
        where = f"node '{node_name}'" if node_name else "an unnamed node"
        ver = f" (op version {version})" if version else ""
        extra = f": {detail}" if detail else ""
        super().__init__(f"unsupported op '{op_type}'{ver} at {where}, opset {opset}{extra}")
        self.op_type = op_type
        self.node_name = node_name
        self.opset = opset


class TargetError(EdgeccError):
    """Unknown target, preset or target option."""


class InputError(EdgeccError):
    """Run-time inputs do not match the model (names, shapes, dtypes) or cannot be read."""


class ToolchainError(EdgeccError):
    """A compiler, linker or emulator the target needs is missing or failed."""


class TuningLogError(EdgeccError):
    """A tuning log is corrupt, truncated, or of another format."""


class CalibrationError(EdgeccError):
    """Calibration data for quantization is missing or does not fit the model."""


class LoweringError(EdgeccError):
    """An op has no lowering (or cannot lower with these attributes)."""


class ScheduleError(EdgeccError):
    """Kernels did not get their intended schedule and the compile asked for strict schedules."""
