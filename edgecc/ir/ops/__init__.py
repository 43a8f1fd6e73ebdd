"""The edgecc op set. Importing this package registers every op."""

from .registry import REQUIRED, Attr, OpDef, Trait, all_ops, get_op, register_op
from . import elementwise, nn, tensor, reduce, misc, packed, fused, image, quant, winograd, npu, dynamic  # noqa: F401  (registration)

__all__ = ["Attr", "OpDef", "Trait", "REQUIRED", "all_ops", "get_op", "register_op"]
