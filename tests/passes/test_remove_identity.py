"""remove-identity: ops that return their input unchanged go; output names stay."""

from pass_check import check_pass


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


def test_remove_identity_drops_no_op_data_movement_and_keeps_real_casts():
    check_pass("remove-identity", """
        graph @main(%x: f32[2,3]) {
          %t = transpose(%x) {perm=[0,1]} : f32[2,3]
          %r = reshape(%t) {shape=[2,3]} : f32[2,3]
          %s = slice(%r) {starts=[0], ends=[2], axes=[0]} : f32[2,3]
          %c = cast(%s) {to="float32"} : f32[2,3]
          %y = cast(%c) {to="int32"} : i32[2,3]
          return %y
        }""", """
        graph @main(%x: f32[2,3]) {
          %y = cast(%x) {to="int32"} : i32[2,3]
          return %y
        }""")
