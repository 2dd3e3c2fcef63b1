"""The test formats the `code` reward reads, as datasets ship them, and how outputs compare.

One sample's tests (a column value, or that value JSON-encoded in a string) become a
`SampleTests` of one of three kinds:

- "code": code tests run after the program in one sandboxed process. MBPP's `test_list`
  (`["assert f(1) == 2", ...]`), one string of asserts, or HumanEval's `test` (a program
  defining `check(candidate)`), turned into the test `check(<entry_point>)`. An entry that
  only defines things (functions, classes, imports, assignments) is setup, never a test.
- "calls": function calls whose return values the host compares: LiveCodeBench
  `{"input": "[1, 2]\\n3", "output": "6", "testtype": "functional"}` (one JSON value per
  input line, the function from `fn_name`/`metadata`/`entry_point`), and APPS call-based
  `{"fn_name": "f", "inputs": [[1, 2]], "outputs": [[3]]}`.
- "io": stdin/stdout pairs, one process each: `[{"input": ..., "output": ...}]`,
  LiveCodeBench `"testtype": "stdin"`, APPS `{"inputs": [...], "outputs": [...]}`,
  CodeContests `{"input": [...], "output": [...]}`.

LiveCodeBench ships `private_test_cases` compressed: base64 of zlib of a pickled JSON
string. They are read as its own loader reads them, except that unpickling is restricted
to plain data (no class or function can be named), so a crafted pickle runs nothing.

Comparisons (`same_output`, `same_value`) follow LiveCodeBench's grader, with CodeContests'
float checker for `tolerance`: printed output compares line by line as whitespace-separated
tokens (spacing within a line and blank lines at the start or end do not matter, blank lines
between others do; case does); number tokens that differ as text compare by exact decimal
value (`2.50` = `2.5`, `1e3` = `1000`). `tolerance` > 0 applies only where the expected value
is a float (a token written with `.`, an exponent, inf or nan; a Python float): the absolute
or relative error must be <= tolerance, i.e. |got - expected| <= tolerance * max(1, |expected|)
(testlib's doubleCompare). An expected integer always compares exactly.
"""

from __future__ import annotations

import ast
import base64
import io
import json
import math
import pickle
import re
import zlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

_CHECK = re.compile(r"^def check\(", re.MULTILINE)
_TIME = re.compile(r"^\s*(?P<value>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|milliseconds?|s|secs?|seconds?)?\s*$", re.I)
_NOT_TEST_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_BASE64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")
# A number token of printed output: an integer, a decimal, an exponent form, inf or nan.
_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)", re.IGNORECASE | re.ASCII)
# Longer integer literals in test data are parsed through Decimal: Python's int() refuses
# more than 4300 digits by default, and the reward must read what the graders read.
_INT_DIGITS = 4000


@dataclass(frozen=True)
class Call:
    """One function-call test: `function(*args)` must return one of `expected` (APPS
    accepts a one-element list's element too)."""

    function: str
    args: tuple
    expected: tuple


@dataclass(frozen=True)
class SampleTests:
    """One sample's tests: `kind` is "code" (cases are code strings), "calls" (`Call`s)
    or "io" ((stdin, expected stdout) pairs). Before code tests run `setup` (shared with
    the program: MBPP's imports and setup code) and `definitions` (the tests' own:
    definitions-only entries such as HumanEval's `check`)."""

    kind: str
    cases: tuple
    setup: tuple = ()
    definitions: tuple = ()


def parse_tests(value: Any, entry_point: Any = None, setup: Any = None, function: Any = None) -> SampleTests | str:
    """A sample's tests as `SampleTests`, or a reason (str) why they cannot be read.

    `entry_point` is the function under test (HumanEval's `entry_point`, LiveCodeBench's
    function name); `setup` is code or a list of code (MBPP's `test_setup_code`,
    `test_imports`); `function` another source of the function name (a `metadata`
    JSON object with `func_name`, or a plain name).

    >>> parse_tests('["assert f(1) == 2"]')
    SampleTests(kind='code', cases=('assert f(1) == 2',), setup=(), definitions=())
    >>> parse_tests([{"input": "1 2", "output": "3"}])
    SampleTests(kind='io', cases=(('1 2', '3'),), setup=(), definitions=())
    """
    value = _decode(_decompress(value))
    if isinstance(value, str) and _BASE64.fullmatch(value):  # no test code is one base64 word
        return f"unreadable tests: {_preview(value)} looks compressed but is not LiveCodeBench's format"
    setup_code = tuple(code for code in _code_list(_decode(setup)) if code.strip())
    name = _function_name(entry_point) or _function_name(function)
    if value is None or value == "" or value == [] or value == {}:
        return "no tests for this sample"
    if isinstance(value, str):
        value = [value]
    if isinstance(value, dict):
        return _parse_dict(value, name)
    if not isinstance(value, (list, tuple)):
        return f"unreadable tests: expected test code or input/output pairs, got {_preview(value)}"
    if all(isinstance(case, str) for case in value):
        return _parse_code(list(value), setup_code, name)
    if all(isinstance(case, dict) and "input" in case and "output" in case for case in value):
        return _parse_pairs(value, name)
    return f"unreadable tests: mixed or unknown test formats in {_preview(value)}"


def parse_time_limit(value: Any) -> float | None | str:
    """Seconds from a problem's time limit: a number, CodeContests' `{"seconds", "nanos"}`,
    or text such as "2 seconds" / "1500 ms"; None when absent (also `{"seconds": null,
    "nanos": null}`, as some CodeContests rows have); a reason when unreadable."""
    value = _decode(value)
    if value is None or value == "" or isinstance(value, dict) and value and not any(value.values()):
        return None
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, dict) and ("seconds" in value or "nanos" in value):
        seconds = float(value.get("seconds") or 0) + float(value.get("nanos") or 0) / 1e9
    elif isinstance(value, str) and (match := _TIME.match(value)):
        scale = 0.001 if (match["unit"] or "s").lower().startswith("m") else 1.0
        seconds = float(match["value"]) * scale
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        return f"unreadable time limit {_preview(value)}: give seconds, {{seconds, nanos}} or '2 seconds'"
    return seconds


def same_value(result: Any, expected: Any, tolerance: float = 0.0) -> bool:
    """Whether a returned value equals an expected one: tuples count as lists (JSON has no
    tuples); an expected float accepts an error within `tolerance` when it is > 0 (see the
    module docstring); anything else, integers included, must be equal."""
    if isinstance(result, (list, tuple)) and isinstance(expected, (list, tuple)):
        return len(result) == len(expected) and all(same_value(r, e, tolerance) for r, e in zip(result, expected))
    if isinstance(result, dict) and isinstance(expected, dict):
        return result.keys() == expected.keys() and all(same_value(result[k], expected[k], tolerance) for k in result)
    if tolerance > 0 and isinstance(expected, float) and _is_number(result) and result != expected:
        return _within(Decimal(result), Decimal(expected), tolerance)
    return type(result) is not bool and type(expected) is not bool and result == expected or result is expected


def same_output(output: str, expected: str, tolerance: float = 0.0) -> bool:
    """Whether printed output matches the expected output: line by line, as whitespace-separated
    tokens, number tokens by value, floats within `tolerance` (see the module docstring).

    >>> same_output("1  2\\n2.50\\n\\n", "1 2\\n2.5"), same_output("YES", "Yes"), same_output("1\\n2", "1 2")
    (True, False, False)
    """
    lines, wanted = output_lines(output), output_lines(expected)
    return len(lines) == len(wanted) and all(
        line == want or _same_tokens(line.split(), want.split(), tolerance) for line, want in zip(lines, wanted)
    )


def output_lines(text: str) -> list[str]:
    """Output as compared: each line stripped, no blank lines at the start or the end."""
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    start = 0
    while start < len(lines) and not lines[start]:
        start += 1
    return lines[start:]


def is_test(code: str) -> bool:
    """Whether test code can fail: it asserts, raises or calls something at its top level
    (not inside a definition). Code that does not parse counts (and will fail)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return True
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Assert, ast.Raise)) or (
            isinstance(node, ast.Expr) and isinstance(node.value, (ast.Call, ast.Await))
        ):
            return True
        if not isinstance(node, _NOT_TEST_SCOPES):
            pending.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt))
    return False


def _parse_code(tests: list[str], setup: tuple, name: str) -> SampleTests | str:
    if not any(test.strip() for test in tests):
        return "empty tests"
    cases = [test for test in tests if test.strip() and is_test(test)]
    definitions = [test for test in tests if test.strip() and not is_test(test)]
    if not cases and any(_CHECK.search(test) for test in definitions):
        if not name:
            return "tests define check(candidate) (HumanEval) but no entry point: map the entry_point column"
        cases = [f"check({name})"]
    if not cases:
        return "tests only define things (no assert, raise or call): nothing to check"
    return SampleTests("code", tuple(cases), setup, tuple(definitions))


def _parse_dict(value: dict, name: str) -> SampleTests | str:
    inputs = value.get("inputs", value.get("input"))
    outputs = value.get("outputs", value.get("output"))
    if isinstance(inputs, str) and isinstance(outputs, str):  # one pair
        return _parse_pairs([value], name)
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        return f"unreadable tests: a dict needs 'inputs' and 'outputs' lists, got keys {sorted(value)}"
    if len(inputs) != len(outputs):
        return f"tests: {len(inputs)} inputs but {len(outputs)} outputs"
    if not inputs:
        return "no tests for this sample"
    if value.get("fn_name"):  # APPS call-based: each input is the argument list
        function = str(value["fn_name"])
        calls = []
        for args, expected in zip(inputs, outputs):
            accepted = (expected, expected[0]) if isinstance(expected, list) and len(expected) == 1 else (expected,)
            calls.append(Call(function, tuple(args) if isinstance(args, list) else (args,), accepted))
        return SampleTests("calls", tuple(calls))
    return SampleTests("io", tuple((_text(i), _text(o)) for i, o in zip(inputs, outputs)))


def _parse_pairs(pairs: list, name: str) -> SampleTests | str:
    functional = [str(pair.get("testtype", "stdin")).lower() == "functional" for pair in pairs]
    if not any(functional):
        return SampleTests("io", tuple((_text(p["input"]), _text(p["output"])) for p in pairs))
    if not all(functional):
        return "unreadable tests: functional and stdin tests mixed in one sample"
    if not name:
        return "functional tests need the function's name: map fn_name, metadata or entry_point"
    calls = []
    for pair in pairs:
        try:
            args = tuple(_json(line) for line in str(pair["input"]).split("\n") if line.strip())
            expected = _json(str(pair["output"]))
        except ValueError:
            return f"unreadable functional test: input and output must be JSON, got {_preview(pair)}"
        calls.append(Call(name, args, (expected,)))
    return SampleTests("calls", tuple(calls))


def _function_name(value: Any) -> str:
    """A function name from a plain name or a JSON object with func_name/fn_name."""
    value = _decode(value)
    if isinstance(value, dict):
        value = value.get("func_name") or value.get("fn_name") or value.get("entry_point")
    return value.strip() if isinstance(value, str) and value.strip().isidentifier() else ""


def _decode(value: Any) -> Any:
    """JSON-encoded columns (Parquet/JSONL store lists as strings) decoded; else as is."""
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            return _json(value)
        except ValueError:
            return value
    return value


def _json(text: str) -> Any:
    return json.loads(text, parse_int=_parse_int)


def _parse_int(digits: str) -> int:
    return int(digits) if len(digits) <= _INT_DIGITS else int(Decimal(digits))


def _decompress(value: Any) -> Any:
    """LiveCodeBench's compressed tests (base64, zlib, pickle, JSON) as their JSON text or
    data; anything else as is."""
    if not isinstance(value, str) or not _BASE64.fullmatch(value):
        return value
    try:
        data = _PlainUnpickler(io.BytesIO(zlib.decompress(base64.b64decode(value, validate=True)))).load()
    except Exception:  # not base64, not zlib, or bytes that are no pickle (which raise anything)
        return value
    return data if isinstance(data, (str, list, dict)) else value


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles plain data (str, list, dict, numbers...) only: naming any class or function
    (what makes pickle run code) is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: plain data only")


def _code_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(code) for code in value if code is not None]


def _same_tokens(tokens: list[str], wanted: list[str], tolerance: float) -> bool:
    return len(tokens) == len(wanted) and all(_same_token(t, w, tolerance) for t, w in zip(tokens, wanted))


def _same_token(token: str, want: str, tolerance: float) -> bool:
    if token == want:
        return True
    if not (_NUMBER.fullmatch(token) and _NUMBER.fullmatch(want)):
        return False
    got, expected = Decimal(token), Decimal(want)
    if got == expected:
        return True
    return tolerance > 0 and not want.lstrip("+-").isdigit() and _within(got, expected, tolerance)


def _within(got: Decimal, expected: Decimal, tolerance: float) -> bool:
    """|got - expected| <= tolerance * max(1, |expected|), exactly; never for inf or nan."""
    if not (got.is_finite() and expected.is_finite()):
        return False
    try:
        return abs(got - expected) <= Decimal(repr(tolerance)) * max(Decimal(1), abs(expected))
    except ArithmeticError:  # an exponent beyond the decimal context's range
        return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "\n".join(str(line) for line in value)
    return "" if value is None else str(value)


def _preview(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text if len(text) <= limit else text[:limit] + "...")
