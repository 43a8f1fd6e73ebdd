"""What `edgecc compile --quantize int8` can be told."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgecc.errors import CalibrationError

__all__ = ["QuantizeOptions"]


@dataclass
class QuantizeOptions:
    """Post-training quantization settings.

    calibration: a .npz file, a folder of .npy/.npz files, or in-memory samples (see
      `edgecc.quant.data`).
    method: how activation ranges are chosen from the calibration run (minmax, percentile,
      entropy); `percentile` is used by the percentile method.
    activation_dtype / symmetric: per-tensor activation scheme (int8 or uint8).
    per_channel: weights per output channel (symmetric int8) or per tensor.
    skip: layer (node) names kept in float32.
    keep_fp32: keep this many of the most sensitive layers in float32.
    accuracy_budget: keep the most sensitive layers in float32 until the quantized model's
      error against the float model on the calibration data is at most this much; the error
      is `budget_metric`: "error" (relative L2 error of the outputs) or "top1" (fraction of
      samples whose top-1 class differs).
    sensitivity: measure every layer's sensitivity even when nothing above needs it (for the
      report).
    max_samples: use at most this many calibration samples; eval_samples of them (the first)
      for sensitivity and budget checks.
    weight_bits: 8, or 7 (weights within [-63, 63]), or None (the default): chosen for the
      target by `for_target`, 7 where the target multiplies 7-bit weights with a wider dot
      product (x86 AVX2 without VNNI: vpmaddubsw, four products per lane, instead of pairs),
      else 8; 8 when no target is known.
    quantize_outputs: also give the graph outputs that quantized layers produce int8 results
      (the compile driver sets it for targets with an NPU backend, which run whole int8 graphs).
    """

    calibration: Any = None
    dtype: str = "int8"
    method: str = "minmax"
    percentile: float = 99.99
    activation_dtype: str = "int8"
    symmetric: bool = False
    per_channel: bool = True
    skip: Sequence[str] = ()
    keep_fp32: int = 0
    accuracy_budget: float | None = None
    budget_metric: str = "error"
    sensitivity: bool = False
    max_samples: int | None = None
    eval_samples: int = 64
    weight_bits: int | None = None
    quantize_outputs: bool = False

    def check(self) -> None:
        if self.dtype != "int8":
            raise CalibrationError(f"quantization to {self.dtype} is not supported (use int8)")
        if self.calibration is None:
            raise CalibrationError("quantization needs calibration data (--calibration DATA)")
        if self.activation_dtype not in ("int8", "uint8"):
            raise CalibrationError(f"activation type must be int8 or uint8, got {self.activation_dtype}")
        if self.weight_bits not in (None, 7, 8):
            raise CalibrationError(f"weight bits must be 7 or 8, got {self.weight_bits}")
        if self.budget_metric not in ("error", "top1"):
            raise CalibrationError(f"budget metric must be 'error' or 'top1', got {self.budget_metric}")
        if self.keep_fp32 < 0:
            raise CalibrationError("--keep-fp32 must not be negative")
        if self.accuracy_budget is not None and self.accuracy_budget < 0:
            raise CalibrationError("the accuracy budget must not be negative")

    def for_target(self, target) -> QuantizeOptions:
        """These settings for `target`: `weight_bits` chosen from its int8 dot products when not
        given; a target with an NPU backend also gets what it runs in int8 quantized
        (`quantize_outputs`)."""
        from dataclasses import replace

        bits = self.weight_bits
        if bits is None:
            bits = 7 if target.int8_narrow_dot_channels > target.int8_dot_channels else 8
        outputs = self.quantize_outputs or target.npu_backend is not None
        return replace(self, weight_bits=bits, quantize_outputs=outputs)

    @property
    def resolved_weight_bits(self) -> int:
        """`weight_bits`, 8 when it was left to a target and none chose it."""
        return 8 if self.weight_bits is None else self.weight_bits

    @property
    def needs_sensitivity(self) -> bool:
        return self.sensitivity or self.keep_fp32 > 0 or self.accuracy_budget is not None

    def quantize(self, graph, opt_level: int = 2, disabled_passes=(), progress=None) -> dict:
        """Quantize `graph` in place with these settings (`edgecc.quant.flow.quantize_graph`);
        the driver's quantization step calls this, so the driver never imports the workflow."""
        from .flow import quantize_graph

        return quantize_graph(graph, self, opt_level, disabled_passes, progress)
