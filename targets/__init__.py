"""edgecc.targets: target families, presets, and lookup by name.

`get_target("host")`, `get_target("arm-cpu", cpu="cortex-a72")`, `get_target("rpi4")`.
"""

from __future__ import annotations

from collections.abc import Callable

from edgecc.errors import TargetError

from .base import CpuTarget, Target
from .host import HostTarget

__all__ = ["Target", "CpuTarget", "HostTarget", "get_target", "list_targets", "register_target"]

#: name -> (factory(**options), one-line description)
_TARGETS: dict[str, tuple[Callable[..., Target], str]] = {}


def register_target(name: str, factory: Callable[..., Target], description: str) -> None:
    _TARGETS[name] = (factory, description)


def get_target(name: str, **options) -> Target:
    """A target by family or preset name; TargetError for unknown names or options."""
    if isinstance(name, Target):
        return name
    if name not in _TARGETS:
        known = ", ".join(sorted(_TARGETS))
        raise TargetError(f"unknown target '{name}' (known: {known})")
    factory, _ = _TARGETS[name]
    options = {k: v for k, v in options.items() if v is not None}
    try:
        return factory(**options)
    except TypeError as exc:
        raise TargetError(f"target '{name}': {exc}") from None


def list_targets() -> dict[str, str]:
    return {name: desc for name, (_, desc) in sorted(_TARGETS.items())}


register_target("host", HostTarget, "this machine's x86-64 CPU (LLVM)")
register_target("x86", HostTarget, "alias of host")
