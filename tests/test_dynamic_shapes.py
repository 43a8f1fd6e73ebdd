"""Symbolic shapes end to end: graphs with size variables compile once and run at any allowed size.

Lowering (Relax with symbolic shapes, kernels with symbolic extents and their schedules, memory
planned for the upper bounds), the library's input checks, run-time shape functions, and the
command line.
"""

import os
import re
import sys

import numpy as np
import onnx
import pytest

import edgecc
from edgecc.errors import InputError
from edgecc.ir import parse_graph

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

ENCODER_BLOCK = """graph @main(%x: f32[batch,seq,8], %mask: f32[batch,1,seq]) {
  %w = const f32[8,16] dense<splat 0.25>
  %b = const f32[16] dense<splat 0.5>
  %y = matmul(%x, %w) : f32[batch,seq,16]
  %z = add(%y, %b) : f32[batch,seq,16]
  %r = relu(%z) : f32[batch,seq,16]
  %s = softmax(%r) {axis=-1} : f32[batch,seq,16]
  %t = transpose(%s) {perm=[0,2,1]} : f32[batch,16,seq]
  %m = mul(%t, %mask) : f32[batch,16,seq]
  %v = reshape(%m) {shape=[0,-1]} : f32[batch,seq*16]
  return %v
}
"""


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def encoder_block_reference(x, mask):
    s = _softmax(np.maximum(x @ np.full((8, 16), 0.25, np.float32) + 0.5, 0))
    return (s.transpose(0, 2, 1) * mask).reshape(x.shape[0], -1)


def _block_graph(bounds=None):
    graph = parse_graph(ENCODER_BLOCK)
    if bounds is not None:
        graph.meta["dim_bounds"] = bounds
    return graph


@pytest.fixture(scope="module")
def block_module():
    compiled = edgecc.compile(_block_graph({"batch": (1, 4), "seq": (1, 128)}), "host")
    return compiled, compiled.load()


@pytest.mark.parametrize("batch, seq", [(1, 16), (2, 64), (4, 128), (3, 7)])
def test_one_library_runs_every_allowed_size(block_module, batch, seq):
    _, module = block_module
    rng = np.random.default_rng(batch * 1000 + seq)
    x = rng.standard_normal((batch, seq, 8)).astype(np.float32)
    mask = (rng.random((batch, 1, seq)) > 0.3).astype(np.float32)
    out = module.run({"x": x, "mask": mask})["v"]
    assert out.shape == (batch, seq * 16)
    np.testing.assert_allclose(out, encoder_block_reference(x, mask), rtol=1e-5, atol=1e-6)


def test_symbolic_kernels_get_the_symbolic_schedules(block_module):
    compiled, module = block_module
    assert compiled.stats.fallbacks == []
    assert {k["scheduled_by"] for k in compiled.stats.kernel_table} == {"default"}
    assert module.metadata["dims"] == {"batch": [1, 4], "seq": [1, 128]}
    assert module.inputs[0]["shape"] == ["batch", "seq", 8]
    assert module.outputs[0]["shape"] == ["batch", "seq*16"]
    dense = [k for k in compiled.stats.kernel_table if k["kind"] == "dense"]
    assert dense and dense[0]["flops"] == "batch*seq*256"
    x, mask = np.ones((2, 8, 8), np.float32), np.ones((2, 1, 8), np.float32)
    (profiled,) = [r for r in module.profile({"x": x, "mask": mask}, repeat=1) if r.kind == "dense"]
    assert profiled.gflops is not None  # the FLOPs formula evaluated for batch 2, seq 8


@pytest.mark.parametrize("inputs, message", [
    ({"x": (2, 200, 8), "mask": (2, 1, 200)}, "input 'x' dimension 1 (seq) is 200, the library allows 1..128"),
    ({"x": (5, 4, 8), "mask": (5, 1, 4)}, "input 'x' dimension 0 (batch) is 5, the library allows 1..4"),
    ({"x": (2, 4, 8), "mask": (2, 4)}, "input 'mask' has shape (2, 4) (rank 2), the model expects rank 3: (batch, 1, seq)"),
    ({"x": (2, 4, 8), "mask": (2, 1, 5)},
     "input 'mask' dimension 2 (seq) is 5, but input 'x' dimension 1 makes seq = 4"),
    ({"x": (2, 0, 8), "mask": (2, 1, 0)}, "input 'x' dimension 1 (seq) is 0, the library allows 1..128"),
    ({"x": (2, 4, 9), "mask": (2, 1, 4)}, "input 'x' dimension 2 is 9, the model expects 8"),
    ({"x": (2, 4, 8), "mask": (2, 3, 4)}, "input 'mask' dimension 1 is 3, the model expects 1"),
])
def test_bad_input_shapes_are_one_clear_error(block_module, inputs, message):
    _, module = block_module
    arrays = {name: np.zeros(shape, np.float32) for name, shape in inputs.items()}
    with pytest.raises(InputError) as info:
        module.run(arrays)
    assert str(info.value) == message


def test_without_bounds_any_positive_size_runs():
    module = edgecc.compile(_block_graph(), "host").load()
    assert module.metadata["dims"] == {"batch": [1, None], "seq": [1, None]}
    x = np.ones((1, 300, 8), np.float32)
    mask = np.ones((1, 1, 300), np.float32)
    np.testing.assert_allclose(module.run({"x": x, "mask": mask})["v"], encoder_block_reference(x, mask), rtol=1e-5)
    with pytest.raises(InputError, match=r"input 'x' dimension 0 \(batch\) is 0, the library allows 1 or more"):
        module.run({"x": np.ones((0, 3, 8), np.float32), "mask": np.ones((0, 1, 3), np.float32)})


def _planned_storage(graph):
    """The byte sizes main's memory planning gives its storages."""
    import tvm
    from tvm import relax

    from edgecc.lower.relax_module import build_relax_module

    mod, _ = build_relax_module(graph)
    planned = tvm.transform.Sequential([
        relax.transform.LegalizeOps(), relax.transform.ToNonDataflow(), relax.transform.RemovePurityChecking(),
        relax.transform.CallTIRRewrite(), relax.transform.StaticPlanBlockMemory()])(mod)
    return [line.split("R.shape([", 1)[1].split("])", 1)[0] for line in planned["main"].script().splitlines()
            if "alloc_storage" in line]


def test_memory_is_planned_for_the_upper_bounds():
    bounded = _planned_storage(_block_graph({"batch": (1, 4), "seq": (1, 128)}))
    assert bounded and all(size.isdigit() for size in bounded)
    assert max(int(size) for size in bounded) == 4 * 128 * 16 * 4  # batch x seq x 16 float32 at the bounds
    assert any("seq" in size for size in _planned_storage(_block_graph()))  # unbounded: sized per run


def test_fixed_shapes_keep_the_fixed_size_path():
    text = ENCODER_BLOCK.replace("batch", "2").replace("seq*16", "64").replace("seq", "4").replace("[0,-1]", "[2,64]")
    compiled = edgecc.compile(parse_graph(text), "host")
    from edgecc.lower.plan import plan_kernels

    assert not any(k.kernel.symbolic or k.kernel.tir_vars for k in plan_kernels(compiled.graph))
    module = compiled.load()
    assert "dims" not in module.metadata
    x, mask = np.ones((2, 4, 8), np.float32), np.ones((2, 1, 4), np.float32)
    np.testing.assert_allclose(module.run({"x": x, "mask": mask})["v"], encoder_block_reference(x, mask), rtol=1e-5)
    with pytest.raises(InputError, match=r"input 'x' has shape \(2, 5, 8\), the model expects \(2, 4, 8\)"):
        module.run({"x": np.ones((2, 5, 8), np.float32), "mask": mask})


HEADS_BLOCK = """graph @main(%x: f32[batch,seq,12]) {
  %y = reshape(%x) {shape=[0,0,3,4]} : f32[batch,seq,3,4]
  %t = transpose(%y) {perm=[0,2,3,1]} : f32[batch,3,4,seq]
  %r = relu(%t) : f32[batch,3,4,seq]
  return %r
}
"""


def test_symbolic_reshapes_index_the_axes_they_keep_directly():
    """Splitting a hidden axis into heads under a symbolic batch and length reads x[b, s, h * 4 + d]:
    no division or remainder by a size variable per element, and the results are numpy's at several
    sizes."""
    from edgecc.driver import prepare
    from edgecc.lower.plan import plan_kernels
    from edgecc.lower.schedules import make_scheduler

    graph, target, _, _ = prepare(parse_graph(HEADS_BLOCK), "host")
    scheduler = make_scheduler(target)
    scripts = [scheduler.schedule(p.kernel).func.script() for p in plan_kernels(graph)]
    split = [s for s in scripts if "T.Buffer((batch, seq, T.int64(12))" in s]
    assert split and all(re.search(r"// (batch|seq)\b|% (batch|seq)\b", s) is None for s in split)
    module = edgecc.compile(parse_graph(HEADS_BLOCK), "host").load()
    for batch, seq in [(1, 1), (2, 5), (3, 16)]:
        x = np.random.default_rng(seq).standard_normal((batch, seq, 12)).astype(np.float32)
        expected = np.maximum(x.reshape(batch, seq, 3, 4).transpose(0, 2, 3, 1), 0)
        np.testing.assert_array_equal(module.run({"x": x})["r"], expected)


def test_a_dimension_only_inside_a_formula_is_passed_to_the_kernel():
    graph = parse_graph("""graph @main(%x: f32[n,4]) {
  %y = reshape(%x) {shape=[-1]} : f32[n*4]
  %z = relu(%y) : f32[n*4]
  return %z
}
""")
    from edgecc.lower.plan import plan_kernels

    (relu,) = [k.kernel for k in plan_kernels(graph)]
    assert relu.tir_vars == ("n",)
    module = edgecc.compile(graph, "host", opt_level=0).load()  # unfused: the relu kernel takes n
    x = np.linspace(-1, 1, 20, dtype=np.float32).reshape(5, 4)
    np.testing.assert_array_equal(module.run({"x": x})["z"], np.maximum(x.reshape(-1), 0))


def test_an_input_dimension_given_by_a_formula_is_checked_against_it():
    graph = parse_graph("""graph @main(%x: f32[n], %y: f32[n*2]) {
  %z = concat(%x, %y) {axis=0} : f32[n*3]
  return %z
}
""")
    module = edgecc.compile(graph, "host").load()
    x, y = np.arange(3, dtype=np.float32), np.arange(6, dtype=np.float32)
    np.testing.assert_array_equal(module.run({"x": x, "y": y})["z"], np.concatenate([x, y]))
    with pytest.raises(InputError, match=r"^input 'y' dimension 0 \(n\*2\) is 5, the model expects 6$"):
        module.run({"x": x, "y": y[:5]})

@pytest.fixture
def relu_with_run_time_shape(monkeypatch):
    """relu given a shape function, as an op with data-dependent output sizes has."""
    from tvm import te

    from edgecc.lower import te_ops

    def relu_shape(node, ins):
        (x,) = ins
        return [te.compute((len(x.shape),), lambda i: x.shape[0].astype("int64"), name="relu_shape")]

    te_ops._load()
    monkeypatch.setitem(te_ops._SHAPE_FUNCTIONS, "relu", relu_shape)


def test_a_fresh_size_variable_is_bound_by_the_ops_shape_function(relu_with_run_time_shape):
    from edgecc.lower.build import compile_graph
    from edgecc.runtime import Module
    from edgecc.targets import get_target

    graph = parse_graph("""graph @main(%x: f32[n]) {
  %y = relu(%x) : f32[k]
  %z = softmax(%y) {axis=-1} : f32[k]
  return %z
}
""")
    executable, _ = compile_graph(graph, get_target("host"))
    module = Module(executable.jit())
    assert module.outputs[0]["shape"] == ["k"] and module.metadata["dims"] == {"n": [1, None]}
    x = np.array([1.0, -2.0, 3.0], np.float32)
    np.testing.assert_allclose(module.run({"x": x})["z"], _softmax(np.maximum(x, 0)), rtol=1e-6)


def test_a_run_time_size_without_a_shape_function_is_refused():
    from edgecc.errors import LoweringError
    from edgecc.lower.build import compile_graph
    from edgecc.targets import get_target

    graph = parse_graph("""graph @main(%x: f32[n]) {
  %y = relu(%x) : f32[k]
  return %y
}
""")
    with pytest.raises(LoweringError, match="its output shape is known only at run time and op 'relu' has no shape "
                                             "function"):
        compile_graph(graph, get_target("host"))


# ----- models exported from PyTorch with symbolic axes, compared with ONNX Runtime -------------------------
def _export(model, example, path, input_name, axes):
    import torch

    with torch.no_grad():
        torch.onnx.export(model, (example,), str(path), input_names=[input_name], output_names=["out"],
                          opset_version=17, dynamo=False, do_constant_folding=True,
                          dynamic_axes={input_name: axes})
    return str(path)


@pytest.fixture(scope="module")
def encoder_onnx(tmp_path_factory):
    """A BERT-style encoder (token and position embeddings, 2 post-norm layers) with symbolic batch and seq."""
    import torch

    from model_zoo import BertEncoder

    torch.manual_seed(0)
    model = BertEncoder(vocab=100, d_model=64, heads=4, ff=128, layers=2, max_len=128).eval()
    return _export(model, torch.randint(0, 100, (1, 16)), tmp_path_factory.mktemp("enc") / "encoder.onnx", "ids",
                   {0: "batch", 1: "seq"})


def _ort(path):
    import onnxruntime as ort

    return ort.InferenceSession(path, providers=["CPUExecutionProvider"])


def test_encoder_compiles_once_and_matches_onnxruntime_at_every_size(encoder_onnx):
    compiled = edgecc.compile(encoder_onnx, "host", input_shapes={"ids": [(1, 8), (1, 128)]})
    assert compiled.graph.meta["dim_bounds"] == {"batch": (1, 8), "seq": (1, 128)}
    assert compiled.stats.fallbacks == []
    module, session = compiled.load(), _ort(encoder_onnx)
    for batch, seq in [(1, 16), (2, 64), (4, 128), (3, 7)]:
        ids = np.random.default_rng(batch * 1000 + seq).integers(0, 100, (batch, seq)).astype(np.int64)
        out = module.run({"ids": ids})["out"]
        assert out.shape == (batch, seq, 64)
        np.testing.assert_allclose(out, session.run(None, {"ids": ids})[0], rtol=1e-4, atol=1e-4)
    with pytest.raises(InputError, match=r"^input 'ids' dimension 1 \(seq\) is 129, the library allows 1\.\.128$"):
        module.run({"ids": np.zeros((1, 129), np.int64)})


def _reduction_guards(func_script: str) -> list[str]:
    """The reduction-update blocks of a scheduled kernel that carry a guard (T.where)."""
    chunks = func_script.split('with T.sblock("')[1:]
    return [c.split('"', 1)[0] for c in chunks if c.split('"', 1)[0].endswith("_update") and "T.where" in c]


def test_symbolic_matrix_products_run_whole_tiles_and_match_onnxruntime_on_both_sides_of_a_tile(encoder_onnx):
    """Symbolic rows (batch x seq) and attention-score columns (seq) are padded to whole register
    tiles (`GEMM_ROWS` rows, a vector of columns): no reduction keeps a guard, and sizes that are
    and are not multiples of the tiles give ONNX Runtime's results."""
    from edgecc.driver import prepare
    from edgecc.lower.plan import plan_kernels
    from edgecc.lower.schedules import make_scheduler

    shapes = {"ids": [(1, 4), (1, 70)]}
    graph, target, _, _ = prepare(encoder_onnx, "host", input_shapes=shapes)
    scheduler = make_scheduler(target)
    gemms = [p.kernel for p in plan_kernels(graph) if p.kernel.kind in ("dense", "matmul")]
    assert {k.kind for k in gemms} == {"dense", "matmul"} and all(k.symbolic for k in gemms)
    assert any(not isinstance(k.outputs[0].type.shape[-1], int) for k in gemms)  # attention scores: seq columns
    for kernel in gemms:
        script = scheduler.schedule(kernel).func.script()
        assert "_pad" in script and _reduction_guards(script) == [], kernel.name
    module, session = edgecc.compile(encoder_onnx, "host", input_shapes=shapes).load(), _ort(encoder_onnx)
    for batch, seq in [(1, 1), (1, 2), (1, 3), (1, 4), (1, 5), (2, 6), (1, 7), (1, 12), (3, 15), (2, 16), (1, 17),
                       (4, 31), (2, 32), (3, 33), (1, 36), (1, 64), (2, 70)]:
        ids = np.random.default_rng(batch * 100 + seq).integers(0, 100, (batch, seq)).astype(np.int64)
        np.testing.assert_allclose(module.run({"ids": ids})["out"], session.run(None, {"ids": ids})[0],
                                   rtol=1e-4, atol=1e-4, err_msg=f"batch {batch}, seq {seq}")


def test_symbolic_row_reductions_accumulate_in_vector_lanes(encoder_onnx):
    """With symbolic rows, layer norm over the static model width keeps one partial result per
    vector lane, as the fixed-size rule does; so does the attention softmax over the symbolic
    sequence, whose lowering rounds the axis up to whole groups and whose step loop is marked
    for loop partition (unguarded vectors, a guarded scalar tail). The encoder's results at
    several sizes are checked above and below."""
    from edgecc.driver import prepare
    from edgecc.lower.plan import plan_kernels
    from edgecc.lower.schedules import make_scheduler

    graph, target, _, _ = prepare(encoder_onnx, "host", input_shapes={"ids": [(1, 8), (1, 128)]})
    scheduler = make_scheduler(target)
    rows = [p.kernel for p in plan_kernels(graph) if p.kernel.kind == "reduction"]
    assert rows and all(k.symbolic for k in rows)
    partitioned = {}
    for kernel in rows:
        scheduled = scheduler.schedule(kernel)
        script = scheduled.func.script()
        assert scheduled.how == "default" and "_rf_update" in script, kernel.name
        static_width = isinstance(kernel.outputs[0].type.shape[-1], int)
        partitioned.setdefault(static_width, set()).add("pragma_loop_partition_hint" in script)
    assert partitioned == {True: {False}, False: {True}}  # layer norms: whole vectors; softmax over seq: a tail


def test_symbolic_dense_layers_take_column_tiles_first(encoder_onnx):
    """A dense layer with symbolic rows and at least one column tile per core pads its rows once,
    before the parallel tasks, and each task takes one column tile (its block of weights) for every
    row tile, as the fixed-size rule's "columns" order does. Results: the encoder tests."""
    from edgecc.driver import prepare
    from edgecc.lower.plan import plan_kernels
    from edgecc.lower.schedules import make_scheduler
    from edgecc.lower.schedules.symbolic import GEMM_ROWS
    from edgecc.targets import get_target

    two_cores = get_target("host", threads=2)  # (the rule asks for a column tile per core)
    graph, target, _, _ = prepare(encoder_onnx, two_cores, input_shapes={"ids": [(1, 8), (1, 128)]})
    scheduler = make_scheduler(target)
    checked = 0
    for kernel in (p.kernel for p in plan_kernels(graph) if p.kernel.kind == "dense"):
        column_tiles = kernel.args[1].type.shape[0]  # packed weights: (N / block, K, block)
        if column_tiles < target.num_cores:
            continue
        script = scheduler.schedule(kernel).func.script()
        (_, _, copy), (tasks, first_inside, _) = re.findall(r"T\.parallel\((.*)\):\n(.*)\n(.*)", script)[:2]
        row_tiles = f"+ T.int64({GEMM_ROWS - 1})) // T.int64({GEMM_ROWS})"
        assert '_pad"' in copy, kernel.name  # the padded rows, before the tasks
        assert row_tiles not in tasks and row_tiles in first_inside, kernel.name  # a column tile per task
        checked += 1
    assert checked


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_over_a_symbolic_axis_matches_onnxruntime_at_every_length(op, tmp_path):
    """Lengths below, at and past whole groups of the rounded-up axis, with large and masked (-inf)
    values: the guarded tail never reads past a row, and the padding never wins the max."""
    from onnx import TensorProto, helper

    x_info = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", "n"])
    y_info = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", "n"])
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], axis=-1)], "g", [x_info], [y_info])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "m.onnx")
    module = edgecc.compile(str(tmp_path / "m.onnx"), "host", input_shapes={"x": [(1, 8), (1, 80)]},
                            strict_schedules=True).load()
    session = _ort(str(tmp_path / "m.onnx"))
    rng = np.random.default_rng(7)
    for rows, n in [(1, 1), (3, 15), (2, 16), (5, 17), (1, 31), (4, 32), (3, 33), (2, 47), (8, 80)]:
        x = (rng.standard_normal((rows, n)) * 30).astype(np.float32)
        x[0, n // 2:] = -np.inf  # a masked row end
        got, want = module.run({"x": x})["y"], session.run(None, {"x": x})[0]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"{rows} x {n}")


def test_cnn_with_a_symbolic_batch_runs_at_batch_1_and_4(tmp_path):
    from model_zoo import build

    model, example = build("resnet_tiny")
    path = _export(model, example, tmp_path / "cnn.onnx", "input", {0: "batch"})
    compiled = edgecc.compile(path, "host", input_shapes={"input": ["batch", 3, 64, 64]})
    assert compiled.stats.fallbacks == []
    module, session = compiled.load(), _ort(path)
    for batch in (1, 4):
        x = np.random.default_rng(batch).standard_normal((batch, 3, 64, 64)).astype(np.float32)
        np.testing.assert_allclose(module.run({"input": x})["out"], session.run(None, {"input": x})[0],
                                   rtol=1e-4, atol=1e-4)


def test_cnn_with_symbolic_batch_and_image_size(tmp_path):
    from model_zoo import build

    model, example = build("resnet_tiny")
    path = _export(model, example, tmp_path / "cnn.onnx", "input", {0: "batch", 2: "height", 3: "width"})
    compiled = edgecc.compile(path, "host", input_shapes={"input": [(1, 4), 3, (32, 96), (32, 96)]})
    assert compiled.stats.fallbacks == []
    module, session = compiled.load(), _ort(path)
    for shape in [(1, 3, 64, 64), (2, 3, 48, 80), (3, 3, 33, 95)]:
        x = np.random.default_rng(shape[2]).standard_normal(shape).astype(np.float32)
        np.testing.assert_allclose(module.run({"input": x})["out"], session.run(None, {"input": x})[0],
                                   rtol=1e-4, atol=1e-4)


def test_einsum_with_symbolic_sizes_matches_onnxruntime(tmp_path):
    """Einsum over symbolic sizes: a batched product whose output is n x n, a trace of it (a summed
    repeated index) and an ellipsis product with a constant; one library, several sizes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Einsum", ["x", "y"], ["z"], equation="bij,bjk->bik"),
         helper.make_node("Einsum", ["z"], ["t"], equation="bii->b"),
         helper.make_node("Einsum", ["x", "w"], ["u"], equation="...j,jk->...k")],
        "einsum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n", 4]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, "n"])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in ("z", "t", "u")],
        [numpy_helper.from_array(w, "w")])
    path = str(tmp_path / "einsum.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    compiled = edgecc.compile(path, "host", input_shapes={"x": [(1, 3), (1, 40), 4], "y": [(1, 3), 4, (1, 40)]})
    assert compiled.stats.fallbacks == []
    module, session = compiled.load(), _ort(path)
    for batch, n in [(1, 1), (2, 7), (3, 40)]:
        rng = np.random.default_rng(n)
        feed = {"x": rng.standard_normal((batch, n, 4)).astype(np.float32),
                "y": rng.standard_normal((batch, 4, n)).astype(np.float32)}
        got, expected = module.run(feed), session.run(["z", "t", "u"], feed)
        for name, want in zip(("z", "t", "u"), expected):
            np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-5, err_msg=f"{name} at {batch}x{n}")


# ----- the command line ------------------------------------------------------------------------------------
def _edgecc(*args):
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "edgecc", *map(str, args)], capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def test_cli_compiles_with_bounds_and_runs_any_allowed_shape(encoder_onnx, tmp_path):
    lib = tmp_path / "enc.so"
    rc, out, err = _edgecc("compile", encoder_onnx, "--input-shape", "ids=1..8,1..64", "-o", lib)
    assert rc == 0, err
    assert "symbolic dimensions: batch 1..8, seq 1..64 (one library for every allowed size)" in out
    session = _ort(encoder_onnx)
    for shape in [(2, 33), (1, 64)]:
        ids = np.random.default_rng(shape[1]).integers(0, 100, shape).astype(np.int64)
        np.save(tmp_path / "ids.npy", ids)
        rc, out, err = _edgecc("run", lib, "--input", f"ids={tmp_path / 'ids.npy'}", "--output", tmp_path / "o.npz")
        assert rc == 0, err
        with np.load(tmp_path / "o.npz") as result:
            np.testing.assert_allclose(result["out"], session.run(None, {"ids": ids})[0], rtol=1e-4, atol=1e-4)
    np.save(tmp_path / "long.npy", np.zeros((1, 65), np.int64))
    rc, _, err = _edgecc("run", lib, "--input", f"ids={tmp_path / 'long.npy'}")
    assert rc == 2 and err.strip() == "edgecc: error: input 'ids' dimension 1 (seq) is 65, the library allows 1..64"
    rc, out, err = _edgecc("run", lib, "--dim", "seq=5")
    assert rc == 0 and "out: float32[1, 5, 64]" in out
    assert err.strip() == "edgecc: random inputs with batch=1, seq=5 (set sizes with --dim NAME=N)"
    rc, _, err = _edgecc("run", lib, "--dim", "seq=100")
    assert rc == 2 and err.strip() == f"edgecc: error: {lib}: dimension seq = 100, the library allows 1..64"
    rc, out, _ = _edgecc("inspect", encoder_onnx, "--input-shape", "ids=1..8,1..64")
    assert "// input  ids: i64[batch,seq]" in out and "// symbolic dimensions: batch 1..8, seq 1..64" in out


@pytest.mark.parametrize("text, parsed", [
    ("ids=1..8,1..512", ("ids", ((1, 8), (1, 512)))),
    ("ids=batch,seq", ("ids", ("batch", "seq"))),
    ("x=?,3,224,224", ("x", (None, 3, 224, 224))),
    ("x=1x3x224x224", ("x", (1, 3, 224, 224))),
    ("ids=1,16..", ("ids", (1, (16, None)))),
])
def test_input_shape_dimensions(text, parsed):
    from edgecc.cli import _shape_arg

    assert _shape_arg(text) == parsed


@pytest.mark.parametrize("text, message", [
    ("ids=0..8,4", "dimensions must be positive in 'ids=0..8,4'"),
    ("ids=8..2", "empty range 8..2 in 'ids=8..2'"),
    ("ids=1,2.5", "bad dimensions in 'ids=1,2.5'"),
])
def test_bad_input_shape_dimensions(text, message):
    import argparse

    from edgecc.cli import _shape_arg

    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
        _shape_arg(text)
