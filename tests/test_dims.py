"""Symbolic dimensions: normal form, arithmetic, questions only the run time can answer, text form."""

import math

import numpy as np
import pytest

from edgecc.ir import Dim, TensorType, UndecidableDim, parse_dim, parse_graph, print_graph
from edgecc.ir.dims import evaluate_dim

seq, batch = Dim.var("seq"), Dim.var("batch")


def test_equal_formulas_compare_equal():
    assert (seq * 12) // 12 == seq
    assert seq * 2 == 2 * seq and hash(seq * 2) == hash(2 * seq)
    assert seq - seq == 0 and isinstance(seq - seq, int)
    assert (batch * seq * 768) // (batch * seq) == 768
    assert (seq * 12 + 5) // 4 == seq * 3 + 1
    assert (seq - 2) // 2 + 1 == seq // 2 and (seq + 3) // 2 == (seq + 1) // 2 + 1  # constants leave divisions
    assert math.prod((batch, seq, 4)) == np.prod([batch, seq, 4]) == batch * seq * 4


@pytest.mark.parametrize("text", ["seq*12", "((seq+1)//2)", "((seq+1)//2)*3+4", "batch*seq", "seq*2-3", "-seq"])
def test_text_form_round_trips(text):
    d = parse_dim(text)
    assert parse_dim(str(d)) == d
    assert str(d) == text


def test_values_follow_from_the_variables():
    d = (seq + 3) // 2 * batch
    for s, b in [(1, 1), (7, 2), (128, 4)]:
        assert evaluate_dim(d, {"seq": s, "batch": b}) == (s + 3) // 2 * b


def test_questions_the_formula_settles_and_those_it_cannot():
    assert seq >= 1 and seq > 0 and seq + 1 > 1 and not (seq < 1)
    with pytest.raises(UndecidableDim, match="seq < 3"):
        _ = seq < 3
    with pytest.raises(UndecidableDim, match="not known at compile time"):
        int(seq)
    with pytest.raises(UndecidableDim):
        range(seq)
    with pytest.raises(UndecidableDim):
        _ = seq // batch


def test_types_and_graphs_carry_symbolic_shapes():
    t = TensorType("float32", (batch, seq * 2, 8))
    assert not t.is_static and t.dim_vars == {"batch", "seq"}
    assert t.size == batch * seq * 16 and t.nbytes == batch * seq * 64
    text = """graph @main(%x: f32[batch,seq*2,8]) {
  %y = relu(%x) : f32[batch,seq*2,8]
  return %y
}
"""
    assert print_graph(parse_graph(text)) == text


@pytest.mark.parametrize("bad", ["seq+", "3seq", "a**2", "seq//0", "__import__('os')"])
def test_bad_dimension_text_is_refused(bad):
    with pytest.raises(Exception) as info:
        parse_dim(bad)
    assert "dimension" in str(info.value)
