"""MetaSchedule tunes the integer convolutions of a model quantized with int8 activations for an
x86 CPU of the host's kind (AVX-512 VNNI where the host has it: vpdpbusd; else AVX2: vpmaddubsw),
and its records replay at compile time with the outputs still exactly ONNX Runtime's. The convolutions there read uint8 data (`shift-to-uint8` folds the move into their
biases), so no kernel computes an in-kernel weight offset that MetaSchedule cannot schedule."""

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from ort_compare import run_ort

from edgecc.targets import get_target
from edgecc.tune.apply import comparison_wins
from edgecc.tune.database import TuningLog

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_int8_kernels import quantized_conv_model  # noqa: E402

#: a named CPU the host can run code for, so the log's tag is the same on every host of that kind
CPU = "icelake-server" if get_target("host").has_feature("avx512vnni") else "haswell"
TAG = f"x86_64-{CPU}"
#: 7-bit weights without VNNI: ONNX Runtime's AVX2 u8s8 kernels saturate pair sums of full 8-bit products
REDUCE_RANGE = CPU == "haswell"


def edgecc(*args, timeout=900):
    proc = subprocess.run([sys.executable, "-m", "edgecc", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """ONNX Runtime's int8 model of conv -> relu -> conv + residual add, its two qconv kernels
    tuned by MetaSchedule for 4 trials each: (model path, log root, inputs)."""
    root = tmp_path_factory.mktemp("tuned_int8")
    model, feed = quantized_conv_model(root, 16, 32, 1, 1, 3, 14, "int8", reduce_range=REDUCE_RANGE)
    rc, _, err = edgecc("tune", model, "--cpu", CPU, "--search", "metaschedule", "--kinds", "qconv",
                        "--trials", "4", "--trials-per-iter", "4", "--population", "32", "--logs", root / "logs")
    assert rc == 0, err
    return model, root / "logs", feed


def test_metaschedule_measures_every_int8_convolution(tuned):
    _, logs, _ = tuned
    log = TuningLog.open(logs / TAG)
    assert len(log.workloads) == 2
    for workload in range(2):
        assert log.task(workload)["kind"] == "qconv"
        assert log.best(workload) is not None, f"no valid MetaSchedule record for {log.task(workload)['name']}"


def test_int8_records_replay_at_compile_time_with_exact_outputs(tuned, tmp_path):
    model, logs, feed = tuned
    log = TuningLog.open(logs / TAG)
    default, candidate = [1.0e-4] * 5, [0.5e-4] * 5  # let each best record win its comparison
    for workload in range(2):
        best = log.best(workload)
        log.update_task(workload, compare={"record": [best.kind, best.line], "default": default,
                                           "candidate": candidate, "noise": 0.0,
                                           "wins": comparison_wins(default, candidate)})
    out = tmp_path / "q.so"
    rc, stdout, err = edgecc("compile", model, "-o", out, "--cpu", CPU, "--tuning-logs", logs)
    assert rc == 0, err
    assert "2 of " in stdout and "kernels from tuning records" in stdout, stdout
    from edgecc.runtime import load

    got = list(load(str(out)).run(feed).values())[0]
    np.testing.assert_array_equal(got, run_ort(onnx.load(model), feed)[0])
