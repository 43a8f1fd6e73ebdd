"""Integer kernels on AArch64: the dot-product instruction follows the target's features (sdot
with `dotprod`, NEON widening multiply-accumulates without), and libraries run under qemu-user
give exactly ONNX Runtime's results on models it quantized.

qemu cannot time, so the speed of the code is checked in its assembly only. The cross toolchain
and qemu-user are needed (tests/test_arm.py says which packages).
"""

from __future__ import annotations

import collections
import os
import re
import subprocess

import numpy as np
import onnx
import pytest
from ort_compare import run_ort
from test_arm import aarch64_runner  # noqa: F401  (fixture: the AArch64 runner qemu runs libraries with)
from test_int8_kernels import assert_every_kernel_scheduled, qdense_weights, quantized_conv_model, quantized_dense_model

import edgecc
from edgecc.runtime import load_any
from edgecc.targets import get_target

DATA = os.path.join(os.path.dirname(__file__), "data")
DOTPROD_BOARDS = ["rpi5", "rk3588", "jetson-orin", "imx93"]


def instructions(compiled, tmp_path) -> collections.Counter:
    """Mnemonic -> count in the exported library's disassembly."""
    lib = tmp_path / "model.so"
    compiled.export(lib)
    asm = subprocess.run(["aarch64-linux-gnu-objdump", "-d", "--no-show-raw-insn", str(lib)], check=True,
                         capture_output=True, text=True).stdout
    return collections.Counter(re.findall(r"^\s*[0-9a-f]+:\t([a-z0-9.]+)", asm, re.MULTILINE))


def run_emulated(compiled, tmp_path, feed) -> np.ndarray:
    lib = tmp_path / "run.so"
    compiled.export(lib)
    module = load_any(str(lib))
    assert module.emulated
    return list(module.run(feed).values())[0]


def test_dot_product_comes_from_the_target_features():
    for board in DOTPROD_BOARDS:
        target = get_target(board)
        assert target.has_feature("dotprod") and target.int8_dot_channels == 4, board
    assert get_target("rpi4").int8_dot_channels == 1 and not get_target("rpi4").has_feature("dotprod")
    assert get_target("armv7").int8_dot_channels == 1
    plain = get_target("arm-cpu", cpu="cortex-a76", features="neon")  # the CPU has it, the features say no
    assert plain.int8_dot_channels == 1 and not plain.has_feature("dotprod")
    assert get_target("arm-cpu", cpu="cortex-a72", features="neon,dotprod").int8_dot_channels == 4


@pytest.mark.parametrize("board", DOTPROD_BOARDS)
def test_dotprod_boards_use_sdot(tmp_path, board):
    path, _ = quantized_conv_model(tmp_path, 16, 32, 1, 1, 3, 14, "uint8")
    compiled = edgecc.compile(path, board)
    assert_every_kernel_scheduled(compiled)
    ops = instructions(compiled, tmp_path)
    assert ops["sdot"] > 0 and ops["udot"] == 0, board


@pytest.mark.parametrize("target", ["rpi4", "armv8-a"])
def test_plain_armv8_uses_neon_widening_multiply_accumulate(tmp_path, target):
    """Without dotprod (Cortex-A72, or a dotprod CPU told not to use it) int8 products are
    multiply-accumulated by NEON's widening smlal (or float32 FMA where that is exact), no sdot."""
    target = get_target("arm-cpu", cpu="cortex-a76", features="neon") if target == "armv8-a" else get_target(target)
    path, _ = quantized_conv_model(tmp_path, 64, 64, 1, 1, 3, 14, "uint8")
    compiled = edgecc.compile(path, target)
    assert_every_kernel_scheduled(compiled)
    ops = instructions(compiled, tmp_path)
    assert ops["sdot"] == ops["udot"] == 0
    assert ops["smlal"] + ops["smlal2"] > 0, ops


@pytest.mark.parametrize("cin,cout,stride,pad,kernel,size,activation", [
    (16, 32, 1, 1, 3, 14, "uint8"),
    (16, 32, 1, 1, 3, 14, "int8"),
    (32, 64, 2, 1, 3, 14, "int8"),   # stride 2, 7x7 output
    (24, 24, 1, 0, 1, 9, "int8"),    # 1x1, 24 channels: blocks of 8
    (12, 12, 1, 1, 3, 7, "uint8"),   # 12 channels: blocks of 4, one sdot wide
    (8, 6, 1, 1, 3, 8, "uint8"),     # 6 channels: blocks of 3, channel pairs without sdot
])
@pytest.mark.usefixtures("aarch64_runner")
def test_sdot_convolutions_match_onnxruntime_exactly_under_qemu(tmp_path, cin, cout, stride, pad, kernel, size,
                                                                 activation):
    path, feed = quantized_conv_model(tmp_path, cin, cout, stride, pad, kernel, size, activation)
    compiled = edgecc.compile(path, "rpi5")
    assert_every_kernel_scheduled(compiled)
    assert (instructions(compiled, tmp_path)["sdot"] > 0) == (cout % 4 == 0)  # sdot: blocks of 4 channels
    np.testing.assert_array_equal(run_emulated(compiled, tmp_path, feed), run_ort(onnx.load(path), feed)[0])


@pytest.mark.usefixtures("aarch64_runner")
def test_plain_armv8_convolutions_match_onnxruntime_exactly_under_qemu(tmp_path):
    path, feed = quantized_conv_model(tmp_path, 64, 64, 1, 1, 3, 14, "uint8")
    compiled = edgecc.compile(path, "rpi4")
    assert_every_kernel_scheduled(compiled)
    np.testing.assert_array_equal(run_emulated(compiled, tmp_path, feed), run_ort(onnx.load(path), feed)[0])


@pytest.mark.parametrize("k,n,activation", [(64, 32, "uint8"), (48, 16, "int8")])
@pytest.mark.usefixtures("aarch64_runner")
def test_sdot_qdense_matches_onnxruntime_exactly_under_qemu(tmp_path, k, n, activation):
    """qdense weights are packed in groups of four rows (N/b, K/4, b, 4), as for x86 VNNI."""
    path, feed = quantized_dense_model(tmp_path, k, n, activation)
    compiled = edgecc.compile(path, "imx93")
    assert_every_kernel_scheduled(compiled)
    shapes = qdense_weights(compiled)
    assert shapes and all(len(s) == 4 and s[-1] == 4 for s in shapes), shapes
    assert instructions(compiled, tmp_path)["sdot"] > 0
    np.testing.assert_array_equal(run_emulated(compiled, tmp_path, feed), run_ort(onnx.load(path), feed)[0])


@pytest.mark.slow
@pytest.mark.usefixtures("aarch64_runner")
def test_quantized_mobilenet_matches_onnxruntime_exactly_under_qemu(tmp_path):
    """MobileNetV2 (tiny) quantized by ONNX Runtime (QDQ, uint8 activations, per-channel weights),
    depthwise and pointwise convolutions, residual adds, built for the RK3588's cores."""
    from ort_compare import ort_quantize
    from test_quant import image_feeds

    src = os.path.join(DATA, "mobilenetv2_tiny.onnx")
    path = ort_quantize(src, tmp_path / "q.onnx", image_feeds(4), activation="uint8")
    compiled = edgecc.compile(path, "rk3588")
    assert_every_kernel_scheduled(compiled)
    assert instructions(compiled, tmp_path)["sdot"] > 0
    feed = image_feeds(1, seed=5)[0]
    np.testing.assert_array_equal(run_emulated(compiled, tmp_path, feed), run_ort(onnx.load(path), feed)[0])
