"""edgecc.targets: target families, presets, and lookup by name.

`get_target("host")`, `get_target("arm-cpu", cpu="cortex-a72")`, `get_target("rpi4")`.
`list_targets()` names families and aliases, `list_presets()` the boards.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from edgecc.errors import TargetError

from .arm import BOARDS, ArmCpuTarget, arm_preset, armv7_target
from .base import CpuTarget, Target
from .gpu import GPU_PRESETS, CudaTarget, GpuTarget, MaliTarget, OpenCLTarget, gpu_preset
from .host import HostTarget
from .npu.ethos_u import EthosUHostTarget
from .npu.ethos_u.target import imx93_npu

__all__ = [
    "ArmCpuTarget",
    "CpuTarget",
    "CudaTarget",
    "GpuTarget",
    "HostTarget",
    "MaliTarget",
    "OpenCLTarget",
    "Target",
    "get_target",
    "list_presets",
    "list_targets",
    "register_target",
]

#: name -> (factory(**options), one-line description)
_TARGETS: dict[str, tuple[Callable[..., Target], str]] = {}
#: names registered as presets (boards) rather than families
_PRESETS: set[str] = set()


def register_target(name: str, factory: Callable[..., Target], description: str, preset: bool = False) -> None:
    _TARGETS[name] = (factory, description)
    if preset:
        _PRESETS.add(name)


def get_target(name: str, **options) -> Target:
    """A target by family or preset name; TargetError for unknown names or options."""
    if isinstance(name, Target):
        return name
    if name not in _TARGETS:
        known = ", ".join(sorted(_TARGETS))
        raise TargetError(f"unknown target '{name}' (known: {known})")
    factory, _ = _TARGETS[name]
    options = {k: v for k, v in options.items() if v is not None}
    _check_options(name, factory, options)
    return factory(**options)


def option_names(factory: Callable[..., Target]) -> list[str]:
    """The keyword options a target factory (a target class or a preset's function) takes."""
    params = inspect.signature(factory).parameters.values()
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _check_options(name: str, factory: Callable[..., Target], options: dict) -> None:
    known = option_names(factory)
    unknown = sorted(set(options) - set(known))
    if unknown:
        its = ", ".join(known) if known else "none"
        raise TargetError(f"target '{name}' takes no option '{unknown[0]}' (its options: {its})")


def list_targets() -> dict[str, str]:
    """Families and aliases (not presets): name -> description."""
    return {name: desc for name, (_, desc) in sorted(_TARGETS.items()) if name not in _PRESETS}


def list_presets() -> dict[str, str]:
    """Presets (boards): name -> description."""
    return {name: desc for name, (_, desc) in sorted(_TARGETS.items()) if name in _PRESETS}


register_target("host", HostTarget, "this machine's x86-64 CPU (LLVM)")
register_target("x86", HostTarget, "alias of host")
register_target("arm-cpu", ArmCpuTarget, "ARM CPU, AArch64 or ARMv7-A (--cpu cortex-a72, cortex-a7, ...), cross-compiled")
register_target("armv7", armv7_target,
                "ARMv7-A hard-float with NEON (default --cpu cortex-a7), cross-compiled")
for _board in BOARDS.values():
    register_target(_board.name, arm_preset(_board.name), _board.description, preset=True)
register_target("cuda", CudaTarget, "NVIDIA GPU through CUDA (--arch sm_80, sm_86, sm_87, sm_89, sm_90), x86-64 host")
register_target("opencl", OpenCLTarget, "OpenCL GPU, x86-64 host")
register_target("mali", MaliTarget, "Arm Mali GPU through OpenCL, AArch64 host")
for _gpu in GPU_PRESETS.values():
    register_target(_gpu.name, gpu_preset(_gpu.name), _gpu.description, preset=True)
register_target("ethos-u", EthosUHostTarget,
                "this machine's x86-64 CPU + an Arm Ethos-U NPU through Vela (--accelerator, default ethos-u65-256)")
register_target("imx93-npu", imx93_npu, "NXP i.MX 93: 2x Cortex-A55 + Ethos-U65-256 NPU through Vela", preset=True)
