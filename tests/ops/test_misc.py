"""OneHot, Trilu and Einsum compiled by edgecc against ONNX Runtime."""

import numpy as np
import pytest
from onnx import helper
from ort_compare import assert_matches_ort, make_model, single_op_model

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _fresh_rng():
    """The same data for a test however pytest-xdist spreads the tests over workers."""
    global RNG
    RNG = np.random.default_rng(0)
I64 = np.int64


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def check(op, inputs, initializers=None, opset=17, **attrs):
    model = single_op_model(op, inputs, 1, initializers, opset, **attrs)
    return assert_matches_ort(model, inputs)


# ----- one_hot ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("idx_dtype,depth_dtype", [(np.int64, np.int64), (np.int32, np.float32),
                                                   (np.float32, np.float32)])
def test_one_hot(axis, idx_dtype, depth_dtype):
    i = np.array([[0, -1, 3], [4, -5, 2]], idx_dtype)  # -1 and -5 wrap by depth
    init = {"depth": np.array(5, depth_dtype), "values": np.array([-2.0, 3.0], np.float32)}
    check("OneHot", {"i": i}, init, axis=axis)


def test_one_hot_int_values_out_of_range():
    i = np.array([0, 7, -8, 2, -3], I64)  # 7 and -8 are outside [-depth, depth): all off
    init = {"depth": np.array([4], I64), "values": np.array([0, 9], I64)}
    check("OneHot", {"i": i}, init)


def test_one_hot_float_indices_truncate():
    i = np.array([0.7, 2.9, -0.5, -1.2], np.float32)
    init = {"depth": np.array(3, I64), "values": np.array([0, 9], I64)}
    check("OneHot", {"i": i}, init)


def test_one_hot_runtime_values():
    i = np.array([1, 0, 2], I64)
    values = np.array([0.5, -1.5], np.float32)
    node = helper.make_node("OneHot", ["i", "depth", "values"], ["out"])
    model = make_model([node], {"i": i, "values": values}, ["out"], {"depth": np.array(3, I64)})
    assert_matches_ort(model, {"i": i, "values": values})


# ----- trilu ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("upper", [1, 0])
@pytest.mark.parametrize("k", [None, 0, 2, -1, -4, 7])
def test_trilu(upper, k):
    x = rand(2, 4, 5)
    init = {} if k is None else {"k": np.array(k, I64)}
    check("Trilu", {"x": x}, init, opset=14, upper=upper)


def test_trilu_int_square():
    x = RNG.integers(-9, 9, (3, 3)).astype(np.int32)
    check("Trilu", {"x": x}, {"k": np.array(1, I64)}, opset=14, upper=0)


# ----- einsum -----------------------------------------------------------------------------------------
EQUATIONS = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("ij,jk", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ij->ji", [(3, 4)]),
    ("ijk->kij", [(2, 3, 4)]),
    ("ij->i", [(3, 4)]),
    ("ij->", [(3, 4)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(4, 4)]),
    ("i,i->", [(5,), (5,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij,jk->...ik", [(2, 2, 3, 4), (4, 5)]),
    ("...i,...i->...", [(2, 3, 4), (2, 3, 4)]),
    ("...j->...", [(2, 3, 4)]),
    ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
    ("ij,ij->ij", [(3, 4), (3, 4)]),
    ("i j , j k -> i k", [(3, 4), (4, 5)]),
]


@pytest.mark.parametrize("equation,shapes", EQUATIONS)
def test_einsum(equation, shapes):
    inputs = {f"x{k}": rand(*s) for k, s in enumerate(shapes)}
    check("Einsum", inputs, equation=equation)


def test_einsum_broadcast_ellipsis():
    inputs = {"a": rand(2, 1, 3, 4), "b": rand(1, 5, 4, 2)}
    check("Einsum", inputs, equation="...ij,...jk->...ik")


def test_einsum_sum_over_empty_axis():
    check("Einsum", {"a": np.zeros((2, 0), np.float32), "b": np.zeros((0, 3), np.float32)}, equation="ij,jk->ik")


def test_einsum_int():
    inputs = {"a": RNG.integers(-5, 5, (3, 4)).astype(np.int32), "b": RNG.integers(-5, 5, (4, 2)).astype(np.int32)}
    check("Einsum", inputs, equation="ij,jk->ik")


def test_einsum_float16_accumulates_in_float32():
    inputs = {"a": RNG.random((2, 256)).astype(np.float16), "b": RNG.random((256, 3)).astype(np.float16)}
    check("Einsum", inputs, equation="ij,jk->ik")


def test_einsum_fuses_with_elementwise_neighbours():
    a, b = rand(2, 3, 4), rand(2, 4, 5)
    nodes = [helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Einsum", ["r", "b"], ["e"], equation="bij,bjk->bik"),
             helper.make_node("Tanh", ["e"], ["t"]),
             helper.make_node("Trilu", ["t"], ["out"], upper=0)]
    model = make_model(nodes, {"a": a, "b": b}, ["out"], opset=14)
    assert_matches_ort(model, {"a": a, "b": b}, passes="fuse")
