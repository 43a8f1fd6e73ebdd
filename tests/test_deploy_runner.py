"""The deploy runner (edgecc/runtime/deploy/runner.cc) under qemu-aarch64 with a library whose
input has a symbolic dimension: the input's file gives its shape, the metadata's bounds are
checked in one line, and the emulated run matches ONNX Runtime."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import edgecc
from edgecc.runtime import load_any
from edgecc.runtime.deploy import build_runner
from ort_compare import run_ort


def batch_conv(path) -> str:
    """conv + relu on an input of shape (batch, 3, 8, 8)."""
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 8, 8])],
        [onnx.numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return str(path)


@pytest.fixture(scope="module")
def symbolic_library(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dims")
    model = batch_conv(folder / "conv.onnx")
    edgecc.compile(model, "rpi4", input_shapes={"x": [(1, 4), 3, 8, 8]}).export(folder / "conv.so")
    return model, str(folder / "conv.so")


def test_emulated_library_with_a_symbolic_batch_matches_onnxruntime(symbolic_library):
    model, library = symbolic_library
    module = load_any(library)
    assert module.inputs[0]["shape"] == ["batch", 3, 8, 8]
    for batch in (1, 3):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 8, 8)).astype(np.float32)
        np.testing.assert_allclose(module.run({"x": x})["y"], run_ort(onnx.load(model), {"x": x})[0],
                                   rtol=1e-4, atol=1e-4)


def test_runner_checks_symbolic_dimensions_in_one_line(symbolic_library, tmp_path):
    _, library = symbolic_library
    runner = build_runner("aarch64")
    qemu = [shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static"), "-L", "/usr/aarch64-linux-gnu"]

    def run(*args):
        return subprocess.run([*qemu, str(runner), library, *args], capture_output=True, text=True,
                              env={"LD_LIBRARY_PATH": str(runner.parent)})

    for name, shape in (("big", (5, 3, 8, 8)), ("wide", (2, 3, 9, 8))):
        np.save(tmp_path / f"{name}.npy", np.zeros(shape, np.float32))
    big, wide, missing = run("--input", str(tmp_path / "big.npy")), run("--input", str(tmp_path / "wide.npy")), run()
    assert (big.returncode, big.stderr) == (
        2, "edgecc-runner: error: input 'x' dimension 0 (batch) is 5, the library allows 1..4\n")
    assert (wide.returncode, wide.stderr) == (
        2, f"edgecc-runner: error: {tmp_path / 'wide.npy'}: shape does not match input 'x' (batch, 3, 8, 8)\n")
    assert (missing.returncode, missing.stderr) == (
        2, "edgecc-runner: error: input 'x' has symbolic dimensions (batch, 3, 8, 8): give it with --input\n")
