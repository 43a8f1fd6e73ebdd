"""The pass manager: remarks, fixpoint groups, opt-level pipelines, errors naming the pass."""

from __future__ import annotations

import io
import textwrap

import pytest
from pass_check import check_pass, run_pipeline

from edgecc.driver import CompileOptions, optimize
from edgecc.ir import parse_graph
from edgecc.passes import (NOTE, REJECTION, Fixpoint, MatchResult, Pass, PassContext, PassError, PassManager,
                           PassOptionError, RewriteRule, any_, apply_rewrites, format_pipeline, op,
                           opt_level_pipeline, parse_pipeline, pipeline_names, register_pass, without_passes)
from edgecc.passes.pipeline import OPT_LEVELS

BROADCAST_ADD = """
    graph @main(%x: f32[3]) {
      %z = const f32[2,3] dense<splat 0.0>
      %y = add(%x, %z) : f32[2,3]
      return %y
    }"""


class AlwaysChanges(Pass):
    """Claims to change the graph every time (test only)."""

    name = "test-always-changes"

    def run(self, graph, ctx):
        ctx.note("ran", graph.nodes[0])
        return True


@pytest.fixture(autouse=True)
def shipped_registry(monkeypatch):
    """Passes these tests register live for one test: the registry others see stays as shipped."""
    from edgecc.passes import base

    monkeypatch.setattr(base, "_PASSES", dict(base._PASSES))


@pytest.fixture
def always_changes():
    return register_pass(AlwaysChanges)


# ----- remarks ------------------------------------------------------------------------------------
def test_rewrite_rejections_become_remarks_with_rule_node_and_reason():
    graph = parse_graph(textwrap.dedent(BROADCAST_ADD))
    manager = PassManager(parse_pipeline("simplify-arithmetic"))
    assert manager.run(graph) is False
    (remark,) = manager.remarks
    assert (remark.pass_name, remark.node, remark.kind) == ("simplify-arithmetic", "add", REJECTION)
    assert remark.message == "AddNeutral: the constant broadcasts x to another shape"
    assert str(remark) == "simplify-arithmetic: add: AddNeutral: the constant broadcasts x to another shape"


def test_notes_name_their_pass_and_repeat_once(always_changes):
    graph = parse_graph("graph @g(%x: f32[2]) {\n  %y = relu(%x) : f32[2]\n  return %y\n}")
    ctx = PassContext()
    PassManager(parse_pipeline("fixpoint{max-iterations=3}(test-always-changes)")).run(graph, ctx)
    assert [(r.pass_name, r.node, r.message, r.kind) for r in ctx.remarks] == [
        ("test-always-changes", "relu", "ran", NOTE),
        ("fixpoint", None, "fixpoint{max-iterations=3}(test-always-changes) still changed the graph after 3 "
                           "iterations; stopped there", NOTE),
    ]


def test_apply_rewrites_refuses_a_check_without_a_match_result():
    class Sloppy(RewriteRule):
        pattern = op("relu", any_("x"))

        def check(self, m):
            return "no"

        def rewrite(self, b, m):
            return m.value("x")

    graph = parse_graph("graph @g(%x: f32[2]) {\n  %y = relu(%x) : f32[2]\n  return %y\n}")
    with pytest.raises(TypeError, match="Sloppy.check returned 'no', not a MatchResult"):
        apply_rewrites(graph, [Sloppy()])


def test_match_result_is_truthy_only_on_success():
    assert MatchResult.ok() and MatchResult(None)
    failed = MatchResult.fail("too big")
    assert not failed and failed.reason == "too big" and repr(failed) == "MatchResult.fail('too big')"


def test_rewrites_that_never_settle_leave_a_note():
    class Flip(RewriteRule):  # neg(x) -> neg(neg(neg(x))): always applies again
        pattern = op("neg", any_("x"), name="root")

        def rewrite(self, b, m):
            return b("neg", b("neg", b("neg", m.value("x"))))

    graph = parse_graph("graph @g(%x: f32[2]) {\n  %y = neg(%x) : f32[2]\n  return %y\n}")
    ctx = PassContext(pass_name="test")
    assert apply_rewrites(graph, [Flip()], ctx, max_rounds=2)
    assert [str(r) for r in ctx.remarks] == ["test: rewrites still applied after 2 rounds; stopped there"]


def test_optimize_returns_the_remarks():
    graph = parse_graph(textwrap.dedent(BROADCAST_ADD))
    remarks: list = []
    optimize(graph, None, CompileOptions(passes="simplify-arithmetic,eliminate-dead-code"), remarks)
    assert [r.kind for r in remarks] == [REJECTION]


# ----- fixpoint groups -------------------------------------------------------------------------------
CHAIN_WITH_DEAD_READER = """
    graph @main(%x: f32[3]) {
      %c1 = const f32[3] dense<splat 1.0>
      %c2 = const f32[3] dense<splat 2.0>
      %a = add(%x, %c1) : f32[3]
      %dead = relu(%a) : f32[3]
      %y = add(%a, %c2) : f32[3]
      return %y
    }"""


def test_fixpoint_repeats_until_nothing_changes():
    # add(add(x, c1), c2) merges only once the dead reader of the inner add is gone
    merged = """
        graph @main(%x: f32[3]) {
          %folded = const f32[3] dense<splat 3.0>
          %y = add(%x, %folded) : f32[3]
          return %y
        }"""
    check_pass("fixpoint(simplify-arithmetic,eliminate-dead-code)", CHAIN_WITH_DEAD_READER, merged)
    graph, _ = run_pipeline("simplify-arithmetic,eliminate-dead-code", CHAIN_WITH_DEAD_READER)
    assert graph.op_counts() == {"add": 2}  # one round is not enough


def test_fixpoint_members_are_instrumented_one_by_one():
    out = io.StringIO()
    graph = parse_graph(textwrap.dedent(CHAIN_WITH_DEAD_READER))
    manager = PassManager(parse_pipeline("fixpoint(simplify-arithmetic,eliminate-dead-code)"), verify_each=True,
                          print_ir_after={"simplify-arithmetic"}, out=out)
    assert manager.run(graph)
    assert [(r.name, r.changed) for r in manager.records] == [
        ("simplify-arithmetic", False), ("eliminate-dead-code", True),
        ("simplify-arithmetic", True), ("eliminate-dead-code", False),
        ("simplify-arithmetic", False), ("eliminate-dead-code", False),
    ]
    assert out.getvalue().count("// IR after simplify-arithmetic") == 3


def test_fixpoint_parses_and_prints_back():
    text = "remove-identity,fixpoint{max-iterations=4}(fold-constants{grow=false},eliminate-dead-code),fuse"
    passes = parse_pipeline(text)
    group = passes[1]
    assert isinstance(group, Fixpoint) and group.max_iterations == 4
    assert [p.name for p in group.passes] == ["fold-constants", "eliminate-dead-code"]
    assert format_pipeline(passes) == text
    assert parse_pipeline(format_pipeline(passes)) == passes
    assert pipeline_names(passes) == ["remove-identity", "fold-constants", "eliminate-dead-code", "fuse"]
    assert format_pipeline(parse_pipeline("fixpoint(fixpoint(fuse))")) == "fixpoint(fixpoint(fuse))"


@pytest.mark.parametrize("text, message", [
    ("fixpoint", "fixpoint needs its passes in parentheses"),
    ("fixpoint()", "fixpoint needs at least one pass"),
    ("fixpoint{max-iterations=0}(fuse)", "max-iterations >= 1"),
    ("fixpoint{max-iterations=many}(fuse)", "option max-iterations='many': expected an integer"),
    ("fixpoint{passes=fuse}(fuse)", "has no option 'passes'"),
    ("fuse(fold-constants)", "only fixpoint takes passes in parentheses, not 'fuse'"),
    ("fixpoint(fuse", "missing '\\)'"),
    ("fixpoint(fuse})", "unbalanced '}'"),
])
def test_bad_fixpoint_groups_are_option_errors(text, message):
    with pytest.raises(PassOptionError, match=message):
        parse_pipeline(text)


def test_fixpoint_is_not_a_pass_name():
    class Fake(Pass):
        """Takes the group's name (test only)."""

        name = "fixpoint"

    with pytest.raises(ValueError, match="pass name fixpoint is taken by pipeline groups"):
        register_pass(Fake)


def test_disabled_passes_leave_groups_too():
    passes = parse_pipeline("fold-batch-norm,fixpoint(fold-constants,eliminate-dead-code),fixpoint(fuse)")
    assert format_pipeline(without_passes(passes, {"fold-constants", "fuse"})) == (
        "fold-batch-norm,fixpoint(eliminate-dead-code)")


def test_a_failure_inside_a_group_names_the_pass_and_what_ran():
    @register_pass
    class Explode(Pass):
        """Raises (test only)."""

        name = "test-explode"

        def run(self, graph, ctx):
            raise RuntimeError("boom")

    graph = parse_graph("graph @g(%x: f32[2]) {\n  %y = relu(%x) : f32[2]\n  return %y\n}")
    with pytest.raises(PassError, match="pass 'test-explode' failed: boom \\(ran before it: eliminate-dead-code\\)"):
        PassManager(parse_pipeline("fixpoint(eliminate-dead-code,test-explode)")).run(graph)


# ----- pipeline strings and failures ---------------------------------------------------------------
def test_pipeline_strings_and_errors():
    passes = parse_pipeline("fold-constants{small-elements=16,grow=false},eliminate-dead-code")
    assert [p.name for p in passes] == ["fold-constants", "eliminate-dead-code"]
    assert passes[0].small_elements == 16 and passes[0].grow is False
    assert passes[0].spec() == "fold-constants{small-elements=16,grow=false}"
    with pytest.raises(PassOptionError, match="unknown pass 'no-such-pass'"):
        parse_pipeline("no-such-pass")
    with pytest.raises(PassOptionError, match="has no option 'bogus'"):
        parse_pipeline("fold-constants{bogus=1}")
    with pytest.raises(PassOptionError, match="option small-elements='many': expected an integer"):
        parse_pipeline("fold-constants{small-elements=many}")


def test_a_pass_that_breaks_the_ir_is_named():
    from edgecc.ir import Graph, TensorType

    @register_pass
    class BreakTypes(Pass):
        """Corrupts an output type (test only)."""

        name = "test-break-types"

        def run(self, graph, ctx):
            node = graph.nodes[0]
            node.outputs[0].type = TensorType("float32", (99,))
            return True

    g = Graph()
    x = g.add_input("x", TensorType("float32", (2,)))
    g.set_outputs([g.create_node("relu", [x]).output])
    with pytest.raises(PassError, match="pass 'test-break-types' failed: left the IR broken"):
        PassManager([BreakTypes()], verify_each=True).run(g)


# ----- opt levels ---------------------------------------------------------------------------------
def test_opt_levels_repeat_clean_ups_to_a_fixed_point_instead_of_listing_them_again():
    for level in OPT_LEVELS:
        names = [n for n in OPT_LEVELS[level] if not n.startswith("fixpoint")]
        assert len(names) == len(set(names)), f"-O{level} lists a pass twice"
    o2 = opt_level_pipeline(2)
    assert [p.name for p in o2].count("fixpoint") == 2
    assert format_pipeline(o2) == ",".join(OPT_LEVELS[1] + OPT_LEVELS[2])


def test_opt_level_3_is_gone():
    assert sorted(OPT_LEVELS) == [0, 1, 2]
    with pytest.raises(PassOptionError, match="opt level must be 0..2, got 3"):
        opt_level_pipeline(3)


def test_a_pass_that_changes_the_graph_but_reports_no_change_is_caught():
    @register_pass
    class Sneaky(Pass):
        """Renames a value and says it did nothing (test only)."""

        name = "test-sneaky"

        def run(self, graph, ctx):
            graph.rename_value(graph.nodes[0].output, "renamed")
            return False

    graph = parse_graph("graph @g(%x: f32[2]) {\n  %a = relu(%x) : f32[2]\n  %y = neg(%a) : f32[2]\n  return %y\n}")
    with pytest.raises(PassError, match="pass 'test-sneaky' failed: changed the graph but reported no change"):
        PassManager(parse_pipeline("test-sneaky"), verify_each=True).run(graph)
