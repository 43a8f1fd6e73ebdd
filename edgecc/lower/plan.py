"""The kernel plan of a graph: the distinct kernels it lowers to and where each one is called.

Every node becomes a call of a kernel, except reshapes of computed tensors, which become Relax
views. Nodes that compute the same function (equal `kernel_key`) share one kernel, named after
the first of them (`k3_conv`). The Relax builder, tuning and the kernel profiler all read this
one plan, so tuning measures exactly the kernels compile schedules.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from edgecc.ir import Graph, Node

from .kernels import Kernel, build_kernel, kernel_key

__all__ = ["KernelPlan", "PlannedKernel", "is_view", "plan_kernels"]


@dataclass
class PlannedKernel:
    """One distinct kernel and the nodes that call it."""

    kernel: Kernel
    key: str
    sites: list[Node] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return len(self.sites)


@dataclass
class KernelPlan:
    """The distinct kernels of a graph (in order of first use) and its view nodes."""

    kernels: list[PlannedKernel]
    views: list[Node]
    _by_node: dict[int, PlannedKernel]

    def __iter__(self) -> Iterator[PlannedKernel]:
        return iter(self.kernels)

    def __len__(self) -> int:
        return len(self.kernels)

    def kernel_of(self, node: Node) -> PlannedKernel:
        """The kernel a (non-view) node calls."""
        return self._by_node[id(node)]

    @property
    def calls(self) -> int:
        return sum(k.calls for k in self.kernels)


def is_view(node: Node) -> bool:
    """A reshape of a computed tensor: lowered to a Relax reshape (a view), not a kernel."""
    return node.op == "reshape" and node.inputs[0].const is None and 0 not in node.output.type.shape


def _kernel_name(node: Node, index: int) -> str:
    base = node.attrs.get("kind") if node.op == "fused" else node.op
    return f"k{index}_{base}"


def _has_runtime_sizes(kernel: Kernel, input_vars: set[str]) -> bool:
    """Whether the kernel's shapes mention a size variable the graph inputs do not define."""
    return any(v.type.dim_vars - input_vars for v in (*kernel.args, *kernel.outputs))


def plan_kernels(graph: Graph, precision: str = "fp32") -> KernelPlan:
    """Build each distinct kernel of `graph` once and record its call sites; with `precision`
    "fp16" the kernels compute in half precision (`build_kernel`)."""
    by_key: dict[str, PlannedKernel] = {}
    by_node: dict[int, PlannedKernel] = {}
    views: list[Node] = []
    input_vars = set().union(*(v.type.dim_vars for v in graph.inputs)) if graph.inputs else set()
    for node in graph.nodes:
        if is_view(node):
            views.append(node)
            continue
        if node.op == "npu_region":  # runs on the NPU: a packed call, no kernel (lower/npu.py)
            continue
        key = kernel_key(node)
        planned = by_key.get(key)
        if planned is None:
            planned = PlannedKernel(build_kernel(node, _kernel_name(node, len(by_key)), precision), key)
            planned.kernel.runtime_sizes = _has_runtime_sizes(planned.kernel, input_vars)
            by_key[key] = planned
        planned.sites.append(node)
        by_node[id(node)] = planned
    return KernelPlan(list(by_key.values()), views, by_node)
