"""Rule-based default schedules for CPU kernels (used when no tuning record exists)."""

from __future__ import annotations
