"""partition-npu: regions of the ops a backend supports, as the IR shows them, with a backend
that supports ops by name (the Ethos-U backend itself is tested in tests/test_npu.py)."""

from __future__ import annotations

import pytest
from pass_check import check_pass, run_pipeline

from edgecc.errors import TargetError
from edgecc.targets.npu import CompiledRegion, NpuBackend, RegionRejected


class ByName(NpuBackend):
    """Supports the ops in `ops`; refuses any region holding an op in `refuse`."""

    name = "test-npu"

    def __init__(self, ops, refuse=()):
        self.ops, self.refuse, self.compiled = set(ops), set(refuse), []

    def support(self, node):
        return None if node.op in self.ops else f"{node.op} is not supported"

    def compile_region(self, body, name, outer_users=None):
        ops = [n.op for n in body.nodes]
        if self.refuse & set(ops):
            raise RegionRejected(f"{name} holds {', '.join(sorted(self.refuse & set(ops)))}")
        self.compiled.append(ops)
        return CompiledRegion(self.name, ops, 0, b"", b"")


class Npu:
    family = "test"

    def __init__(self, backend):
        self.npu_backend = backend


def test_supported_chain_becomes_one_region():
    backend = ByName({"neg", "abs"})
    check_pass("partition-npu", """
        graph @main(%x: i8[4]) {
          %a = neg(%x) : i8[4]
          %b = abs(%a) : i8[4]
          %y = sign(%b) : i8[4]
          return %y
        }""", """
        graph @main(%x: i8[4]) {
          %b = npu_region(%x) {backend="test-npu", region="npu0"} : i8[4] {
            ^(%x: i8[4])
            %a = neg(%x) : i8[4]
            %b = abs(%a) : i8[4]
            return %b
          }
          %y = sign(%b) : i8[4]
          return %y
        }""", target=Npu(backend))
    assert backend.compiled == [["neg", "abs"]]


def test_a_cpu_op_between_two_paths_splits_the_region():
    # a -> sign (CPU) -> add and a -> add: one call holding a and add would wait for itself
    graph, _ = run_pipeline("partition-npu", """
        graph @main(%x: i8[4]) {
          %a = neg(%x) : i8[4]
          %s = sign(%a) : i8[4]
          %y = add(%a, %s) : i8[4]
          return %y
        }""", target=Npu(ByName({"neg", "add"})))
    assert [n.op for n in graph.nodes] == ["npu_region", "sign", "npu_region"]


def test_refused_region_stays_on_the_cpu_with_the_reason():
    graph, _ = run_pipeline("partition-npu", """
        graph @main(%x: i8[4]) {
          %a = neg(%x) : i8[4]
          %y = abs(%a) : i8[4]
          return %y
        }""", target=Npu(ByName({"neg", "abs"}, refuse={"abs"})))
    assert [n.op for n in graph.nodes] == ["neg", "abs"]
    assert [(op, reason) for _, op, reason in graph.meta["npu_cpu_ops"]] == [
        ("neg", "its region was refused: npu0 holds abs"), ("abs", "its region was refused: npu0 holds abs")]


def test_region_of_reshapes_only_is_not_an_npu_call():
    graph, _ = run_pipeline("partition-npu", """
        graph @main(%x: i8[4]) {
          %y = reshape(%x) {shape=[2,2]} : i8[2,2]
          return %y
        }""", target=Npu(ByName({"reshape"})))
    assert [n.op for n in graph.nodes] == ["reshape"]


def test_float_graph_is_refused():
    with pytest.raises(Exception) as info:
        run_pipeline("partition-npu", """
            graph @main(%x: f32[4]) {
              %y = neg(%x) : f32[4]
              return %y
            }""", target=Npu(ByName({"neg"})))
    assert isinstance(getattr(info.value, "cause", None), TargetError)


def test_targets_without_an_npu_are_left_alone():
    _, changed = run_pipeline("partition-npu", """
        graph @main(%x: i8[4]) {
          %y = neg(%x) : i8[4]
          return %y
        }""", target=None)
    assert not changed


def test_running_twice_counts_the_cpu_work_once():
    graph, _ = run_pipeline("partition-npu,partition-npu", """
        graph @main(%x: i8[2,3], %w: i8[3,2]) {
          %a = neg(%x) : i8[2,3]
          %y = matmul(%a, %w) : i8[2,2]
          return %y
        }""", target=Npu(ByName({"neg"})))
    assert [n.op for n in graph.nodes] == ["npu_region", "matmul"]
    assert graph.meta["npu_cpu_macs"] == 2 * 2 * 3
    assert [op for _, op, _ in graph.meta["npu_cpu_ops"]] == ["matmul"]
