"""Shapes, axes, pads and counts computed at run time: each model is compiled once, with the value
input fed at run time, and compared with ONNX Runtime at two different values (so two different
output shapes); data-dependent outputs (NonZero, Compress) at inputs with different counts."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import edgecc
from edgecc.errors import EdgeccError

F, I64 = TensorProto.FLOAT, TensorProto.INT64
RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 3, 4)).astype(np.float32)


#: output element types where they are not float
OUTPUT_TYPES = {"TopK": [F, I64], "NonZero": [I64], "Range": [I64], "NonMaxSuppression": [I64],
                "Unique": [F, I64, I64, I64]}


def _model(node, inputs: dict[str, tuple[int, list]], opset: int = 20):
    values = [helper.make_tensor_value_info(name, elem, shape) for name, (elem, shape) in inputs.items()]
    types = OUTPUT_TYPES.get(node.op_type, [F] * len(node.output))
    outputs = [helper.make_tensor_value_info(name, elem, None) for name, elem in zip(node.output, types)]
    graph = helper.make_graph([node], "dynamic", values, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _check(model, feeds_list):
    """Compile once; every feed set matches ONNX Runtime in shape and values."""
    module = edgecc.compile(model, "host").load()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    shapes = []
    for feeds in feeds_list:
        expected = session.run(None, feeds)
        got = list(module.run(feeds).values())
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g.shape == e.shape
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
        shapes.append(tuple(got[0].shape))
    assert len(set(shapes)) == len(shapes), f"the run-time values gave the same shapes {shapes}"


def _i64(*values):
    return np.array(values, dtype=np.int64)


#: onnx's NonMaxSuppression example: three clusters of boxes
BOXES = np.array([[[0.0, 0.0, 1.0, 1.0], [0.0, 0.1, 1.0, 1.1], [0.0, -0.1, 1.0, 0.9], [0.0, 10.0, 1.0, 11.0],
                   [0.0, 10.1, 1.0, 11.1], [0.0, 100.0, 1.0, 101.0]]], np.float32)
SCORES = np.array([[[0.9, 0.75, 0.6, 0.95, 0.5, 0.3]]], np.float32)

CASES = {
    "reshape": (helper.make_node("Reshape", ["x", "s"], ["y"]), {"x": (F, [2, 3, 4]), "s": (I64, [2])},
                [{"s": _i64(6, -1)}, {"s": _i64(0, 12)}]),
    "reduce_sum_dropping_axes": (helper.make_node("ReduceSum", ["x", "a"], ["y"], keepdims=0),
                                 {"x": (F, [2, 3, 4]), "a": (I64, [1])}, [{"a": _i64(1)}, {"a": _i64(-1)}]),
    "reduce_max_keeping_axes": (helper.make_node("ReduceMax", ["x", "a"], ["y"], keepdims=1),
                                {"x": (F, [2, 3, 4]), "a": (I64, [2])}, [{"a": _i64(0, 2)}, {"a": _i64(1, 2)}]),
    "reduce_log_sum_exp": (helper.make_node("ReduceLogSumExp", ["x", "a"], ["y"], keepdims=0),
                           {"x": (F, [2, 3, 4]), "a": (I64, [1])}, [{"a": _i64(0)}, {"a": _i64(2)}]),
    "slice": (helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"]),
              {"x": (F, [2, 3, 4]), "st": (I64, [2]), "en": (I64, [2]), "ax": (I64, [2]), "sp": (I64, [2])},
              [{"st": _i64(0, 1), "en": _i64(3, 4), "ax": _i64(1, 2), "sp": _i64(1, 2)},
               {"st": _i64(-1, 3), "en": _i64(-100, 0), "ax": _i64(-1, 1), "sp": _i64(-1, -2)}]),
    "pad_reflect": (helper.make_node("Pad", ["x", "p"], ["y"], mode="reflect"),
                    {"x": (F, [2, 3, 4]), "p": (I64, [6])},
                    [{"p": _i64(0, 1, 2, 0, 1, 1)}, {"p": _i64(1, 0, 0, 0, 2, 3)}]),
    "pad_constant_value": (helper.make_node("Pad", ["x", "p", "v"], ["y"]),
                           {"x": (F, [2, 3, 4]), "p": (I64, [6]), "v": (F, [])},
                           [{"p": _i64(0, 0, 1, 0, 0, 1), "v": np.array(2.5, np.float32)},
                            {"p": _i64(1, -1, 0, 0, 0, -2), "v": np.array(-1.0, np.float32)}]),
    "expand": (helper.make_node("Expand", ["x", "s"], ["y"]), {"x": (F, [3, 1]), "s": (I64, [3])},
               [{"x": X[0, :, :1], "s": _i64(2, 1, 4)}, {"x": X[0, :, :1], "s": _i64(1, 3, 6)}]),
    "tile": (helper.make_node("Tile", ["x", "r"], ["y"]), {"x": (F, [2, 3, 4]), "r": (I64, [3])},
             [{"r": _i64(1, 2, 1)}, {"r": _i64(2, 1, 3)}]),
    "constant_of_shape": (helper.make_node("ConstantOfShape", ["s"], ["y"],
                                           value=helper.make_tensor("v", F, [1], [1.5])),
                          {"s": (I64, [2])}, [{"s": _i64(2, 3)}, {"s": _i64(4, 1)}]),
    "range": (helper.make_node("Range", ["a", "b", "d"], ["y"]), {"a": (I64, []), "b": (I64, []), "d": (I64, [])},
              [{"a": _i64(1).reshape(()), "b": _i64(10).reshape(()), "d": _i64(3).reshape(())},
               {"a": _i64(5).reshape(()), "b": _i64(-4).reshape(()), "d": _i64(-2).reshape(())}]),
    "topk": (helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=2), {"x": (F, [2, 3, 4]), "k": (I64, [1])},
             [{"k": _i64(1)}, {"k": _i64(3)}]),
    "one_hot": (helper.make_node("OneHot", ["i", "depth", "vals"], ["y"], axis=1),
                {"i": (I64, [3]), "depth": (I64, []), "vals": (F, [2])},
                [{"i": _i64(0, 2, -1), "depth": _i64(3).reshape(()), "vals": np.array([0, 1], np.float32)},
                 {"i": _i64(0, 4, -1), "depth": _i64(5).reshape(()), "vals": np.array([-1, 2], np.float32)}]),
    "unsqueeze": (helper.make_node("Unsqueeze", ["x", "a"], ["y"]), {"x": (F, [2, 3, 4]), "a": (I64, [2])},
                  [{"a": _i64(0, 4)}, {"a": _i64(1, -1)}]),
    "center_crop_pad": (helper.make_node("CenterCropPad", ["x", "s"], ["y"]), {"x": (F, [2, 3, 4]), "s": (I64, [3])},
                        [{"s": _i64(2, 5, 2)}, {"s": _i64(1, 2, 7)}]),
    "split": (helper.make_node("Split", ["x", "s"], ["a", "b"], axis=2), {"x": (F, [2, 3, 4]), "s": (I64, [2])},
              [{"s": _i64(3, 1)}, {"s": _i64(2, 2)}]),
    "affine_grid": (helper.make_node("AffineGrid", ["theta", "size"], ["y"], align_corners=1),
                    {"theta": (F, [2, 2, 3]), "size": (I64, [4])},
                    [{"theta": X[:, :2, :3].copy(), "size": _i64(2, 1, 3, 4)},
                     {"theta": X[:, :2, :3].copy(), "size": _i64(2, 1, 2, 5)}]),
    "non_max_suppression": (
        helper.make_node("NonMaxSuppression", ["boxes", "scores", "n", "iou", "score"], ["y"]),
        {"boxes": (F, [1, 6, 4]), "scores": (F, [1, 1, 6]), "n": (I64, [1]), "iou": (F, [1]), "score": (F, [1])},
        [{"boxes": BOXES, "scores": SCORES, "n": _i64(3), "iou": np.array([0.5], np.float32),
          "score": np.array([0.0], np.float32)},
         {"boxes": BOXES, "scores": SCORES, "n": _i64(3), "iou": np.array([0.5], np.float32),
          "score": np.array([0.85], np.float32)}]),
    "unique": (helper.make_node("Unique", ["u"], ["y", "first", "inverse", "counts"], axis=1),
               {"u": (F, [2, 4])},
               [{"u": np.array([[1, 3, 1, 2], [0, 5, 0, 2]], np.float32)},
                {"u": np.array([[1, 1, 1, 1], [2, 2, 2, 2]], np.float32)}]),
    "nonzero": (helper.make_node("NonZero", ["x"], ["y"]), {"x": (F, [2, 3, 4])},
                [{"x": (X > 0.5).astype(np.float32)}, {"x": (X > -0.5).astype(np.float32)}]),
    "compress": (helper.make_node("Compress", ["x", "c"], ["y"], axis=2), {"x": (F, [2, 3, 4]), "c": (TensorProto.BOOL, [4])},
                 [{"c": np.array([1, 0, 1, 1], bool)}, {"c": np.array([0, 0, 1, 0], bool)}]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_run_time_values_match_onnxruntime_at_two_values(name):
    node, inputs, feeds_list = CASES[name]
    base = {"x": X} if "x" in inputs else {}
    _check(_model(node, inputs), [{**base, **feeds} for feeds in feeds_list])


def test_values_that_do_not_change_the_shape_are_run_time_inputs():
    """Trilu's k and CumSum's axis keep the output shape: plain ops on the run-time value."""
    square = RNG.standard_normal((4, 5)).astype(np.float32)
    trilu = _model(helper.make_node("Trilu", ["x", "k"], ["y"], upper=0), {"x": (F, [4, 5]), "k": (I64, [])})
    module = edgecc.compile(trilu, "host").load()
    for k in (-1, 2):
        got = module.run({"x": square, "k": _i64(k).reshape(())})["y"]
        np.testing.assert_array_equal(got, np.tril(square, k))
    cumsum = _model(helper.make_node("CumSum", ["x", "a"], ["y"]), {"x": (F, [2, 3, 4]), "a": (I64, [])})
    module = edgecc.compile(cumsum, "host").load()
    for axis in (0, -1):
        got = module.run({"x": X, "a": _i64(axis).reshape(())})["y"]
        np.testing.assert_allclose(got, np.cumsum(X, axis=axis), rtol=1e-5, atol=1e-6)


def test_empty_run_time_results():
    """NonZero of zeros, a slice past the end and a reduction beside a 0-sized axis give 0-sized
    outputs, not a crash."""
    nonzero = _model(helper.make_node("NonZero", ["x"], ["y"]), {"x": (F, [3, 4])})
    got = edgecc.compile(nonzero, "host").load().run({"x": np.zeros((3, 4), np.float32)})["y"]
    assert got.shape == (2, 0)
    sliced = _model(helper.make_node("Slice", ["x", "st", "en"], ["y"]), {"x": (F, [2, 3, 4]), "st": (I64, [1]),
                                                                        "en": (I64, [1])})
    got = edgecc.compile(sliced, "host").load().run({"x": X, "st": _i64(5), "en": _i64(9)})["y"]
    assert got.shape == (0, 3, 4)
    reduced = _model(helper.make_node("ReduceSum", ["x", "a"], ["y"]), {"x": (F, [2, 0, 4]), "a": (I64, [1])})
    got = edgecc.compile(reduced, "host").load().run({"x": np.zeros((2, 0, 4), np.float32), "a": _i64(2)})["y"]
    assert got.shape == (2, 0, 1)


def test_an_input_still_needed_at_compile_time_is_a_clear_refusal():
    model = _model(helper.make_node("Col2Im", ["x", "image", "block"], ["y"], name="c2i"),
                   {"x": (F, [1, 4, 4]), "image": (I64, [2]), "block": (I64, [2])})
    with pytest.raises(EdgeccError, match=r"node 'c2i' \(Col2Im\): image_shape must be known at compile time"):
        edgecc.compile(model, "host")


def test_shapes_of_symbolic_inputs_as_values():
    """ConstantOfShape of a symbolic input's shape keeps the size variable; Split into equal parts of a
    symbolic axis computes the part sizes at run time."""
    n = helper.make_tensor_value_info("x", F, ["n", 4])
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("ConstantOfShape", ["s"], ["ones"],
                                                                      value=helper.make_tensor("v", F, [1], [1.0])),
             helper.make_node("Add", ["x", "ones"], ["y"]),
             helper.make_node("Split", ["x"], ["a", "b"], axis=0, num_outputs=2)]
    outputs = [helper.make_tensor_value_info(name, F, None) for name in ("y", "a", "b")]
    model = helper.make_model(helper.make_graph(nodes, "symbolic", [n], outputs),
                              opset_imports=[helper.make_opsetid("", 18)])
    module = edgecc.compile(model, "host").load()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for rows in (3, 6):
        x = RNG.standard_normal((rows, 4)).astype(np.float32)
        for got, expected in zip(module.run({"x": x}).values(), session.run(None, {"x": x})):
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, rtol=1e-6)
