"""eliminate-common-subexpressions: one node per computation, one constant per content."""

from pass_check import check_pass


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


def test_cse_keeps_nodes_that_differ_in_attributes():
    same = """
        graph @main(%x: f32[2,3]) {
          %a = transpose(%x) {perm=[1,0]} : f32[3,2]
          %b = reshape(%x) {shape=[3,2]} : f32[3,2]
          %c = reshape(%x) {shape=[6]} : f32[6]
          %s = add(%a, %b) : f32[3,2]
          return %s, %c
        }"""
    check_pass("eliminate-common-subexpressions", same, same)
