"""Atomic file output: data goes to a temporary file beside the destination, which is renamed
onto it only once complete, so no reader ever sees a half-written file. A destination that is
not a regular file (`/dev/null`, a named pipe) is written into once complete, never replaced.

    with atomic_output("model.so") as tmp:   # any writer that takes a path
        executable.export_library(tmp)
    atomic_write("report.md", text)          # text or bytes

`cache_root()` is the folder where edgecc keeps what it fetches or builds once (`$EDGECC_CACHE`,
default `~/.cache/edgecc`).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_output", "atomic_write", "cache_root"]


@contextmanager
def atomic_output(path: str | os.PathLike, suffix: str | None = None, mode: int = 0o644) -> Iterator[str]:
    """A temporary path beside `path`, renamed onto `path` when the block succeeds, removed otherwise.

    The temporary file keeps `path`'s extension unless `suffix` is given (writers such as
    `numpy.savez` and `savefig` choose their format from it). Missing folders are created.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    suffix = os.path.splitext(path)[1] if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=".edgecc-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        if _is_special_file(path):
            _copy_into(tmp, path)
        else:
            os.chmod(tmp, mode)
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _is_special_file(path: str) -> bool:
    """Whether `path` exists as something other than a regular file or a folder (a device, a pipe)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _copy_into(src: str, path: str) -> None:
    """Write `src`'s bytes into the existing special file `path`, which stays what it is."""
    with open(src, "rb") as source, open(path, "wb") as destination:
        shutil.copyfileobj(source, destination)


def atomic_write(path: str | os.PathLike, data: str | bytes, mode: int = 0o644) -> None:
    """Write text (UTF-8) or bytes to `path` atomically."""
    with atomic_output(path, mode=mode) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)


def cache_root() -> Path:
    """edgecc's cache folder: `$EDGECC_CACHE`, default `~/.cache/edgecc`."""
    return Path(os.environ.get("EDGECC_CACHE") or Path.home() / ".cache" / "edgecc")
