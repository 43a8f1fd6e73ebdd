"""Models that read but mean something impossible, limits on what a model may ask for, and
`edgecc run` fed the wrong inputs or the wrong library: exit 2 with one line, never a crash."""

import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from ort_compare import make_model, run_ort

from edgecc.driver import prepare
from edgecc.errors import LimitError, ModelError
from edgecc.ir.limits import LIMIT_HELP, Limits, parse_limit

MEMORY_CAP_KB = 4 << 20


def edgecc(*args):
    """The CLI under a 4 GiB address-space cap, so a regression fails the test, not the machine."""
    cmd = ["/bin/sh", "-c", f'ulimit -v {MEMORY_CAP_KB}; exec "$0" -m edgecc "$@"', sys.executable, *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line_error(rc, err, *patterns):
    assert rc == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("edgecc: error: "), lines[0]
    for pattern in patterns:
        assert pattern in lines[0], lines[0]


def with_attribute(model: onnx.ModelProto, name: str, value) -> onnx.ModelProto:
    """The model with its first node's attribute `name` set to `value` (after ONNX's shape
    inference, which does not survive every hostile value itself)."""
    attr = next(a for a in model.graph.node[0].attribute if a.name == name)
    attr.CopyFrom(helper.make_attribute(name, value))
    return model


def split_model(num_outputs: int) -> onnx.ModelProto:
    node = helper.make_node("Split", ["x"], ["a", "b"], axis=0, num_outputs=2)
    model = make_model([node], {"x": np.zeros(6, np.float32)}, ["a", "b"], opset=18)
    return with_attribute(model, "num_outputs", num_outputs)


def reverse_sequence_model(batch_axis: int) -> onnx.ModelProto:
    node = helper.make_node("ReverseSequence", ["x", "lens"], ["y"], batch_axis=1, time_axis=0)
    model = make_model([node], {"x": np.zeros((4, 4), np.float32), "lens": np.array([4, 3, 2, 1], np.int64)},
                       ["y"], opset=18)
    return with_attribute(model, "batch_axis", batch_axis)


@pytest.mark.parametrize("model, patterns", [
    (split_model(2147483647), ["'Split'", "num_outputs=2147483647", "at most 4096", "--limit outputs="]),
    (reverse_sequence_model(-7), ["(ReverseSequence)", "batch_axis=-7", "-2..1"]),
], ids=["split-num-outputs", "reverse-sequence-batch-axis"])
def test_hostile_attribute_is_one_line_and_leaves_no_output(model, patterns, tmp_path):
    onnx.save(model, tmp_path / "m.onnx")
    rc, out, err = edgecc("compile", tmp_path / "m.onnx", "-o", tmp_path / "m.so")
    assert_one_line_error(rc, err, *[p.strip("'") for p in patterns])
    assert sorted(os.listdir(tmp_path)) == ["m.onnx"]


def test_checks_are_errors_of_the_model():
    with pytest.raises(ModelError, match=r"node 'y' \(ReverseSequence\): attribute batch_axis=-7 must be in -2..1"):
        prepare(reverse_sequence_model(-7))
    with pytest.raises(ModelError, match="num_outputs=3 but the node has 2 outputs"):
        prepare(split_model(3))
    pool = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[1, 1])
    model = with_attribute(make_model([pool], {"x": np.zeros((1, 1, 4, 4), np.float32)}, ["y"]), "kernel_shape", [2])
    with pytest.raises(ModelError, match=r"kernel_shape=\[2\] needs 2 values \(one per spatial axis of input 0\)"):
        prepare(model)


def test_attribute_of_the_wrong_type_or_missing_is_named():
    node = helper.make_node("Concat", ["x", "x"], ["y"], axis=1)
    model = with_attribute(make_model([node], {"x": np.zeros((2, 2), np.float32)}, ["y"]), "axis", 1.5)
    with pytest.raises(ModelError, match="attribute 'axis' is FLOAT, the op declares INT"):
        prepare(model)
    del model.graph.node[0].attribute[:]
    with pytest.raises(ModelError, match="required attribute 'axis' is missing"):
        prepare(model)


def test_valid_models_still_compile_and_match_onnxruntime():
    split = make_model([helper.make_node("Split", ["x"], ["a", "b"], axis=-1, num_outputs=2)],
                       {"x": np.zeros((2, 6), np.float32)}, ["a", "b"], opset=18)
    graph, *_ = prepare(split)
    assert [v.shape for v in graph.outputs] == [(2, 3), (2, 3)]
    reverse = reverse_sequence_model(1)
    compiled_ok = prepare(reverse)[0]
    assert compiled_ok.outputs[0].shape == (4, 4)
    import edgecc

    module = edgecc.compile(reverse).load()
    x = np.arange(16, dtype=np.float32).reshape(4, 4)
    lens = np.array([4, 3, 2, 1], np.int64)
    got = module.run({"x": x, "lens": lens})
    got = got[0] if isinstance(got, (list, tuple)) else next(iter(got.values()))
    np.testing.assert_array_equal(got, run_ort(reverse, {"x": x, "lens": lens})[0])


def test_tensor_bytes_limit_and_raising_it():
    big = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": np.zeros((1, 1), np.float32)}, ["y"])
    dims = big.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_value, dims[1].dim_value = 1 << 16, 1 << 15  # 8 GiB of float32
    with pytest.raises(LimitError, match=r"8589934592 bytes exceeds the limit of 1073741824 bytes .*tensor_bytes=N"):
        prepare(big)
    graph, *_ = prepare(big, limits=Limits(tensor_bytes=16 << 30))  # only types: nothing of that size is made
    assert graph.outputs[0].type.nbytes == 8 << 30


def test_unroll_limit():
    body = helper.make_graph([helper.make_node("Add", ["s", "one"], ["s_out"]),
                              helper.make_node("Identity", ["cond"], ["cond_out"])], "body",
                             [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                              helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
                              helper.make_tensor_value_info("s", TensorProto.FLOAT, [1])],
                             [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
                              helper.make_tensor_value_info("s_out", TensorProto.FLOAT, [1])],
                             [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])])
    loop = helper.make_node("Loop", ["trip", "", "s0"], ["s"], body=body)
    model = make_model([loop], {"s0": np.zeros(1, np.float32)}, ["s"],
                       initializers={"trip": np.array(100, np.int64)})
    with pytest.raises(LimitError, match=r"iterations: 51 exceeds the limit of 50 iterations .*--limit unroll=N"):
        prepare(model, limits=Limits(unroll=50))
    graph, *_ = prepare(model, limits=Limits(unroll=100))
    assert graph.outputs[0].shape == (1,)


def test_limit_option_parsing():
    assert parse_limit("tensor_bytes=2g") == ("tensor_bytes", 2 << 30)
    assert parse_limit("fold-work=1000") == ("fold_work", 1000)
    for bad in ("outputs", "outputs=-1", "outputs=x", "colours=3"):
        with pytest.raises(LimitError):
            parse_limit(bad)
    with pytest.raises(LimitError, match="must be a positive integer"):
        Limits().with_values({"outputs": 0})


def test_limit_flag_on_the_command_line(tmp_path):
    onnx.save(split_model(2147483647), tmp_path / "m.onnx")
    rc, _, err = edgecc("compile", tmp_path / "m.onnx", "-o", tmp_path / "m.so", "--limit", "colours=3")
    assert_one_line_error(rc, err, "unknown limit 'colours'")
    rc, _, err = edgecc("compile", tmp_path / "m.onnx", "-o", tmp_path / "m.so", "--limit", "outputs=4g")
    assert_one_line_error(rc, err, "num_outputs=2147483647 but the node has 2 outputs")
    rc, out, _ = edgecc("compile", "--help")
    assert all(name in " ".join(out.split()) for name in LIMIT_HELP)


# ----- edgecc run with the wrong inputs or the wrong library -----------------------------------------
@pytest.fixture(scope="module")
def add_library(tmp_path_factory):
    folder = tmp_path_factory.mktemp("add")
    model = make_model([helper.make_node("Add", ["a", "b"], ["y"])],
                       {"a": np.zeros((2, 3), np.float32), "b": np.zeros((2, 3), np.float32)}, ["y"])
    onnx.save(model, folder / "add.onnx")
    rc, _, err = edgecc("compile", folder / "add.onnx", "-o", folder / "add.so", "-q")
    assert rc == 0, err
    return folder


def _save_npy(folder, array):
    path = folder / f"in{len(os.listdir(folder))}.npy"
    np.save(path, array)
    return path


def _save(folder, **arrays):
    path = folder / f"in{len(os.listdir(folder))}.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("arrays, pattern", [
    ({"a": np.zeros((2, 3), np.complex64), "b": np.zeros((2, 3), np.float32)}, "'a'"),
    ({"a": np.zeros((3, 2), np.float32), "b": np.zeros((2, 3), np.float32)}, "'a'"),
    ({"a": np.zeros((2, 3), np.float32)}, "'b'"),
    ({"a": np.zeros((2, 3), np.float32), "b": np.zeros((2, 3), np.float32), "c": np.zeros(1)}, "'c'"),
], ids=["dtype", "shape", "missing-name", "unknown-name"])
def test_run_refuses_wrong_inputs_in_one_line(add_library, arrays, pattern):
    rc, out, err = edgecc("run", add_library / "add.so", "--inputs", _save(add_library, **arrays))
    assert_one_line_error(rc, err, pattern)
    rc, out, err = edgecc("run", add_library / "add.so", *[f"--input={k}={_save_npy(add_library, v)}"
                                                             for k, v in arrays.items()])
    assert_one_line_error(rc, err, pattern)


def test_run_passes_nan_and_inf_through(add_library, tmp_path):
    a = np.array([[np.nan, np.inf, -np.inf], [1, 2, 3]], np.float32)
    b = np.ones((2, 3), np.float32)
    rc, out, err = edgecc("run", add_library / "add.so", "--inputs", _save(add_library, a=a, b=b),
                          "--output", tmp_path / "y.npz")
    assert rc == 0, err
    with np.load(tmp_path / "y.npz") as saved:
        np.testing.assert_array_equal(saved["y"], a + b)


def test_run_refuses_a_truncated_library(add_library, tmp_path):
    data = (add_library / "add.so").read_bytes()
    (tmp_path / "truncated.so").write_bytes(data[: len(data) // 2])
    rc, _, err = edgecc("run", tmp_path / "truncated.so")
    assert_one_line_error(rc, err, "truncated.so")


def test_run_refuses_a_file_that_is_not_a_library(tmp_path):
    (tmp_path / "text.so").write_text("not a library\n")
    rc, _, err = edgecc("run", tmp_path / "text.so")
    assert_one_line_error(rc, err, "text.so")


def test_run_refuses_a_foreign_library(tmp_path):
    foreign = next(p for p in ("/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6",
                               "/lib64/libm.so.6") if os.path.exists(p))
    shutil.copy(foreign, tmp_path / "foreign.so")
    rc, _, err = edgecc("run", tmp_path / "foreign.so")
    assert_one_line_error(rc, err, "foreign.so")
