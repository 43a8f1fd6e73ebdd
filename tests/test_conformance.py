"""onnx's node test cases for the core CNN and transformer ops (and a few more), through
tools/conformance.py's harness; and docs/supported-ops.md kept in step with the converter table and
the op registry.

The whole sweep (every op, edgecc beside TVM's frontend) is `python tools/conformance.py`.
"""

from __future__ import annotations

import os
import re
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))

import conformance  # noqa: E402
import gen_supported_ops  # noqa: E402

#: the ops whose every node test case must pass (expanded function variants included), except the cases on
#: conformance.KNOWN_FAILURES, which must fail
CORE_OPS = [
    # convolutional networks
    "Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization", "Relu", "LeakyRelu",
    "Sigmoid", "HardSigmoid", "HardSwish", "Clip", "Flatten", "Gemm",
    # transformers
    "MatMul", "Softmax", "LayerNormalization", "Gelu", "Erf", "Tanh", "Sqrt", "Pow", "ReduceMean",
    "Where", "Cast", "Gather", "Slice", "Split", "Squeeze", "Unsqueeze", "Expand",
    # both
    "Add", "Sub", "Mul", "Div", "Reshape", "Transpose", "Concat", "Pad", "Identity",
]

#: ops beyond the core set, one or more per way edgecc converts them: IR ops of their own (Col2Im, RoiAlign,
#: DeformConv, GridSample, CumProd, BitCast), decompositions into other IR ops, inlined or unrolled
#: control flow, recurrent layers unrolled over the sequence; Attention (masks, caches, float16 steps
#: rounded as the reference rounds them) and DFT/STFT (matrix products), whose expected outputs carry the
#: reference's own rounding
EXTENDED_OPS = [
    "Col2Im", "RoiAlign", "DeformConv", "GridSample", "CumProd", "BitCast", "TfIdfVectorizer", "Det",
    "LpNormalization", "GroupNormalization", "DynamicQuantizeLinear", "If", "Loop", "Scan", "RNN", "GRU", "LSTM",
    "Attention", "DFT", "STFT",
]

#: cases edgecc refuses while a parameter input comes at run time (one line naming it); with that input
#: frozen to the case's data they must pass
NEEDS_FROZEN_PARAMETERS = ["test_col2im.*", "test_loop11", "test_dft(_axis|_inverse|_rfft|_irfft)?", "test_stft.*"]

#: cases whose expected outputs round intermediate steps (Attention's float16 and bfloat16 softmax) or carry
#: numpy's float32 FFT rounding (DFT): each must pass strictly at the case's own tolerance, or be a known failure
REFERENCE_ROUNDING_CASES = ["test_attention_4d_causal_fp16", "test_attention_4d_causal_fp16_expanded",
                            "test_attention_4d_fp16", "test_attention_4d_causal_bf16", "test_attention_3d_causal_bf16",
                            "test_dft_inverse_opset19"]


def _expected_result(case) -> str | None:
    strict = not any(re.fullmatch(p, case.name) for p in NEEDS_FROZEN_PARAMETERS)
    if not strict:
        first = conformance.run_case(case, "edgecc", strict=True)
        if first.passed or "known at compile time" not in first.message:
            return f"{case.name}: strictly {'passes' if first.passed else first.message}: update NEEDS_FROZEN_PARAMETERS"
    return conformance.unexpected_result(case, conformance.run_case(case, "edgecc", strict=strict))


@pytest.fixture(scope="module")
def cases_by_op() -> dict[str, list[conformance.Case]]:
    by_op: dict[str, list[conformance.Case]] = {op: [] for op in CORE_OPS + EXTENDED_OPS}
    for case in conformance.collect_cases(CORE_OPS + EXTENDED_OPS):
        by_op[case.op].append(case)
    return by_op


@pytest.mark.conformance
@pytest.mark.parametrize("op", CORE_OPS + EXTENDED_OPS)
def test_node_cases(op, cases_by_op):
    """Every case passes strictly (shape, axes and pads inputs fed at run time, never frozen), except
    those on conformance.KNOWN_FAILURES, which must fail, and NEEDS_FROZEN_PARAMETERS, which must be
    refused in one line strictly and pass frozen."""
    cases = cases_by_op[op]
    assert cases, f"onnx has no node test case for {op}"
    problems = [p for p in map(_expected_result, cases) if p]
    assert not problems, f"{len(problems)} of {len(cases)} {op} cases are not as expected:\n" + "\n".join(problems)


@pytest.mark.conformance
@pytest.mark.parametrize("name", REFERENCE_ROUNDING_CASES)
def test_cases_with_rounded_reference_steps(name, cases_by_op):
    """These cases alone, strictly and compared at the suite's tolerance (a quick check of the ones the
    whole-op sweep above holds as well)."""
    (case,) = [c for cases in cases_by_op.values() for c in cases if c.name == name]
    problem = _expected_result(case)
    assert problem is None, problem


@pytest.mark.conformance
def test_known_failures_name_cases(cases_by_op):
    names = [c.name for cases in cases_by_op.values() for c in cases]
    unused = conformance.unused_known_failures(names)
    assert not unused, f"KNOWN_FAILURES patterns that match no case of the checked ops: {unused}"


def test_a_listed_case_that_passes_is_reported():
    case = conformance.Case("test_scan_sum", "Scan", "", b"", [], 0.0, 0.0)
    assert conformance.known_failure("test_scan_sum")
    assert "take it off the list" in conformance.unexpected_result(case, conformance.Result(True))
    assert conformance.unexpected_result(case, conformance.Result(False, "wrong result", "differs")) is None
    other = conformance.Case("test_relu", "Relu", "", b"", [], 0.0, 0.0)
    assert conformance.unexpected_result(other, conformance.Result(True)) is None
    assert conformance.unexpected_result(other, conformance.Result(False, "run error", "boom")) == \
        "test_relu: run error: boom"


def test_report_lists_known_failures_and_listed_cases_that_pass():
    cases = [conformance.Case(name, "Scan", "", b"", [], 0.0, 0.0) for name in ("test_scan_sum", "test_scan9_sum")]
    failing = {("test_scan_sum", "edgecc"): conformance.Result(False, "run error", "shape"),
               ("test_scan9_sum", "edgecc"): conformance.Result(True)}
    section = conformance._known_failures_section(cases, failing)
    assert "| `test_scan_sum` | opset 8 Scan: " in "\n".join(section)
    assert [line for line in section if line.startswith("| `test_scan_sum`")][0].endswith("| 1 | 1 |")
    assert conformance.unexpected_passes(cases, failing) == []
    passing = dict(failing)
    passing[("test_scan_sum", "edgecc")] = conformance.Result(True)
    assert conformance.unexpected_passes(cases, passing) == ["test_scan_sum"]
    assert conformance._known_failures_section(cases, passing)[-1] == \
        "Listed but passing (take them off the list): test_scan_sum"


def test_supported_ops_doc_is_current():
    path = os.path.join(REPO, "docs", "supported-ops.md")
    with open(path) as fh:
        current = fh.read()
    assert current == gen_supported_ops.render(), (
        "docs/supported-ops.md is stale: run python tools/gen_supported_ops.py")
