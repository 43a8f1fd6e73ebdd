"""Reductions, arg-reductions, cumsum and topk compiled by edgecc against ONNX Runtime."""

import numpy as np
import pytest
from ort_compare import assert_matches_ort, single_op_model

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _fresh_rng():
    """The same data for a test however pytest-xdist spreads the tests over workers."""
    global RNG
    RNG = np.random.default_rng(0)
I64 = np.int64

REDUCE_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def check(op, inputs, initializers=None, n_outputs=1, opset=18, **attrs):
    model = single_op_model(op, inputs, n_outputs, initializers, opset, **attrs)
    return assert_matches_ort(model, inputs)


def positive_for(op, x):
    """Inputs in the op's domain: ReduceLogSum needs a positive sum."""
    return np.abs(x) + 0.5 if op == "ReduceLogSum" else x


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("axes,keepdims", [(None, 1), ([1], 0), ([0, -1], 1), ([2, 0], 0)])
def test_reduce(op, axes, keepdims):
    x = positive_for(op, rand(3, 4, 5))
    init = {} if axes is None else {"axes": np.array(axes, I64)}
    check(op, {"x": x}, init, keepdims=keepdims)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceL2", "ReduceLogSumExp"])
def test_reduce_all_axes_dropped(op):
    check(op, {"x": rand(2, 3)}, keepdims=0)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceL2"])
def test_reduce_float16_accumulates_in_float32(op):
    x = (RNG.random((4, 300)) + 0.5).astype(np.float16)
    check(op, {"x": x}, {"axes": np.array([1], I64)})


def test_reduce_attribute_axes_opset13():
    check("ReduceMean", {"x": rand(2, 3, 4)}, opset=13, axes=[1, 2], keepdims=0)


def test_reduce_empty_axes_noop():
    x = rand(2, 3)
    check("ReduceSum", {"x": x}, {"axes": np.array([], I64)}, noop_with_empty_axes=1)


def test_reduce_log_sum_exp_large_and_infinite_values():
    x = rand(3, 6) * 50 + 100
    x[1] = -np.inf
    x[2, 3] = -np.inf
    check("ReduceLogSumExp", {"x": x}, {"axes": np.array([1], I64)})


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL2",
                                "ReduceLogSumExp"])
def test_reduce_empty_axis(op):
    check(op, {"x": np.zeros((2, 0, 3), np.float32)}, {"axes": np.array([1], I64)})


@pytest.mark.parametrize("op", ["ReduceMax", "ReduceMin"])
def test_reduce_bool(op):
    x = RNG.random((3, 4)) > 0.5
    x[0] = True
    x[1] = False
    check(op, {"x": x}, {"axes": np.array([1], I64)}, opset=20, keepdims=0)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceMean"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_reduce_int(op, dtype):
    x = RNG.integers(-4, 5, (3, 4)).astype(dtype)
    check(op, {"x": x}, {"axes": np.array([1], I64)}, keepdims=0)


# ----- argmax / argmin ------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis,keepdims", [(0, 1), (-1, 0), (1, 1)])
@pytest.mark.parametrize("last", [0, 1])
def test_arg(op, axis, keepdims, last):
    x = RNG.integers(-2, 3, (3, 4, 5)).astype(np.float32)  # many ties
    check(op, {"x": x}, axis=axis, keepdims=keepdims, select_last_index=last)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
def test_arg_int_extremes(op):
    info = np.iinfo(np.int32)
    x = np.array([[info.min, info.min, 3], [info.max, 0, info.max], [5, 5, 5]], np.int32)
    check(op, {"x": x}, axis=1)
    check(op, {"x": x}, axis=1, select_last_index=1)


def test_arg_all_infinite():
    x = np.full((2, 3), -np.inf, np.float32)
    x[1, 2] = 1
    check("ArgMax", {"x": x}, axis=1, keepdims=0)


# ----- cumsum ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, -1, 1])
@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_cumsum(axis, exclusive, reverse):
    x = rand(3, 4, 5)
    check("CumSum", {"x": x}, {"axis": np.array(axis, I64)}, exclusive=exclusive, reverse=reverse)


def test_cumsum_empty():
    check("CumSum", {"x": np.zeros((2, 0), np.float32)}, {"axis": np.array(1, I64)})


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_cumsum_int(dtype):
    x = RNG.integers(-9, 9, (4, 6)).astype(dtype)
    check("CumSum", {"x": x}, {"axis": np.array([1], np.int32)}, reverse=1)


# ----- topk -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("largest", [1, 0])
@pytest.mark.parametrize("axis,k", [(-1, 3), (0, 2), (1, 5), (1, 1)])
def test_topk(largest, axis, k):
    x = RNG.integers(-3, 4, (4, 5, 6)).astype(np.float32)  # ties: the lower index comes first
    check("TopK", {"x": x}, {"k": np.array([k], I64)}, n_outputs=2, axis=axis, largest=largest)


def test_topk_k_zero():
    check("TopK", {"x": rand(3, 4)}, {"k": np.array([0], I64)}, n_outputs=2)


def test_topk_unsorted_selects_the_same_elements():
    from ort_compare import run_edgecc, run_ort

    x = {"x": rand(3, 9)}
    model = single_op_model("TopK", x, 2, {"k": np.array([4], I64)}, 18, sorted=0)
    (ort_values, ort_indices), (values, indices) = run_ort(model, x), run_edgecc(model, x)
    order, ort_order = np.argsort(indices, axis=1), np.argsort(ort_indices, axis=1)
    np.testing.assert_array_equal(np.take_along_axis(indices, order, 1), np.take_along_axis(ort_indices, ort_order, 1))
    np.testing.assert_array_equal(np.take_along_axis(values, order, 1), np.take_along_axis(ort_values, ort_order, 1))


@pytest.mark.parametrize("dtype", [np.int64, np.int16, np.uint8])
def test_topk_int(dtype):
    x = RNG.integers(0, 50, (3, 8)).astype(dtype)
    check("TopK", {"x": x}, {"k": np.array([4], I64)}, n_outputs=2)


def test_reductions_fuse_with_elementwise_neighbours():
    from onnx import helper
    from ort_compare import make_model

    x = rand(3, 4, 5)
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("ReduceLogSumExp", ["r", "axes"], ["l"], keepdims=0),
             helper.make_node("Sqrt", ["l"], ["out0"]),
             helper.make_node("Exp", ["x"], ["e"]),
             helper.make_node("ArgMax", ["e"], ["out1"], axis=1, keepdims=0),
             helper.make_node("Neg", ["x"], ["n"]),
             helper.make_node("ReduceMean", ["n", "axes"], ["m"]),
             helper.make_node("Abs", ["m"], ["out2"])]
    model = make_model(nodes, {"x": x}, ["out0", "out1", "out2"], {"axes": np.array([0, 2], I64)}, opset=18)
    assert_matches_ort(model, {"x": x}, passes="fuse")
