"""fuse: fusion groups as the IR shows them."""

from pass_check import check_pass, run_pipeline


def test_conv_absorbs_bias_activation_and_residual_add():
    check_pass("fuse", """
        graph @main(%x: f32[1,4,8,8], %skip: f32[1,4,8,8]) {
          %w = const f32[4,4,1,1] dense<splat 0.5>
          %b = const f32[1,4,1,1] dense<[1.0, 2.0, 3.0, 4.0]>
          %c = conv(%x, %w) : f32[1,4,8,8]
          %a = add(%c, %b) : f32[1,4,8,8]
          %s = add(%a, %skip) : f32[1,4,8,8]
          %y = relu(%s) : f32[1,4,8,8]
          return %y
        }""", """
        graph @main(%x: f32[1,4,8,8], %skip: f32[1,4,8,8]) {
          %w = const f32[4,4,1,1] dense<splat 0.5>
          %b = const f32[1,4,1,1] dense<[1.0, 2.0, 3.0, 4.0]>
          %y = fused(%x, %w, %b, %skip) {anchor="conv", kind="conv"} : f32[1,4,8,8] {
            ^(%x: f32[1,4,8,8], %w: f32[4,4,1,1], %b: f32[1,4,1,1], %skip: f32[1,4,8,8])
            %c = conv(%x, %w) : f32[1,4,8,8]
            %a = add(%c, %b) : f32[1,4,8,8]
            %s = add(%a, %skip) : f32[1,4,8,8]
            %y = relu(%s) : f32[1,4,8,8]
            return %y
          }
          return %y
        }""")


def test_value_read_twice_ends_its_group():
    graph, _ = run_pipeline("fuse", """
        graph @main(%x: f32[1,4,8,8]) {
          %w = const f32[4,4,1,1] dense<splat 0.5>
          %c = conv(%x, %w) : f32[1,4,8,8]
          %r = relu(%c) : f32[1,4,8,8]
          %n = neg(%r) : f32[1,4,8,8]
          %y = add(%n, %r) : f32[1,4,8,8]
          return %y
        }""")
    kinds = [(n.op, n.attrs.get("kind"), [m.op for m in n.subgraph.nodes] if n.subgraph else None) for n in graph.nodes]
    assert kinds == [("fused", "conv", ["conv", "relu"]), ("fused", "injective", ["neg", "add"])]


def test_layer_norm_absorbs_residual_add_and_epilogue():
    graph, _ = run_pipeline("fuse", """
        graph @main(%x: f32[2,8], %r: f32[2,8]) {
          %a = add(%x, %r) : f32[2,8]
          %n = layer_norm(%a) : f32[2,8]
          %y = relu(%n) : f32[2,8]
          return %y
        }""")
    (node,) = graph.nodes
    assert node.attrs["kind"] == "reduction"
    assert [m.op for m in node.subgraph.nodes] == ["add", "layer_norm", "relu"]


def test_injective_chain_fuses_and_graph_output_stays_named():
    graph, _ = run_pipeline("fuse", """
        graph @main(%x: f32[2,3,4]) {
          %t = transpose(%x) {perm=[0,2,1]} : f32[2,4,3]
          %e = exp(%t) : f32[2,4,3]
          %y = reshape(%e) {shape=[8,3]} : f32[8,3]
          return %y
        }""")
    (node,) = graph.nodes
    assert [m.op for m in node.subgraph.nodes] == ["transpose", "exp", "reshape"]
    assert graph.outputs[0].name == "y"


def test_pooling_heads_a_pool_group_and_absorbs_its_activation():
    check_pass("fuse", """
        graph @main(%x: f32[1,4,8,8]) {
          %p = max_pool(%x) {kernel_shape=[2,2], strides=[2,2]} : f32[1,4,4,4]
          %y = relu(%p) : f32[1,4,4,4]
          return %y
        }""", """
        graph @main(%x: f32[1,4,8,8]) {
          %y = fused(%x) {anchor="max_pool", kind="pool"} : f32[1,4,4,4] {
            ^(%x: f32[1,4,8,8])
            %p = max_pool(%x) {kernel_shape=[2,2], strides=[2,2]} : f32[1,4,4,4]
            %y = relu(%p) : f32[1,4,4,4]
            return %y
          }
          return %y
        }""")


def test_every_anchor_op_of_the_registry_heads_its_own_group():
    """fuse asks the op registry (Trait.ANCHOR), so a new anchor op needs no change here."""
    from edgecc.ir import Trait, all_ops
    from edgecc.passes.fuse import _pattern

    anchors = {name for name, opdef in all_ops().items() if opdef.has(Trait.ANCHOR)}
    assert {"conv", "matmul", "dense", "qconv", "qdense", "max_pool", "global_avg_pool"} <= anchors
    graph, _ = run_pipeline("fuse", """
        graph @main(%x: f32[1,4,8,8]) {
          %g = global_avg_pool(%x) : f32[1,4,1,1]
          %y = relu(%g) : f32[1,4,1,1]
          return %y
        }""")
    (node,) = graph.nodes
    assert (node.attrs["anchor"], node.attrs["kind"]) == ("global_avg_pool", "pool")
    assert all(_pattern(n) == "anchor" for n in node.subgraph.nodes if n.op in anchors)


STEM = """
graph @main(%x: f32[1,3,16,16]) {
  %w = const f32[16,3,WINDOW,WINDOW] dense<splat 0.5>
  %c = conv(%x, %w) {pads=[PAD,PAD,PAD,PAD], strides=[2,2]} : f32[1,16,8,8]
  %y = relu(%c) : f32[1,16,8,8]
  return %y
}
"""


def test_padded_first_conv_takes_in_the_layout_transform_of_its_input():
    """The blocked layout's transform of a padded conv's input joins the conv's kernel (its padded
    copy reads the NCHW input); an unpadded conv leaves it a kernel of its own."""
    for window, pad, joined in ((3, 1, True), (1, 0, False)):
        text = STEM.replace("WINDOW", str(window)).replace("PAD", str(pad))
        graph, _ = run_pipeline("convert-layout{lanes=16},fold-constants,fuse", text)
        bodies = [[m.op for m in n.subgraph.nodes] for n in graph.nodes if n.op == "fused"]
        first = ["layout_transform", "conv", "relu"] if joined else ["conv", "relu"]
        assert bodies[0] == first, bodies
        assert graph.nodes[0].attrs["kind"] == "conv" if joined else graph.nodes[0].op == "layout_transform"
