"""The IR: SSA use lists, text round trip, verifier, layouts, static evaluation."""

import numpy as np
import pytest

from edgecc.ir import (Graph, IRError, ParseError, QuantParams, TensorType, VerifyError, layout_of, parse_graph,
                       print_graph, static_value, verify_graph)

TEXT = """\
graph @main(%x: f32[1,3,8,8], %ids: i64[2]) {
  %w = const f32[4,3,3,3] dense<splat 0.5>
  %b = const f32[4] dense<[0.0, 1.0, 2.0, 3.0]>
  %table = const f32[5,2] dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]>
  %c = conv(%x, %w, %b) {pads=[1,1,1,1]} : f32[1,4,8,8]
  %n = conv(%x, %w) : f32[1,4,6,6]
  %p, %q = split(%c) {axis=1, sizes=[1,3]} : f32[1,1,8,8], f32[1,3,8,8]
  %g = gather(%table, %ids) : f32[2,2]
  %f = fused(%p, %b) {kind="conv_epilogue"} : f32[1,1,8,8] {
    ^(%a: f32[1,1,8,8], %bb: f32[4])
    %r = relu(%a) : f32[1,1,8,8]
    return %r
  }
  %t = layout_transform(%q) {dst="NCHW3c", src="NCHW"} : f32[1,1,8,8,3]<NCHW3c>
  return %f, %t, %g, %n
}
"""


def test_text_round_trips():
    g = parse_graph(TEXT)
    verify_graph(g)
    assert print_graph(g) == TEXT
    assert print_graph(parse_graph(print_graph(g))) == TEXT


def test_attributes_at_their_default_are_not_printed():
    g = parse_graph("graph @g(%x: f32[1,1,4,4], %w: f32[1,1,1,1]) {\n"
                    "  %y = conv(%x, %w) {group=1} : f32[1,1,4,4]\n  return %y\n}")
    assert "group" not in print_graph(g)
    assert g.nodes[0].attrs["group"] == 1


def test_large_constants_round_trip_exactly():
    g = Graph()
    x = g.add_input("x", TensorType("float32", (100,)))
    w = g.add_constant(np.random.default_rng(0).standard_normal(100).astype(np.float32), "w")
    g.set_outputs([g.create_node("add", [x, w]).output])
    again = parse_graph(print_graph(g))
    np.testing.assert_array_equal(again.constants["w"].const, w.const)
    assert "dense<...>" in print_graph(g, elide_constants=True)
    with pytest.raises(ParseError, match="elided"):
        parse_graph(print_graph(g, elide_constants=True))


def test_quantized_types_round_trip():
    t = TensorType("int8", (4, 2), None, QuantParams((0.5, 0.25, 0.125, 1.0), (0, 0, 0, 0), axis=0))
    g = Graph()
    x = g.add_input("x", t)
    g.set_outputs([g.create_node("identity", [x]).output])
    text = print_graph(g)
    assert "q:axis=0,scale=[0.5,0.25,0.125,1.0],zp=[0,0,0,0]" in text
    assert parse_graph(text).inputs[0].type == t


def test_parse_errors_name_the_line():
    with pytest.raises(ParseError, match="line 2: %y is used before it is defined"):
        parse_graph("graph @g(%x: f32[2]) {\n  %z = relu(%y) : f32[2]\n  return %z\n}")
    with pytest.raises(ParseError, match="unknown op 'frobnicate'"):
        parse_graph("graph @g(%x: f32[2]) {\n  %z = frobnicate(%x) : f32[2]\n  return %z\n}")


def test_use_lists_follow_mutation():
    g = Graph()
    x = g.add_input("x", TensorType("float32", (2,)))
    a = g.create_node("relu", [x]).output
    b = g.create_node("neg", [a]).output
    g.set_outputs([b])
    assert [n.op for n in a.users] == ["neg"]
    with pytest.raises(IRError, match="cannot erase"):
        g.erase_node(a.producer)
    c = g.create_node("abs", [x]).output
    a.replace_all_uses_with(c)
    assert a.uses == [] and len(c.uses) == 1
    g.erase_node(a.producer)
    g.topological_sort()
    verify_graph(g)
    assert [n.op for n in g.nodes] == ["abs", "neg"]


def test_verifier_catches_type_mismatch_and_order():
    g = parse_graph("graph @g(%x: f32[2,3]) {\n  %y = relu(%x) : f32[2,3]\n  return %y\n}")
    g.nodes[0].outputs[0].type = TensorType("float32", (3, 2))
    with pytest.raises(VerifyError, match="relu: output %y is f32\\[3,2\\], inference gives f32\\[2,3\\]"):
        verify_graph(g)
    g = parse_graph("graph @g(%x: f32[2]) {\n  %a = relu(%x) : f32[2]\n  %b = neg(%a) : f32[2]\n  return %b\n}")
    g.nodes.reverse()
    with pytest.raises(VerifyError, match="used before it is defined"):
        verify_graph(g)


def test_verifier_never_changes_the_graph():
    g = parse_graph(TEXT)
    before = print_graph(g)
    attrs_before = [dict(n.attrs) for n in g.walk()]
    verify_graph(g)
    assert print_graph(g) == before
    assert [dict(n.attrs) for n in g.walk()] == attrs_before


@pytest.mark.parametrize("edit, message", [
    (lambda attrs: attrs.pop("group"), "attribute 'group' is missing"),
    (lambda attrs: attrs.update(pads=[1, 1, 1, 1]), "pads=\\[1, 1, 1, 1\\] is not a canonical ints"),
    (lambda attrs: attrs.update(group=np.int64(1)), "group=.* is not a canonical int"),
    (lambda attrs: attrs.update(colour="red"), "unknown attribute 'colour'"),
])
def test_attributes_normalization_would_change_fail_verification_unchanged(edit, message):
    g = parse_graph("graph @g(%x: f32[1,1,4,4], %w: f32[1,1,3,3]) {\n"
                    "  %y = conv(%x, %w) {pads=[1,1,1,1]} : f32[1,1,4,4]\n  return %y\n}")
    conv = g.nodes[0]
    edit(conv.attrs)
    edited = dict(conv.attrs)
    with pytest.raises(VerifyError, match=message):
        verify_graph(g)
    assert conv.attrs.keys() == edited.keys()
    assert all(conv.attrs[k] is edited[k] for k in edited)


def test_replace_value_keeps_types():
    g = parse_graph("graph @g(%x: f32[2,3], %i: i32[2,3], %t: f32[3,2]) {\n"
                    "  %a = relu(%x) : f32[2,3]\n  %b = neg(%a) : f32[2,3]\n  return %b\n}")
    a, b = g.value("a"), g.value("b")
    with pytest.raises(IRError, match="cannot replace %a: f32\\[2,3\\] by %i: i32\\[2,3\\]"):
        g.replace_value(a, g.value("i"))
    with pytest.raises(IRError, match="cannot replace %a: f32\\[2,3\\] by %t: f32\\[3,2\\]"):
        a.replace_all_uses_with(g.value("t"))
    blocked = g.create_node("layout_transform", [g.create_node("reshape", [a], {"shape": (1, 6, 1, 1)}).output],
                            {"src": "NCHW", "dst": "NCHW2c"}).output
    plain = g.create_node("reshape", [a], {"shape": (1, 3, 1, 1, 2)}).output
    with pytest.raises(IRError, match="types differ"):
        g.replace_value(plain, blocked)  # same shape and dtype, but blocked vs plain data
    assert [n.op for n, _ in a.uses] == ["neg", "reshape", "reshape"]  # nothing moved
    g.replace_value(a, g.value("x"))
    assert b.producer.inputs[0] is g.value("x")


def test_replace_value_retype_is_explicit():
    g = parse_graph("graph @g(%x: f32[2], %i: i32[2]) {\n  %a = relu(%x) : f32[2]\n  return %a\n}")
    g.replace_value(g.value("a"), g.value("i"), retype=True)
    assert g.outputs[0].type.dtype == "int32" and g.outputs[0].producer.op == "identity"


def test_inference_rejects_impossible_shapes():
    g = Graph()
    x = g.add_input("x", TensorType("float32", (1, 3, 8, 8)))
    w = g.add_constant(np.zeros((4, 2, 3, 3), np.float32), "w")
    with pytest.raises(IRError, match="input has 3 channels"):
        g.create_node("conv", [x, w])
    with pytest.raises(IRError, match="do not broadcast"):
        g.create_node("add", [x, g.add_constant(np.zeros((5,), np.float32))])
    assert all(not v.uses for v in (x, w))


def test_networkx_view_has_edges_and_output_sink():
    import networkx as nx

    g = parse_graph(TEXT)
    dg = g.to_networkx()
    assert nx.is_directed_acyclic_graph(dg)
    producer = {v.name: v.producer.name for v in g.values() if v.producer is not None}
    assert dg.has_edge(producer["c"], producer["p"])
    assert dg.has_edge(producer["f"], "__output__")
    assert dg.nodes[producer["c"]]["node"].op == "conv"


def test_blocked_layouts_convert_both_ways():
    data = np.arange(2 * 16 * 3 * 3, dtype=np.float32).reshape(2, 16, 3, 3)
    blocked = layout_of("NCHW8c").from_plain(data, "NCHW")
    assert blocked.shape == (2, 2, 3, 3, 8)
    assert blocked[1, 1, 2, 0, 5] == data[1, 13, 2, 0]
    np.testing.assert_array_equal(layout_of("NCHW8c").to_plain(blocked, "NCHW"), data)
    w = np.arange(32 * 16, dtype=np.float32).reshape(32, 16, 1, 1)
    packed = layout_of("OIHW8i16o").from_plain(w, "OIHW")
    assert packed.shape == (2, 2, 1, 1, 8, 16)
    assert packed[1, 0, 0, 0, 3, 5] == w[16 + 5, 3, 0, 0]
    with pytest.raises(IRError):
        layout_of("NCHW8")


def test_an_axis_split_into_several_blocks():
    """OIHW4i16o2i: input channel i = (i_outer * 4 + i_mid) * 2 + i_inner, pairs innermost."""
    w = np.arange(32 * 16 * 3 * 3, dtype=np.int32).reshape(32, 16, 3, 3)
    layout = layout_of("OIHW4i16o2i")
    packed = layout.from_plain(w, "OIHW")
    assert packed.shape == (2, 2, 3, 3, 4, 16, 2)
    assert packed[1, 1, 2, 0, 3, 5, 1] == w[16 + 5, (1 * 4 + 3) * 2 + 1, 2, 0]
    assert layout.logical_dims(packed.shape) == {"O": 32, "I": 16, "H": 3, "W": 3}
    assert layout.block("i") == 8 and layout.blocks("i") == [4, 2]
    np.testing.assert_array_equal(layout.to_plain(packed, "OIHW"), w)
    np.testing.assert_array_equal(layout_of("OIHW8i16o").from_plain(w, "OIHW").reshape(2, 2, 3, 3, 4, 2, 16)
                                  .transpose(0, 1, 2, 3, 4, 6, 5), packed)


def test_static_value_follows_shape_chains():
    g = parse_graph("""graph @g(%x: f32[2,6]) {
      %i = const i64[1] dense<[1]>
      %s = shape(%x) : i64[2]
      %d = gather(%s, %i) : i64[1]
      %r = relu(%x) : f32[2,6]
      return %d, %r
    }""")
    np.testing.assert_array_equal(static_value(g.outputs[0]), [6])
    assert static_value(g.outputs[1]) is None
