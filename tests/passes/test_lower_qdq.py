"""lower-qdq: dequantize -> op -> quantize patterns become integer kernels."""

import textwrap

from pass_check import check_pass

from edgecc.ir import parse_graph
from edgecc.passes import REJECTION, PassContext, PassManager, parse_pipeline


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


def test_lower_qdq_adds_on_the_integers_and_drops_a_matching_pair():
    check_pass("lower-qdq,eliminate-dead-code", """
        graph @main(%a: i8[1,4], %b: i8[1,4]) {
          %s = const f32[] dense<splat 0.5>
          %z = const i8[] dense<splat 0>
          %ys = const f32[] dense<splat 1.0>
          %af = dequantize(%a, %s, %z) : f32[1,4]
          %bf = dequantize(%b, %s, %z) : f32[1,4]
          %sum = add(%af, %bf) : f32[1,4]
          %y = quantize(%sum, %ys, %z) {dtype="int8"} : i8[1,4]
          %bq = quantize(%bf, %s, %z) {dtype="int8"} : i8[1,4]
          return %y, %bq
        }""", """
        graph @main(%a: i8[1,4], %b: i8[1,4]) {
          %y = qadd(%a, %b) {a_scale=0.5, b_scale=0.5, scale=1.0} : i8[1,4]<q:scale=[1.0],zp=[0]>
          %bq = identity(%b) : i8[1,4]
          return %y, %bq
        }""")


def test_lower_qdq_says_why_a_pattern_stays_in_float():
    before = """
        graph @main(%a: i8[1,4], %s: f32[]) {
          %z = const i8[] dense<splat 0>
          %ys = const f32[] dense<splat 1.0>
          %af = dequantize(%a, %s, %z) : f32[1,4]
          %r = relu(%af) : f32[1,4]
          %y = quantize(%r, %ys, %z) {dtype="int8"} : i8[1,4]
          return %y
        }"""
    check_pass("lower-qdq", before, before)
    graph = parse_graph(textwrap.dedent(before))
    ctx = PassContext()
    PassManager(parse_pipeline("lower-qdq")).run(graph, ctx)
    assert [(r.kind, r.node, r.message) for r in ctx.remarks] == [
        (REJECTION, "quantize", "Transparent: dequantize: data parameters are not per-tensor constants")]
