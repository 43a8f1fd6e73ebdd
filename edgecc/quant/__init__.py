"""Post-training quantization: calibration data, range collection, quantization schemes, per-layer
sensitivity, and the driver step that turns a float model into one of integer kernels.

    edgecc.compile("model.onnx", "host", quantize=QuantizeOptions(calibration="samples.npz"))

The steps: the float graph is cleaned up (batch norm folded), an instrumented copy of it is
compiled with edgecc and run on the calibration samples to collect activation ranges
(`calibrate`), the ranges become quantization parameters on the graph's values (`annotate`),
and the `quantize` pass inserts quantize/dequantize pairs, which `lower-qdq` rewrites to integer
kernels during the normal pipeline.
"""

from __future__ import annotations

__all__ = ["QuantizeOptions", "quantize_graph", "load_calibration", "calibrate", "annotate",
           "layer_sensitivity"]

_LAZY = {
    "QuantizeOptions": ("options", "QuantizeOptions"),
    "quantize_graph": ("flow", "quantize_graph"),
    "load_calibration": ("data", "load_calibration"),
    "calibrate": ("calibrate", "calibrate"),
    "annotate": ("scheme", "annotate"),
    "layer_sensitivity": ("sensitivity", "layer_sensitivity"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
