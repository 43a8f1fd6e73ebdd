"""simplify-arithmetic: neutral operations and chains."""

from pass_check import check_pass, run_pipeline


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


def test_double_negation_and_constant_chains():
    check_pass("simplify-arithmetic,eliminate-dead-code", """
        graph @main(%x: f32[3]) {
          %c1 = const f32[3] dense<[1.0, 2.0, 3.0]>
          %c2 = const f32[] dense<[2.0]>
          %n1 = neg(%x) : f32[3]
          %n2 = neg(%n1) : f32[3]
          %m1 = mul(%n2, %c1) : f32[3]
          %y = mul(%m1, %c2) : f32[3]
          return %y
        }""", """
        graph @main(%x: f32[3]) {
          %folded = const f32[3] dense<[2.0, 4.0, 6.0]>
          %y = mul(%x, %folded) : f32[3]
          return %y
        }""")


def test_transpose_chain_becomes_one_transpose():
    check_pass("simplify-arithmetic,eliminate-dead-code", """
        graph @main(%x: f32[2,3,4]) {
          %a = transpose(%x) {perm=[1,0,2]} : f32[3,2,4]
          %y = transpose(%a) {perm=[0,2,1]} : f32[3,4,2]
          return %y
        }""", """
        graph @main(%x: f32[2,3,4]) {
          %y = transpose(%x) {perm=[1,2,0]} : f32[3,4,2]
          return %y
        }""")
