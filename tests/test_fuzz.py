"""The semantic fuzzer (tools/fuzz.py): mutated conformance and bundled models compile or are refused
in one line, in process and through the CLI. 300 seeded cases by default; `-m fuzz` adds 5,000."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import fuzz  # noqa: E402


def _failures(results):
    return "\n".join(f"{r.case}: {r.outcome}: {r.message}" for r in results if r.failed)


@pytest.fixture(scope="module")
def bases():
    return fuzz.base_models()


def test_cases_are_seeded_and_mutated(bases):
    first = fuzz.make_cases(7, 20, bases)
    again = fuzz.make_cases(7, 20, bases)
    assert [c.name for c in first] == [c.name for c in again]
    assert [c.model for c in first] == [c.model for c in again]
    assert all("[" in c.name and c.name.endswith("]") for c in first)
    assert [c.name for c in fuzz.make_cases(8, 20, bases)] != [c.name for c in first]


def _hostile_split() -> bytes:
    from onnx import TensorProto, helper

    node = helper.make_node("Split", ["x"], ["a", "b"], axis=0, num_outputs=2147483647)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [6])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in "ab"])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


def test_worker_reports_refusals_and_survives_a_crash():
    worker = fuzz.Worker()
    case = fuzz.Case("split", _hostile_split())
    try:
        refused = worker.run(case)
        assert refused.outcome == "refused" and "num_outputs=2147483647" in refused.message, refused
        worker.proc.kill()  # a worker that died is restarted for the next case
        worker.proc.wait()
        assert worker.run(case).outcome == "refused"
    finally:
        worker.close()


def test_default_fuzz_run_compiles_or_refuses_every_case():
    in_process, through_cli = fuzz.fuzz(seed=0, cases=300, cli=4)
    assert len(in_process) == 300 and len(through_cli) == 4
    assert not any(r.failed for r in in_process + through_cli), _failures(in_process + through_cli)
    outcomes = {r.outcome for r in in_process}
    assert outcomes == {"compiled", "refused"}  # the mutations reach both
    assert {r.outcome for r in through_cli} == {"compiled", "refused"}


@pytest.mark.fuzz
def test_large_fuzz_run():
    in_process, through_cli = fuzz.fuzz(seed=1, cases=5000, cli=20)
    assert not any(r.failed for r in in_process + through_cli), _failures(in_process + through_cli)
