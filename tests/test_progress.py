"""edgecc.progress: a live bar on a terminal, one summary line per stage elsewhere."""

import io
import os

import pytest
from terminal import read_terminal

from edgecc.progress import Progress


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class TerminalStream(io.StringIO):
    def isatty(self):
        return True


def feed(progress, clock, stage, total, step=0.05):
    for done in range(total + 1):
        progress(stage, done, total)
        clock.now += step


def test_terminal_gets_one_line_rewritten_in_place():
    clock, stream = Clock(), TerminalStream()
    with Progress(stream, clock) as progress:
        feed(progress, clock, "lower", 30)
        feed(progress, clock, "calibrate", 4, step=1.0)
        assert "\n" not in stream.getvalue()
        drawn = stream.getvalue().split("\r")[1:]
        assert drawn[0] == "edgecc: lower [------------------------] 0/30   0.0 s\x1b[K"
        assert "edgecc: lower [########################] 30/30   1.5 s\x1b[K" in drawn
        assert drawn[-1] == "edgecc: calibrate [########################] 4/4   4.0 s\x1b[K"
        # redrawn at most every 0.1 s within a stage (and at its start and end), not per item
        assert 10 <= sum(d.startswith("edgecc: lower") for d in drawn) <= 17
    assert stream.getvalue().endswith("\r\x1b[K")  # erased at the end: what follows starts on a clean line


def test_terminal_bar_is_cut_to_the_terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "30")
    clock, stream = Clock(), TerminalStream()
    Progress(stream, clock)("a-very-long-stage-name", 1, 2)
    assert stream.getvalue() == "\r" + "edgecc: a-very-long-stage-nam"[:29] + "\x1b[K"


def test_pseudo_terminal_sees_the_bar_and_no_newlines():
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as stream:
        clock = Clock()
        with Progress(stream, clock) as progress:
            assert progress.live
            feed(progress, clock, "build", 3, step=1.0)
    seen = read_terminal(leader)
    assert "\redgecc: build [################--------] 2/3   2.0 s\x1b[K" in seen
    assert "\n" not in seen and seen.endswith("\r\x1b[K")


def test_pipe_gets_one_summary_line_per_stage_at_the_end():
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "w") as stream:
        clock = Clock()
        with Progress(stream, clock) as progress:
            assert not progress.live
            feed(progress, clock, "lower", 200, step=0.01)
            stream.flush()
            os.set_blocking(read_end, False)
            with pytest.raises(BlockingIOError):  # nothing per item
                os.read(read_end, 1)
            feed(progress, clock, "calibrate", 8, step=0.5)
    with os.fdopen(read_end) as out:
        assert out.read() == "edgecc: lower: 200/200 in 2.0 s\nedgecc: calibrate: 8/8 in 4.0 s\n"


def test_nothing_after_an_error_so_the_error_stays_one_line():
    for stream in (io.StringIO(), TerminalStream()):
        clock = Clock()
        with pytest.raises(RuntimeError):
            with Progress(stream, clock) as progress:
                feed(progress, clock, "lower", 3)
                raise RuntimeError("stop")
        assert "\n" not in stream.getvalue()
        assert stream.getvalue() == "" or stream.getvalue().endswith("\r\x1b[K")


def test_a_stage_of_unknown_length_counts_without_a_bar():
    clock, stream, log = Clock(), TerminalStream(), io.StringIO()
    for target in (stream, log):
        with Progress(target, clock) as progress:
            for step in range(1, 4):
                progress("quantize", step, 0)
                clock.now += 1.0
    assert stream.getvalue().split("\r")[1] == "edgecc: quantize 1   0.0 s\x1b[K"
    assert log.getvalue() == "edgecc: quantize: 3 in 2.0 s\n"


def test_messages_written_through_it_do_not_share_the_live_line():
    clock, stream = Clock(), TerminalStream()
    with Progress(stream, clock) as progress:
        progress("passes", 0, 1)
        print("// IR after fold-constants", file=progress)
        progress("passes", 1, 1)
    assert stream.getvalue() == ("\redgecc: passes [------------------------] 0/1   0.0 s\x1b[K"
                                 "\r\x1b[K// IR after fold-constants\n"
                                 "\redgecc: passes [########################] 1/1   0.0 s\x1b[K\r\x1b[K")
    log, clock = io.StringIO(), Clock()
    with Progress(log, clock) as progress:
        progress("passes", 0, 1)
        print("// IR after fold-constants", file=progress)
        progress("passes", 1, 1)
    assert log.getvalue() == "// IR after fold-constants\nedgecc: passes: 1/1 in 0.0 s\n"
