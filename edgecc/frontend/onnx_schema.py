"""A node against its ONNX op schema: attributes of the declared types, none required missing, and
inputs of the element types the op allows (inputs sharing a type parameter of one type).

Runs on every node before its converter, so a converter sees the attributes and dtypes it expects.
Ranges (an axis within the input's rank, a positive count) are declared with each converter
(`edgecc.frontend.onnx_ops.checks`).
"""

from __future__ import annotations

from functools import lru_cache

from edgecc.errors import ModelError

__all__ = ["check_attribute_types", "check_input_types"]


@lru_cache(maxsize=None)
def _schema(op_type: str, domain: str, opset: int):
    import onnx.defs

    try:
        return onnx.defs.get_schema(op_type, opset, domain)
    except Exception:  # noqa: BLE001 - SchemaError: an op onnx does not define (contrib domains)
        return None


def _type_name(attr_type: int) -> str:
    from onnx import AttributeProto

    return AttributeProto.AttributeType.Name(attr_type)


def check_attribute_types(node, domain: str, opset: int, where: str) -> None:
    """ModelError when an attribute's type is not the one the op declares, or a required one is
    missing; ops without an ONNX schema are left to their converter."""
    schema = _schema(node.op_type, domain, opset)
    if schema is None:
        return
    declared = schema.attributes
    for attr in node.attribute:
        spec = declared.get(attr.name)
        if spec is None or attr.ref_attr_name:
            continue
        if attr.type != int(spec.type):
            raise ModelError(f"{where}: attribute '{attr.name}' is {_type_name(attr.type)}, "
                             f"the op declares {_type_name(int(spec.type))}")
    present = {a.name for a in node.attribute}
    for name, spec in declared.items():
        if spec.required and name not in present:
            raise ModelError(f"{where}: required attribute '{name}' is missing")


#: edgecc dtype -> its ONNX type string where the names differ
_ONNX_NAMES = {"float32": "float", "float64": "double"}


def _allowed(schema, type_str: str) -> tuple[str, list[str] | None]:
    """(type parameter or the type itself, the tensor types it allows; None when not only tensors)."""
    for constraint in schema.type_constraints:
        if constraint.type_param_str == type_str:
            return type_str, list(constraint.allowed_type_strs)
    return type_str, [type_str]


def check_input_types(node, inputs, domain: str, opset: int, where: str) -> None:
    """ModelError when an input's element type is not one the op allows, or inputs that share a type
    parameter differ in type; ops without an ONNX schema are left to their converter."""
    schema = _schema(node.op_type, domain, opset)
    if schema is None or not schema.inputs:
        return
    seen: dict[str, tuple[int, str]] = {}
    for i, value in enumerate(inputs):
        if value is None:
            continue
        formal = schema.inputs[min(i, len(schema.inputs) - 1)]
        if i >= len(schema.inputs) and formal.option.name != "Variadic":
            return  # more inputs than the op declares: the converter says so
        param, allowed = _allowed(schema, formal.type_str)
        got = f"tensor({_ONNX_NAMES.get(value.dtype, value.dtype)})"
        if allowed is not None and got not in allowed and any(a.startswith("tensor(") for a in allowed):
            kinds = ", ".join(a[7:-1] for a in allowed if a.startswith("tensor("))
            raise ModelError(f"{where}: input {i} ('{formal.name}') is {got[7:-1]}; the op takes {kinds}")
        homogeneous = formal.option.name != "Variadic" or formal.is_homogeneous
        if param in seen and homogeneous and seen[param][1] != got:
            first, first_type = seen[param]
            raise ModelError(f"{where}: inputs {first} and {i} differ in type ({first_type[7:-1]} and {got[7:-1]}) "
                             f"but the op gives them one type {param}")
        seen.setdefault(param, (i, got))
