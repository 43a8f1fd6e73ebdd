"""Data-movement ops compiled by edgecc against ONNX Runtime."""

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


def check(op, inputs, initializers=None, n_outputs=1, opset=17, **attrs):
    model = single_op_model(op, inputs, n_outputs, initializers, opset, **attrs)
    return assert_matches_ort(model, inputs)


# ----- reshape, transpose, concat, split -----------------------------------------------------------
@pytest.mark.parametrize("target", [(6, 4), (-1,), (2, 0, -1)])
def test_reshape_view(target):
    x = rand(2, 3, 4)
    check("Reshape", {"x": x}, {"s": np.array(target, I64)})


@pytest.mark.parametrize("target", [(4, 6), (2, 0, -1), (4, 1, 6)])
def test_reshape_inside_fused_group(target):
    x = rand(2, 3, 4)
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Reshape", ["r", "s"], ["t"]),
             helper.make_node("Sigmoid", ["t"], ["out"])]
    model = make_model(nodes, {"x": x}, ["out"], {"s": np.array(target, I64)})
    assert_matches_ort(model, {"x": x}, passes="fuse")


def test_reshape_of_constant():
    x = rand(3, 4)
    nodes = [helper.make_node("Reshape", ["c", "s"], ["t"]), helper.make_node("Add", ["t", "x"], ["out"])]
    model = make_model(nodes, {"x": x}, ["out"], {"c": rand(2, 6), "s": np.array([3, 4], I64)})
    assert_matches_ort(model, {"x": x}, opt_level=0)


@pytest.mark.parametrize("axis", [0, 2, -1, -3])
def test_flatten(axis):
    x = rand(2, 3, 4)
    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=axis), helper.make_node("Relu", ["f"], ["out"])]
    assert_matches_ort(make_model(nodes, {"x": x}, ["out"]), {"x": x}, passes="fuse")


@pytest.mark.parametrize("perm", [None, (0, 2, 1, 3), (3, 1, 0, 2)])
def test_transpose(perm):
    x = rand(2, 3, 4, 5)
    check("Transpose", {"x": x}, **({} if perm is None else {"perm": perm}))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concat(axis):
    a, b, c = rand(2, 3, 4), rand(2, 3, 4), rand(2, 3, 4)
    check("Concat", {"a": a, "b": b, "c": c}, axis=axis)


def test_concat_uneven_int():
    a, b = RNG.integers(-9, 9, (2, 1), dtype=I64), RNG.integers(-9, 9, (2, 3), dtype=I64)
    check("Concat", {"a": a, "b": b}, axis=1)


@pytest.mark.parametrize("sizes,axis", [((2, 3, 1), 1), (None, 0), ((1, 5), -1)])
def test_split(sizes, axis):
    x = rand(4, 6, 6)
    n = 2 if sizes is None else len(sizes)
    init = {} if sizes is None else {"split": np.array(sizes, I64)}
    check("Split", {"x": x}, init, n_outputs=n, axis=axis)


def test_split_uneven_num_outputs():
    x = rand(7, 3)
    check("Split", {"x": x}, n_outputs=3, opset=18, axis=0, num_outputs=3)


# ----- slice -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([1, 0], [3, 4], [0, 1], [1, 2]),
    ([-1], [-1000], [1], [-1]),
    ([-3, 10], [100, -100], [2, 0], [2, -3]),
    ([0], [2**62], [-1], [1]),
    ([5, 1], [-6, 3], [0, 2], [-2, 1]),
    ([2], [1], [1], [1]),
])
def test_slice(starts, ends, axes, steps):
    x = rand(6, 5, 7)
    init = {k: np.array(v, I64) for k, v in zip(("starts", "ends", "axes", "steps"), (starts, ends, axes, steps))}
    check("Slice", {"x": x}, init)


# ----- gathers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis,idx", [(0, [[0, -1], [2, -3]]), (1, [3, -4, 0]), (-1, -2), (2, [[[1]]])])
@pytest.mark.parametrize("idx_dtype", [np.int64, np.int32])
def test_gather(axis, idx, idx_dtype):
    x = rand(3, 4, 5)
    i = np.array(idx, idx_dtype)
    check("Gather", {"x": x, "i": i}, axis=axis)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements(axis):
    x = rand(3, 4, 5)
    shape = [2, 3, 4]
    size = x.shape[axis]
    i = RNG.integers(-size, size, shape).astype(I64)
    check("GatherElements", {"x": x, "i": i}, axis=axis)


@pytest.mark.parametrize("data_shape,idx,batch_dims", [
    ((2, 3, 4), [[0, 1], [1, -1]], 0),
    ((2, 3, 4), [[[0, 1, 2]], [[-1, 0, -1]]], 0),
    ((2, 3, 4), [[1], [0]], 0),
    ((2, 3, 4), [[[1], [0]], [[2], [-1]]], 1),
    ((2, 3, 4, 5), [[[1, 2]], [[0, 3]]], 1),
    ((2, 3, 4), [[[1], [0]], [[1], [-1]], [[0], [0]]], 0),
    ((2, 3, 4, 2), [[[1], [3], [0]], [[2], [3], [-1]]], 2),
])
def test_gather_nd(data_shape, idx, batch_dims):
    x = rand(*data_shape)
    i = np.array(idx, I64)
    check("GatherND", {"x": x, "i": i}, batch_dims=batch_dims)


# ----- scatters --------------------------------------------------------------------------------------
def distinct_indices(size: int, count: int, lines: int) -> np.ndarray:
    """(lines, count): distinct positions in each line, about half of them written negatively."""
    idx = np.stack([RNG.permutation(size)[:count] for _ in range(lines)])
    return np.where(RNG.random(idx.shape) < 0.5, idx - size, idx).astype(I64)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("axis", [0, -1])
def test_scatter_elements(reduction, axis):
    x = rand(4, 5)
    i = distinct_indices(x.shape[axis], 3, x.shape[1 + axis])  # (line, position along the axis)
    if reduction != "none":  # repeated positions are defined only when combined
        i[:, 0] = i[:, 1]
    i = i.T if axis == 0 else i
    u = rand(*i.shape)
    check("ScatterElements", {"x": x, "i": i, "u": u}, opset=18, axis=axis, reduction=reduction)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_scatter_elements_indices_smaller_than_data(axis):
    x = rand(4, 5, 6)
    i = RNG.integers(-x.shape[axis], x.shape[axis], (2, 3, 4)).astype(I64)
    check("ScatterElements", {"x": x, "i": i, "u": rand(2, 3, 4)}, opset=18, axis=axis, reduction="add")


def test_scatter_elements_int():
    x = RNG.integers(0, 9, (3, 3), dtype=np.int32)
    i = np.array([[1, 0, 2], [0, 2, 1]], I64)
    u = RNG.integers(0, 9, (2, 3), dtype=np.int32)
    check("ScatterElements", {"x": x, "i": i, "u": u}, opset=16, axis=0, reduction="add")


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("idx,ushape", [
    ([[1], [-2]], (2, 4, 5)),
    ([[0, 1], [2, -1], [1, 0]], (3, 5)),
    ([[[0, 1, 2]], [[3, 2, 1]]], (2, 1)),
])
def test_scatter_nd(reduction, idx, ushape):
    x = rand(4, 4, 5)
    i = np.array(idx, I64)
    if reduction != "none" and i.shape[0] > 1:  # duplicates are defined only when combined
        i[-1] = i[0]
    u = rand(*ushape)
    check("ScatterND", {"x": x, "i": i, "u": u}, opset=18, reduction=reduction)


# ----- expand, tile ----------------------------------------------------------------------------------
@pytest.mark.parametrize("xshape,shape", [((3, 1), (2, 3, 4)), ((1, 4), (3, 1)), ((2, 3), (3,)), ((1,), (1,))])
def test_expand(xshape, shape):
    x = rand(*xshape)
    check("Expand", {"x": x}, {"shape": np.array(shape, I64)})


@pytest.mark.parametrize("repeats", [(1, 1, 1), (2, 1, 3), (1, 0, 2)])
def test_tile(repeats):
    x = RNG.integers(-5, 5, (2, 3, 2)).astype(np.int32)
    check("Tile", {"x": x}, {"r": np.array(repeats, I64)})


# ----- pad ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
@pytest.mark.parametrize("pads", [(0, 1, 2, 0, 2, 1), (1, -1, 0, -1, 2, 2), (0, 0, 0, 0, 0, 0), (2, 3, 1, 2, 2, 4)])
def test_pad(mode, pads):
    x = rand(3, 4, 5)
    init = {"pads": np.array(pads, I64)}
    if mode == "constant":
        init["value"] = np.array(1.5, np.float32)
    check("Pad", {"x": x}, init, opset=19, mode=mode)


@pytest.mark.parametrize("mode", ["constant", "edge", "wrap"])
def test_pad_wider_than_input(mode):
    check("Pad", {"x": rand(2, 3)}, {"pads": np.array([5, 0, 1, 7], I64)}, opset=19, mode=mode)


def test_pad_int_with_axes():
    x = RNG.integers(-5, 5, (2, 3, 4)).astype(I64)
    init = {"pads": np.array([1, 2, 2, -1], I64), "value": np.array(7, I64), "axes": np.array([-1, 1], I64)}
    check("Pad", {"x": x}, init, opset=18)


# ----- resize ------------------------------------------------------------------------------------------
CTMS = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "half_pixel_symmetric"]
NEAREST = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]


def resize(x, scales=None, sizes=None, roi=None, opset=19, **attrs):
    init = {"roi": np.array(roi if roi is not None else [], np.float32),
            "scales": np.array(scales if scales is not None else [], np.float32)}
    if sizes is not None:
        init["sizes"] = np.array(sizes, I64)
    check("Resize", {"x": x}, init, opset=opset, **attrs)


@pytest.mark.parametrize("ctm", CTMS)
@pytest.mark.parametrize("nearest_mode", NEAREST)
def test_resize_nearest(ctm, nearest_mode):
    x = rand(1, 2, 4, 5)
    resize(x, scales=[1, 1, 1.75, 0.6], mode="nearest", coordinate_transformation_mode=ctm,
           nearest_mode=nearest_mode)


@pytest.mark.parametrize("ctm", CTMS)
@pytest.mark.parametrize("sizes", [(1, 2, 7, 3), (1, 2, 8, 10), (1, 2, 1, 1)])
def test_resize_linear(ctm, sizes):
    resize(rand(1, 2, 4, 5), sizes=sizes, mode="linear", coordinate_transformation_mode=ctm)


@pytest.mark.parametrize("ctm", CTMS)
@pytest.mark.parametrize("a,exclude", [(-0.75, 0), (-0.5, 1)])
def test_resize_cubic(ctm, a, exclude):
    resize(rand(1, 2, 5, 6), scales=[1, 1, 1.6, 0.5], mode="cubic", coordinate_transformation_mode=ctm,
           cubic_coeff_a=a, exclude_outside=exclude)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
def test_resize_tf_crop_and_resize(mode):
    roi = [0, 0, 0.2, -0.3, 1, 1, 0.9, 1.4]
    resize(rand(1, 1, 5, 6), sizes=(1, 1, 4, 7), roi=roi, mode=mode,
           coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=-3.0)


def test_resize_trilinear_5d():
    resize(rand(1, 1, 3, 4, 5), scales=[1, 1, 2, 0.5, 1.4], mode="linear")


def test_resize_keep_aspect_ratio_with_axes():
    resize(rand(1, 1, 4, 6), sizes=(6, 5), mode="linear", axes=[2, 3], keep_aspect_ratio_policy="not_larger")


def test_resize_2d():
    resize(rand(4, 5), scales=[1.5, 0.7], mode="linear")


def test_resize_cubic_float16():
    x = rand(1, 2, 4, 5, dtype=np.float16)
    init = {"roi": np.array([], np.float32), "scales": np.array([1, 1, 1.5, 0.7], np.float32)}
    model = single_op_model("Resize", {"x": x}, 1, init, 19, mode="cubic")
    # the 16 weighted taps, summed in another order than ONNX Runtime's, can round to the
    # neighbouring float16 (one unit in the last place is 2**-11 relative)
    assert_matches_ort(model, {"x": x}, rtol=1e-3, atol=1e-3)


def test_resize_linear_int_truncates():
    x = RNG.integers(-100, 100, (1, 2, 4, 5)).astype(np.int8)
    resize(x, scales=[1, 1, 1.5, 0.7], mode="linear")


def test_resize_nearest_uint8():
    x = RNG.integers(0, 255, (1, 3, 4, 4), dtype=np.uint8)
    resize(x, scales=[1, 1, 2, 2], mode="nearest")


# ----- shape, size, full ---------------------------------------------------------------------------------
@pytest.mark.parametrize("opt_level", [0, 2])
@pytest.mark.parametrize("attrs", [{}, {"start": 1}, {"start": -2, "end": -1}])
def test_shape(opt_level, attrs):
    x = rand(2, 3, 4)
    model = single_op_model("Shape", {"x": x}, opset=15, **attrs)
    assert_matches_ort(model, {"x": x}, opt_level=opt_level)


def test_shape_empty_range():
    x = rand(2, 3, 4)
    assert_matches_ort(single_op_model("Shape", {"x": x}, opset=15, start=2, end=1), {"x": x}, opt_level=0)


@pytest.mark.parametrize("opt_level", [0, 2])
def test_size(opt_level):
    x = rand(2, 3, 4)
    assert_matches_ort(single_op_model("Size", {"x": x}), {"x": x}, opt_level=opt_level)


@pytest.mark.parametrize("value", [None, np.array([2.5], np.float32), np.array([-3], np.int32),
                                   np.array([True])])
def test_constant_of_shape(value):
    x = rand(2, 3)
    attrs = {} if value is None else {"value": helper.make_tensor("v", helper.np_dtype_to_tensor_dtype(
        value.dtype), [1], value.tolist())}
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["f"], **attrs),
             helper.make_node("Shape", ["x"], ["xs"]), helper.make_node("Shape", ["f"], ["fs"]),
             helper.make_node("Concat", ["xs", "fs"], ["out1"], axis=0),
             helper.make_node("Identity", ["f"], ["out0"])]
    model = make_model(nodes, {"x": x}, ["out0", "out1"], {"s": np.array([3, 2], I64)})
    assert_matches_ort(model, {"x": x}, opt_level=0)  # level 0 keeps `full` and `shape` as kernels


# ----- fused groups ---------------------------------------------------------------------------------------
def test_injective_chain_fuses():
    x = rand(2, 3, 4)
    i = np.array([2, 0, -1], I64)
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[2, 0, 1]),
             helper.make_node("Slice", ["t", "starts", "ends", "axes", "steps"], ["s"]),
             helper.make_node("Gather", ["s", "i"], ["g"], axis=2),
             helper.make_node("Pad", ["g", "pads"], ["p"], mode="reflect"),
             helper.make_node("Tile", ["p", "reps"], ["tl"]),
             helper.make_node("Expand", ["tl", "shape"], ["e"]),
             helper.make_node("Concat", ["e", "e"], ["c"], axis=1),
             helper.make_node("Sigmoid", ["c"], ["out"])]
    init = {"starts": np.array([3, 0], I64), "ends": np.array([-100, 2], I64), "axes": np.array([0, 1], I64),
            "steps": np.array([-2, 1], I64), "pads": np.array([0, 1, 0, 0, 1, 1], I64),
            "reps": np.array([1, 2, 1], I64), "shape": np.array([2, 1, 1, 1], I64)}
    model = make_model(nodes, {"x": x, "i": i}, ["out"], init)
    assert_matches_ort(model, {"x": x, "i": i}, passes="fuse")
