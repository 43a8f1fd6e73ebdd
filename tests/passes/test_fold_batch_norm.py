"""fold-batch-norm: BN folded into conv / matmul weights, or decomposed."""

import numpy as np
from pass_check import check_pass, run_pipeline


def test_batch_norm_folds_into_conv_weights_and_bias():
    check_pass("fold-batch-norm,eliminate-dead-code", """
        graph @main(%x: f32[1,2,4,4]) {
          %w = const f32[2,2,1,1] dense<[1.0, 0.0, 0.0, 1.0]>
          %b = const f32[2] dense<[1.0, 2.0]>
          %s = const f32[2] dense<[2.0, 3.0]>
          %beta = const f32[2] dense<[0.5, 0.25]>
          %mean = const f32[2] dense<[1.0, 1.0]>
          %var = const f32[2] dense<[1.0, 1.0]>
          %c = conv(%x, %w, %b) : f32[1,2,4,4]
          %y = batch_norm(%c, %s, %beta, %mean, %var) {epsilon=0.0} : f32[1,2,4,4]
          return %y
        }""", """
        graph @main(%x: f32[1,2,4,4]) {
          %w.bn = const f32[2,2,1,1] dense<[2.0, 0.0, 0.0, 3.0]>
          %bias.bn = const f32[2] dense<[0.5, 3.25]>
          %y = conv(%x, %w.bn, %bias.bn) : f32[1,2,4,4]
          return %y
        }""")


def test_batch_norm_after_matmul_folds_into_weight_columns():
    graph, changed = run_pipeline("fold-batch-norm,eliminate-dead-code", """
        graph @main(%x: f32[3,2]) {
          %w = const f32[2,2] dense<[1.0, 2.0, 3.0, 4.0]>
          %s = const f32[2] dense<[2.0, 0.5]>
          %beta = const f32[2] dense<[1.0, 0.0]>
          %mean = const f32[2] dense<[0.0, 4.0]>
          %var = const f32[2] dense<[1.0, 1.0]>
          %m = matmul(%x, %w) : f32[3,2]
          %y = batch_norm(%m, %s, %beta, %mean, %var) {epsilon=0.0} : f32[3,2]
          return %y
        }""")
    assert changed and graph.op_counts() == {"add": 1, "matmul": 1}
    weight = graph.nodes[0].inputs[1].const
    np.testing.assert_allclose(weight, [[2.0, 1.0], [6.0, 2.0]])
    np.testing.assert_allclose(graph.nodes[1].inputs[1].const, [1.0, -2.0])


def test_batch_norm_without_a_producer_to_fold_into_is_decomposed():
    graph, changed = run_pipeline("fold-batch-norm", """
        graph @main(%x: f32[1,2,2,2]) {
          %s = const f32[2] dense<[2.0, 3.0]>
          %beta = const f32[2] dense<[0.5, 0.25]>
          %mean = const f32[2] dense<[1.0, 1.0]>
          %var = const f32[2] dense<[1.0, 1.0]>
          %y = batch_norm(%x, %s, %beta, %mean, %var) {epsilon=0.0} : f32[1,2,2,2]
          return %y
        }""")
    assert changed and graph.op_counts() == {"add": 1, "mul": 1}
    assert graph.outputs[0].name == "y"


def test_conv_with_a_second_reader_is_not_folded():
    graph, _ = run_pipeline("fold-batch-norm", """
        graph @main(%x: f32[1,1,2,2]) {
          %w = const f32[1,1,1,1] dense<[1.0]>
          %s = const f32[1] dense<[2.0]>
          %z = const f32[1] dense<[0.0]>
          %o = const f32[1] dense<[1.0]>
          %c = conv(%x, %w) : f32[1,1,2,2]
          %y = batch_norm(%c, %s, %z, %z, %o) {epsilon=0.0} : f32[1,1,2,2]
          %u = relu(%c) : f32[1,1,2,2]
          return %y, %u
        }""")
    assert graph.op_counts() == {"add": 1, "conv": 1, "mul": 1, "relu": 1}


def test_batch_norm_on_an_input_becomes_scale_and_shift():
    """scale = s / sqrt(var) = [1, 1]; shift = b - mean * scale = [0.5, -1.5]."""
    check_pass("fold-batch-norm,eliminate-dead-code", """
        graph @main(%x: f32[1,2]) {
          %s = const f32[2] dense<[1.0, 2.0]>
          %b = const f32[2] dense<[0.5, -0.5]>
          %m = const f32[2] dense<[0.0, 1.0]>
          %v = const f32[2] dense<[1.0, 4.0]>
          %y = batch_norm(%x, %s, %b, %m, %v) {axis=1, epsilon=0.0} : f32[1,2]
          return %y
        }""", """
        graph @main(%x: f32[1,2]) {
          %bn.scale = const f32[1,2] dense<splat 1.0>
          %bn.shift = const f32[1,2] dense<[0.5, -1.5]>
          %batch_norm.mul = mul(%x, %bn.scale) : f32[1,2]
          %y = add(%batch_norm.mul, %bn.shift) : f32[1,2]
          return %y
        }""")
