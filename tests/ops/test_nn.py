"""Neural-network ops (conv, pooling, normalization, softmax family, matmul) against ONNX Runtime."""

import numpy as np
import pytest
from onnx import helper
from ort_compare import assert_matches_ort, make_model, run_edgecc, run_ort, single_op_model

import edgecc

RNG = np.random.default_rng(0)
# float16 results differ from ORT by a few half-precision ulps (about 1e-3 relative) because the
# two accumulate in different orders and precisions
HALF_TOL = dict(rtol=3e-3, atol=3e-3)


def rand(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


def check(op, inputs, initializers=None, opset=17, tol=None, compile_kwargs=None, n_outputs=1, **attrs):
    model = single_op_model(op, inputs, n_outputs, initializers, opset, **attrs)
    return assert_matches_ort(model, inputs, **(tol or {}), **(compile_kwargs or {}))


# ----- Conv --------------------------------------------------------------------------------------
CONV_CASES = {
    "1d_stride_dilation_asym_pads": ((2, 3, 11), (4, 3, 3), dict(strides=[2], dilations=[2], pads=[1, 2])),
    "1d_same_lower": ((1, 2, 9), (3, 2, 4), dict(strides=[2], auto_pad="SAME_LOWER")),
    "2d_pads": ((1, 3, 8, 8), (5, 3, 3, 3), dict(pads=[1, 1, 1, 1])),
    "2d_stride_dilation_asym": ((1, 3, 9, 10), (4, 3, 3, 2), dict(strides=[2, 3], dilations=[2, 1], pads=[0, 1, 2, 1])),
    "2d_same_upper_stride": ((1, 2, 7, 8), (4, 2, 3, 3), dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    "2d_same_lower_even_kernel": ((1, 2, 7, 7), (3, 2, 4, 2), dict(strides=[2, 1], auto_pad="SAME_LOWER")),
    "2d_valid": ((1, 2, 7, 6), (3, 2, 3, 3), dict(auto_pad="VALID", strides=[2, 2])),
    "2d_grouped": ((2, 6, 6, 6), (4, 3, 3, 3), dict(group=2, pads=[1, 0, 1, 2])),
    "2d_depthwise_multiplier": ((1, 4, 7, 7), (8, 1, 3, 3), dict(group=4, pads=[1, 1, 1, 1], strides=[2, 2])),
    "2d_pointwise": ((1, 8, 5, 5), (6, 8, 1, 1), {}),
    "3d": ((1, 2, 5, 6, 5), (4, 2, 3, 2, 3), dict(strides=[1, 2, 2], pads=[1, 0, 1, 1, 1, 0])),
    "3d_grouped_dilated": ((1, 4, 6, 6, 6), (4, 2, 2, 2, 2), dict(group=2, dilations=[2, 1, 2])),
}


@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv(case):
    xs, ws, attrs = CONV_CASES[case]
    init = {"w": rand(*ws)}
    if list(CONV_CASES).index(case) % 2 == 0:  # every other case with a bias
        init["b"] = rand(ws[0])
    check("Conv", {"x": rand(*xs)}, init, **attrs)


def test_conv_weight_as_graph_input():
    inputs = {"x": rand(1, 4, 6, 6), "w": rand(4, 2, 3, 3), "b": rand(4)}
    check("Conv", inputs, group=2, pads=[1, 1, 1, 1])


def test_conv_float16():
    inputs = {"x": rand(1, 3, 6, 6, dtype=np.float16)}
    check("Conv", inputs, {"w": rand(4, 3, 3, 3, dtype=np.float16), "b": rand(4, dtype=np.float16)},
          tol=HALF_TOL, pads=[1, 1, 1, 1])


# ----- ConvTranspose ------------------------------------------------------------------------------
CONV_T_CASES = {
    "1d_stride_pads": ((1, 3, 5), (3, 2, 3), dict(strides=[2], pads=[1, 0])),
    "2d_plain": ((1, 2, 4, 4), (2, 3, 3, 3), {}),
    "2d_stride_outpad": ((1, 3, 4, 5), (3, 2, 3, 3), dict(strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 0])),
    "2d_dilated_grouped": ((2, 4, 4, 4), (4, 3, 2, 3), dict(group=2, dilations=[2, 1], strides=[1, 2],
                                                            pads=[0, 1, 1, 0])),
    "2d_depthwise": ((1, 4, 5, 5), (4, 1, 3, 3), dict(group=4, strides=[2, 2], pads=[1, 1, 1, 1])),
    "2d_negative_effective_pad": ((1, 2, 5, 5), (2, 2, 2, 2), dict(strides=[3, 3], pads=[2, 2, 2, 2])),
    "2d_output_shape": ((1, 2, 4, 4), (2, 2, 3, 3), dict(strides=[2, 2], output_shape=[10, 9])),
    "2d_output_shape_odd_padding": ((1, 2, 4, 4), (2, 2, 3, 3), dict(strides=[2, 2], output_shape=[8, 7])),
    "2d_same_upper": ((1, 2, 4, 3), (2, 3, 3, 3), dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    "2d_same_lower": ((1, 2, 4, 3), (2, 3, 4, 4), dict(strides=[2, 3], auto_pad="SAME_LOWER")),
    "3d": ((1, 2, 3, 4, 3), (2, 2, 2, 3, 2), dict(strides=[2, 1, 2], pads=[0, 1, 0, 1, 0, 1])),
}


@pytest.mark.parametrize("case", list(CONV_T_CASES))
def test_conv_transpose(case):
    xs, ws, attrs = CONV_T_CASES[case]
    group = attrs.get("group", 1)
    init = {"w": rand(*ws)}
    if list(CONV_T_CASES).index(case) % 2 == 0:  # every other case with a bias
        init["b"] = rand(ws[1] * group)
    check("ConvTranspose", {"x": rand(*xs)}, init, **attrs)


# ----- MaxPool, AveragePool, LpPool ---------------------------------------------------------------
POOL_CASES = {
    "1d_stride_pads": ((2, 3, 10), dict(kernel_shape=[3], strides=[2], pads=[1, 1])),
    "2d_plain": ((1, 3, 8, 8), dict(kernel_shape=[2, 2], strides=[2, 2])),
    "2d_asym_pads": ((1, 2, 7, 8), dict(kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 2, 1])),
    "2d_ceil_pads": ((1, 2, 7, 7), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1)),
    "2d_ceil_last_window_dropped": ((1, 2, 5, 5), dict(kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1],
                                                        ceil_mode=1)),
    "2d_ceil_no_pads": ((1, 2, 8, 7), dict(kernel_shape=[3, 3], strides=[2, 3], ceil_mode=1)),
    "2d_same_upper": ((1, 2, 7, 6), dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")),
    "2d_same_lower": ((1, 2, 7, 6), dict(kernel_shape=[2, 3], strides=[2, 2], auto_pad="SAME_LOWER")),
    "3d": ((1, 2, 5, 6, 7), dict(kernel_shape=[2, 3, 3], strides=[2, 2, 2], pads=[0, 1, 1, 1, 0, 1])),
}
DILATED_CASES = {
    "2d_dilated": ((1, 2, 9, 9), dict(kernel_shape=[3, 3], dilations=[2, 2], pads=[1, 1, 1, 1], strides=[2, 1])),
    "2d_dilated_ceil": ((1, 2, 10, 9), dict(kernel_shape=[2, 3], dilations=[3, 2], pads=[1, 1, 1, 2], strides=[2, 2],
                                            ceil_mode=1)),
}


@pytest.mark.parametrize("case", list(POOL_CASES) + list(DILATED_CASES))
def test_max_pool(case):
    shape, attrs = {**POOL_CASES, **DILATED_CASES}[case]
    check("MaxPool", {"x": rand(*shape)}, **attrs)


def test_max_pool_uint8():
    x = RNG.integers(0, 256, (1, 3, 7, 7)).astype(np.uint8)
    check("MaxPool", {"x": x}, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])


@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("case", list(POOL_CASES))
def test_avg_pool(case, include_pad):
    shape, attrs = POOL_CASES[case]
    check("AveragePool", {"x": rand(*shape)}, count_include_pad=include_pad, **attrs)


@pytest.mark.parametrize("include_pad", [0, 1])
@pytest.mark.parametrize("case", list(DILATED_CASES))
def test_avg_pool_dilated(case, include_pad):
    shape, attrs = DILATED_CASES[case]
    check("AveragePool", {"x": rand(*shape)}, opset=19, count_include_pad=include_pad, **attrs)


@pytest.mark.parametrize("case,p", [("1d_stride_pads", 1), ("2d_asym_pads", 2), ("2d_ceil_pads", 3), ("3d", 2)])
def test_lp_pool(case, p):
    shape, attrs = POOL_CASES[case]
    check("LpPool", {"x": rand(*shape)}, opset=18, p=p, **attrs)


def test_lp_pool_dilated():
    shape, attrs = DILATED_CASES["2d_dilated"]
    check("LpPool", {"x": rand(*shape)}, opset=18, p=2, **attrs)


# ----- global pools ------------------------------------------------------------------------------------
@pytest.mark.parametrize("op,attrs,shape", [
    ("GlobalAveragePool", {}, (2, 3, 7)),
    ("GlobalAveragePool", {}, (1, 2, 3, 4, 5)),
    ("GlobalMaxPool", {}, (1, 4, 5, 6)),
    ("GlobalMaxPool", {}, (2, 3, 7)),
    ("GlobalLpPool", {"p": 2}, (1, 4, 5, 6)),
    ("GlobalLpPool", {"p": 3}, (1, 2, 3, 4, 5)),
])
def test_global_pool(op, attrs, shape):
    check(op, {"x": rand(*shape)}, **attrs)


# ----- normalization ----------------------------------------------------------------------------------
def _bn_params(c):
    return {"s": rand(c), "b": rand(c), "m": rand(c), "v": RNG.random(c).astype(np.float32) + 0.5}


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 5), (1, 3, 4, 5), (1, 2, 3, 3, 2)])
def test_batch_norm(shape):
    # opt level 0 keeps the batch_norm node (fold-batch-norm would rewrite it into mul/add)
    check("BatchNormalization", {"x": rand(*shape)}, _bn_params(shape[1]), epsilon=1e-3,
          compile_kwargs={"opt_level": 0})


def test_batch_norm_channels_last_axis():
    """The IR's axis attribute (no ONNX form): BN over axis 3 equals Transpose-BN-Transpose."""
    x, params = rand(2, 4, 5, 3), _bn_params(3)
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("BatchNormalization", ["t", "s", "b", "m", "v"], ["n"]),
             helper.make_node("Transpose", ["n"], ["out"], perm=[0, 2, 3, 1])]
    inputs = {"x": x, **params}
    expected = run_ort(make_model(nodes, inputs, ["out"]), inputs)
    graph = edgecc.ir.parse_graph("""
        graph @main(%x: f32[2,4,5,3], %s: f32[3], %b: f32[3], %m: f32[3], %v: f32[3]) {
          %out = batch_norm(%x, %s, %b, %m, %v) {axis=-1} : f32[2,4,5,3]
          return %out
        }""")
    (got,) = run_edgecc(graph, inputs, opt_level=0)
    np.testing.assert_allclose(got, expected[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(2, 3, 6), (1, 4, 5, 6), (1, 2, 3, 4, 3)])
def test_instance_norm(shape):
    x = rand(*shape) * 3 + 1
    check("InstanceNormalization", {"x": x}, {"s": rand(shape[1]), "b": rand(shape[1])}, epsilon=1e-4)


@pytest.mark.parametrize("shape,axis,params", [
    ((2, 3, 8), -1, "sb"),
    ((2, 3, 8), 1, "sb"),
    ((4, 6), 0, "s"),
    ((2, 3, 4, 5), -2, "s"),
    ((2, 3, 8), -1, "s_row"),
])
def test_layer_norm(shape, axis, params):
    norm_shape = shape[axis:]
    init = {"s": rand(*norm_shape)}
    if params == "s_row":  # scale broadcasting along the normalized axes
        init = {"s": rand(1, *norm_shape[1:])}
    if params == "sb":
        init["b"] = rand(*norm_shape)
    x = rand(*shape) * 2 + 0.5
    check("LayerNormalization", {"x": x}, init, axis=axis, epsilon=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_layer_norm_mean_and_inv_std_dev_outputs(dtype):
    x = rand(2, 3, 6, dtype=dtype)
    init = {"s": rand(3, 6, dtype=dtype), "b": rand(3, 6, dtype=dtype)}
    check("LayerNormalization", {"x": x}, init, n_outputs=3, axis=1,
          tol=HALF_TOL if dtype == np.float16 else None)


@pytest.mark.parametrize("size,attrs", [(3, {}), (5, dict(alpha=0.3, beta=0.9, bias=2.0))])
def test_lrn(size, attrs):
    check("LRN", {"x": rand(1, 7, 4, 5)}, size=size, **attrs)


def test_lrn_3d_input():
    """ORT takes 4-D input only: compare with Unsqueeze-LRN-Squeeze."""
    x = rand(2, 6, 5)
    nodes = [helper.make_node("Unsqueeze", ["x", "ax"], ["u"]),
             helper.make_node("LRN", ["u"], ["l"], size=3, alpha=0.2),
             helper.make_node("Squeeze", ["l", "ax"], ["out"])]
    model = make_model(nodes, {"x": x}, ["out"], {"ax": np.array([3], np.int64)})
    assert_matches_ort(model, {"x": x})


@pytest.mark.parametrize("size", [2, 4])
def test_lrn_even_size(size):
    """ORT rejects even sizes: compare with the spec's formula built from ORT ops, the channel
    window sum c-floor((size-1)/2)..c+ceil((size-1)/2) being a Conv of ones over channels."""
    alpha, beta, bias = 0.05, 0.6, 1.5
    n, c, h, w = 1, 7, 3, 4
    lo = (size - 1) // 2
    x = rand(n, c, h, w)
    nodes = [helper.make_node("Mul", ["x", "x"], ["sq"]),
             helper.make_node("Reshape", ["sq", "s1"], ["sq1"]),
             helper.make_node("Conv", ["sq1", "ones"], ["win"], pads=[lo, 0, size - 1 - lo, 0]),
             helper.make_node("Reshape", ["win", "s0"], ["sums"]),
             helper.make_node("Mul", ["sums", "k"], ["scaled"]),
             helper.make_node("Add", ["scaled", "bias"], ["base"]),
             helper.make_node("Pow", ["base", "beta"], ["den"]),
             helper.make_node("Div", ["x", "den"], ["out"])]
    consts = {"s1": np.array([n, 1, c, h * w], np.int64), "s0": np.array([n, c, h, w], np.int64),
              "ones": np.ones((1, 1, size, 1), np.float32), "k": np.float32(alpha / size),
              "bias": np.float32(bias), "beta": np.float32(beta)}
    (expected,) = run_ort(make_model(nodes, {"x": x}, ["out"], consts), {"x": x})
    model = single_op_model("LRN", {"x": x}, size=size, alpha=alpha, beta=beta, bias=bias)
    (got,) = run_edgecc(model, {"x": x})
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


# ----- Softmax, LogSoftmax, Hardmax -----------------------------------------------------------------
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_family(op, axis):
    check(op, {"x": rand(3, 4, 5) * 10}, axis=axis)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
def test_softmax_family_legacy_flattens(op):
    """Before opset 13 the op works on the input flattened to 2-D at `axis`."""
    check(op, {"x": rand(2, 3, 4)}, opset=11, axis=1)


def test_softmax_large_values_stay_finite():
    x = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1002.0, -1001.0]], np.float32)
    for op in ("Softmax", "LogSoftmax"):
        check(op, {"x": x}, axis=-1)


def test_hardmax_ties_pick_the_first():
    x = RNG.integers(0, 3, (4, 6)).astype(np.float32)
    check("Hardmax", {"x": x}, axis=-1)


# ----- MatMul, Gemm ----------------------------------------------------------------------------------
@pytest.mark.parametrize("sa,sb", [
    ((3, 4), (4, 5)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 3, 4), (4, 5)),
    ((4,), (2, 4, 3)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((3, 1, 2, 4), (4, 3)),
])
def test_matmul(sa, sb):
    a, b = rand(*sa), rand(*sb)
    check("MatMul", {"a": a, "b": b})


def test_matmul_int32():
    a = RNG.integers(-9, 9, (2, 3, 4)).astype(np.int32)
    b = RNG.integers(-9, 9, (4, 2)).astype(np.int32)
    check("MatMul", {"a": a, "b": b})


@pytest.mark.parametrize("attrs", [{}, dict(transA=1, alpha=0.5), dict(transB=1, beta=2.0)])
def test_gemm(attrs):
    a = rand(4, 3) if attrs.get("transA") else rand(3, 4)
    b = rand(5, 4) if attrs.get("transB") else rand(4, 5)
    check("Gemm", {"a": a}, {"b": b, "c": rand(5)}, **attrs)


# ----- float16 ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("op,shape,init,attrs", [
    ("Softmax", (3, 7), {}, dict(axis=-1)),
    ("LayerNormalization", (2, 3, 8), {"s": (8,), "b": (8,)}, {}),
    ("InstanceNormalization", (1, 3, 10), {"s": (3,), "b": (3,)}, {}),
    ("GlobalAveragePool", (1, 3, 5, 5), {}, {}),
    ("MaxPool", (1, 2, 6, 6), {}, dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2])),
])
def test_float16(op, shape, init, attrs):
    initializers = {k: rand(*s, dtype=np.float16) for k, s in init.items()}
    check(op, {"x": rand(*shape, dtype=np.float16)}, initializers, tol=HALF_TOL, **attrs)


# ----- a small CNN, plain and in the blocked layout -------------------------------------------------
def _cnn():
    c = 16
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "s", "b", "m", "v"], ["n1"]),
        helper.make_node("Relu", ["n1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], group=c, pads=[1, 1, 1, 1]),
        helper.make_node("AveragePool", ["c2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
        helper.make_node("GlobalAveragePool", ["p2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fc"], ["out"]),
    ]
    inits = {"w1": rand(c, 3, 3, 3), "b1": rand(c), **_bn_params(c), "w2": rand(c, 1, 3, 3), "fc": rand(c, 8)}
    x = rand(1, 3, 9, 9)
    return make_model(nodes, {"x": x}, ["out"], inits), {"x": x}


@pytest.mark.parametrize("passes", [None, "fold-batch-norm,convert-layout{lanes=8},fold-constants,"
                                          "eliminate-dead-code,fuse"])
def test_small_cnn(passes):
    model, inputs = _cnn()
    assert_matches_ort(model, inputs, **({} if passes is None else {"passes": passes}))
