"""Symbolic equality of two answer strings: the slow path of the `math` reward.

`symbolic_equal` reads each answer with sympy's `parse_expr` when it is plain arithmetic
(`x**2 + 1`, `3*pi`) and with math-verify otherwise (LaTeX, sets, intervals, percentages,
equations like `x = 5`), then compares the readings with math-verify's `verify`. Either can take unbounded time on
adversarial input (`9^{9^{9^9}}` expands a huge power), so this module is meant to run
only inside the sandbox worker (`rewards/sandbox.py`), whose parent enforces the time
limit. That is also why math-verify's own `signal.alarm` timeouts are switched off here.
"""

from __future__ import annotations

import logging
import re

import sympy
from math_verify import ExprExtractionConfig, parse, verify
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

EQUAL = "equal"
DIFFERENT = "different"
GOLD_UNPARSEABLE = "gold_unparseable"
PRED_UNPARSEABLE = "pred_unparseable"

# With timeouts off math-verify warns once per process that we must time out ourselves;
# the sandbox does, so the warning is noise.
logging.getLogger("math_verify").setLevel(logging.ERROR)

# Plain arithmetic in Python or calculator syntax ("3*pi", "x**2 + 1", "sqrt(2)/2").
# math-verify's LaTeX reader misreads it (3*pi becomes 3*i*p, "x**2 + 2*x + 1" becomes 1),
# so sympy's own parser reads it instead. parse_expr runs Python's eval, hence the
# allowlist: no quotes, underscores, brackets, commas or names that could reach builtins.
_PLAIN_ARITHMETIC = re.compile(r"[0-9A-Za-z+\-*/^().\s]+")
_IDENTIFIER = re.compile(r"[A-Za-z]+")
_SAFE_NAMES = frozenset({"sqrt", "pi", "exp", "log", "ln", "sin", "cos", "tan", "oo"})
_TRANSFORMATIONS = standard_transformations + (
    implicit_multiplication_application,
    convert_xor,
)


def symbolic_equal(pred: str, gold: str) -> str:
    """Compare a predicted answer with the reference answer, both as strings.

    Returns EQUAL, DIFFERENT, GOLD_UNPARSEABLE or PRED_UNPARSEABLE (plain strings
    because the result crosses a pipe). Plain arithmetic is read by sympy, everything
    else (LaTeX, sets, intervals, `x = 5`, `50\\%`) by math-verify; math-verify's
    `verify` then compares the two readings.

    >>> symbolic_equal(r"\\frac{1}{2}", "0.5")
    'equal'
    >>> symbolic_equal("x**2 + 2*x + 1", "(x + 1)^2")
    'equal'
    """
    gold_readings = _read(gold)
    if not gold_readings:
        return GOLD_UNPARSEABLE
    pred_readings = _read(pred)
    if not pred_readings:
        return PRED_UNPARSEABLE
    same = verify(gold_readings, pred_readings, timeout_seconds=None)
    return EQUAL if same else DIFFERENT


def _read(text: str) -> list:
    """Candidate readings of `text`: sympy objects, or math-verify's raw-string fallback."""
    expr = _sympy_parse(text)
    if expr is not None:
        return [expr]
    # The answer was usually the content of a box; boxing it again lets the LaTeX
    # extractor, which looks for delimiters, find it.
    readings = parse("\\boxed{" + text + "}", parsing_timeout=None)
    if all(isinstance(reading, str) for reading in readings):
        readings = parse(text, extraction_config=[ExprExtractionConfig()], parsing_timeout=None) or readings
    return [_plain_symbols(reading) for reading in readings]


def _plain_symbols(reading):
    """Replace math-verify's real-valued symbols by plain ones, as sympy's parser makes.

    Otherwise `x^{2}` (math-verify, x real) and `x**2` (sympy, x plain) never compare equal.
    """
    if isinstance(reading, str) or not getattr(reading, "free_symbols", None):
        return reading
    try:
        return reading.xreplace({s: sympy.Symbol(s.name) for s in reading.free_symbols})
    except Exception:  # some containers (relations of sets...) refuse xreplace; keep as is
        return reading


def _sympy_parse(text: str):
    """`text` as a sympy expression, or None when it is not safe plain arithmetic."""
    if not _PLAIN_ARITHMETIC.fullmatch(text):
        return None
    names = _IDENTIFIER.findall(text)
    if any(len(name) > 1 and name not in _SAFE_NAMES for name in names):
        return None
    try:
        return parse_expr(text, transformations=_TRANSFORMATIONS)
    except Exception:  # sympy raises many types (SyntaxError, TokenError, TypeError...)
        return None
