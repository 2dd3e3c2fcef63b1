"""Symbolic equality of two answer strings: the slow path of the `math` reward.

`symbolic_equal` reads each answer with sympy's `parse_expr` when it is plain arithmetic
(`x**2 + 1`, `3*pi`) and with math-verify otherwise (LaTeX, sets, intervals, percentages,
equations like `x = 5`), then compares the readings with math-verify's `verify`, which
compares sets, intervals, tuples and relations by their contents. Two guards keep that
sound: a reading that is a bare truth value is never compared, and equations or
inequalities that match only because both have no solution are "cannot verify". Either can take unbounded time on
adversarial input (`9^{9^{9^9}}` expands a huge power), so this module is meant to run
only inside the sandbox worker (`rewards/sandbox.py`), whose parent enforces the time
limit. That is also why math-verify's own `signal.alarm` timeouts are switched off here.
"""

from __future__ import annotations

import logging
import re

from itertools import product

import sympy
from antlr4.atn.PredictionMode import PredictionMode
from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy
from math_verify import LatexExtractionConfig, parse, verify
from math_verify.grader import is_assignment_relation, is_equation, is_relation
from sympy.core.relational import Relational
from sympy.logic.boolalg import And, Boolean, BooleanAtom
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
# Cannot verify: an answer that reads as a bare True/False ("1 < 2", or a relation sympy
# evaluated), or two equations/inequalities that "agree" only because neither has a
# solution. Comparing those would accept wrong answers, so they are never a match.
TRUTH_VALUE = "truth_value"
NO_SOLUTIONS = "no_solutions"

# latex2sympy's ANTLR parser predicts with full LL context, which ANTLR's Python runtime
# does not cache: 80-90% of a LaTeX answer's check was spent there. Parsing with SLL
# prediction first and falling back to LL only on a syntax error is ANTLR's two-stage
# strategy: SLL either yields the very tree LL would or reports an error (its listener
# raises at the first one), so readings, and therefore verdicts, are unchanged, ~10x faster.
_create_ll_parser = _Latex2Sympy.create_parser


def _create_two_stage_parser(converter: _Latex2Sympy, latex: str):
    parser = _create_ll_parser(converter, latex)
    parse_with_sll = parser.math

    def math():
        parser._interp.predictionMode = PredictionMode.SLL
        try:
            return parse_with_sll()
        except Exception:  # a real syntax error, or input that needs LL's full context
            # A fresh lexer and parser, so lexer errors surface exactly as they would have.
            return _create_ll_parser(converter, latex).math()

    parser.math = math
    return parser


_Latex2Sympy.create_parser = _create_two_stage_parser

# Its number atoms go through `sympy.Number(text)`, which runs sympy's whole string parser
# (tokenize + eval) per digit string; an all-digit string is that Integer directly.
_parse_number_text = _Latex2Sympy.parse_number


def _parse_number(converter: _Latex2Sympy, text: str):
    digits = text.replace(",", "")
    if digits.isdigit():
        return sympy.Integer(int(digits))
    return _parse_number_text(converter, text)


_Latex2Sympy.parse_number = _parse_number

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
_CONSTANTS = {"e": sympy.E, "i": sympy.I}
_UPRIGHT_CONSTANT = re.compile(r"\\(?:mathrm|text|operatorname)\s*\{\s*([ei])\s*\}")
_LATEX_ONLY = [LatexExtractionConfig()]
# Values for the unknowns when two expressions are compared at a point (30 digits, nothing an
# answer is likely made of: the plastic number, Euler's gamma, the Dottie number).
_POINT = [sympy.Float("1.32471795724474602596090885448", 30), sympy.Float("0.577215664901532860606512090082", 30),
          sympy.Float("0.739085133215160641655312087674", 30)]
# What `_differ_at_a_point` evaluates: numbers, unknowns, arithmetic, elementary functions.
_ELEMENTARY = (sympy.Symbol, sympy.Number, sympy.NumberSymbol, sympy.Add, sympy.Mul, sympy.Pow, sympy.Abs,
               sympy.exp, sympy.log, sympy.sin, sympy.cos, sympy.tan, sympy.cot, sympy.sec, sympy.csc,
               sympy.asin, sympy.acos, sympy.atan, sympy.sinh, sympy.cosh, sympy.tanh)
_TRANSFORMATIONS = standard_transformations + (
    implicit_multiplication_application,
    convert_xor,
)


def symbolic_equal(pred: str, gold: str, precision: int = 6) -> str:
    """Compare a predicted answer with the reference answer, both as strings.

    Returns EQUAL, DIFFERENT, GOLD_UNPARSEABLE, PRED_UNPARSEABLE, or (cannot verify)
    TRUTH_VALUE / NO_SOLUTIONS; plain strings because the result crosses a pipe.
    `precision` is the number of decimal places a float answer must match (math-verify's
    `float_rounding`).

    >>> symbolic_equal(r"\\frac{1}{2}", "0.5")
    'equal'
    >>> symbolic_equal("x**2 + 2*x + 1", "(x + 1)^2")
    'equal'
    >>> symbolic_equal(r"x \\in [1,\\infty)", r"x \\in [0,\\infty)")
    'different'
    >>> symbolic_equal("x^2 + 1 = 0", "x^2 + 2 = 0")
    'no_solutions'
    """
    gold_readings = _read(gold)
    if not gold_readings:
        return GOLD_UNPARSEABLE
    pred_readings = _read(pred)
    if not pred_readings:
        return PRED_UNPARSEABLE
    # A closed equation in the answer ("\\frac{1}{2} = \\frac{10}{9}", a worked chain) is read
    # by its last side, as math-verify does, unless the reference is a statement too.
    gold_is_statement = any(isinstance(reading, Boolean) for reading in gold_readings)
    if any(_has_truth_value(reading, closed_counts=True) for reading in gold_readings) or any(
        _has_truth_value(reading, closed_counts=gold_is_statement) for reading in pred_readings
    ):
        return TRUTH_VALUE
    verdict = DIFFERENT
    for gold_reading, pred_reading in product(gold_readings, pred_readings):
        if _differ_at_a_point(gold_reading, pred_reading) or not _verify(gold_reading, pred_reading, precision):
            continue
        if not _sides_agree(gold_reading, pred_reading, precision):
            continue
        if not _both_unsolvable(gold_reading, pred_reading):
            return EQUAL
        verdict = NO_SOLUTIONS
    return verdict


def _differ_at_a_point(gold, pred) -> bool:
    """Whether two expressions in unknowns take different values at a point, which proves that
    no simplification makes them equal: math-verify's `simplify` of their difference (tens of
    ms, most of a check) is then skipped, with the same verdict. "2wer" against "21", or a
    wrong `x + 1` against `2x`. Only arithmetic and elementary functions of real unknowns: a
    sum, a product or a factorial may not be, at a non-integer point, what simplification
    takes it for. Numbers alone, symbols alone (math-verify compares those by name),
    relations, sets and percentages are left to math-verify, and so is a point where either
    side is undefined, complex or infinite."""
    sides = (gold, pred)
    if not all(isinstance(side, sympy.Expr) and not isinstance(side, sympy.Symbol) for side in sides):
        return False
    unknowns = list(sympy.ordered(gold.free_symbols | pred.free_symbols))
    if not unknowns or gold == pred or not all(unknown.is_real for unknown in unknowns):
        return False
    if not all(isinstance(node, _ELEMENTARY) for side in sides for node in sympy.preorder_traversal(side)):
        return False
    point = {unknown: _POINT[k % len(_POINT)] + k for k, unknown in enumerate(unknowns)}
    try:
        values = [side.evalf(30, subs=point) for side in sides]
    except Exception:  # sympy cannot evaluate it there: no proof
        return False
    if not all(value.is_Number and value.is_real is True and value.is_finite is True for value in values):
        return False  # (an exact 0 stays an Integer)
    g, p = values
    return abs(g - p) > 1e-12 * max(1, abs(g), abs(p))


def _verify(gold, pred, precision: int) -> bool:
    """math-verify's `verify`, also reading an answer solved for one variable as a set:
    `x < 3` answers `(-\\infty, 3)` as `(-\\infty, 3)` answers `x < 3` (its default reads a
    relation as a set only in the reference). Only a solved form: `x^2 < 4` or `2x < 6`
    against `(-2, 2)` or `(-\\infty, 3)` may be the question copied, not its answer."""
    return verify(
        gold, pred, float_rounding=precision, allow_set_relation_comp=_solved_form(pred), timeout_seconds=None
    )


def _solved_form(reading) -> bool:
    """Whether a reading relates one bare variable to numbers only: `x < 3`, `-2 \\le x \\le 7`,
    `x \\neq 3`, `x = 5`."""
    relations = reading.args if isinstance(reading, And) else (reading,)
    variables = set()
    for relation in relations:
        if not isinstance(relation, Relational):
            return False
        symbols = [side for side in (relation.lhs, relation.rhs) if isinstance(side, sympy.Symbol)]
        others = [side for side in (relation.lhs, relation.rhs) if not isinstance(side, sympy.Symbol)]
        if len(symbols) != 1 or any(getattr(side, "free_symbols", True) for side in others):
            return False
        variables.add(symbols[0])
    return len(variables) == 1


def _has_truth_value(reading, closed_counts: bool) -> bool:
    """Whether a reading is a bare True/False, or a set/tuple holding one.

    With `closed_counts`, a closed statement ("1 < 2") counts too: it is true or false
    about no unknown. A statement about unknowns (`x = 5+5 = 10`, an equation chain) is
    left to math-verify, which compares its first and last sides.
    """
    if isinstance(reading, (bool, BooleanAtom)):
        return True
    if isinstance(reading, Boolean):
        return closed_counts and not reading.free_symbols
    if isinstance(reading, sympy.Interval):
        return False  # its open/closed flags are stored as sympy booleans
    if isinstance(reading, sympy.Basic):
        return any(_has_truth_value(arg, closed_counts) for arg in reading.args)
    return False


def _sides_agree(gold, pred, precision: int) -> bool:
    """An equation chain answering a value (`2^{10} = 1024`, `x = 5+5 = 10`) is read by
    its last side, as math-verify does, but only when every side without unknowns has
    that value too: `3 = 4` or `x = 3 = 4` hedges between values and answers neither."""
    if not is_equation(pred) or is_relation(gold):
        return True
    relations = pred._unsorted_args if isinstance(pred, And) else (pred,)
    sides = [relation.lhs for relation in relations] + [relations[-1].rhs]
    return all(
        _verify(gold, side, precision)
        for side in sides
        if isinstance(side, sympy.Expr) and not side.free_symbols
    )


def _both_unsolvable(gold, pred) -> bool:
    """True when two relations (not `x = value` assignments) both have no solution.

    math-verify compares equations by their solution lists, so `x^2 + 1 = 0` and
    `x^2 + 2 = 0` (no real solution each) would match: [] == [].
    """
    relations = (gold, pred)
    if not all(isinstance(r, Relational) and not is_assignment_relation(r) for r in relations):
        return False
    if _same_up_to_factor(gold, pred):
        return False
    return all(_no_solution(r) for r in relations)


def _same_up_to_factor(gold: Relational, pred: Relational) -> bool:
    """`2x = 4` and `x = 2`: one side-difference is a constant multiple of the other."""
    try:
        ratio = sympy.simplify((gold.lhs - gold.rhs) / (pred.lhs - pred.rhs))
    except Exception:  # division by zero, unsimplifiable forms: decide by solutions instead
        return False
    return bool(ratio.is_number and ratio.is_nonzero)


def _no_solution(relation: Relational) -> bool:
    try:
        solutions = sympy.solve(relation, sorted(relation.free_symbols, key=str))
    except Exception:  # sympy cannot solve it: nothing shows it has a solution
        return True
    return isinstance(solutions, BooleanAtom) or (isinstance(solutions, list) and not solutions)


def _read(text: str) -> list:
    """Candidate readings of `text`: sympy objects, or math-verify's raw-string fallback.

    The text is the whole answer, so it is read as a whole, as LaTeX: math-verify's
    fallbacks would read a part of an answer that does not parse (the `4` of `3 \\lor 4`
    or `3 -> 4`, the `\\frac{3}{1}` of `\\frac{3}{1} \\lor 4`). Its LaTeX reader makes `e`
    Euler's number but `i` a plain symbol; both are made constants here, as `_sympy_parse`
    makes them, so `i^2` and `-1` agree.
    """
    expr = _sympy_parse(text)
    if expr is not None:
        return [expr]
    # The answer was usually the content of a box; boxing it again lets the LaTeX
    # extractor, which looks for delimiters, find it. `\\mathrm{e}` would be dropped as a unit.
    boxed = "\\boxed{" + _UPRIGHT_CONSTANT.sub(r"\1", text) + "}"
    readings = parse(boxed, extraction_config=_LATEX_ONLY, extraction_mode="first_match", parsing_timeout=None)
    if "$" in text and all(isinstance(reading, str) for reading in readings):
        # Math spans inside the answer ("$12$ and $13$"): math-verify joins them.
        readings = parse(boxed, extraction_config=_LATEX_ONLY, parsing_timeout=None)
    return [_constants(reading) for reading in readings]


def _constants(reading):
    """A math-verify reading with the symbols `e` and `i` (from `\\mathrm{e}`, `i`) made
    Euler's number and the imaginary unit."""
    if not isinstance(reading, sympy.Basic):
        return reading
    names = {symbol: getattr(symbol, "name", "") for symbol in reading.free_symbols}
    return reading.xreplace({symbol: _CONSTANTS[name] for symbol, name in names.items() if name in _CONSTANTS})


def _sympy_parse(text: str):
    """`text` as a sympy expression, or None when it is not safe plain arithmetic.

    Symbols are made real, as math-verify makes them, so `x**2` here and `x^{2}` read by
    math-verify are the same expression; `e` and `i` are Euler's number and the imaginary
    unit, as in LaTeX.
    """
    if not _PLAIN_ARITHMETIC.fullmatch(text):
        return None
    names = _IDENTIFIER.findall(text)
    if any(len(name) > 1 and name not in _SAFE_NAMES for name in names):
        return None
    try:
        expr = parse_expr(text, local_dict=_CONSTANTS, transformations=_TRANSFORMATIONS)
        return expr.xreplace({s: sympy.Symbol(s.name, real=True) for s in expr.free_symbols})
    except Exception:  # sympy raises many types (SyntaxError, TokenError, TypeError...)
        return None
