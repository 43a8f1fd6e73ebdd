"""The edgecc graph IR: typed SSA values, nodes, graphs, the op registry, text form, verifier."""

from .graph import Graph, IRError, Node, Value
from .layout import Layout, layout_of
from .ops import Attr, OpDef, Trait, all_ops, get_op, register_op
from .parser import ParseError, parse_graph
from .printer import format_type, print_graph
from .static_eval import fold_node, static_value
from .dims import Dim, UndecidableDim, parse_dim
from .types import DTYPES, QuantParams, TensorType
from .verifier import VerifyError, verify_graph

__all__ = [
    "Attr", "DTYPES", "Dim", "Graph", "IRError", "Layout", "Node", "OpDef", "ParseError", "QuantParams",
    "TensorType", "Trait", "UndecidableDim", "Value", "VerifyError", "all_ops", "fold_node", "format_type",
    "get_op", "layout_of", "parse_dim", "parse_graph", "print_graph", "register_op", "static_value",
    "verify_graph",
]
