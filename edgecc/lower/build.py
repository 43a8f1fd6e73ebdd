"""Build a lowered graph with `tvm.compile` and export the shared library atomically."""

from __future__ import annotations

import os
import tempfile

from edgecc.ir import Graph

from .relax_module import LoweringStats, build_relax_module

__all__ = ["compile_graph", "export_atomic"]


def compile_graph(graph: Graph, target, schedule=None, metadata: dict | None = None, progress=None):
    """Graph -> (tvm Executable, LoweringStats) for `target` (an edgecc Target)."""
    import tvm
    from tvm.relax.pipeline import default_build_pipeline

    mod, stats = build_relax_module(graph, schedule, metadata, progress)
    tvm_target = target.tvm_target()
    with tvm_target:
        executable = tvm.compile(mod, target=tvm_target, relax_pipeline=default_build_pipeline())
    return executable, stats


def export_atomic(executable, target, path: str | os.PathLike) -> None:
    """Write the library to a temporary file beside `path`, then rename it into place."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".edgecc-", suffix=".so", dir=directory)
    os.close(fd)
    try:
        target.export_library(executable, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
