"""edgecc: an ahead-of-time compiler that makes ONNX models run fast on edge devices.

    import edgecc
    lib = edgecc.compile("model.onnx", target="host")
    lib.export("model.so")
    outputs = edgecc.runtime.load("model.so").run({"input": x})

TVM is imported only when a command needs it.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"
__all__ = ["compile", "load_model", "runtime", "ir", "passes", "targets", "EdgeccError", "__version__"]

from .errors import EdgeccError


def __getattr__(name: str):
    if name in ("compile", "load_model", "CompiledModel", "CompileOptions"):
        from . import driver

        return getattr(driver, name)
    if name in ("runtime", "ir", "passes", "targets", "frontend", "lower", "tune"):
        return importlib.import_module(f"edgecc.{name}")
    raise AttributeError(f"module 'edgecc' has no attribute {name!r}")
