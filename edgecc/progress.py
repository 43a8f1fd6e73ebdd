"""Progress of long commands (compile, calibration, tuning) on stderr.

`Progress` is the `CompileOptions.progress` callable, `progress(stage, done, total)` (total 0: not known):

- on a terminal it keeps one live line that rewrites itself in place
  (`edgecc: lower [#######-----] 17/30  4.2 s`) and erases it when the command ends;
- elsewhere (a pipe, a build log) it prints nothing per item, and when the command has finished
  one line per stage: `edgecc: lower: 30/30 in 4.2 s`.

Use it as a context manager: on an error nothing more is printed, so the error stays the only line.
Messages printed while it runs go through `write` (it is a text stream), which keeps them off the
live line.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

__all__ = ["Progress"]

#: the live line is redrawn at most this often (seconds), except when a stage starts or ends
REDRAW_INTERVAL = 0.1
BAR_WIDTH = 24


@dataclass
class _Stage:
    name: str
    started: float
    done: int = 0
    total: int = 0
    ended: float = 0.0

    @property
    def count(self) -> str:
        return f"{self.done}/{self.total}" if self.total > 0 else str(self.done)

    @property
    def finished(self) -> bool:
        return 0 < self.total <= self.done

    def summary(self) -> str:
        return f"edgecc: {self.name}: {self.count} in {self.ended - self.started:.1f} s"


class Progress:
    """`progress(stage, done, total)` reporter: a live bar on a terminal, a summary otherwise."""

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.live = _isatty(self.stream)
        self.stages: list[_Stage] = []
        self._drawn_at: float | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = self.clock()
        current = self.stages[-1] if self.stages else None
        starts = current is None or current.name != stage
        if starts:
            current = _Stage(stage, now)
            self.stages.append(current)
        current.done, current.total, current.ended = done, total, now
        if self.live and (starts or current.finished or self._due(now)):
            self._draw(current, now)

    def write(self, text: str) -> int:
        """Print a message (IR dumps, pass timings) on the same stream: on a terminal the live line
        is erased first and drawn again at the next update. Lets the reporter serve as a log stream."""
        self._erase()
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def close(self, succeeded: bool = True) -> None:
        """End of the command: erase the live line; print the per-stage summary when not live."""
        if self.live:
            self._erase()
            self.stream.flush()
        elif succeeded and self.stages:
            self.stream.write("".join(s.summary() + "\n" for s in self.stages))
            self.stream.flush()
        self.stages = []

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(succeeded=exc_type is None)

    def _erase(self) -> None:
        if self.live and self._drawn_at is not None:
            self.stream.write("\r\x1b[K")
            self._drawn_at = None

    def _due(self, now: float) -> bool:
        return self._drawn_at is None or now - self._drawn_at >= REDRAW_INTERVAL

    def _draw(self, stage: _Stage, now: float) -> None:
        width = shutil.get_terminal_size((80, 24)).columns
        line = _bar_line(stage, now)[: max(1, width - 1)]  # a wrapped line would not rewrite in place
        self.stream.write("\r" + line + "\x1b[K")
        self.stream.flush()
        self._drawn_at = now


def _bar_line(stage: _Stage, now: float) -> str:
    """`edgecc: NAME [###---] DONE/TOTAL  ELAPSED s`; without a known total, no bar."""
    bar = ""
    if stage.total > 0:
        filled = round(min(1.0, stage.done / stage.total) * BAR_WIDTH)
        bar = "[" + "#" * filled + "-" * (BAR_WIDTH - filled) + "] "
    return f"edgecc: {stage.name} {bar}{stage.count} {now - stage.started:5.1f} s"


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
