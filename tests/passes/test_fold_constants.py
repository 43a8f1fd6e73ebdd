"""fold-constants: nodes with constant inputs become constants (within the size rule)."""

from pass_check import check_pass


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


def test_fold_constants_does_not_grow_parameters_past_the_size_rule():
    """An expand of a 1-element constant to 8 elements is folded by default (small), not with
    small-elements=4 and grow=false."""
    before = """
        graph @main(%x: f32[2,4]) {
          %c = const f32[1] dense<[2.0]>
          %e = expand(%c) {shape=[2,4]} : f32[2,4]
          %y = mul(%x, %e) : f32[2,4]
          return %y
        }"""
    check_pass("fold-constants{small-elements=4,grow=false}", before, before)
    check_pass("fold-constants,eliminate-dead-code", before, """
        graph @main(%x: f32[2,4]) {
          %e = const f32[2,4] dense<splat 2.0>
          %y = mul(%x, %e) : f32[2,4]
          return %y
        }""")


def test_fold_constants_keeps_the_identity_that_names_a_constant_output():
    same = """
        graph @main(%x: f32[2]) {
          %c = const f32[2] dense<[1.0, 2.0]>
          %y = identity(%c) : f32[2]
          %z = neg(%x) : f32[2]
          return %y, %z
        }"""
    check_pass("fold-constants", same, same)
