"""The benchmark models (full size, seeded weights) compiled with fusion and layout transforms,
compared with ONNX Runtime. Exporting them needs torch; CI installs it."""

import os
import sys

import numpy as np
import onnx
import pytest
from ort_compare import run_ort

import edgecc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import model_zoo  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenetv2", "bert_encoder"])
def test_benchmark_model_matches_onnxruntime(name, tmp_path):
    path = model_zoo.export(name, str(tmp_path / f"{name}.onnx"))
    compiled = edgecc.compile(path, "host")
    ops = {op for n in compiled.graph.nodes for op in ([n.op] + [m.op for m in (n.subgraph.nodes if n.subgraph else [])])}
    assert "fused" in compiled.graph.op_counts()
    if name != "bert_encoder":
        assert "layout_transform" in ops  # convolutions run in the blocked layout
    else:
        assert "dense" in ops  # matmuls with constant weights use packed weights
    rng = np.random.default_rng(0)
    spec = compiled.load().inputs[0]
    if spec["dtype"] == "int64":
        x = rng.integers(0, 1000, spec["shape"]).astype(np.int64)
    else:
        x = rng.standard_normal(spec["shape"]).astype(np.float32)
    got = compiled.load().run({spec["name"]: x})
    expected = run_ort(onnx.load(path), {spec["name"]: x})
    for g, e in zip(got.values(), expected):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)
