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

#: the ops whose every node test case must pass (expanded function variants included)
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
#: control flow, recurrent layers unrolled over the sequence
EXTENDED_OPS = [
    "Col2Im", "RoiAlign", "DeformConv", "GridSample", "CumProd", "BitCast", "TfIdfVectorizer", "Det",
    "LpNormalization", "GroupNormalization", "DynamicQuantizeLinear", "If", "Loop", "Scan", "RNN", "GRU", "LSTM",
]

#: (case-name pattern, why those cases fail): they run, but their results do not fail the test
KNOWN_FAILING: list[tuple[str, str]] = [
    (r"test_cast_.*(FLOAT8|FLOAT4|INT4|INT2|e8m0).*",
     "element types the IR does not have (float8, float4, int4, int2)"),
    (r"test_batchnorm_.*_training_mode", "training-mode BatchNormalization (running statistics) is not converted"),
    (r"test_maxpool_with_argmax_.*", "MaxPool's Indices output is not converted"),
    (r"test_identity_(opt|sequence)", "sequence and optional-sequence values are not tensors"),
    (r"test_(if|loop\d+)_(opt|seq|seq_none)", "sequence and optional values are not tensors"),
    (r"test_scan_sum", "opset 8 Scan: upgrading the model to opset 11 drops the batch axis from its declared "
                       "inputs, while the case's data keeps it"),
    (r"test_tfidfvectorizer_.*", "fused kernels that differ only in a one-element constant group input share one "
                                 "PrimFunc: kernel_key (lower/kernels.py) hashes a fused node's inputs by position "
                                 "and type, while build_kernel bakes such constants into the kernel"),
]


def _known_reason(name: str) -> str | None:
    return next((reason for pattern, reason in KNOWN_FAILING if re.fullmatch(pattern, name)), None)


@pytest.fixture(scope="module")
def cases_by_op() -> dict[str, list[conformance.Case]]:
    by_op: dict[str, list[conformance.Case]] = {op: [] for op in CORE_OPS + EXTENDED_OPS}
    for case in conformance.collect_cases(CORE_OPS + EXTENDED_OPS):
        by_op[case.op].append(case)
    return by_op


@pytest.mark.conformance
@pytest.mark.parametrize("op", CORE_OPS + EXTENDED_OPS)
def test_node_cases(op, cases_by_op):
    cases = cases_by_op[op]
    assert cases, f"onnx has no node test case for {op}"
    failures = []
    for case in cases:
        result = conformance.run_case(case, "edgecc")
        if not result.passed and not _known_reason(case.name):
            failures.append(f"{case.name}: {result.category}: {result.message}")
    assert not failures, f"{len(failures)} of {len(cases)} {op} cases fail:\n" + "\n".join(failures)


@pytest.mark.conformance
def test_known_failures_name_cases(cases_by_op):
    names = [c.name for cases in cases_by_op.values() for c in cases]
    unused = [p for p, _ in KNOWN_FAILING if not any(re.fullmatch(p, n) for n in names)]
    assert not unused, f"KNOWN_FAILING patterns that match no case: {unused}"


def test_supported_ops_doc_is_current():
    path = os.path.join(REPO, "docs", "supported-ops.md")
    with open(path) as fh:
        current = fh.read()
    assert current == gen_supported_ops.render(), (
        "docs/supported-ops.md is stale: run python tools/gen_supported_ops.py")
