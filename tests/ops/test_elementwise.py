"""Elementwise ops compiled by edgecc against ONNX Runtime."""

import numpy as np
import pytest
from ort_compare import assert_matches_ort, single_op_model

RNG = np.random.default_rng(0)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("op", ["Relu", "Sigmoid", "Tanh", "Exp", "Abs", "Neg", "Erf", "Floor", "Ceil",
                                "Round", "Sign", "Sin", "Cos", "Softplus", "Softsign", "HardSwish", "Identity"])
def test_unary(op):
    assert_matches_ort(single_op_model(op, {"x": rand(2, 3, 4)}), {"x": rand(2, 3, 4)})


@pytest.mark.parametrize("op,attrs", [("LeakyRelu", {"alpha": 0.2}), ("Elu", {"alpha": 0.7}),
                                      ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}), ("Selu", {})])
def test_unary_with_attributes(op, attrs):
    x = rand(3, 5)
    assert_matches_ort(single_op_model(op, {"x": x}, **attrs), {"x": x})


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min"])
@pytest.mark.parametrize("shapes", [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((2, 1, 4), (3, 1))])
def test_broadcast_binary(op, shapes):
    a, b = rand(*shapes[0]), rand(*shapes[1]) + (3.0 if op == "Div" else 0.0)
    assert_matches_ort(single_op_model(op, {"a": a, "b": b}), {"a": a, "b": b})


@pytest.mark.parametrize("op", ["Equal", "Less", "Greater"])
def test_comparison(op):
    a = RNG.integers(0, 3, (4, 5)).astype(np.int64)
    b = RNG.integers(0, 3, (5,)).astype(np.int64)
    assert_matches_ort(single_op_model(op, {"a": a, "b": b}), {"a": a, "b": b})


def test_integer_division_truncates():
    a = np.array([-7, 7, -8, 9], dtype=np.int32)
    b = np.array([2, -2, 3, 4], dtype=np.int32)
    assert_matches_ort(single_op_model("Div", {"a": a, "b": b}), {"a": a, "b": b})


def test_where_and_cast():
    from onnx import TensorProto, helper
    from ort_compare import make_model

    c = RNG.random((3, 4)) > 0.5
    x, y = rand(3, 4), rand(4)
    nodes = [helper.make_node("Where", ["c", "x", "y"], ["w"]),
             helper.make_node("Cast", ["w"], ["out"], to=TensorProto.INT32)]
    assert_matches_ort(make_model(nodes, {"c": c, "x": x, "y": y}, ["out"]), {"c": c, "x": x, "y": y})


def test_clip_with_constant_bounds():
    x = rand(4, 4) * 4
    model = single_op_model("Clip", {"x": x}, initializers={"lo": np.float32(-1), "hi": np.float32(2)})
    assert_matches_ort(model, {"x": x})
