"""ONNX -> edgecc IR.

Reads a ModelProto (or a path, external data included), fixes every input shape statically, turns
initializers into constants and each node into IR ops through the converter table in
`edgecc.frontend.onnx_ops`. Converters pick by the op's version in the model's opset, so one
converter serves every opset where the op's meaning did not change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edgecc.errors import FrontendError, UnsupportedOpError
from edgecc.ir import Graph, IRError, TensorType, Value, static_value

__all__ = ["load_onnx", "from_onnx", "ConvertContext", "MIN_OPSET"]

#: models older than this are converted with onnx's version converter first
MIN_OPSET = 11
#: nothing edgecc knows changed after this opset for the ops it converts; newer models load when
#: each of their ops' definitions is one a converter knows
MAX_TESTED_OPSET = 21


def load_onnx(path: str | os.PathLike, input_shapes: Mapping[str, Sequence[int]] | None = None,
              warnings: list[str] | None = None) -> Graph:
    """Read an ONNX file (with its external data) and convert it to a Graph."""
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
    return from_onnx(model, input_shapes, warnings=warnings, source=path)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _opset_of(model) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return MIN_OPSET


def _upgrade(model, source: str):
    import onnx
    from onnx import version_converter

    try:
        return version_converter.convert_version(model, MIN_OPSET)
    except Exception as exc:  # noqa: BLE001
        raise FrontendError(f"{source}: opset {_opset_of(model)} model could not be converted to opset "
                            f"{MIN_OPSET} ({_first_line(exc)})") from None


def from_onnx(model, input_shapes: Mapping[str, Sequence[int]] | None = None, *,
              warnings: list[str] | None = None, source: str = "<model>") -> Graph:
    """Convert a loaded ModelProto to a Graph."""
    if _opset_of(model) < MIN_OPSET:
        model = _upgrade(model, source)
    ctx = ConvertContext(model, source, warnings if warnings is not None else [])
    ctx.add_inputs(input_shapes or {})
    for node in model.graph.node:
        ctx.convert_node(node)
    ctx.set_outputs()
    return ctx.graph


def onnx_dtype(elem_type: int) -> str:
    from onnx import helper

    try:
        return str(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)))
    except (KeyError, TypeError):
        from onnx import TensorProto

        return {TensorProto.BFLOAT16: "bfloat16"}.get(elem_type, f"onnx-type-{elem_type}")


class ConvertContext:
    """State of one conversion; converters use `emit`, `const`, `static` and `attr`."""

    def __init__(self, model, source: str, warnings: list[str]):
        self.model = model
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

    # ----- inputs, outputs, initializers --------------------------------------------------
    def add_inputs(self, input_shapes: Mapping[str, Sequence[int]]) -> None:
        from onnx import numpy_helper

        inits = {t.name for t in self.model.graph.initializer}
        unknown = set(input_shapes) - {i.name for i in self.model.graph.input if i.name not in inits}
        if unknown:
            raise FrontendError(f"{self.source}: --input-shape names no model input: {', '.join(sorted(unknown))}")
        for tensor in self.model.graph.initializer:
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

    def _input_type(self, inp, override) -> TensorType:
        tt = inp.type.tensor_type
        if not inp.type.HasField("tensor_type"):
            raise FrontendError(f"{self.source}: input '{inp.name}' is not a tensor")
        dtype = onnx_dtype(tt.elem_type)
        if override is not None:
            shape = [int(d) for d in override]
            if tt.HasField("shape") and len(shape) != len(tt.shape.dim):
                raise FrontendError(f"{self.source}: --input-shape for '{inp.name}' has rank {len(shape)}, "
                                    f"the model's input has rank {len(tt.shape.dim)}")
        else:
            if not tt.HasField("shape"):
                raise FrontendError(f"{self.source}: input '{inp.name}' has no shape; give one with --input-shape")
            shape = []
            for axis, dim in enumerate(tt.shape.dim):
                if dim.HasField("dim_value") and dim.dim_value > 0:
                    shape.append(dim.dim_value)
                else:
                    label = dim.dim_param or "?"
                    self.warnings.append(f"input '{inp.name}' dimension {axis} ('{label}') is symbolic; "
                                         f"using 1 (set it with --input-shape {inp.name}=...)")
                    shape.append(1)
        try:
            return TensorType(dtype, shape)
        except ValueError as exc:
            raise FrontendError(f"{self.source}: input '{inp.name}': {exc}") from None

    def set_outputs(self) -> None:
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
        for other in self.graph.values():
            if other.name == name and other is not value:
                self.graph.rename_value(other, name + ".inner")
        self.graph.rename_value(value, name)

    # ----- node conversion ----------------------------------------------------------------
    def convert_node(self, node) -> None:
        from .onnx_ops import find_converter

        self.node = node
        domain = node.domain if node.domain not in ("", "ai.onnx") else ""
        converter, version = find_converter(node.op_type, domain, self.opset)
        if converter is None:
            raise UnsupportedOpError(node.op_type, node.name, self.opset, version)
        inputs = [self._lookup(name) for name in node.input]
        try:
            outputs = converter(self, inputs, _attrs(node))
        except (FrontendError, UnsupportedOpError):
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

    def static_or_none(self, value: Value | None, what: str) -> np.ndarray | None:
        return None if value is None else self.static(value, what)

    def fail(self, message: str) -> FrontendError:
        return FrontendError(f"{self.where}: {message}")

    def unsupported(self, what: str) -> UnsupportedOpError:
        n = self.node
        return UnsupportedOpError(n.op_type, n.name, self.opset, None, detail=what)




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
