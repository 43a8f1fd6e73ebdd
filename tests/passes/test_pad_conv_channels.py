"""pad-conv-channels: integer convolutions over two or three input channels get four."""

from pass_check import check_pass


def test_a_three_channel_convolution_gets_a_zero_point_channel_and_zero_weights():
    check_pass("pad-conv-channels", """
        graph @main(%x: u8[1,3,4,4]) {
          %w = const i8[2,3,1,1] dense<[1, -2, 3, 4, 5, -6]>
          %b = const i32[2] dense<[11, -37]>
          %m = const f32[2] dense<[0.5, 0.25]>
          %y = qconv(%x, %w, %b, %m) {data_zero_point=7, dtype="uint8"} : u8[1,2,4,4]
          return %y
        }""", """
        graph @main(%x: u8[1,3,4,4]) {
          %b = const i32[2] dense<[11, -37]>
          %m = const f32[2] dense<[0.5, 0.25]>
          %qconv.w_4c = const i8[2,4,1,1] dense<[1, -2, 3, 0, 4, 5, -6, 0]>
          %qconv.pad_channels = pad(%x) {pads=[0,0,0,0,0,1,0,0], value=7.0} : u8[1,4,4,4]
          %y = qconv(%qconv.pad_channels, %qconv.w_4c, %b, %m) {data_zero_point=7, dtype="uint8"} : u8[1,2,4,4]
          return %y
        }""")


def test_grouped_one_and_four_channel_convolutions_are_left_alone():
    text = """
        graph @main(%x: u8[1,4,4,4], %z: u8[1,2,4,4], %g: u8[1,1,4,4]) {
          %w = const i8[2,4,1,1] dense<[1, -2, 3, 4, 5, -6, 7, 8]>
          %v = const i8[2,1,1,1] dense<[1, -2]>
          %b = const i32[2] dense<[11, -37]>
          %m = const f32[2] dense<[0.5, 0.25]>
          %y = qconv(%x, %w, %b, %m) {data_zero_point=7, dtype="float32"} : f32[1,2,4,4]
          %d = qconv(%z, %v, %b, %m) {data_zero_point=7, dtype="float32", group=2} : f32[1,2,4,4]
          %e = qconv(%g, %v, %b, %m) {data_zero_point=7, dtype="float32"} : f32[1,2,4,4]
          return %y, %d, %e
        }"""
    check_pass("pad-conv-channels", text, text)
