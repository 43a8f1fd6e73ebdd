"""TVM RPC set-up for measuring candidates on boards: tracker address parsing.

A board runs `python -m tvm.exec.rpc_server --tracker HOST:PORT --key KEY`; a tracker
(`python -m tvm.exec.rpc_tracker --port PORT`) hands out the boards registered under a key.
`edgecc tune --rpc-tracker HOST:PORT --rpc-key KEY` then times every candidate on such a board.
"""

from __future__ import annotations

from edgecc.errors import EdgeccError

__all__ = ["parse_tracker"]


def parse_tracker(text: str) -> tuple[str, int]:
    """'HOST:PORT' -> (host, port); a clear error for anything else."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise EdgeccError(f"--rpc-tracker expects HOST:PORT, got {text!r}")
    return host, int(port)
