"""ONNX frontend: model forms real files take (external data, old-style inputs, old opsets)."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from ort_compare import assert_matches_ort, make_model

import edgecc
from edgecc.errors import FrontendError, UnsupportedOpError
from edgecc.frontend.onnx import load_onnx
from edgecc.ir import Dim

def _conv_model(opset=13, initializers_as_inputs=False):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    model = make_model(nodes, {"x": x}, ["y"], {"w": w}, opset=opset)
    if initializers_as_inputs:
        model.graph.input.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 3, 3, 3]))
    return model, x


def test_external_data_is_read(tmp_path):
    model, x = _conv_model()
    path = tmp_path / "m.onnx"
    onnx.save(model, path, save_as_external_data=True, all_tensors_to_one_file=True, location="m.data",
              size_threshold=0)
    assert (tmp_path / "m.data").exists()
    graph = load_onnx(path)
    assert graph.parameter_bytes() == 4 * 3 * 3 * 3 * 4
    reference, _ = _conv_model()
    lib = edgecc.compile(str(path))
    np.testing.assert_allclose(list(lib.load().run({"x": x}).values())[0],
                               list(edgecc.compile(reference).load().run({"x": x}).values())[0])


def test_initializers_listed_as_inputs_are_constants():
    model, x = _conv_model(initializers_as_inputs=True)
    graph = edgecc.load_model(model)
    assert [v.name for v in graph.inputs] == ["x"]
    assert_matches_ort(model, {"x": x})


def test_old_opset_is_upgraded():
    model, x = _conv_model(opset=9)
    graph = edgecc.load_model(model)
    assert graph.meta["opset"] == 11
    assert_matches_ort(model, {"x": x})


def test_symbolic_dimensions_stay_symbolic_or_take_given_shapes():
    x = np.zeros((2, 5), np.float32)
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": x}, ["y"])
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    warnings = []
    graph = edgecc.load_model(model, warnings=warnings)
    assert graph.inputs[0].type.shape == (Dim.var("batch"), 5) and warnings == []
    graph = edgecc.load_model(model, warnings=warnings, symbolic=False)  # as for targets with fixed shapes only
    assert graph.inputs[0].type.shape == (1, 5)
    assert "'batch'" in warnings[0] and "--input-shape x=" in warnings[0]
    assert edgecc.load_model(model, {"x": (4, 5)}).inputs[0].type.shape == (4, 5)
    with pytest.raises(FrontendError, match="names no model input: y"):
        edgecc.load_model(model, {"y": (1, 5)})


def test_unsupported_op_and_unsupported_attribute_values():
    x = np.zeros((3,), np.float32)
    node = helper.make_node("RandomUniformLike", ["x"], ["y"], name="uniq")
    with pytest.raises(UnsupportedOpError, match="unsupported op 'RandomUniformLike'.*'uniq'.*opset 17"):
        edgecc.load_model(make_model([node], {"x": x}, ["y"]))
    node = helper.make_node("Foo", ["x"], ["y"], domain="com.example", name="custom")
    model = make_model([], {"x": x}, [])
    model.graph.node.append(node)
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(UnsupportedOpError, match="'Foo'"):
        edgecc.load_model(model)


def test_undefined_input_and_uncomputed_output_are_clear_errors():
    x = np.zeros((3,), np.float32)
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": x}, ["y"])
    model.graph.node[0].input[0] = "nowhere"
    with pytest.raises(FrontendError, match="input 'nowhere' is not defined"):
        edgecc.load_model(model)
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": x}, ["y"])
    model.graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, None))
    with pytest.raises(FrontendError, match="graph output 'z' is never computed"):
        edgecc.load_model(model)


def test_shape_that_cannot_be_static_is_named():
    x = np.zeros((1, 4, 4), np.float32)
    image, block = np.array([3, 3], np.int64), np.array([2, 2], np.int64)
    model = make_model([helper.make_node("Col2Im", ["x", "s", "b"], ["y"], name="r")],
                       {"x": x, "s": image, "b": block}, ["y"], opset=18)
    with pytest.raises(FrontendError, match="node 'r' \\(Col2Im\\): image_shape must be known at compile time"):
        edgecc.load_model(model)


def test_impossible_shape_is_a_frontend_error():
    graph = helper.make_graph([helper.make_node("Add", ["x", "b"], ["y"], name="bad_add")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.zeros((4,), np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(FrontendError, match="node 'bad_add' \\(Add\\).*do not broadcast"):
        edgecc.load_model(model)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_opset_9_upsample_keeps_its_meaning(mode):
    x = np.random.default_rng(1).standard_normal((1, 2, 3, 4)).astype(np.float32)
    scales = np.array([1, 1, 2.5, 1.5], np.float32)
    model = make_model([helper.make_node("Upsample", ["x", "s"], ["y"], mode=mode)], {"x": x}, ["y"],
                       {"s": scales}, opset=9)
    assert_matches_ort(model, {"x": x})
