"""Regenerate `math_verify_cases.json` from Math-Verify's own test tables.

Math-Verify (Apache-2.0, https://github.com/huggingface/Math-Verify) ships its tests in the
sdist. This script reads every `@pytest.mark.parametrize("gold, pred, expected", ...)` table
there (by parsing the files, never importing them) and writes the cases, with the options
each test passed to Math-Verify, as JSON:

    pip download --no-deps --no-binary :all: math-verify==0.9.0
    tar xzf math_verify-0.9.0.tar.gz
    python tests/data/vendor_math_verify.py math_verify-0.9.0 > tests/data/math_verify_cases.json
"""

from __future__ import annotations

import ast
import json
import math
import sys
from pathlib import Path

_EXPECTED_NAMES = ("expected", "result")


def cases_from_file(path: Path) -> list[dict]:
    """Every (gold, pred, expected) row of the parametrized tests in one test file."""
    cases = []
    for function in ast.parse(path.read_text()).body:
        if not isinstance(function, ast.FunctionDef):
            continue
        for decorator in function.decorator_list:
            table = _parametrize_table(decorator)
            if table is None:
                continue
            names, rows = table
            options = {"match_types": _match_types(function)}
            for row in rows:
                values = dict(zip(names, row))
                expected = values.pop("expected", values.pop("result", None))
                case = {"gold": values.pop("gold"), "pred": values.pop("pred"), "expected": int(expected)}
                case["source"] = f"{path.name}::{function.name}"
                case["options"] = {**options, **values, **_call_keywords(function)}
                cases.append(case)
    return cases


def _parametrize_table(decorator: ast.expr) -> tuple[list[str], list[tuple]] | None:
    if not (isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", "") == "parametrize"):
        return None
    names = [name.strip() for name in ast.literal_eval(decorator.args[0]).split(",")]
    if not {"gold", "pred"} <= set(names) or not set(_EXPECTED_NAMES) & set(names):
        return None  # another kind of table (string extraction configs...)
    # f-strings such as f"{math.sqrt(17):.15f}" need evaluating, with `math` in scope.
    rows = eval(compile(ast.Expression(decorator.args[1]), "<table>", "eval"), {"math": math})
    return names, [tuple(row) for row in rows]


def _match_types(function: ast.FunctionDef) -> list[str]:
    """The `match_types=` the test hands to `compare_strings`, else its default."""
    for node in ast.walk(function):
        if isinstance(node, ast.keyword) and node.arg == "match_types":
            return ast.literal_eval(node.value)
    return ["latex", "expr"]


def _call_keywords(function: ast.FunctionDef) -> dict:
    """Constant keyword options (precision=5) the test passes to `compare_strings`."""
    options = {}
    for node in ast.walk(function):
        if isinstance(node, ast.keyword) and node.arg in ("precision", "strict") and isinstance(node.value, ast.Constant):
            options[node.arg] = node.value.value
    return options


def main(sdist_root: str) -> None:
    cases = []
    for path in sorted((Path(sdist_root) / "tests").glob("test_*.py")):
        cases.extend(cases_from_file(path))
    json.dump(
        {
            "source": "Math-Verify 0.9.0 sdist, tests/ (https://github.com/huggingface/Math-Verify)",
            "license": "Apache-2.0, Copyright The HuggingFace Team; cases copied unchanged",
            "cases": cases,
        },
        sys.stdout,
        indent=1,
        ensure_ascii=False,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
