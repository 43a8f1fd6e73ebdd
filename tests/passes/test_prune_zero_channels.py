"""prune-zero-channels: all-zero filters and neurons go, outputs unchanged."""

import textwrap

from pass_check import check_pass

from edgecc.ir import parse_graph
from edgecc.passes import NOTE, PassManager, parse_pipeline


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


def test_prune_keeps_a_constant_channel_a_padded_reader_cannot_absorb_and_says_so():
    before = """
        graph @main(%x: f32[1,2,4,4]) {
          %w = const f32[2,2,1,1] dense<[1.0, 2.0, 0.0, 0.0]>
          %b = const f32[2] dense<[0.5, 1.0]>
          %c = conv(%x, %w, %b) : f32[1,2,4,4]
          %w2 = const f32[2,2,3,3] dense<splat 1.0>
          %y = conv(%c, %w2) {pads=[1,1,1,1]} : f32[1,2,4,4]
          return %y
        }"""
    check_pass("prune-zero-channels", before, before)
    graph = parse_graph(textwrap.dedent(before))
    manager = PassManager(parse_pipeline("prune-zero-channels"))
    manager.run(graph)
    assert [(r.kind, r.node, r.message) for r in manager.remarks] == [
        (NOTE, "conv", "1 zero channel(s) kept: conv_1 pads its input: the constant channel cannot move into its bias")]
