"""Default CPU schedules: every kernel of the test models gets its kind's rule, and stays correct."""

import os

import pytest

from edgecc.driver import prepare
from edgecc.lower.kernels import collect_kernels
from edgecc.lower.schedules import make_scheduler
from edgecc.lower.schedules.cpu import conv_tiling

DATA = os.path.join(os.path.dirname(__file__), "data")


@pytest.mark.parametrize("name,shapes", [("resnet_tiny", None), ("mobilenetv2_tiny", None),
                                         ("transformer_tiny", {"input_ids": (1, 16)})])
def test_every_kernel_gets_its_rule(name, shapes):
    graph, target, _, _ = prepare(os.path.join(DATA, f"{name}.onnx"), "host", input_shapes=shapes)
    schedule = make_scheduler(target, "")
    kinds = {}
    for kernel, _ in collect_kernels(graph):
        func, how = schedule(kernel)
        kinds.setdefault(kernel.kind, set()).add(how)
        expected = "default"
        if kernel.kind == "matmul" and kernel.outputs[0].type.shape[-1] % 8:
            expected = "generic"  # too few columns for the vector width: the generic rule
        assert how == expected, f"{name}: {kernel.name} ({kernel.kind}) was scheduled by {how}"
        assert "parallel" in func.script() or kernel.outputs[0].type.size < 4096
    assert {"conv", "pool"} <= set(kinds) or "dense" in kinds


def test_conv_tiles_fit_the_registers():
    assert conv_tiling(56, 16, 8) == (4, 2)  # 4 columns x 2 vectors = 8 accumulators
    assert conv_tiling(112, 8, 8) == (8, 1)
    for width in (7, 14, 28, 56, 112):
        for block in (8, 16):
            tile, vectors = conv_tiling(width, block, 8)
            assert tile * vectors <= 12 and tile >= 4 and vectors * 8 == block
