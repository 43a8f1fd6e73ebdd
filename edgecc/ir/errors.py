"""The IR's own error: what every IR module may raise (a leaf: imports nothing of edgecc)."""

from __future__ import annotations

__all__ = ["IRError"]


class IRError(Exception):
    """The IR was used in a way that would break its invariants."""
