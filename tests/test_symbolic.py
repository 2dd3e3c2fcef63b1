"""The symbolic check's shortcut: two expressions in unknowns that take different values at a
point differ, so math-verify's `simplify` is skipped; its verdict must be math-verify's own."""

from __future__ import annotations

import pytest
from math_verify import verify

from rewards.symbolic import DIFFERENT, EQUAL, _differ_at_a_point, _read, symbolic_equal

PAIRS = [  # (answer, reference, verdict, whether the values at a point decide it)
    ("x^2 + 2x + 1", "(x+1)^2", EQUAL, False),
    (r"\sin^2 x + \cos^2 x", "1", EQUAL, False),
    (r"\frac{x^2-1}{x-1}", "x+1", EQUAL, False),
    (r"\sqrt{x^2}", "|x|", EQUAL, False),
    (r"\ln(e^{x}) + 1", "x + 1", EQUAL, False),
    ("2wer", "21", DIFFERENT, True),  # junk a young policy writes
    ("15xH8", "13", DIFFERENT, True),
    ("x+1", "2x", DIFFERENT, True),
    ("0.333333x", r"\frac{x}{3}", DIFFERENT, True),  # a rounded coefficient is another expression
    (r"\sin(\pi n)", "0", DIFFERENT, True),  # (an exact 0 is a value too)
    (r"\sum_{k=1}^{n} k", r"\frac{n(n+1)}{2}", EQUAL, False),  # at n = 1.32 a sum is not its formula
    (r"\binom{n}{2}", r"\frac{n(n-1)}{2}", EQUAL, False),
    (r"\sqrt{x-2}", "3", DIFFERENT, False),  # complex at the point: math-verify decides
    ("y", "5", DIFFERENT, False),  # a bare symbol: math-verify compares it by name
]


@pytest.mark.parametrize("pred,gold,verdict,by_value", PAIRS, ids=[p[0] for p in PAIRS])
def test_a_difference_at_a_point_gives_math_verifys_own_verdict(pred, gold, verdict, by_value):
    assert symbolic_equal(pred, gold) == verdict
    readings = [(g, p) for g in _read(gold) for p in _read(pred)]
    assert any(_differ_at_a_point(g, p) for g, p in readings) == by_value
    assert any(verify(g, p, timeout_seconds=None) for g, p in readings) == (verdict == EQUAL)


def test_percentages_relations_numbers_and_special_functions_are_left_to_math_verify():
    for pred, gold in [("5\\%", "x + 1"), ("x = 3", "x"), ("3", "4"), (r"\{x, 1\}", "x"), ("n!", "n + 1"),
                       (r"\prod_{k=1}^{n} k", "n + 1"), (r"\lfloor x \rfloor", "x + 1")]:
        assert not any(_differ_at_a_point(g, p) for g in _read(gold) for p in _read(pred)), pred
