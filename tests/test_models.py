"""Whole models exported from PyTorch, compiled end to end and compared with ONNX Runtime."""

import os

import numpy as np
import onnx
import pytest
from ort_compare import run_ort

import edgecc

DATA = os.path.join(os.path.dirname(__file__), "data")


def _compare(name, inputs, opt_level=2, input_shapes=None, tmp_path=None):
    path = os.path.join(DATA, f"{name}.onnx")
    compiled = edgecc.compile(path, "host", opt_level=opt_level, input_shapes=input_shapes)
    lib = tmp_path / f"{name}.so"
    compiled.export(lib)
    got = edgecc.runtime.load(lib).run(inputs)
    expected = run_ort(onnx.load(path), inputs)
    for (out_name, g), e in zip(got.items(), expected):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4, err_msg=f"{name}: {out_name}")
    return compiled


@pytest.mark.parametrize("opt_level", [0, 2])
def test_resnet_style_cnn(opt_level, tmp_path):
    x = np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float32)
    compiled = _compare("resnet_tiny", {"input": x}, opt_level, tmp_path=tmp_path)
    if opt_level >= 2:
        assert "batch_norm" not in compiled.graph.op_counts()


@pytest.mark.parametrize("opt_level", [0, 2])
def test_mobilenetv2_style_cnn(opt_level, tmp_path):
    x = np.random.default_rng(2).standard_normal((1, 3, 64, 64)).astype(np.float32)
    _compare("mobilenetv2_tiny", {"input": x}, opt_level, tmp_path=tmp_path)


@pytest.mark.parametrize("opt_level", [0, 2])
def test_transformer_encoder_from_pytorch(opt_level, tmp_path):
    ids = np.random.default_rng(3).integers(0, 100, (1, 16)).astype(np.int64)
    compiled = _compare("transformer_tiny", {"input_ids": ids}, opt_level, {"input_ids": (1, 16)}, tmp_path)
    if opt_level >= 2:
        assert "shape" not in compiled.graph.op_counts()


def test_library_loads_with_tvm_runtime_alone(tmp_path):
    """The deployable .so needs only TVM's runtime: no edgecc import in the loading process."""
    import subprocess
    import sys

    lib = tmp_path / "m.so"
    edgecc.compile(os.path.join(DATA, "mobilenetv2_tiny.onnx")).export(lib)
    x = np.random.default_rng(4).standard_normal((1, 3, 64, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np, tvm\n"
        "from tvm import relax\n"
        f"vm = relax.VirtualMachine(tvm.runtime.load_module({str(lib)!r}), tvm.cpu())\n"
        f"out = vm['main'](tvm.runtime.tensor(np.load({str(tmp_path / 'x.npy')!r})))\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, out.numpy())\n"
        "assert 'edgecc' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path)
    expected = run_ort(onnx.load(os.path.join(DATA, "mobilenetv2_tiny.onnx")), {"input": x})[0]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-4, atol=1e-4)
