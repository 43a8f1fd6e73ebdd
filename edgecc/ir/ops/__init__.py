"""The edgecc op set. Importing this package registers every op."""

from ._util import at_least, one_of
from .registry import REQUIRED, Attr, OpDef, Trait, all_ops, get_op, register_op
from . import elementwise, nn, tensor, reduce, misc, packed, fused, image, quant, winograd, npu  # noqa: F401  (registration)

__all__ = ["Attr", "OpDef", "Trait", "REQUIRED", "all_ops", "at_least", "get_op", "one_of", "register_op"]
