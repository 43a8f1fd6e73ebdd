"""A node's attributes against its ONNX op schema: each of the declared type, none required missing.

Runs on every node before its converter, so a converter reads attributes of the types it expects.
Ranges (an axis within the input's rank, a positive count) are declared with each converter
(`edgecc.frontend.onnx_ops.checks`).
"""

from __future__ import annotations

from functools import lru_cache

from edgecc.errors import ModelError

__all__ = ["check_attribute_types"]


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
