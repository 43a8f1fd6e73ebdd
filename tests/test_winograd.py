"""Winograd convolution: the matrices, the per-layer rule, and compiled kernels against the direct
convolution and ONNX Runtime."""

import numpy as np
import pytest
from onnx import helper
from ort_compare import make_model, run_ort

import edgecc
from edgecc.ir.ops.winograd import TILES, transform_weight, winograd_matrices
from edgecc.passes import PassOptionError, format_pipeline, opt_level_pipeline, parse_pipeline
from edgecc.passes.winograd import choose_tile
from edgecc.targets import get_target


def _correlate(d: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Valid 2-D cross-correlation of a square tile with a 3x3 kernel."""
    n = d.shape[0] - 2
    return np.array([[np.sum(d[y:y + 3, x:x + 3] * g) for x in range(n)] for y in range(n)])


@pytest.mark.parametrize("m", TILES)
def test_matrices_compute_a_tile_of_the_correlation(m):
    rng = np.random.default_rng(m)
    d, g = rng.standard_normal((m + 2, m + 2)), rng.standard_normal((3, 3))
    bt, gm, at = winograd_matrices(m)
    y = at @ ((gm @ g @ gm.T) * (bt @ d @ bt.T)) @ at.T
    np.testing.assert_allclose(y, _correlate(d, g), rtol=1e-12, atol=1e-12)


def test_weight_transform_is_per_channel_pair():
    rng = np.random.default_rng(0)
    blocked = rng.standard_normal((2, 3, 3, 3, 4, 8)).astype(np.float32)  # (O/8, C/4, 3, 3, 4, 8)
    u = transform_weight(blocked, 4)
    _, gm, _ = winograd_matrices(4)
    assert u.shape == (6, 6, 2, 3, 4, 8) and u.dtype == np.float32
    np.testing.assert_allclose(u[:, :, 1, 2, 3, 5], gm @ blocked[1, 2, :, :, 3, 5] @ gm.T, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size, expected", [((1, 56, 56), 4), ((1, 28, 28), 4), ((1, 16, 16), 2), ((1, 14, 14), 2), ((1, 8, 8), 2),
                                            ((1, 7, 7), None), ((8, 7, 7), 4), ((4, 3, 3), None),
                                            ((1, 4, 4), None)])
def test_rule_prices_multiplications_and_weight_reuse(size, expected):
    assert choose_tile(*size) == expected


def test_rule_weight_cost_is_an_option():
    assert choose_tile(1, 7, 7, weight_cost=0) == 4  # multiplications alone
    assert choose_tile(1, 7, 7, weight_cost=16) == 2
    assert choose_tile(1, 7, 7, weight_cost=100) is None


# ----- compiled kernels --------------------------------------------------------------------------
def _conv_block(c: int, o: int, hw: tuple[int, int], pads, seed: int = 0, batch: int = 1):
    """conv 3x3 (+bias) -> relu -> + a second input: the Winograd kernel gets a fused bias,
    activation and residual add."""
    rng = np.random.default_rng(seed)
    oh, ow = hw[0] + pads[0] + pads[2] - 2, hw[1] + pads[1] + pads[3] - 2
    inputs = {"x": rng.standard_normal((batch, c, *hw)).astype(np.float32),
              "z": rng.standard_normal((batch, o, oh, ow)).astype(np.float32)}
    inits = {"w": (rng.standard_normal((o, c, 3, 3)) * 0.2).astype(np.float32),
             "b": rng.standard_normal(o).astype(np.float32)}
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=list(pads)),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Add", ["r", "z"], ["y"]),
    ]
    return make_model(nodes, inputs, ["y"], inits), inputs


def _pipeline(winograd: str) -> str:
    target_passes = [winograd if p == "winograd" else p for p in get_target("host").passes(2)]
    return format_pipeline(opt_level_pipeline(2, target_passes))


def _winograd_tiles(compiled) -> list[int]:
    nodes = [m for n in compiled.graph.nodes for m in (n.subgraph.nodes if n.subgraph else [n])]
    return [n.attrs["tile"] for n in nodes if n.op == "winograd_conv"]


@pytest.mark.parametrize("m, hw, pads, batch", [
    (2, (10, 10), (1, 1, 1, 1), 1),
    (4, (10, 10), (1, 1, 1, 1), 1),  # 10 rows: the last tile of each image axis is partial
    (4, (9, 13), (0, 1, 1, 0), 1),  # unpadded and asymmetric sides
    (2, (7, 6), (1, 1, 1, 1), 3),  # tiles of several images in one GEMM
])
def test_winograd_kernel_matches_direct_conv_and_onnxruntime(m, hw, pads, batch):
    model, inputs = _conv_block(16, 32, hw, pads, batch=batch)
    expected = run_ort(model, inputs)[0]
    winograd = edgecc.compile(model, "host", passes=_pipeline(f"winograd{{tile={m}}}"), strict_schedules=True)
    direct = edgecc.compile(model, "host", passes=_pipeline("winograd"), disabled_passes=["winograd"])
    assert _winograd_tiles(winograd) == [m] and _winograd_tiles(direct) == []
    got = winograd.load().run(inputs)["y"]
    reference = direct.load().run(inputs)["y"]
    np.testing.assert_allclose(got, reference, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_avx2_kernels_match_onnxruntime():
    """An AVX2 + FMA CPU (8-lane vectors, 16 registers) gets its own blocking and register tile;
    its code also runs on AVX-512 hosts."""
    model, inputs = _conv_block(16, 24, (28, 28), (1, 1, 1, 1), seed=3)
    compiled = edgecc.compile(model, "host", target_options={"cpu": "znver3"}, strict_schedules=True)
    assert compiled.target.lanes("float32") == 8 and _winograd_tiles(compiled) == [4]
    np.testing.assert_allclose(compiled.load().run(inputs)["y"], run_ort(model, inputs)[0], rtol=1e-4, atol=1e-4)


def test_default_compile_picks_the_tile_per_layer():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 64, 8, 8)).astype(np.float32)
    inits = {f"w{i}": (rng.standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32) for i in range(3)}
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["a"], pads=[1, 1, 1, 1]),  # 8x8: 2x2 tiles
        helper.make_node("Conv", ["a", "w1"], ["b"], pads=[1, 1, 1, 1], strides=[2, 2]),  # strided: direct
        helper.make_node("Conv", ["b", "w2"], ["y"], pads=[1, 1, 1, 1]),  # 4x4: too few tiles, direct
    ]
    model = make_model(nodes, {"x": x}, ["y"], inits)
    compiled = edgecc.compile(model, "host", strict_schedules=True)
    assert _winograd_tiles(compiled) == [2]
    assert any("stays direct" in str(r) for r in compiled.remarks)
    np.testing.assert_allclose(compiled.load().run({"x": x})["y"], run_ort(model, {"x": x})[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size, channels, expected", [
    ((1, 8, 8), (1, 16), None), ((64, 8, 8), (1, 16), None),  # one input channel: its output transform costs most
    ((1, 8, 8), (32, 32), None), ((1, 8, 8), (64, 64), 2),
    ((1, 56, 56), (64, 64), 4), ((1, 28, 28), (128, 128), 4), ((1, 14, 14), (256, 256), 2), ((1, 7, 7), (512, 512), None),
])
def test_rule_prices_the_transforms_by_channels(size, channels, expected):
    assert choose_tile(*size, channels=channels) == expected


@pytest.mark.parametrize("m", [2, 4])
def test_single_input_channel_kernel_matches_onnxruntime(m):
    """A first layer over one input channel has no channel loop left to reduce over."""
    model, inputs = _conv_block(1, 16, (8, 8), (1, 1, 1, 1), batch=4)
    compiled = edgecc.compile(model, "host", passes=_pipeline(f"winograd{{tile={m}}}"), strict_schedules=True)
    assert _winograd_tiles(compiled) == [m]
    np.testing.assert_allclose(compiled.load().run(inputs)["y"], run_ort(model, inputs)[0], rtol=1e-4, atol=1e-4)
    assert _winograd_tiles(edgecc.compile(model, "host")) == []  # the rule keeps it direct


def test_bad_tile_option_is_a_user_error():
    with pytest.raises(PassOptionError, match="tile must be 0 or one of"):
        parse_pipeline("winograd{tile=3}")
