"""edgecc.compare: the one output comparison, and edgecc._files: the one atomic write."""

import os

import numpy as np
import pytest

from edgecc._files import atomic_output, atomic_write
from edgecc.compare import compare_outputs, format_comparison


def test_floats_within_tolerance_match_and_the_worst_element_is_named():
    ok, bad = compare_outputs({"a": np.array([1.0, np.nan], np.float32), "b": np.array([[1.0, 2.0]])},
                              {"a": np.array([1.00001, np.nan], np.float32), "b": np.array([[1.0, 2.1]])},
                              rtol=1e-4, atol=1e-4)
    assert ok.ok and ok.max_abs_err < 2e-5
    assert not bad.ok and bad.mismatched == 1
    assert bad.problem == "b: 1 of 2 elements differ; worst at (0, 1): got 2, expected 2.1 (rtol 0.0001, atol 0.0001)"
    assert "NO" in format_comparison([ok, bad], 1e-4, 1e-4).splitlines()[2]


def test_integers_must_be_equal_and_shapes_dtypes_names_must_agree():
    records = compare_outputs([np.array([1, 2]), np.zeros(2, np.float32), np.zeros(3)],
                              [np.array([1, 3]), np.zeros(2, np.float64), np.zeros(2)], rtol=1, atol=1)
    assert [r.ok for r in records] == [False, False, False]
    assert records[1].problem == "output 1: dtype float32, expected float64"
    assert records[2].problem == "output 2: shape (3,), expected (2,)"
    missing = compare_outputs({"x": np.zeros(1)}, {"y": np.zeros(1)})
    assert sorted(r.problem for r in missing) == ["x: no reference output of that name", "y: missing"]


def test_atomic_write_leaves_no_partial_file(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    atomic_write(path, "one")
    assert path.read_text() == "one"
    with pytest.raises(RuntimeError):
        with atomic_output(path) as tmp:
            with open(tmp, "w") as fh:
                fh.write("half")
            raise RuntimeError("writer failed")
    assert path.read_text() == "one"
    assert os.listdir(path.parent) == ["out.txt"]


def test_output_to_a_named_pipe_is_written_into_it_not_renamed_over_it(tmp_path):
    """`-o /dev/null` or a pipe: a destination that is not a regular file keeps being what it is."""
    import stat
    import threading

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()))
    reader.start()
    atomic_write(pipe, b"library bytes")
    reader.join(timeout=30)
    assert received == [b"library bytes"]
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["pipe"]
