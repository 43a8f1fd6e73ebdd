"""Run a library built for another CPU on this machine, under an emulator."""

from __future__ import annotations

from edgecc.errors import ToolchainError


class EmulatedModule:
    """A library for `arch`, run through the deploy runner under qemu-user."""

    def __init__(self, path: str, arch: str):
        raise ToolchainError(f"{path}: built for {arch}; running it here needs the {arch} deploy runner "
                             f"and qemu-user, which this target does not provide yet")
