"""Clean-up passes: dead code, identities, constant folding, CSE, shape chains, arithmetic."""

import pytest
from pass_check import check_pass, run_pipeline

from edgecc.passes import PassError, PassOptionError, parse_pipeline


def test_dead_code_removes_unused_chains_and_constants():
    check_pass("eliminate-dead-code", """
        graph @main(%x: f32[4]) {
          %c = const f32[4] dense<[1.0, 2.0, 3.0, 4.0]>
          %a = add(%x, %c) : f32[4]
          %b = relu(%a) : f32[4]
          %y = neg(%x) : f32[4]
          return %y
        }""", """
        graph @main(%x: f32[4]) {
          %y = neg(%x) : f32[4]
          return %y
        }""")


def test_remove_identity_keeps_output_names():
    check_pass("remove-identity", """
        graph @main(%x: f32[2,3]) {
          %a = relu(%x) : f32[2,3]
          %d = dropout(%a) : f32[2,3]
          %c = cast(%d) {to="float32"} : f32[2,3]
          %y = identity(%c) : f32[2,3]
          return %y
        }""", """
        graph @main(%x: f32[2,3]) {
          %y = relu(%x) : f32[2,3]
          return %y
        }""")


def test_remove_identity_keeps_a_copy_of_an_input_returned_as_output():
    check_pass("remove-identity", """
        graph @main(%x: f32[2]) {
          %y = identity(%x) : f32[2]
          return %y
        }""", """
        graph @main(%x: f32[2]) {
          %y = identity(%x) : f32[2]
          return %y
        }""")


def test_fold_constants_evaluates_constant_subgraphs():
    check_pass("fold-constants,eliminate-dead-code", """
        graph @main(%x: f32[3]) {
          %a = const f32[3] dense<[1.0, 2.0, 3.0]>
          %b = const f32[3] dense<splat 2.0>
          %m = mul(%a, %b) : f32[3]
          %y = add(%x, %m) : f32[3]
          return %y
        }""", """
        graph @main(%x: f32[3]) {
          %m = const f32[3] dense<[2.0, 4.0, 6.0]>
          %y = add(%x, %m) : f32[3]
          return %y
        }""")


def test_cse_merges_identical_nodes_and_constants():
    check_pass("eliminate-common-subexpressions,eliminate-dead-code", """
        graph @main(%x: f32[3]) {
          %c1 = const f32[3] dense<splat 2.0>
          %c2 = const f32[3] dense<splat 2.0>
          %a = mul(%x, %c1) : f32[3]
          %b = mul(%x, %c2) : f32[3]
          %y = add(%a, %b) : f32[3]
          return %y
        }""", """
        graph @main(%x: f32[3]) {
          %c1 = const f32[3] dense<splat 2.0>
          %a = mul(%x, %c1) : f32[3]
          %y = add(%a, %a) : f32[3]
          return %y
        }""")


def test_shape_chain_becomes_a_constant():
    check_pass("simplify-shape-chains,eliminate-dead-code", """
        graph @main(%x: f32[2,8,4]) {
          %i = const i64[1] dense<[1]>
          %s = shape(%x) : i64[3]
          %d = gather(%s, %i) : i64[1]
          %f = cast(%d) {to="float32"} : f32[1]
          %r = sqrt(%f) : f32[1]
          %y = div(%x, %r) : f32[2,8,4]
          return %y
        }""", """
        graph @main(%x: f32[2,8,4]) {
          %r = const f32[1] dense<[2.828427]>
          %y = div(%x, %r) : f32[2,8,4]
          return %y
        }""")


def test_simplify_arithmetic_removes_neutral_ops_and_merges_chains():
    check_pass("simplify-arithmetic,eliminate-dead-code", """
        graph @main(%x: f32[2,3]) {
          %z = const f32[3] dense<splat 0.0>
          %one = const f32[] dense<[1.0]>
          %a = add(%x, %z) : f32[2,3]
          %b = mul(%a, %one) : f32[2,3]
          %t1 = transpose(%b) {perm=[1,0]} : f32[3,2]
          %t2 = transpose(%t1) {perm=[1,0]} : f32[2,3]
          %r1 = reshape(%t2) {shape=[6]} : f32[6]
          %y = reshape(%r1) {shape=[3,2]} : f32[3,2]
          return %y
        }""", """
        graph @main(%x: f32[2,3]) {
          %y = reshape(%x) {shape=[3,2]} : f32[3,2]
          return %y
        }""")


def test_neutral_add_that_broadcasts_is_kept():
    graph, changed = run_pipeline("simplify-arithmetic", """
        graph @main(%x: f32[3]) {
          %z = const f32[2,3] dense<splat 0.0>
          %y = add(%x, %z) : f32[2,3]
          return %y
        }""")
    assert not changed
    assert graph.op_counts() == {"add": 1}


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
    from edgecc.passes import Pass, PassManager, register_pass

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
