"""quantize: quantize/dequantize pairs from calibrated parameters."""

from pass_check import check_pass


def test_quantize_inserts_pairs_from_calibrated_parameters_and_int8_weights():
    """The input carries calibrated parameters; weights become symmetric int8 per output channel
    (channel 0: max |w| = 2 -> scale 2/127; 63.5 rounds half to even)."""
    check_pass("quantize", """
        graph @main(%x: f32[1,2,4,4]<q:scale=[0.5],zp=[3]>) {
          %w = const f32[2,2,1,1] dense<[1.0, -2.0, 0.5, 0.25]>
          %c = conv(%x, %w) : f32[1,2,4,4]
          %y = relu(%c) : f32[1,2,4,4]
          return %y
        }""", """
        graph @main(%x: f32[1,2,4,4]<q:scale=[0.5],zp=[3]>) {
          %w = const f32[2,2,1,1] dense<[1.0, -2.0, 0.5, 0.25]>
          %x.scale = const f32[] dense<[0.5]>
          %x.zp = const i8[] dense<[3]>
          %w.int8 = const i8[2,2,1,1] dense<[64, -127, 127, 64]>
          %w.scale = const f32[2] dense<[0.015748031, 0.003937008]>
          %w.zp = const i8[2] dense<splat 0>
          %x.q = quantize(%x, %x.scale, %x.zp) {dtype="int8"} : i8[1,2,4,4]<q:scale=[0.5],zp=[3]>
          %x.dq = dequantize(%x.q, %x.scale, %x.zp) : f32[1,2,4,4]
          %w.dq = dequantize(%w.int8, %w.scale, %w.zp) {axis=0} : f32[2,2,1,1]
          %c = conv(%x.dq, %w.dq) : f32[1,2,4,4]
          %y = relu(%c) : f32[1,2,4,4]
          return %y
        }""")


QUANTIZABLE_CONV = """
    graph @main(%x: f32[1,2,4,4]<q:scale=[0.5],zp=[3]>) {
      %w = const f32[2,2,1,1] dense<[1.0, -2.0, 0.5, 0.25]>
      %c = conv(%x, %w) : f32[1,2,4,4]
      %y = relu(%c) : f32[1,2,4,4]
      return %y
    }"""


def test_quantize_leaves_skipped_layers_in_float():
    check_pass("quantize{skip=conv}", QUANTIZABLE_CONV, QUANTIZABLE_CONV)


def test_quantize_per_tensor_weights_and_uint8_activations():
    """One weight scale for the tensor: max |w| = 2 -> 2/127; 0.5 -> 31.75 -> 32, 0.25 -> 16."""
    check_pass("quantize{per-channel=false,dtype=uint8}", QUANTIZABLE_CONV, """
        graph @main(%x: f32[1,2,4,4]<q:scale=[0.5],zp=[3]>) {
          %w = const f32[2,2,1,1] dense<[1.0, -2.0, 0.5, 0.25]>
          %x.scale = const f32[] dense<[0.5]>
          %x.zp = const u8[] dense<[3]>
          %w.int8 = const i8[2,2,1,1] dense<[64, -127, 32, 16]>
          %w.scale = const f32[] dense<[0.015748031]>
          %w.zp = const i8[] dense<[0]>
          %x.q = quantize(%x, %x.scale, %x.zp) {dtype="uint8"} : u8[1,2,4,4]<q:scale=[0.5],zp=[3]>
          %x.dq = dequantize(%x.q, %x.scale, %x.zp) : f32[1,2,4,4]
          %w.dq = dequantize(%w.int8, %w.scale, %w.zp) : f32[2,2,1,1]
          %c = conv(%x.dq, %w.dq) : f32[1,2,4,4]
          %y = relu(%c) : f32[1,2,4,4]
          return %y
        }""")
