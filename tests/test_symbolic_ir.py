"""Symbolic shapes in the IR, the ONNX frontend and the passes: type inference with Dims, shape
vectors computed from symbolic shapes, refusals that name what only the run time knows."""

import io

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from ort_compare import make_model

import edgecc
import edgecc.driver
import edgecc.passes
from edgecc.errors import FrontendError, LimitError
from edgecc.ir import Dim, Graph, IRError, TensorType, UndecidableDim, parse_graph, print_graph, verify_graph
from edgecc.ir.limits import check_tensor_bytes
from edgecc.ir.ops.tensor import resolve_reshape
from edgecc.ir.static_eval import is_symbolic_value, static_dims, static_value

B, S, H, W = (Dim.var(n) for n in ("batch", "seq", "h", "w"))
INT_MAX = (1 << 31) - 1


def infer(op, *inputs, **attrs):
    """The output shapes of one `op` node; an input is (dtype, shape) or a numpy constant."""
    g = Graph()
    values = []
    for i, x in enumerate(inputs):
        if isinstance(x, np.ndarray):
            values.append(g.add_constant(x, f"c{i}"))
        else:
            values.append(g.add_input(f"x{i}", TensorType(*x)))
    node = g.create_node(op, values, attrs)
    g.set_outputs(node.outputs)
    verify_graph(g)
    assert print_graph(parse_graph(print_graph(g))) == print_graph(g)  # Dims print and parse back
    shapes = [o.type.shape for o in node.outputs]
    return shapes[0] if len(shapes) == 1 else shapes


def f32(*shape):
    return ("float32", shape)


def weight(*shape):
    return np.zeros(shape, np.float32)


# ----- type inference --------------------------------------------------------------------------
@pytest.mark.parametrize("a, b, out", [
    ((B, S, 64), (64,), (B, S, 64)),
    ((B, 1, 64), (1, S, 64), (B, S, 64)),
    ((B, S), (B, S), (B, S)),
    ((B, S * 4), (1,), (B, S * 4)),
])
def test_broadcasting_keeps_symbolic_dimensions(a, b, out):
    assert infer("add", f32(*a), f32(*b)) == out
    assert infer("where", ("bool", a), f32(*b), f32()) == out


@pytest.mark.parametrize("a, b, named", [((B, 64), (S, 64), "batch and seq"), ((B,), (4,), "4 and batch")])
def test_broadcasting_refuses_sizes_it_cannot_prove_equal(a, b, named):
    with pytest.raises(IRError, match=f"add: shapes .* broadcast only if {named} are equal or 1 at run time"):
        infer("add", f32(*a), f32(*b))


def test_convolution_and_pooling_over_symbolic_batch_and_image_size():
    x = f32(B, 3, H, W)
    assert infer("conv", x, weight(8, 3, 3, 3), pads=(1, 1, 1, 1), strides=(2, 2)) == \
        (B, 8, (H - 1) // 2 + 1, (W - 1) // 2 + 1)
    assert infer("conv", f32(B, 3, 32, 32), weight(8, 3, 3, 3), pads=(1, 1, 1, 1)) == (B, 8, 32, 32)
    assert infer("max_pool", x, kernel_shape=(3, 3), strides=(2, 2)) == (B, 3, (H - 3) // 2 + 1, (W - 3) // 2 + 1)
    assert infer("avg_pool", x, kernel_shape=(2, 2), strides=(2, 2)) == (B, 3, H // 2, W // 2)
    assert infer("global_avg_pool", x) == (B, 3, 1, 1)
    assert infer("batch_norm", x, *(weight(3) for _ in range(4))) == (B, 3, H, W)
    assert infer("layout_transform", f32(B, 16, H, W), src="NCHW", dst="NCHW8c") == (B, 2, H, W, 8)
    with pytest.raises(IRError, match="input has seq channels"):
        infer("conv", f32(B, S, H, W), weight(8, 3, 3, 3))


def test_matrix_products_normalization_and_activations_of_a_transformer():
    x = f32(B, S, 64)
    assert infer("matmul", x, weight(64, 32)) == (B, S, 32)
    assert infer("matmul", f32(B, 4, S, 16), f32(B, 4, 16, S)) == (B, 4, S, S)
    assert infer("dense", x, weight(2, 64, 16)) == (B, S, 32)
    for op in ("softmax", "gelu", "erf", "relu"):
        assert infer(op, f32(B, 4, S, S)) == (B, 4, S, S)
    assert infer("layer_norm", x, weight(64), weight(64)) == (B, S, 64)
    assert infer("cast", ("int64", (B, S)), to="float32") == (B, S)
    assert infer("reduce_mean", x, axes=(1,), keepdims=1) == (B, 1, 64)
    assert infer("gather", weight(100, 64), ("int64", (B, S)), axis=0) == (B, S, 64)
    assert infer("quantize", x, np.array(0.1, np.float32), dtype="int8") == (B, S, 64)
    with pytest.raises(IRError, match="inner dimensions differ"):
        infer("matmul", f32(B, S), weight(64, 8))


def test_data_movement_with_symbolic_dimensions():
    x = f32(B, S, 64)
    assert infer("reshape", x, shape=(B, S, 4, 16)) == (B, S, 4, 16)
    assert infer("reshape", x, shape=(B * S, 64)) == (B * S, 64)
    assert infer("transpose", f32(B, S, 4, 16), perm=(0, 2, 1, 3)) == (B, 4, S, 16)
    assert infer("concat", x, x, axis=1) == (B, S * 2, 64)
    assert infer("split", x, axis=2, sizes=(32, 32)) == [(B, S, 32), (B, S, 32)]
    assert infer("slice", x, starts=(1,), ends=(INT_MAX,), axes=(1,)) == (B, S - 1, 64)
    assert infer("slice", x, starts=(0,), ends=(INT_MAX,), axes=(1,), steps=(2,)) == (B, (S + 1) // 2, 64)
    assert infer("slice", x, starts=(0,), ends=(-1,), axes=(1,)) == (B, S - 1, 64)
    assert infer("slice", x, starts=(0,), ends=(8,), axes=(2,)) == (B, S, 8)
    assert infer("expand", f32(1, S, 1), shape=(B, 1, 64)) == (B, S, 64)
    assert infer("full", shape=(B, S), value=1.0) == (B, S)
    assert infer("pad", x, pads=(0, 1, 0, 0, 1, 0)) == (B, S + 2, 64)
    with pytest.raises(IRError, match="cannot reshape"):
        infer("reshape", x, shape=(B, S * 2, 64))


@pytest.mark.parametrize("what, call, message", [
    ("a slice whose length depends on the size", lambda: infer("slice", f32(B, S), starts=(0,), ends=(3,), axes=(1,)),
     r"slice \[0:3:1\] of a dimension of size seq has a length that is not known at compile time"),
    ("a slice from the end", lambda: infer("slice", f32(B, S), starts=(-3,), ends=(INT_MAX,), axes=(1,)),
     r"size seq has a length that is not known"),
    ("split sizes of a symbolic axis", lambda: infer("split", f32(B, S), axis=1, sizes=(1, 1)),
     r"split: sizes \(1, 1\) do not add up to seq"),
    ("ceil-mode pooling", lambda: infer("max_pool", f32(B, 3, H, W), kernel_shape=(1, 1), strides=(2, 2), ceil_mode=1),
     "ceil_mode windows over a symbolic size h"),
])
def test_what_needs_a_static_size_is_refused_naming_the_dimension(what, call, message):
    with pytest.raises(IRError, match=message):
        call()


def test_reshape_targets_resolve_zero_and_minus_one_symbolically():
    assert resolve_reshape((B, S, 64), (0, 0, 4, -1)) == (B, S, 4, 16)
    assert resolve_reshape((B, S, 4, 16), (0, -1, 64)) == (B, S, 64)
    assert resolve_reshape((B, S, 64), (-1, 64)) == (B * S, 64)
    assert resolve_reshape((B, S, 64), (B, S, 2, 32)) == (B, S, 2, 32)
    with pytest.raises(IRError, match=r"cannot reshape \(batch, seq, 64\) to \(batch, -1, 7\)"):
        resolve_reshape((B, S, 64), (B, -1, 7))
    with pytest.raises(IRError, match="more than one -1"):
        resolve_reshape((B, S), (-1, -1))


def test_shape_vectors_computed_from_symbolic_shapes_are_formulas():
    g = parse_graph("""graph @main(%x: f32[batch,seq,64]) {
  %i0 = const i64[] dense<[0]>
  %i1 = const i64[] dense<[1]>
  %i2 = const i64[] dense<[2]>
  %heads = const i64[1] dense<[4]>
  %k = const i64[] dense<[4]>
  %s = shape(%x) : i64[3]
  %b = gather(%s, %i0) : i64[]
  %n = gather(%s, %i1) : i64[]
  %d = gather(%s, %i2) : i64[]
  %dh = div(%d, %k) : i64[]
  %bn = mul(%b, %n) : i64[]
  %b1 = reshape(%b) {shape=[1]} : i64[1]
  %n1 = reshape(%n) {shape=[1]} : i64[1]
  %dh1 = reshape(%dh) {shape=[1]} : i64[1]
  %bn1 = reshape(%bn) {shape=[1]} : i64[1]
  %target = concat(%b1, %n1, %heads, %dh1) {axis=0} : i64[4]
  %flat = concat(%bn1, %dh1) {axis=0} : i64[2]
  %d64 = cast(%d) {to="float32"} : f32[]
  return %target, %flat, %d64
}
""")
    target, flat, d64 = g.outputs
    assert static_dims(target) == (B, S, 4, 16)
    assert static_dims(flat) == (B * S, 16)
    assert static_value(d64) == np.float32(64)  # a static entry stays an ordinary number
    assert is_symbolic_value(static_value(target)) and not is_symbolic_value(static_value(d64))
    pm = edgecc.passes.PassManager(edgecc.passes.parse_pipeline("simplify-shape-chains"), verify_each=True)
    pm.run(g, edgecc.passes.PassContext())
    assert [v.producer.op for v in g.outputs] == ["concat", "concat", "identity"]  # formulas are no constants
    assert g.outputs[2].producer.inputs[0].const == np.float32(64)
    assert static_dims(g.outputs[0]) == (B, S, 4, 16)


def test_tensors_a_converter_makes_may_have_symbolic_sizes():
    from types import SimpleNamespace

    from edgecc.frontend.onnx_ops.checks import check_new_tensor

    ctx = SimpleNamespace(where="node 'fill' (ConstantOfShape)", dim_bounds={"batch": (1, 4), "seq": (1, 1 << 28)})
    assert check_new_tensor(ctx, (B, np.int64(3)), "float32", "the shape") == (B, 3)
    with pytest.raises(LimitError, match=r"node 'fill' \(ConstantOfShape\): the shape \(batch, seq\) at the largest"):
        check_new_tensor(ctx, (B, S), "float32", "the shape")


def test_byte_limits_use_the_upper_bounds_of_symbolic_sizes():
    nbytes = B * S * 4
    check_tensor_bytes("t", nbytes, {"batch": (1, 8)})  # seq unbounded: nothing to check
    check_tensor_bytes("t", nbytes, {"batch": (1, 8), "seq": (1, 512)})
    with pytest.raises(LimitError, match="t at the largest allowed sizes: a tensor of 17179869184 bytes"):
        check_tensor_bytes("t", nbytes, {"batch": (1, 8), "seq": (1, 1 << 29)})


# ----- the ONNX frontend -----------------------------------------------------------------------
def _relu_model(*shapes, names=None):
    inputs = {f"x{i}": np.zeros([1] * len(s), np.float32) for i, s in enumerate(shapes)}
    nodes = [helper.make_node("Relu", [name], [f"y{i}"]) for i, name in enumerate(inputs)]
    model = make_model(nodes, inputs, [f"y{i}" for i in range(len(shapes))])
    for inp, shape in zip(model.graph.input, shapes):
        for dim, d in zip(inp.type.tensor_type.shape.dim, shape):
            dim.Clear()
            if isinstance(d, int):
                dim.dim_value = d
            elif d:
                dim.dim_param = d
    return model


def test_onnx_symbolic_dimensions_become_size_variables():
    model = _relu_model(("batch", "seq len", 8), ("batch", None, "2d"))
    every = {"x0": [None] * 3, "x1": ["?"] * 3}
    g = edgecc.load_model(model, every)
    assert [v.type.shape for v in g.inputs] == [(B, Dim.var("seq_len"), 8), (B, Dim.var("x1_d1"), Dim.var("d_2d"))]
    assert "dim_bounds" not in g.meta
    bounded = edgecc.load_model(model, {"x0": [(1, 8), (1, 512), 8], "x1": [(2, None), 5, 3]})
    assert bounded.inputs[0].type.shape == (B, Dim.var("seq_len"), 8)
    assert bounded.inputs[1].type.shape == (B, 5, 3)
    assert bounded.meta["dim_bounds"] == {"batch": (2, 8), "seq_len": (1, 512)}  # ranges of one name meet
    assert edgecc.load_model(model, {"x0": [4, 16, 8], "x1": [4, 2, 2]}).inputs[0].type.shape == (4, 16, 8)
    verify_graph(bounded)
    text = print_graph(bounded)
    assert text.startswith("graph @test(%x0: f32[batch,seq_len,8], %x1: f32[batch,5,3]) dims {batch=[2,8], seq_len=[1,512]} {")
    assert parse_graph(text).meta["dim_bounds"] == bounded.meta["dim_bounds"]
    bounded.meta["dim_bounds"]["seq_len"] = (8, 4)
    with pytest.raises(IRError, match=r"dim_bounds: 'seq_len': \(8, 4\) is not"):
        verify_graph(bounded)
    named = edgecc.load_model(model, {"x0": ["n", "s", 8], "x1": ["n", "s", "?"]})
    n, s = Dim.var("n"), Dim.var("s")
    assert [v.type.shape for v in named.inputs] == [(n, s, 8), (n, s, Dim.var("d_2d"))]
    # a size the model fixes may be given another size, a name or a range, as the user asks
    overridden = edgecc.load_model(model, {"x0": [None, None, (2, 4)], "x1": [None, 7, 5]})
    assert [v.type.shape for v in overridden.inputs] == [(B, Dim.var("seq_len"), Dim.var("x0_d2")), (B, 7, 5)]
    assert overridden.meta["dim_bounds"] == {"x0_d2": (2, 4)}
    assert edgecc.load_model(model, {"x0": [2, 3, 5], "x1": [2, 3, 5]}).inputs[0].type.shape == (2, 3, 5)


def test_inputs_left_out_of_input_shapes_stay_symbolic_or_take_one_as_asked():
    from edgecc.frontend.onnx import from_onnx

    model = _relu_model(("batch", "seq", 8))
    assert from_onnx(model, symbolic=True).inputs[0].type.shape == (B, S, 8)
    warnings = []
    assert from_onnx(model, symbolic=False, warnings=warnings).inputs[0].type.shape == (1, 1, 8)
    assert "dimension 0 ('batch') is symbolic; using 1 (set it with --input-shape x0=...)" in warnings[0]


@pytest.mark.parametrize("shapes, message", [
    ({"x0": [(4, 2), None, 8]}, r"dimension 0: the range's high end must be a size of at least 4, got 2"),
    ({"x0": [(0, 2), None, 8]}, r"the range's low end must be a size of at least 1, got 0"),
    ({"x0": [None, "2 many", 8]}, r"dimension 1: '2 many' is not a size"),
    ({"x0": [None, None, -2]}, r"dimension 2: size -2 is negative"),
    ({"x0": [None, None]}, r"has rank 2, the model's input has rank 3"),
])
def test_bad_input_shapes_are_refused_in_one_line(shapes, message):
    with pytest.raises(FrontendError, match=message):
        edgecc.load_model(_relu_model(("batch", "seq", 8)), shapes)


def test_a_slice_that_needs_the_run_time_size_names_the_node_and_dimension():
    model = _relu_model(("batch", "seq"))
    starts, ends, axes = (helper.make_tensor(n, TensorProto.INT64, [1], [v]) for n, v in
                          (("starts", 0), ("ends", 3), ("axes", 1)))
    model.graph.initializer.extend([starts, ends, axes])
    model.graph.node.append(helper.make_node("Slice", ["y0", "starts", "ends", "axes"], ["z"], name="first3"))
    model.graph.output[0].name = "z"
    with pytest.raises(FrontendError, match=r"node 'first3' \(Slice\): slice \[0:3:1\] of a dimension of size seq"):
        edgecc.load_model(model, {"x0": [None, None]})


def _one_node(op, inputs, inits=(), opset=17, **attrs):
    """A model of one ONNX node named 'n' with symbolic inputs [(name, [dims...])] and initializers."""
    node = helper.make_node(op, [name for name, _ in inputs] + [name for name, _ in inits], ["y"], name="n", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [onnx.numpy_helper.from_array(v, n) for n, v in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return edgecc.load_model(model, {n: [None] * len(s) for n, s in inputs})


@pytest.mark.parametrize("op, inputs, inits, opset, attrs, shape", [
    ("Softmax", [("x", ["batch", "seq", 8])], [], 11, {"axis": 1}, (B, S, 8)),  # flattened to 2-D first
    ("Conv", [("x", ["batch", 4, "h", "w"])], [("k", weight(2, 4, 3, 3))], 17, {"auto_pad": "SAME_UPPER"}, (B, 2, H, W)),
    ("ConvTranspose", [("x", ["batch", 4, "h", "w"])], [("k", weight(4, 2, 3, 3))], 17, {"strides": [2, 2]},
     (B, 2, H * 2 + 1, W * 2 + 1)),
    ("AveragePool", [("x", ["batch", 4, "h", "w"])], [], 17, {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1},
     (B, 4, H // 2, W // 2)),  # no window starts in the padding: ceil_mode is decidable
    ("Attention", [("q", ["batch", 2, "seq", 8]), ("k", ["batch", 2, "seq", 8]), ("v", ["batch", 2, "seq", 8])], [], 23,
     {"is_causal": 1}, (B, 2, S, 8)),
    ("LSTM", [("x", [5, "batch", 4])], [("W", weight(1, 12, 4)), ("R", weight(1, 12, 3))], 17, {"hidden_size": 3},
     (5, 1, B, 3)),
])
def test_onnx_ops_convert_with_symbolic_dimensions(op, inputs, inits, opset, attrs, shape):
    assert _one_node(op, inputs, inits, opset, **attrs).outputs[0].type.shape == shape


def test_a_matmul_fixes_its_inner_size_and_keeps_the_others():
    warnings = []
    model = helper.make_model(helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="proj")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", "d"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(weight(8, 4), "w")]), opset_imports=[helper.make_opsetid("", 17)])
    g = edgecc.load_model(model, warnings=warnings)
    assert g.inputs[0].type.shape == (B, S, 8) and g.outputs[0].type.shape == (B, S, 4)
    assert warnings == ["node 'proj' (MatMul) needs symbolic dimension 'd' to be 8; the inputs take it as 8"]


@pytest.mark.parametrize("op, inputs, inits, attrs, message", [
    ("LSTM", [("x", ["seq", 2, 4])], [("W", weight(1, 12, 4)), ("R", weight(1, 12, 3))], {"hidden_size": 3},
     r"node 'n' \(LSTM\): LSTM is unrolled over its sequence, whose length seq is symbolic"),
    ("Conv", [("x", ["batch", 4, "h", "w"])], [("k", weight(2, 4, 3, 3))], {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
     r"node 'n' \(Conv\): auto_pad SAME_UPPER with stride 2 over a symbolic size h"),
])
def test_onnx_ops_that_need_a_static_size_say_which(op, inputs, inits, attrs, message):
    with pytest.raises(FrontendError, match=message):
        _one_node(op, inputs, inits, **attrs)


# ----- passes on symbolic graphs ---------------------------------------------------------------
class _TinyCnn(torch.nn.Module):
    """conv-bn-relu, a max pool, a residual 3x3 block and a global pool: no Flatten."""

    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1, bias=False), torch.nn.BatchNorm2d(16),
                                        torch.nn.ReLU(), torch.nn.MaxPool2d(2))
        self.body = torch.nn.Sequential(torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(),
                                        torch.nn.Conv2d(16, 16, 3, padding=1))

    def forward(self, x):
        x = self.stem(x)
        return torch.nn.functional.adaptive_avg_pool2d(torch.relu(x + self.body(x)), 1)


def _export_cnn(axes: dict[int, str]) -> onnx.ModelProto:
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.onnx.export(_TinyCnn().eval(), (torch.randn(1, 3, 32, 32),), buffer, input_names=["x"], output_names=["y"],
                      opset_version=17, dynamo=False, dynamic_axes={"x": axes, "y": {0: axes[0]}})
    return onnx.load_from_string(buffer.getvalue())


def _prepare(model, shapes):
    return edgecc.driver.prepare_model(model, "host", input_shapes=shapes, verify_each=True)


def test_cnn_with_a_symbolic_batch_runs_the_whole_pipeline():
    prepared = _prepare(_export_cnn({0: "batch"}), {"x": [None, 3, 32, 32]})
    g = prepared.graph
    assert g.inputs[0].type.shape == (B, 3, 32, 32) and g.outputs[0].type.shape == (B, 16, 1, 1)
    ops = {n.op for n in g.walk()}
    assert "batch_norm" not in ops and "winograd_conv" in ops and "fused" in ops  # BN folded, layout, fusion
    text = print_graph(g)
    assert "f32[batch,2,16,16,8]<NCHW8c>" in text or "f32[batch,1,16,16,16]<NCHW16c>" in text
    assert print_graph(parse_graph(text)) == text


def test_cnn_with_symbolic_image_size_keeps_convolutions_direct_and_says_why():
    prepared = _prepare(_export_cnn({0: "batch", 2: "h", 3: "w"}), {"x": [None, 3, None, None]})
    g = prepared.graph
    assert g.inputs[0].type.shape == (B, 3, H, W)
    assert "winograd_conv" not in {n.op for n in g.walk()}
    notes = [str(r) for r in prepared.remarks if r.pass_name == "winograd"]
    assert notes and all("is symbolic" in n for n in notes)
    assert "h x w is symbolic" in notes[0] and any("(h//2) x (w//2) is symbolic" in n for n in notes)


def test_a_symbolic_dimension_an_op_fixes_is_fixed_with_a_warning():
    model = _export_cnn({0: "batch", 1: "c", 2: "h", 3: "w"})
    warnings = []
    g = edgecc.load_model(model, {"x": [None] * 4}, warnings=warnings)
    assert g.inputs[0].type.shape == (B, 3, H, W)
    assert warnings == ["node '/stem/stem.0/Conv' (Conv) needs symbolic dimension 'c' to be 3; the inputs take it as 3"]
    with pytest.raises(FrontendError, match=r"\(Conv\): conv: input has c channels, .* \(the model works only with c = 3\)"):
        edgecc.load_model(model, {"x": [None, (4, 8), None, None]})


def test_quantization_passes_run_on_a_graph_with_symbolic_batch_and_image_size():
    """Calibrated ranges on the float values (as edgecc.quant.annotate leaves them), then the int8 passes."""
    from edgecc.ir import QuantParams

    g = Graph()
    x = g.add_input("x", TensorType("float32", (B, 4, H, W), quant=QuantParams((0.05,), (0,))))
    conv = g.create_node("conv", [x, g.add_constant(np.random.default_rng(0).standard_normal((8, 4, 3, 3))
                                                   .astype(np.float32), "w")], {"pads": (1, 1, 1, 1)}).output
    pooled = g.create_node("global_avg_pool", [g.create_node("relu", [conv]).output]).output
    flat = g.create_node("reshape", [pooled], {"shape": (B, 8)}).output
    flat.type = flat.type.with_quant(QuantParams((0.03,), (0,)))
    y = g.create_node("matmul", [flat, g.add_constant(np.ones((8, 3), np.float32), "w2")]).output
    g.set_outputs([y])
    pipeline = edgecc.passes.parse_pipeline("quantize,lower-qdq,fold-constants,eliminate-dead-code,convert-layout,fuse")
    edgecc.passes.PassManager(pipeline, verify_each=True).run(g, edgecc.passes.PassContext())
    anchors = {n.attrs.get("anchor") for n in g.nodes if n.op == "fused"}
    assert {"qconv", "qdense"} <= anchors
    assert g.outputs[0].type.shape == (B, 3)
    text = print_graph(g)
    assert "i8[batch,1,h,w,4]<NCHW4c" in text and print_graph(parse_graph(text)) == text


def test_attention_masks_over_symbolic_lengths_match_the_onnx_reference():
    """Causal and sliding-window masks built from run-time position grids, compiled once, run at two sizes."""
    from onnx.reference import ReferenceEvaluator

    node = helper.make_node("Attention", ["q", "k", "v"], ["y"], is_causal=1, left_window_size=2)
    graph = helper.make_graph([node], "a", [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["b", 2, "s", 8])
                                            for n in "qkv"], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)])
    module = edgecc.compile(model, "host", input_shapes={n: [None, 2, None, 8] for n in "qkv"}).load()
    reference = ReferenceEvaluator(model)
    for batch, seq in ((1, 5), (3, 9)):
        rng = np.random.default_rng(seq)
        feeds = {n: rng.standard_normal((batch, 2, seq, 8)).astype(np.float32) for n in "qkv"}
        np.testing.assert_allclose(list(module.run(feeds).values())[0], reference.run(None, feeds)[0],
                                   rtol=1e-5, atol=1e-6)


def test_transformer_exported_with_symbolic_batch_and_sequence_keeps_both_through_the_pipeline(tmp_path):
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "benchmarks"))
    import model_zoo

    path = model_zoo.export("transformer_tiny", str(tmp_path / "t.onnx"), dynamic=True)
    raw = edgecc.load_model(path, {"input_ids": [None, None]})
    seq = Dim.var("dim1")
    reshapes = [n.output.type.shape for n in raw.nodes if n.op == "reshape" and n.output.type.rank == 4]
    assert (Dim.var("dim0"), seq, 4, 16) in reshapes  # Shape -> Gather -> Unsqueeze -> Concat -> Reshape
    prepared = _prepare(path, {"input_ids": [None, None]})
    g = prepared.graph
    assert g.inputs[0].type.shape == (Dim.var("dim0"), seq) and g.outputs[0].type.shape == (Dim.var("dim0"), seq, 64)
    assert "shape" not in g.op_counts() and "fused" in g.op_counts()
    text = print_graph(g)
    assert print_graph(parse_graph(text)) == text


@pytest.mark.parametrize("name", ["resnet_tiny", "mobilenetv2_tiny"])
def test_model_zoo_cnns_exported_with_every_axis_symbolic_run_the_pipeline(name, tmp_path):
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "benchmarks"))
    import model_zoo

    prepared = _prepare(model_zoo.export(name, str(tmp_path / "m.onnx"), dynamic=True), None)
    g = prepared.graph
    assert g.inputs[0].type.shape == (Dim.var("dim0"), 3, Dim.var("dim2"), Dim.var("dim3"))  # channels: the stem's 3
    assert g.outputs[0].type.shape == (Dim.var("dim0"), 10)
    assert any("needs symbolic dimension 'dim1' to be 3" in w for w in prepared.warnings)
    text = print_graph(g)
    assert print_graph(parse_graph(text)) == text
