"""Reading what a program wrote to a pseudo-terminal (tests of the live progress bar)."""

import os
import select


def read_terminal(leader: int, timeout: float = 30.0) -> str:
    """Everything written to a pseudo-terminal whose other side was closed (the kernel hands it
    over asynchronously: wait up to `timeout` seconds for each chunk); closes `leader`."""
    chunks = []
    while select.select([leader], [], [], timeout)[0]:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the other side is closed and everything was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return b"".join(chunks).decode()
