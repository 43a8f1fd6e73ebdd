"""Quantization and compression passes, as IR text in and out."""

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


def test_lower_qdq_forms_an_integer_conv_with_requantizing_epilogue():
    """bias' = round(b / (sx * sw)) - zx * sum(w), multiplier = sx * sw / sy, relu -> out_min = zy."""
    check_pass("lower-qdq,fold-constants,eliminate-dead-code", """
        graph @main(%x: i8[1,2,4,4]) {
          %xs = const f32[] dense<splat 0.5>
          %xz = const i8[] dense<splat 3>
          %w = const i8[2,2,1,1] dense<[1, -2, 3, 4]>
          %ws = const f32[2] dense<[0.25, 0.125]>
          %b = const f32[2] dense<[1.0, -1.0]>
          %ys = const f32[] dense<splat 0.25>
          %yz = const i8[] dense<splat -1>
          %xf = dequantize(%x, %xs, %xz) : f32[1,2,4,4]
          %wf = dequantize(%w, %ws) {axis=0} : f32[2,2,1,1]
          %c = conv(%xf, %wf, %b) : f32[1,2,4,4]
          %r = relu(%c) : f32[1,2,4,4]
          %y = quantize(%r, %ys, %yz) {dtype="int8"} : i8[1,2,4,4]
          return %y
        }""", """
        graph @main(%x: i8[1,2,4,4]) {
          %conv.w = const i8[2,2,1,1] dense<[1, -2, 3, 4]>
          %conv.bias = const i32[2] dense<[11, -37]>
          %conv.mult = const f32[2] dense<[0.5, 0.25]>
          %y = qconv(%x, %conv.w, %conv.bias, %conv.mult) {data_zero_point=3, dtype="int8", out_min=-1, out_zero_point=-1} : i8[1,2,4,4]
          return %y
        }""")


def test_prune_drops_zero_filters_and_the_next_layers_input_channels():
    check_pass("prune-zero-channels,eliminate-dead-code", """
        graph @main(%x: f32[1,2,4,4]) {
          %w = const f32[3,2,1,1] dense<[1.0, 2.0, 0.0, 0.0, 3.0, 4.0]>
          %b = const f32[3] dense<[0.5, 0.0, -1.0]>
          %c = conv(%x, %w, %b) : f32[1,3,4,4]
          %r = relu(%c) : f32[1,3,4,4]
          %w2 = const f32[2,3,1,1] dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]>
          %y = conv(%r, %w2) : f32[1,2,4,4]
          return %y
        }""", """
        graph @main(%x: f32[1,2,4,4]) {
          %w.pruned = const f32[2,2,1,1] dense<[1.0, 2.0, 3.0, 4.0]>
          %b.pruned = const f32[2] dense<[0.5, -1.0]>
          %w2.pruned = const f32[2,2,1,1] dense<[1.0, 3.0, 4.0, 6.0]>
          %conv_2 = conv(%x, %w.pruned, %b.pruned) : f32[1,2,4,4]
          %relu_3 = relu(%conv_2) : f32[1,2,4,4]
          %y = conv(%relu_3, %w2.pruned) : f32[1,2,4,4]
          return %y
        }""")


def test_prune_moves_a_removed_neurons_constant_output_into_the_next_bias():
    """Neuron 1 has zero weights but bias 2: relu(2) = 2 times row 1 of W2 ([3, 4]) is a new bias."""
    check_pass("prune-zero-channels,eliminate-dead-code", """
        graph @main(%x: f32[1,4]) {
          %w = const f32[4,3] dense<[1.0, 0.0, 2.0, 1.0, 0.0, 2.0, 1.0, 0.0, 2.0, 1.0, 0.0, 2.0]>
          %b = const f32[3] dense<[0.5, 2.0, -1.0]>
          %m = matmul(%x, %w) : f32[1,3]
          %a = add(%m, %b) : f32[1,3]
          %r = relu(%a) : f32[1,3]
          %w2 = const f32[3,2] dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]>
          %y = matmul(%r, %w2) : f32[1,2]
          return %y
        }""", """
        graph @main(%x: f32[1,4]) {
          %w.pruned = const f32[4,2] dense<[1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0]>
          %b.pruned = const f32[2] dense<[0.5, -1.0]>
          %w2.pruned = const f32[2,2] dense<[1.0, 2.0, 5.0, 6.0]>
          %matmul_1.pruned_bias = const f32[2] dense<[6.0, 8.0]>
          %matmul_2 = matmul(%x, %w.pruned) : f32[1,2]
          %add_3 = add(%matmul_2, %b.pruned) : f32[1,2]
          %relu_4 = relu(%add_3) : f32[1,2]
          %matmul_1_5 = matmul(%relu_4, %w2.pruned) : f32[1,2]
          %y = add(%matmul_1_5, %matmul_1.pruned_bias) : f32[1,2]
          return %y
        }""")
