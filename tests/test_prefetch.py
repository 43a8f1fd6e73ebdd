"""Software prefetch of weights (edgecc/lower/schedules/prefetch.py): the conv rules (weights
first, and output tiles first in tasks of rows) and the Winograd GEMM prefetch the next block of
weights, on x86 and AArch64, and the prefetch changes no result. Whole models with it are
compared with ONNX Runtime in test_weights_first_conv.py, test_winograd.py and test_models.py."""

import numpy as np
import onnx
import pytest
import tvm
from onnx import helper
from ort_compare import make_model

from edgecc.driver import prepare
from edgecc.lower.plan import plan_kernels
from edgecc.lower.schedules import RULE_SETS
from edgecc.lower.schedules.knobs import knob_space

INSTRUCTIONS = {"host": "prefetcht1", "rpi4": "prfm\tpldl2keep"}


def _conv_kernel(tmp_path, target_name: str, channels: int, size: int, kind: str, window: int = 3):
    rng = np.random.default_rng(channels + size)
    weight = (rng.standard_normal((channels, channels, window, window)) * 0.1).astype(np.float32)
    x = rng.standard_normal((1, channels, size, size)).astype(np.float32)
    conv = helper.make_node("Conv", ["x", "W"], ["c"], pads=[window // 2] * 4)
    relu = helper.make_node("Relu", ["c"], ["out"])
    onnx.save(make_model([conv, relu], {"x": x}, ["out"], {"W": weight}), tmp_path / "conv.onnx")
    graph, target, _, _ = prepare(str(tmp_path / "conv.onnx"), target_name)
    kernel = next(p.kernel for p in plan_kernels(graph) if p.kernel.kind in ("conv", "winograd_conv"))
    assert kernel.kind == kind
    return kernel, target


def _schedule(kernel, target, knobs):
    return RULE_SETS[target.schedule_rules][kernel.kind](kernel, target, knobs=knobs)


def _asm(func, target) -> str:
    built = tvm.compile(tvm.IRModule({"main": func}), target=target.tvm_target())
    return (built.mod if hasattr(built, "mod") else built).inspect_source("asm")


CASES = {"weights-first conv": (64, 7, "conv"), "winograd": (64, 14, "winograd_conv"),
         "output tiles first": (256, 7, "conv", 1)}  # (1x1 window, weights outweigh the input)


@pytest.mark.parametrize("target_name", list(INSTRUCTIONS))
@pytest.mark.parametrize("case", list(CASES))
def test_kernels_prefetch_the_next_block_of_weights(case, target_name, tmp_path):
    kernel, target = _conv_kernel(tmp_path, target_name, *CASES[case])
    space = knob_space(kernel, target)
    default = space.default()
    assert default["prefetch"] is True
    without = {**default, "prefetch": False}
    space.check(without)
    instruction = INSTRUCTIONS[target_name]
    assert instruction in _asm(_schedule(kernel, target, None), target)
    assert instruction not in _asm(_schedule(kernel, target, without), target)


@pytest.mark.parametrize("case", list(CASES))
def test_prefetch_changes_no_result(case, tmp_path):
    """The kernel with and without the prefetch computes the same bits."""
    kernel, target = _conv_kernel(tmp_path, "host", *CASES[case])
    space = knob_space(kernel, target)
    rng = np.random.default_rng(0)
    data = [rng.standard_normal([int(d) for d in v.type.shape]).astype(v.type.dtype)
            for v in (*kernel.args, *kernel.outputs)]
    outputs = []
    for knobs in (None, {**space.default(), "prefetch": False}):
        lib = tvm.compile(tvm.IRModule({"main": _schedule(kernel, target, knobs)}), target=target.tvm_target())
        args = [tvm.runtime.tensor(d) for d in data]
        lib["main"](*args)
        outputs.append(args[-1].numpy())
    assert np.abs(outputs[0]).sum() > 0
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_prefetch_knob_is_left_out_where_the_schedule_has_no_prefetch(tmp_path):
    kernel, target = _conv_kernel(tmp_path, "host", *CASES["output tiles first"])
    space = knob_space(kernel, target)
    assert space.default()["order"] == "outputs"
    assert space.allowed({**space.default(), "order": "outputs", "prefetch": True})  # tasks by rows
    assert not space.allowed({**space.default(), "order": "outputs", "parallel": "channels", "prefetch": True})
    points = space.points()
    assert all(p["parallel"] == "rows" for p in points if p["prefetch"] and p["order"] == "outputs")
