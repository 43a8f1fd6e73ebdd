"""simplify-shape-chains: shape computations become constants."""

from pass_check import check_pass


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


def test_size_and_shape_arithmetic_become_constants():
    check_pass("simplify-shape-chains,eliminate-dead-code", """
        graph @main(%x: f32[2,3,4]) {
          %n = size(%x) : i64[]
          %s = shape(%x) : i64[3]
          %i = const i64[1] dense<[2]>
          %d = gather(%s, %i) : i64[1]
          %p = mul(%d, %n) : i64[1]
          %f = cast(%p) {to="float32"} : f32[1]
          %y = div(%x, %f) : f32[2,3,4]
          return %y
        }""", """
        graph @main(%x: f32[2,3,4]) {
          %f = const f32[1] dense<[96.0]>
          %y = div(%x, %f) : f32[2,3,4]
          return %y
        }""")


def test_shape_values_larger_than_the_limit_stay():
    same = """
        graph @main(%x: f32[2,3,4]) {
          %s = shape(%x) : i64[3]
          %y = cast(%s) {to="float32"} : f32[3]
          return %y
        }"""
    check_pass("simplify-shape-chains{max-elements=2}", same, same)
