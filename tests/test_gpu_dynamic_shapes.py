"""Symbolic shapes on GPU targets: one library for every allowed batch and sequence length.

OpenCL libraries (the Mali preset, AArch64 host code, and the generic OpenCL target) run here
on PoCL (`edgecc.runtime.opencl`) at several sizes each and are compared with ONNX Runtime; the
launch table holds grid sizes and scalar arguments as expressions of the tensors' shapes.
CUDA libraries with symbolic dimensions are built to real cubins (NVRTC) and their PTX
assembled by ptxas, as for fixed shapes (no GPU here).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import edgecc
from edgecc.compare import compare_outputs
from edgecc.errors import LoweringError
from edgecc.ir import parse_graph
from edgecc.runtime import load_any
from edgecc.runtime.library_file import embedded_modules
from edgecc.targets import cuda_toolchain as cuda

DATA = Path(__file__).parent / "data"
#: transformer_tiny's positions table has 32 rows: its sequence is at most 32 long
ENCODER_SHAPES = {"input_ids": [(1, 8), (1, 32)]}


def _with_symbolic_batch(model: str, folder: Path) -> str:
    """A copy of a tiny CNN whose input and output batch dimension is the symbol 'batch'."""
    import onnx

    proto = onnx.load(str(DATA / f"{model}.onnx"))
    for value in [*proto.graph.input, *proto.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    del proto.graph.value_info[:]
    path = folder / f"{model}_batch.onnx"
    onnx.save(proto, str(path))
    return str(path)


def _compare_with_onnxruntime(module, model_path: str, sizes: dict, seed: int) -> None:
    import onnxruntime as ort

    inputs = module.random_inputs(seed=seed, sizes=sizes)
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs)))
    got = module.run(inputs)
    assert {k: v.shape for k, v in got.items()} == {k: v.shape for k, v in expected.items()}
    records = compare_outputs(got, expected, rtol=1e-3, atol=1e-4)
    assert all(r.ok for r in records), (sizes, records)


@pytest.fixture(scope="module")
def encoder_library(tmp_path_factory):
    """transformer_tiny with batch 1..8 and sequence 1..32 for the Mali preset."""
    compiled = edgecc.compile(str(DATA / "transformer_tiny.onnx"), "rk3588-gpu", input_shapes=ENCODER_SHAPES)
    path = tmp_path_factory.mktemp("encoder") / "encoder.so"
    compiled.export(path)
    return compiled, path


@pytest.mark.parametrize("sizes", [{"dim0": 1, "dim1": 1}, {"dim0": 2, "dim1": 16}, {"dim0": 3, "dim1": 7},
                                   {"dim0": 8, "dim1": 32}])
def test_symbolic_encoder_on_mali_runs_every_allowed_size_like_onnxruntime(encoder_library, sizes):
    _, path = encoder_library
    module = load_any(path)
    assert module.dims == {"dim0": [1, 8], "dim1": [1, 32]}
    _compare_with_onnxruntime(module, str(DATA / "transformer_tiny.onnx"), sizes, seed=sizes["dim1"])


def test_symbolic_encoder_keeps_the_gpu_schedules_and_sizes_its_launches_at_run_time(encoder_library):
    compiled, path = encoder_library
    assert compiled.warnings == []  # nothing pinned to 1
    assert compiled.stats.fallbacks == []
    rules = {k["kind"]: k["rule"] for k in compiled.stats.kernel_table}
    assert rules["matmul"] == "dlight.Matmul" and rules["reduction"].startswith("dlight.")
    assert rules["opaque"] == "edgecc.single_thread"  # the positions' cumulative sum, a scan
    module = load_any(path)
    grids = [launch["grid"] for table in module.launches.values() for launch in table["launches"]]
    assert any(isinstance(g, list) for grid in grids for g in grid)  # expressions of the sizes
    assert module.shape_functions  # batch*seq and other derived sizes, computed on the host
    with pytest.raises(edgecc.errors.InputError, match=r"dimension 1 \(dim1\) is 33, the library allows 1..32"):
        module.run({"input_ids": np.zeros((1, 33), np.int64)})


def test_cli_runs_a_symbolic_opencl_library_at_a_chosen_size(encoder_library):
    import subprocess
    import sys

    _, path = encoder_library
    done = subprocess.run([sys.executable, "-m", "edgecc", "run", str(path), "--compare-onnxruntime",
                           str(DATA / "transformer_tiny.onnx"), "--rtol", "1e-3", "--dim", "dim0=3", "--dim", "dim1=7"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "yes" in done.stdout and "emulating the OpenCL GPU" in done.stderr


def _storages(path) -> tuple[list[str], list[str]]:
    """The VM's storage allocations of a library, and those of a constant size (planned once)."""
    import tvm

    modules = {m.kind: m for m in embedded_modules(path)}
    executable = tvm.get_global_func("ffi.Module.load_from_bytes.relax.VMExecutable")(
        modules["relax.VMExecutable"].data)
    storages = [line for line in executable["as_text"]().splitlines() if "call  vm.builtin.alloc_storage" in line]
    return storages, [line for line in storages if "in: %vm, c[" in line]


def test_symbolic_encoder_memory_is_planned_for_the_upper_bounds(encoder_library):
    _, path = encoder_library
    storages, planned = _storages(path)
    assert len(planned) >= 5 and len(storages) - len(planned) <= 1  # at most the output sized per call


@pytest.mark.parametrize("model, target", [("resnet_tiny", "opencl"), ("mobilenetv2_tiny", "rk3588-gpu")])
def test_cnn_with_a_symbolic_batch_on_opencl_matches_onnxruntime_at_every_batch(tmp_path, model, target):
    onnx_path = _with_symbolic_batch(model, tmp_path)
    compiled = edgecc.compile(onnx_path, target, input_shapes={"input": [(1, 4), 3, 64, 64]})
    assert compiled.stats.fallbacks == []
    compiled.export(tmp_path / "cnn.so")
    module = load_any(tmp_path / "cnn.so")
    assert module.dims == {"batch": [1, 4]}
    for batch in (1, 3, 4):
        _compare_with_onnxruntime(module, onnx_path, {"batch": batch}, seed=batch)


BLOCK = """graph @main(%x: f32[batch,seq,8], %mask: f32[batch,1,seq]) {
  %w = const f32[8,16] dense<splat 0.25>
  %y = matmul(%x, %w) : f32[batch,seq,16]
  %s = softmax(%y) {axis=-1} : f32[batch,seq,16]
  %t = transpose(%s) {perm=[0,2,1]} : f32[batch,16,seq]
  %m = mul(%t, %mask) : f32[batch,16,seq]
  %v = reshape(%m) {shape=[0,-1]} : f32[batch,seq*16]
  return %v
}
"""


def test_block_without_bounds_runs_any_size_on_pocl(tmp_path):
    """No upper bounds: the VM allocates per call; transposes and reshapes over symbolic axes."""
    compiled = edgecc.compile(parse_graph(BLOCK), "opencl")
    compiled.export(tmp_path / "block.so")
    module = load_any(tmp_path / "block.so")
    assert module.dims == {"batch": [1, None], "seq": [1, None]}
    storages, planned = _storages(tmp_path / "block.so")
    assert storages and not planned  # no bound to plan for: every storage sized at the call
    rng = np.random.default_rng(0)
    for batch, seq in [(1, 1), (2, 9), (1, 300)]:
        x = rng.standard_normal((batch, seq, 8)).astype(np.float32)
        mask = (rng.random((batch, 1, seq)) > 0.3).astype(np.float32)
        e = np.exp(x @ np.full((8, 16), 0.25, np.float32))
        expected = ((e / e.sum(-1, keepdims=True)).transpose(0, 2, 1) * mask).reshape(batch, -1)
        np.testing.assert_allclose(module.run({"x": x, "mask": mask})["v"], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("model, target, options, arch, shapes", [
    ("transformer_tiny", "cuda", {"arch": "sm_90"}, "sm_90", ENCODER_SHAPES),
    ("resnet_tiny", "jetson-orin-gpu", {}, "sm_87", {"input": [(1, 4), 3, 64, 64]}),
])
def test_symbolic_cuda_builds_hold_cubins_and_assemble_with_ptxas(tmp_path, model, target, options, arch, shapes):
    onnx_path = str(DATA / f"{model}.onnx") if model == "transformer_tiny" else _with_symbolic_batch(model, tmp_path)
    compiled = edgecc.compile(onnx_path, target, target_options=options, input_shapes=shapes)
    assert compiled.stats.fallbacks == [] and compiled.warnings == []
    assert any(not isinstance(d, int) for v in compiled.graph.inputs for d in v.type.shape)
    compiled.export(tmp_path / "model.so")  # checks the library holds cubins for the arch, no CUDA source
    assert [c.arch for c in cuda.check_library_cubins(tmp_path / "model.so", arch)] == [arch]
    source = cuda.generated_cuda_source(compiled.executable)
    cubin = cuda.assemble_ptx(cuda.cuda_source_to_ptx(source, arch), arch)
    assert [c.arch for c in cuda.embedded_cubins(b"\0" + cubin)] == [arch]


def _node_model(node, opset: int = 18, **constants):
    """One ONNX node over x: f32[n, s, 16] (and constant inputs), its output y as float32."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [node]
    if node.output[0] != "y":
        nodes.append(helper.make_node("Cast", [node.output[0]], ["y"], to=TensorProto.FLOAT))
    graph = helper.make_graph(nodes, "node", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "s", 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(v, k) for k, v in constants.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _node(op: str, inputs: list[str], output: str = "y", **attrs):
    from onnx import helper

    return helper.make_node(op, inputs, [output], **attrs)


@pytest.mark.parametrize("name, model, rule", [
    ("argmax", lambda: _node_model(_node("ArgMax", ["x"], "a", axis=1)), "edgecc.thread_per_output"),
    ("reduce-max", lambda: _node_model(_node("ReduceMax", ["x", "axes"]), axes=np.array([-1], np.int64)),
     "edgecc.thread_per_output"),
    ("cumsum", lambda: _node_model(_node("CumSum", ["x", "axis"]), axis=np.array(1, np.int64)), "edgecc.single_thread"),
])
def test_reductions_over_symbolic_axes_run_on_pocl_like_onnxruntime(tmp_path, name, model, rule):
    """Arg-reductions keep both running values in registers; a max with edgecc's -inf
    identity is no reducer TVM's cross-thread lowering knows, so it gets one thread per output."""
    proto = model()
    compiled = edgecc.compile(proto, "opencl")
    assert [k["rule"] for k in compiled.stats.kernel_table] == [rule]
    compiled.export(tmp_path / f"{name}.so")
    module = load_any(tmp_path / f"{name}.so")
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(proto.SerializeToString())
    for sizes in ({"n": 1, "s": 3}, {"n": 3, "s": 10}):
        _compare_with_onnxruntime(module, str(path), sizes, seed=sizes["s"])


def test_a_kernel_calling_a_host_function_is_refused_in_one_line():
    """TopK's kernel is TOPI's CPU sort, a call into the host runtime: no GPU can run it."""
    from onnx import helper

    model = _node_model(helper.make_node("TopK", ["x", "k"], ["y", "i"], axis=-1), k=np.array([3], np.int64))
    with pytest.raises(edgecc.errors.ScheduleError) as info:
        edgecc.compile(model, "opencl")
    assert str(info.value) == ("a GPU library cannot hold kernels without thread binding: k0_topk (calls the host "
                               "function tvm.contrib.sort.topk)")


def test_fixed_shapes_keep_constant_launches(tmp_path):
    compiled = edgecc.compile(str(DATA / "transformer_tiny.onnx"), "opencl", input_shapes={"input_ids": [2, 16]})
    compiled.export(tmp_path / "fixed.so")
    module = load_any(tmp_path / "fixed.so")
    assert module.dims == {} and "shape_functions" not in module.metadata
    sizes = json.dumps(module.launches)
    assert "shape" not in sizes and "scalar" not in sizes


def test_a_size_read_from_a_tensor_is_refused_on_gpu_in_one_line():
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("NonZero", ["x"], ["y"], name="nz")], "nonzero",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [2, None])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(LoweringError) as info:
        edgecc.compile(model, "rk3588-gpu")
    message = str(info.value)
    assert message.startswith("target 'rk3588-gpu' cannot build node ") and "(nonzero)" in message
    assert "size comes from a tensor's values at run time, which only CPU targets build" in message
    assert "\n" not in message
