"""ONNX -> edgecc IR.

Reads a ModelProto (or a path, external data included), types every input (a symbolic ONNX
dimension becomes a size variable, `Dim`, unless `input_shapes` fixes it), turns
initializers into constants and each node into IR ops through the converter table in
`edgecc.frontend.onnx_ops`. Converters pick by the op's version in the model's opset, so one
converter serves every opset where the op's meaning did not change.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgecc.errors import FrontendError, ModelError, UnsupportedOpError
from edgecc.ir import DTYPES, Dim, Graph, IRError, TensorType, Value, static_value
from edgecc.ir.dims import DimBinding, format_shape
from edgecc.ir.limits import check_count, check_tensor_bytes
from edgecc.ir.static_eval import static_dims
from edgecc.ir.types import np_dtype

from .onnx_schema import check_attribute_types, check_input_types

__all__ = ["load_onnx", "from_onnx", "ConvertContext", "MIN_OPSET"]

#: models older than this are converted with onnx's version converter first
MIN_OPSET = 11
#: nothing edgecc knows changed after this opset for the ops it converts; newer models load when
#: each of their ops' definitions is one a converter knows
MAX_TESTED_OPSET = 21


#: whether an input's symbolic dimensions stay symbolic when `input_shapes` does not name the
#: input (else they are 1, with a warning); `load_onnx(..., symbolic=)` overrides it per call
SYMBOLIC_BY_DEFAULT = True

#: one entry of `input_shapes`: an int fixes the dimension, a (low, high) pair keeps it symbolic
#: within bounds (high None: no upper bound), None or "?" keeps it symbolic, a name makes it the
#: size variable of that name
DimSpec = int | tuple[int, int | None] | str | None


def load_onnx(path: str | os.PathLike, input_shapes: Mapping[str, Sequence[DimSpec]] | None = None,
              warnings: list[str] | None = None, *, symbolic: bool | None = None) -> Graph:
    """Read an ONNX file (with its external data) and convert it to a Graph.

    `input_shapes` gives, per input name, one entry per dimension (see `DimSpec`). Symbolic
    dimensions are size variables named after the model's dim_param (sanitized), or
    `<input>_d<axis>` for unnamed ones; the same name on two inputs is one variable. Bounds
    land in `graph.meta["dim_bounds"]` as {variable: (low, high or None)}. The symbolic dimensions
    of an input that `input_shapes` does not name stay symbolic when `symbolic` (default:
    SYMBOLIC_BY_DEFAULT), else they are 1, with a warning.
    """
    import onnx

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FrontendError(f"{path}: no such file")
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises many kinds
        raise FrontendError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {_first_line(exc)})") from None
    if not model.graph.node and not model.graph.output:
        raise FrontendError(f"{path}: not an ONNX model (no graph)")
    try:
        from onnx.external_data_helper import load_external_data_for_model

        load_external_data_for_model(model, os.path.dirname(os.path.abspath(path)))
    except Exception as exc:  # noqa: BLE001
        raise FrontendError(f"{path}: cannot read external data ({_first_line(exc)})") from None
    return from_onnx(model, input_shapes, warnings=warnings, source=path, symbolic=symbolic)

def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _opset_of(model) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return MIN_OPSET


def _upgrade(model, source: str):
    from onnx import version_converter

    try:
        upgraded = version_converter.convert_version(model, MIN_OPSET)
    except Exception as exc:  # noqa: BLE001
        raise FrontendError(f"{source}: opset {_opset_of(model)} model could not be converted to opset "
                            f"{MIN_OPSET} ({_first_line(exc)})") from None
    _keep_legacy_resize(upgraded)
    return upgraded


def _keep_legacy_resize(model) -> None:
    """Resize/Upsample before opset 11 meant asymmetric coordinates and floor rounding; the
    converter leaves the attributes out, which opset 11 reads as half_pixel."""
    from onnx import helper

    for node in model.graph.node:
        if node.op_type != "Resize":
            continue
        present = {a.name for a in node.attribute}
        if "coordinate_transformation_mode" not in present:
            node.attribute.append(helper.make_attribute("coordinate_transformation_mode", "asymmetric"))
        if "nearest_mode" not in present:
            node.attribute.append(helper.make_attribute("nearest_mode", "floor"))


def from_onnx(model, input_shapes: Mapping[str, Sequence[DimSpec]] | None = None, *,
              warnings: list[str] | None = None, source: str = "<model>", symbolic: bool | None = None) -> Graph:
    """Convert a loaded ModelProto to a Graph (`input_shapes` and `symbolic` as for `load_onnx`)."""
    if _opset_of(model) < MIN_OPSET:
        model = _upgrade(model, source)
    fixed: dict[str, int] = {}  # size variables the model's ops fix (a conv's input channels)
    notes: list[str] = []
    while True:
        ctx = ConvertContext(model, source, list(notes), fixed,
                             SYMBOLIC_BY_DEFAULT if symbolic is None else symbolic)
        try:
            ctx.add_inputs(input_shapes or {})
            for node in model.graph.node:
                ctx.convert_node(node)
            ctx.set_outputs()
        except DimBinding as binding:
            notes.append(_fix_dimension(ctx, binding, fixed))
            continue
        if warnings is not None:
            warnings.extend(ctx.warnings)
        return ctx.graph


def _fix_dimension(ctx: ConvertContext, binding: DimBinding, fixed: dict[str, int]) -> str:
    """Record that an op fixes a symbolic input dimension (returns the warning), or refuse when
    it cannot be fixed."""
    bounds = ctx.dim_bounds.get(binding.var, (1, None))
    if binding.var in fixed or binding.var not in ctx.input_vars or not (
            bounds[0] <= binding.value <= (bounds[1] or binding.value)):
        raise FrontendError(f"{ctx.where}: {binding}") from None
    fixed[binding.var] = binding.value
    return (f"{ctx.where} needs symbolic dimension '{binding.var}' to be {binding.value}; "
            f"the inputs take it as {binding.value}")


def onnx_dtype(elem_type: int) -> str:
    from onnx import helper

    try:
        return str(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)))
    except (KeyError, TypeError):
        from onnx import TensorProto

        return {TensorProto.BFLOAT16: "bfloat16"}.get(elem_type, f"onnx-type-{elem_type}")


class ConvertContext:
    """State of one conversion; converters use `emit`, `const`, `static` and `attr`."""

    def __init__(self, model, source: str, warnings: list[str], fixed: Mapping[str, int] | None = None,
                 symbolic: bool = True):
        self.model = model
        self.symbolic = symbolic  # keep the symbolic dimensions of inputs input_shapes does not name
        self.fixed = dict(fixed or {})  # size variables taken as these sizes
        self.input_vars: set[str] = set()  # the size variables of the inputs
        self.source = source
        self.opset = _opset_of(model)
        self.warnings = warnings
        self.graph = Graph(_graph_name(model))
        self.env: dict[str, Value | None] = {"": None}
        self.node = None  # the NodeProto being converted
        self.graph.meta = {
            "producer": f"{model.producer_name} {model.producer_version}".strip(),
            "opset": self.opset,
            "input_names": [],
            "output_names": [],
        }
        self.dim_bounds: dict[str, tuple[int, int | None]] = {}

    # ----- inputs, outputs, initializers --------------------------------------------------
    def add_inputs(self, input_shapes: Mapping[str, Sequence[DimSpec]]) -> None:
        from onnx import numpy_helper

        inits = {t.name for t in self.model.graph.initializer}
        unknown = set(input_shapes) - {i.name for i in self.model.graph.input if i.name not in inits}
        if unknown:
            raise FrontendError(f"{self.source}: --input-shape names no model input: {', '.join(sorted(unknown))}")
        for tensor in self.model.graph.initializer:
            where = f"{self.source}: initializer '{tensor.name}' {tuple(tensor.dims)}"
            check_tensor_bytes(where, _declared_bytes(tensor))
            try:
                data = numpy_helper.to_array(tensor)
            except Exception as exc:  # noqa: BLE001
                raise FrontendError(f"{self.source}: initializer '{tensor.name}' is unreadable ({_first_line(exc)})") from None
            self.env[tensor.name] = self.graph.add_constant(_as_supported(data), tensor.name)
        for inp in self.model.graph.input:
            if inp.name in inits:
                continue  # old-style models list initializers as inputs too
            ttype = self._input_type(inp, input_shapes.get(inp.name))
            self.env[inp.name] = self.graph.add_input(inp.name, ttype)
            self.graph.meta["input_names"].append(inp.name)
        if self.dim_bounds:
            self.graph.meta["dim_bounds"] = dict(self.dim_bounds)

    def _input_type(self, inp, override) -> TensorType:
        type_proto = inp.type
        if type_proto.HasField("optional_type"):  # an optional tensor is fed as a tensor
            type_proto = type_proto.optional_type.elem_type
        if not type_proto.HasField("tensor_type"):
            raise FrontendError(f"{self.source}: input '{inp.name}' is not a tensor")
        tt = type_proto.tensor_type
        dtype = onnx_dtype(tt.elem_type)
        if dtype not in DTYPES:
            from onnx import TensorProto

            try:
                kind = TensorProto.DataType.Name(tt.elem_type)
            except ValueError:
                kind = dtype
            raise FrontendError(f"{self.source}: input '{inp.name}' has element type {kind}, "
                                f"which edgecc does not support")
        declared = list(tt.shape.dim) if tt.HasField("shape") else None
        if override is not None:
            override = list(override)
            if declared is not None and len(override) != len(declared):
                raise FrontendError(f"{self.source}: --input-shape for '{inp.name}' has rank {len(override)}, "
                                    f"the model's input has rank {len(declared)}")
        elif declared is None:
            raise FrontendError(f"{self.source}: input '{inp.name}' has no shape; give one with --input-shape")
        rank = len(override) if override is not None else len(declared)
        if override is None and not self.symbolic:
            override = [self._default_to_one(inp.name, axis, dim) for axis, dim in enumerate(declared)]
        shape = [self._input_dim(inp.name, axis, declared[axis] if declared is not None else None,
                                 override[axis] if override is not None else None)
                 for axis in range(rank)]
        try:
            ttype = TensorType(dtype, shape)
        except ValueError as exc:
            raise FrontendError(f"{self.source}: input '{inp.name}': {exc}") from None
        check_tensor_bytes(f"{self.source}: input '{inp.name}' {format_shape(ttype.shape)}", ttype.nbytes,
                           self.dim_bounds)
        return ttype

    def _input_dim(self, name: str, axis: int, declared, spec: DimSpec) -> int | Dim:
        """One input dimension: the model's (`declared`, a TensorShapeProto.Dimension or None)
        as `spec` (an entry of `input_shapes`) fixes, bounds or keeps it."""
        where = f"{self.source}: input '{name}' dimension {axis}"
        static = declared is not None and declared.HasField("dim_value") and declared.dim_value >= 0
        if isinstance(spec, (tuple, list)):
            bounds = _bounds(where, spec)
            if bounds[0] == bounds[1]:
                spec = bounds[0]
            else:  # symbolic, even where the model fixed the size (its ops then say whether they allow it)
                var = self._dim_var(name, axis, declared)
                if not isinstance(var, Dim):  # an op of the model fixes it (checked against the range)
                    return var
                low, high = self.dim_bounds.get(str(var), (1, None))
                low, high = max(low, bounds[0]), _min_high(high, bounds[1])
                if high is not None and low > high:
                    raise FrontendError(f"{where}: the ranges given for '{var}' do not overlap")
                self.dim_bounds[str(var)] = (low, high)
                return var
        if spec is None or spec == "?":
            return declared.dim_value if static else self._dim_var(name, axis, declared)
        if isinstance(spec, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", spec):
            return self._variable(spec)
        if isinstance(spec, bool) or not isinstance(spec, (int, np.integer)):
            raise FrontendError(f"{where}: {spec!r} is not a size (an int, a (low, high) range, or None)")
        if spec < 0:
            raise FrontendError(f"{where}: size {spec} is negative")
        return int(spec)  # also where the model declares another size, as edgecc always allowed

    def _default_to_one(self, name: str, axis: int, declared) -> int | None:
        if declared.HasField("dim_value") and declared.dim_value >= 0:
            return None
        label = declared.dim_param or "?"
        self.warnings.append(f"input '{name}' dimension {axis} ('{label}') is symbolic; "
                             f"using 1 (set it with --input-shape {name}=...)")
        return 1

    def _dim_var(self, name: str, axis: int, declared) -> Dim | int:
        """The size variable of an input dimension: its dim_param, else <input>_d<axis> (or the
        size an op of the model fixes it to)."""
        param = declared.dim_param if declared is not None else ""
        return self._variable(dim_name(param) if param else f"{dim_name(name)}_d{axis}")

    def _variable(self, var: str) -> Dim | int:
        self.input_vars.add(var)
        return self.fixed.get(var, Dim.var(var))

    def set_outputs(self) -> None:
        check_count(f"{self.source}: graph outputs", len(self.model.graph.output))
        outs = []
        for out in self.model.graph.output:
            value = self.env.get(out.name)
            if value is None:
                raise FrontendError(f"{self.source}: graph output '{out.name}' is never computed")
            if value.producer is None or any(v is value for v in outs):
                value = self.graph.create_node("identity", [value], name=out.name).output
            self._take_name(value, out.name)
            outs.append(value)
            self.graph.meta["output_names"].append(out.name)
        self.graph.set_outputs(outs)

    def _take_name(self, value: Value, onnx_name: str) -> None:
        """Give `value` the (sanitized) ONNX output name, moving any other holder aside."""
        from edgecc.ir.graph import sanitize_name

        name = sanitize_name(onnx_name)
        if value.name == name:
            return
        for other in list(self.graph.values()):
            if other.name == name and other is not value:
                self.graph.rename_value(other, name + ".inner")
        self.graph.rename_value(value, name)

    # ----- node conversion ----------------------------------------------------------------
    def convert_node(self, node) -> None:
        from .onnx_ops import find_converter

        self.node = node
        domain = node.domain if node.domain not in ("", "ai.onnx") else ""
        converter, version = find_converter(node.op_type, domain, self.opset)
        check_count(self.where, len(node.output))
        opset = self.opset if not domain else self._domain_version(domain)
        check_attribute_types(node, domain, opset, self.where)
        inputs = [self._lookup(name) for name in node.input]
        check_input_types(node, inputs, domain, opset, self.where)
        if converter is None:
            outputs = self._expand_or_raise(node, domain, inputs,
                                            UnsupportedOpError(node.op_type, node.name, self.opset, version))
        else:
            try:
                outputs = converter(self, inputs, _attrs(node))
            except UnsupportedOpError as exc:
                self.node = node
                outputs = self._expand_or_raise(node, domain, inputs, exc)
            except (FrontendError, DimBinding):
                raise
            except IRError as exc:
                raise FrontendError(f"{self.where}: {exc}") from None
        if isinstance(outputs, Value):
            outputs = [outputs]
        for i, name in enumerate(node.output):
            if not name:
                continue
            if i >= len(outputs) or outputs[i] is None:
                raise FrontendError(f"{self.where}: output {i} ('{name}') is not supported")
            self.env[name] = outputs[i]

    def _domain_version(self, domain: str) -> int:
        return next((i.version for i in self.model.opset_import if i.domain == domain), 1)

    def convert_subgraph(self, graph, bindings: Mapping[str, Value]) -> list[Value]:
        """Convert a GraphProto (an If branch, a Scan or Loop body) inline, in a scope that sees
        the values converted so far; `bindings` gives its inputs. Returns its outputs."""
        saved_env, saved_node = self.env, self.node
        self.env = dict(saved_env)
        try:
            from onnx import numpy_helper

            for tensor in graph.initializer:
                self.env[tensor.name] = self.graph.add_constant(_as_supported(numpy_helper.to_array(tensor)),
                                                                tensor.name)
            for inp in graph.input:
                if inp.name in bindings:
                    self.env[inp.name] = bindings[inp.name]
            for node in graph.node:
                self.convert_node(node)
            self.node = saved_node
            return [self._lookup(out.name) for out in graph.output]
        finally:
            self.env, self.node = saved_env, saved_node

    def _expand_or_raise(self, node, domain: str, inputs, error: UnsupportedOpError):
        """Convert `node` through the op's ONNX function body, when it has one; else raise `error`."""
        found = _function_body(node, domain, self.opset, inputs)
        if found is None:
            raise error
        function, full_node = found
        try:
            return self.expand_function(full_node, function)
        except FrontendError as exc:
            reason = str(error).partition(f"opset {self.opset}: ")[2]
            detail = f"{reason + '; ' if reason else ''}its ONNX function body does not convert ({exc})"
            raise UnsupportedOpError(node.op_type, node.name, self.opset, None, detail=detail) from None

    def expand_function(self, node, function) -> list[Value | None]:
        """Convert `node` by inlining `function` (a FunctionProto) with the node's inputs and
        attributes; returns the function's outputs."""
        from onnx import AttributeProto

        attrs = {a.name: a for a in node.attribute}
        bindings = {name: (self._lookup(node.input[i]) if i < len(node.input) else None)
                    for i, name in enumerate(function.input)}
        saved_env, saved_node, saved_opset = self.env, self.node, self.opset
        self.env = dict(saved_env)
        self.env.update(bindings)
        for imp in function.opset_import:
            if imp.domain in ("", "ai.onnx"):
                self.opset = imp.version
        try:
            for inner in function.node:
                expanded = type(inner)()
                expanded.CopyFrom(inner)
                del expanded.attribute[:]
                for attr in inner.attribute:
                    if attr.ref_attr_name:
                        if attr.ref_attr_name not in attrs:
                            continue
                        value = AttributeProto()
                        value.CopyFrom(attrs[attr.ref_attr_name])
                        value.name = attr.name
                        expanded.attribute.append(value)
                    else:
                        expanded.attribute.append(attr)
                if not expanded.name:
                    expanded.name = f"{node.name or node.output[0]}/{inner.op_type}"
                self.convert_node(expanded)
            return [self._lookup(name) for name in function.output]
        finally:
            self.env, self.node, self.opset = saved_env, saved_node, saved_opset

    def _lookup(self, name: str) -> Value | None:
        if name not in self.env:
            raise FrontendError(f"{self.where}: input '{name}' is not defined before use")
        return self.env[name]

    @property
    def where(self) -> str:
        n = self.node
        return f"node '{n.name or n.output[0]}' ({n.op_type})" if n is not None else self.source

    # ----- helpers for converters ---------------------------------------------------------
    def emit(self, op: str, *inputs: Value | None, num_outputs: int = 1, **attrs: Any):
        """Create an IR node named after the ONNX node; returns its output (or outputs)."""
        n = self.node
        base = (n.name or n.output[0]) if n is not None else op
        names = list(n.output) if n is not None and n.output else [base]
        node = self.graph.create_node(op, list(inputs), attrs, name=base, output_names=names)
        return node.outputs if num_outputs != 1 or len(node.outputs) != 1 else node.output

    def const(self, data, name: str = "const") -> Value:
        return self.graph.add_constant(np.asarray(data), name)

    def static(self, value: Value | None, what: str) -> np.ndarray:
        """The compile-time contents of `value`; FrontendError when it depends on run-time data."""
        data = static_value(value)
        if data is None:
            raise FrontendError(f"{self.where}: {what} must be known at compile time "
                                f"(it is computed from a run-time input)")
        return data

    def static_shape(self, value: Value | None, what: str) -> list:
        """The compile-time contents of a shape-valued input as a list of ints and Dims (a
        shape vector computed from symbolic shapes); FrontendError when it depends on run-time data."""
        dims = static_dims(value)
        if dims is None:
            raise FrontendError(f"{self.where}: {what} must be known at compile time "
                                f"(it is computed from a run-time input)")
        return list(dims)

    def static_or_none(self, value: Value | None, what: str) -> np.ndarray | None:
        return None if value is None else self.static(value, what)

    def fail(self, message: str) -> ModelError:
        """The error for a node that breaks its op's definition (or asks what cannot be static)."""
        return ModelError(f"{self.where}: {message}")

    def unsupported(self, what: str) -> UnsupportedOpError:
        n = self.node
        return UnsupportedOpError(n.op_type, n.name, self.opset, None, detail=what)




def _function_body(node, domain: str, opset: int, inputs):
    """(the op's ONNX function body for this opset, a copy of the node with its missing attributes
    at their defaults); None when the op defines no function."""
    import onnx.defs
    from onnx import FunctionProto, helper

    try:
        schema = onnx.defs.get_schema(node.op_type, opset, domain)
    except Exception:  # noqa: BLE001 - SchemaError for unknown ops
        return None
    full = type(node)()
    full.CopyFrom(node)
    present = {a.name for a in node.attribute}
    for name, spec in schema.attributes.items():
        if name not in present and spec.default_value.type:
            full.attribute.append(spec.default_value)
    best, text = None, None
    for version in schema.function_opset_versions:
        if version <= opset and (best is None or version > best):
            best, text = version, schema.get_function_with_opset_version(version)
    context = [v for v in schema.context_dependent_function_opset_versions if v <= opset]
    if context and (best is None or max(context) > best):
        types = []
        for value in inputs:
            if value is None:
                types.append(onnx.TypeProto().SerializeToString())
            else:
                elem = helper.np_dtype_to_tensor_dtype(np_dtype(value.dtype))
                types.append(helper.make_tensor_type_proto(elem, value.shape).SerializeToString())
        try:
            text = schema.get_context_dependent_function_with_opset_version(
                max(context), full.SerializeToString(), types)
        except Exception:  # noqa: BLE001 - the schema declines this node
            text = None
    if not text:
        return None
    function = FunctionProto()
    function.ParseFromString(text)
    if not function.node:
        return None
    return function, full


def dim_name(text: str) -> str:
    """A size variable's name from an ONNX dim_param or input name: letters, digits and _,
    not first a digit (`batch size` -> `batch_size`, `2d` -> `d_2d`)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text) or "d"
    return "d_" + name if name[0].isdigit() else name


def _bounds(where: str, spec) -> tuple[int, int | None]:
    if len(spec) != 2:
        raise FrontendError(f"{where}: a range is (low, high), got {tuple(spec)!r}")
    low, high = spec
    if isinstance(low, bool) or not isinstance(low, (int, np.integer)) or low < 1:
        raise FrontendError(f"{where}: the range's low end must be a size of at least 1, got {low!r}")
    if high is not None and (isinstance(high, bool) or not isinstance(high, (int, np.integer)) or high < low):
        raise FrontendError(f"{where}: the range's high end must be a size of at least {low}, got {high!r}")
    return int(low), None if high is None else int(high)


def _min_high(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _declared_bytes(tensor) -> int:
    """Bytes an initializer holds once read, from its declared dims (before reading it)."""
    from onnx import helper

    try:
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except (KeyError, TypeError):
        itemsize = 1
    return math.prod(max(int(d), 0) for d in tensor.dims) * itemsize


def _as_supported(data: np.ndarray) -> np.ndarray:
    from edgecc.ir.types import DTYPES

    if str(data.dtype) in DTYPES:
        return data
    raise FrontendError(f"tensor of dtype {data.dtype} is not supported")


def _attrs(node) -> dict[str, Any]:
    from onnx import helper

    out = {}
    for a in node.attribute:
        if a.ref_attr_name:
            raise FrontendError(f"node '{node.name}' ({node.op_type}): attribute references are not supported")
        value = helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode() for v in value]
        out[a.name] = value
    return out


def _graph_name(model) -> str:
    from edgecc.ir.graph import sanitize_name

    return sanitize_name(model.graph.name or "main")
