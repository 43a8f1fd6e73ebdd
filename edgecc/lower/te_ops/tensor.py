"""tensor lowerings."""

from __future__ import annotations

from tvm import te, tirx, topi  # noqa: F401

from . import lowering  # noqa: F401
