"""The `code` reward on hand-written problems in the formats datasets ship.

Each format: canonical solutions score 1.0, mutated (wrong) ones below 1.0. Problems are
written here in the exact shape of HumanEval, MBPP, APPS, CodeContests and LiveCodeBench
rows (column names and value types as those datasets have them).
"""

from __future__ import annotations

import json
import sys

import pytest

from rewards.code import CodeReward
from rewards.code_formats import is_test, parse_time_limit, parse_tests, same_output, same_value
from rewards.code_prelude import grader_prelude

pytestmark = pytest.mark.filterwarnings("ignore:code execution is NOT sandboxed")

# --- HumanEval: prompt (signature + docstring), canonical body, test defining check, entry_point
HUMANEVAL = [
    {
        "prompt": 'from typing import List\n\n\ndef below_zero(operations: List[int]) -> bool:\n'
                  '    """Whether a running balance starting at 0 ever falls below zero.\n'
                  '    >>> below_zero([1, 2, -4, 5])\n    True\n    """\n',
        "canonical_solution": "    balance = 0\n    for op in operations:\n        balance += op\n"
                              "        if balance < 0:\n            return True\n    return False\n",
        "mutated": "    balance = 0\n    for op in operations:\n        balance += op\n"
                   "        if balance <= 0:\n            return True\n    return False\n",
        "test": "\n\nMETADATA = {'author': 'jt', 'dataset': 'test'}\n\n\ndef check(candidate):\n"
                "    assert candidate([]) == False\n    assert candidate([1, 2, -3, 1, 2, -3]) == False\n"
                "    assert candidate([1, 2, -4, 5, 6]) == True\n    assert candidate([1, -1, 2, -2, 5, -5, 4, -4]) == False\n",
        "entry_point": "below_zero",
    },
    {
        "prompt": 'def strlen(string: str) -> int:\n    """ Return length of given string\n    >>> strlen(\'abc\')\n'
                  '    3\n    """\n',
        "canonical_solution": "    return len(string)\n",
        "mutated": "    return len(string) - 1\n",
        "test": "\n\nMETADATA = {}\n\n\ndef check(candidate):\n    assert candidate('') == 0\n"
                "    assert candidate('x') == 1\n    assert candidate('asdasnakj') == 9\n",
        "entry_point": "strlen",
    },
]

# --- MBPP: text, code, test_list, test_setup_code, (sanitized:) test_imports
MBPP = [
    {
        "text": "Write a function to find the shared elements from the given two lists.",
        "code": "def similar_elements(test_tup1, test_tup2):\n  res = tuple(set(test_tup1) & set(test_tup2))\n  return (res) \n",
        "mutated": "def similar_elements(test_tup1, test_tup2):\n  return tuple(set(test_tup1) | set(test_tup2))\n",
        "test_list": ["assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
                      "assert set(similar_elements((1, 2, 3, 4),(5, 4, 3, 7))) == set((3, 4))"],
        "test_setup_code": "",
        "test_imports": [],
    },
    {
        "text": "Write a function to find the area of a circle, and one for the nearest square.",
        "code": "def circle_area(r):\n  return math.pi * r * r\n",
        "mutated": "def circle_area(r):\n  return 3.14 * r * r\n",
        "test_list": ["assert math.isclose(circle_area(10), 314.1592653589793, rel_tol=1e-9)",
                      "assert math.isclose(circle_area(1), PI, rel_tol=1e-9)"],
        "test_setup_code": "PI = 3.141592653589793",
        "test_imports": ["import math"],
    },
]

# --- APPS (stdin/stdout): input_output is a JSON string; and APPS call-based (fn_name)
APPS_IO = {
    "question": "Read n and n integers; print their sum and their maximum on two lines.",
    "solutions": "n = int(input())\nxs = list(map(int, input().split()))\nprint(sum(xs))\nprint(max(xs))\n",
    "mutated": "n = int(input())\nxs = list(map(int, input().split()))\nprint(sum(xs))\nprint(min(xs))\n",
    "input_output": json.dumps({"inputs": ["3\n1 2 3\n", "2\n-5 4\n", "1\n7\n"],
                                "outputs": ["6\n3\n", "-1\n4\n", "7\n7\n"]}),
}
APPS_CALL = {
    "solutions": "def digits_sum(n):\n    return sum(int(d) for d in str(abs(n)))\n",
    "mutated": "def digits_sum(n):\n    return sum(int(d) for d in str(n) if d.isdigit()) + 1\n",
    "input_output": json.dumps({"fn_name": "digits_sum", "inputs": [[123], [-45], [0]], "outputs": [[6], [9], [0]]}),
}

# --- CodeContests: public_tests / private_tests as {input: [...], output: [...]}, time_limit
CODECONTESTS = {
    "description": "Given a and b, print a / b with at least 6 correct digits.",
    "solution": "a, b = map(int, input().split())\nprint(a / b)\n",
    "mutated": "a, b = map(int, input().split())\nprint(a // b)\n",
    "public_tests": {"input": ["1 3\n"], "output": ["0.333333333\n"]},
    "private_tests": {"input": ["10 4\n", "7 7\n"], "output": ["2.5\n", "1.0000000\n"]},
    "time_limit": {"seconds": 2, "nanos": 0},
}

# --- LiveCodeBench: public_test_cases is a JSON string; metadata holds func_name
LCB_FUNCTIONAL = {
    "question_content": "Return the maximum sum of two elements whose digits sum to the same value, or -1.",
    "starter_code": "class Solution:\n    def maxSum(self, nums: List[int]) -> int:\n        ",
    "solution": "from typing import List\nclass Solution:\n    def maxSum(self, nums: List[int]) -> int:\n"
                "        best, seen = -1, {}\n        for x in nums:\n            key = sum(map(int, str(x)))\n"
                "            if key in seen:\n                best = max(best, seen[key] + x)\n"
                "            seen[key] = max(seen.get(key, 0), x)\n        return best\n",
    "mutated": "from typing import List\nclass Solution:\n    def maxSum(self, nums: List[int]) -> int:\n"
               "        return max(nums) + min(nums)\n",
    "public_test_cases": json.dumps([
        {"input": "[51, 71, 17, 42]", "output": "93", "testtype": "functional"},
        {"input": "[1, 2, 3, 4]", "output": "-1", "testtype": "functional"},
    ]),
    "metadata": json.dumps({"func_name": "maxSum"}),
}
LCB_TWO_ARGS = {
    "solution": "class Solution:\n    def shift(self, s: str, k: int) -> list:\n"
                "        return [s[k:] + s[:k], len(s)]\n",
    "mutated": "class Solution:\n    def shift(self, s: str, k: int) -> list:\n        return [s, len(s)]\n",
    "public_test_cases": json.dumps([{"input": "\"abcde\"\n2", "output": "[\"cdeab\", 5]", "testtype": "functional"}]),
    "metadata": json.dumps({"func_name": "shift"}),
}
LCB_STDIN = {
    "solution": "t = int(input())\nfor _ in range(t):\n    print(input()[::-1])\n",
    "mutated": "t = int(input())\nfor _ in range(t):\n    print(input())\n",
    "public_test_cases": json.dumps([{"input": "2\nabc\nxy\n", "output": "cba\nyx\n", "testtype": "stdin"}]),
    "metadata": "{}",
}


@pytest.fixture(scope="module")
def code() -> CodeReward:
    return CodeReward(timeout_s=5.0, workers=2)


def fenced(program: str) -> str:
    return f"Here is the solution:\n```python\n{program}```\n"


def test_humaneval_body_only_completions_with_the_prompt_prepended(code):
    rows = HUMANEVAL
    for completions, expected in (([r["canonical_solution"] for r in rows], 1.0),
                                  ([r["mutated"] for r in rows], None)):
        verdicts = code.verdicts([r["prompt"] for r in rows], completions, tests=[r["test"] for r in rows],
                                 entry_point=[r["entry_point"] for r in rows])
        for verdict in verdicts:
            assert (verdict.score == 1.0) if expected else (verdict.score < 1.0), verdict
            assert "IndentationError" not in verdict.reason


def test_humaneval_whole_function_completions_get_the_prompts_imports(code):
    rows = HUMANEVAL
    whole = [fenced(r["prompt"].split("\n\n\n")[-1] + r["canonical_solution"]) for r in rows]  # no `from typing`
    scores = code([r["prompt"] for r in rows], whole, tests=[r["test"] for r in rows],
                  entry_point=[r["entry_point"] for r in rows])
    assert scores == [1.0, 1.0]


def test_humaneval_prepend_prompt_true_and_false():
    row = HUMANEVAL[1]
    always = CodeReward(timeout_s=5.0, prepend_prompt=True)
    never = CodeReward(timeout_s=5.0, prepend_prompt=False)
    args = dict(tests=[row["test"]], entry_point=[row["entry_point"]])
    assert always([row["prompt"]], [row["canonical_solution"]], **args) == [1.0]
    verdict = never.verdicts([row["prompt"]], [row["canonical_solution"]], **args)[0]
    assert verdict.score == 0.0 and "IndentationError" in verdict.reason


def test_humaneval_test_and_check_call_as_two_entries_is_one_test(code):
    """`[test, "check(f)"]`: the definitions-only entry is setup, so a wrong solution scores 0, not 0.5."""
    row = HUMANEVAL[0]
    program = row["prompt"] + row["mutated"]
    scores = code(["p", "p"], [program, row["prompt"] + row["canonical_solution"]],
                  tests=[[row["test"], "check(below_zero)"]] * 2)
    assert scores == [0.0, 1.0]


def test_humaneval_without_entry_point_cannot_be_judged(code):
    verdict = code.verdicts(["p"], ["def strlen(s):\n    return len(s)\n"], tests=[HUMANEVAL[1]["test"]])[0]
    assert verdict.score is None and "entry_point" in verdict.reason


@pytest.mark.parametrize("column", ["test_list"])
def test_mbpp_asserts_with_setup_code_and_imports(code, column):
    rows = MBPP
    args = dict(tests=[r[column] for r in rows], test_setup_code=[r["test_setup_code"] for r in rows],
                test_imports=[r["test_imports"] for r in rows])
    assert code([r["text"] for r in rows], [fenced(r["code"]) for r in rows], **args) == [1.0, 1.0]
    wrong = code([r["text"] for r in rows], [fenced(r["mutated"]) for r in rows], **args)
    assert all(score < 1.0 for score in wrong), wrong


def test_definitions_only_entries_never_count_as_passed(code):
    tests = ["def helper(x):\n    return x * 2", "import math", "LIMIT = 10", "assert double(3) == helper(3)"]
    parsed = parse_tests(tests)
    assert parsed.cases == ("assert double(3) == helper(3)",) and len(parsed.definitions) == 3
    wrong = "def double(x):\n    return x + 2\n"
    assert code(["p"], [wrong], tests=[tests]) == [0.0]
    only_definitions = code.verdicts(["p"], [wrong], tests=[["def f():\n    assert False"]])[0]
    assert only_definitions.score is None and "nothing to check" in only_definitions.reason


@pytest.mark.parametrize(
    "code_text,counts",
    [("assert f(1)", True), ("check(f)", True), ("raise ValueError", True), ("if True:\n    assert x", True),
     ("def f():\n    assert 0", False), ("class A:\n    assert 0", False), ("import os", False),
     ("x = f(1)", False), ("def (", True)],
)
def test_what_counts_as_a_test(code_text, counts):
    assert is_test(code_text) is counts


def test_apps_stdin_stdout_and_call_based(code):
    rows = [APPS_IO, APPS_CALL]
    args = dict(tests=[r["input_output"] for r in rows])
    assert code(["p", "p"], [fenced(r["solutions"]) for r in rows], **args) == [1.0, 1.0]
    wrong = code(["p", "p"], [fenced(r["mutated"]) for r in rows], **args)
    assert wrong[0] < 1.0 and wrong[1] < 1.0, wrong


def test_codecontests_public_and_private_tests_with_float_tolerance_and_time_limit():
    row = CODECONTESTS
    strict = CodeReward(timeout_s=5.0, tests_column=["public_tests", "private_tests"])
    tolerant = CodeReward(timeout_s=5.0, tests_column=["public_tests", "private_tests"], float_tolerance=1e-6)
    args = dict(public_tests=[row["public_tests"]], private_tests=[row["private_tests"]], time_limit=[row["time_limit"]])
    assert tolerant(["p"], [fenced(row["solution"])], **args) == [1.0]
    # "0.3333333333333333" != "0.333333333"; "2.5" and "1.0" = "1.0000000" by value
    assert strict(["p"], [fenced(row["solution"])], **args) == [pytest.approx(2 / 3)]
    assert tolerant(["p"], [fenced(row["mutated"])], **args)[0] < 1.0


def test_a_problems_time_limit_replaces_the_timeout(code):
    slow = "import time\ntime.sleep(0.8)\nprint(int(input()) * 2)\n"
    tests = [{"input": "2", "output": "4"}]
    assert code(["p"], [slow], tests=[tests]) == [1.0]
    verdict = code.verdicts(["p"], [slow], tests=[tests], time_limit=["0.3 seconds"])[0]
    assert verdict.score == 0.0 and verdict.reason.startswith("test 1/1 failed: timeout after 0.3s")


@pytest.mark.parametrize("value,seconds", [(2, 2.0), ({"seconds": 1, "nanos": 500000000}, 1.5), ("2 seconds", 2.0),
                                           ("1500 ms", 1.5), ("3s", 3.0), (None, None),
                                           ({"seconds": None, "nanos": None}, None)])
def test_time_limit_formats(value, seconds):
    assert parse_time_limit(value) == seconds


def test_unreadable_time_limit_cannot_be_judged(code):
    verdict = code.verdicts(["p"], ["print(1)"], tests=[[{"input": "", "output": "1"}]], time_limit=["soon"])[0]
    assert verdict.score is None and "time limit" in verdict.reason


def test_livecodebench_functional_and_stdin(code):
    rows = [LCB_FUNCTIONAL, LCB_TWO_ARGS, LCB_STDIN]
    args = dict(tests=[r["public_test_cases"] for r in rows], metadata=[r["metadata"] for r in rows])
    assert code(["p"] * 3, [fenced(r["solution"]) for r in rows], **args) == [1.0, 1.0, 1.0]
    wrong = code(["p"] * 3, [fenced(r["mutated"]) for r in rows], **args)
    assert all(score < 1.0 for score in wrong), wrong


def test_livecodebench_plain_function_and_fn_name_column(code):
    tests = LCB_TWO_ARGS["public_test_cases"]
    function = "def shift(s, k):\n    return (s[k:] + s[:k], len(s))\n"  # a tuple counts as the JSON list
    assert code(["p"], [function], tests=[tests], fn_name=["shift"]) == [1.0]
    verdict = code.verdicts(["p"], [function], tests=[tests])[0]
    assert verdict.score is None and "fn_name" in verdict.reason


def test_calls_report_why_they_failed(code):
    tests = [{"input": "1", "output": "1", "testtype": "functional"}]
    cases = {"def f(x):\n    return object()": "not built-in data", "def f(x):\n    return 2": "wrong value",
             "def g(x):\n    return 1": "defines no function 'f'"}
    verdicts = code.verdicts(["p"] * 3, list(cases), tests=[tests] * 3, fn_name=["f"] * 3)
    for verdict, reason in zip(verdicts, cases.values()):
        assert verdict.score == 0.0 and reason in verdict.reason, verdict


def test_same_output_compares_lines_and_optionally_numbers():
    assert same_output("1 2  \n3\n\n", "1 2\n3")
    assert not same_output("1 2\n3", "1 2 3")
    assert same_output("0.3333333\n", "0.333333333\n", tolerance=1e-6)
    assert not same_output("0.34\n", "0.333333333\n", tolerance=1e-6)


@pytest.mark.parametrize("printed,expected,same", [
    ("1  2\n", "1 2\n", True), (" 7\n", "7\n", True), ("2.50\n", "2.5\n", True), ("1e3\n", "1000\n", True),
    ("\n\n5\n", "5\n", True), ("2\n", "2.0\n", True), ("1\n\n2\n", "1\n2\n", False), ("1\n2\n", "1 2\n", False),
    ("Yes\n", "YES\n", False), ("0.3333333333333333\n", "0.333333\n", False), ("nan\n", "NaN\n", False),
])
def test_output_tokens_compare_by_value_as_livecodebench_does(printed, expected, same):
    assert same_output(printed, expected) is same


@pytest.mark.parametrize("printed,expected,same", [
    ("1000000006", "1000000007", False), ("123456790", "123456789", False), ("1e-7", "0", False),
    ("2", "2.0", True), ("0.3333333", "0.333333333", True), ("1000000.5", "1000000.0", True),  # relative error
    ("0.0000015", "0.0000001", False), ("0.0000011", "0.0000001", True), ("inf", "1e308", False),
])
def test_float_tolerance_applies_only_to_expected_floats(printed, expected, same):
    assert same_output(printed, expected, tolerance=1e-6) is same


def test_returned_integers_compare_exactly_despite_float_tolerance():
    assert not same_value(999999999, 1000000000, 1e-6) and not same_value(1e-7, 0, 1e-6)
    assert same_value(0.3333333, 1 / 3, 1e-6) and same_value([2, 10**400], [2.0, 10**400], 1e-6)
    assert same_value(10**400, 1e300, 1.0) is False  # no OverflowError


def test_integers_never_pass_within_the_codecontests_tolerance():
    """README's CodeContests config: an off-by-one integer answer is wrong, in print and return."""
    tolerant = CodeReward(timeout_s=5.0, float_tolerance=1e-6)
    pair = [{"input": "", "output": "1000000007\n"}]
    call = [{"input": "1", "output": "1000000000", "testtype": "functional"}]
    verdicts = tolerant.verdicts(["p"] * 3, ["print(1000000006)", "print('1e-7')", "def f(x):\n    return 999999999"],
                                 tests=[pair, [{"input": "", "output": "0"}], call], fn_name=[None, None, "f"])
    assert [v.score for v in verdicts] == [0.0, 0.0, 0.0], verdicts
    assert tolerant(["p"], ["print(0.3333333)"], tests=[[{"input": "", "output": "0.333333333"}]]) == [1.0]


def test_spacing_and_decimal_forms_pass_as_in_livecodebench(code):
    stdin = [{"input": "1 2\n", "output": "1 2\n2.5\n", "testtype": "stdin"}]
    program = "a, b = input().split()\nprint(a, '', b)\nprint('', '2.50')\n"
    assert code(["p"], [fenced(program)], tests=[json.dumps(stdin)]) == [1.0]


def test_the_graders_preloaded_names_work_without_imports(code):
    """LiveCodeBench runs its import_string first (functional and stdin), APPS a header like
    it: the starter code verbatim (`List`), `deque`, `gcd`, `Counter` need no import there."""
    functional = [{"input": "[4, 6, 8]\n2", "output": "[4, 6]", "testtype": "functional"}]
    starter = ("class Solution:\n    def firstK(self, nums: List[int], k: int) -> Optional[List[int]]:\n"
               "        q = deque(nums)\n        return [q.popleft() for _ in range(k)]\n")
    stdin = [{"input": "12 18\n", "output": "6\n", "testtype": "stdin"}]
    apps = {"fn_name": "f", "inputs": [["aab"]], "outputs": [[1]]}
    builtins_win = "def f(s):\n    return pow(2, 10, 7) - 2 + int(sqrt(4)) - 2 + Counter(s)['a'] - 1\n"
    future = "from __future__ import annotations\nclass Solution:\n    def firstK(self, nums: List[int], k):\n" \
             "        return nums[:k]\n"
    verdicts = code.verdicts(
        ["p"] * 4, [fenced(starter), fenced("a, b = map(int, input().split())\nprint(gcd(a, b))\n"),
                    fenced(builtins_win), fenced(future)],
        tests=[json.dumps(functional), json.dumps(stdin), json.dumps(apps), json.dumps(functional)],
        metadata=[json.dumps({"func_name": "firstK"}), "{}", "{}", json.dumps({"func_name": "firstK"})])
    assert [v.score for v in verdicts] == [1.0] * 4, verdicts
    # HumanEval's and MBPP's graders preload nothing: neither does the reward for their tests.
    assert code(["p"], ["def f(a, b):\n    return gcd(a, b)\n"], tests=[["assert f(4, 6) == 2"]]) == [0.0]


def test_the_prelude_binds_only_what_the_program_reads_and_never_binds():
    assert grader_prelude("import math\nprint(math.gcd(2, 4))") == '__import__("sys").setrecursionlimit(50000)\n'
    prelude = grader_prelude("x = pow(2, 3, 5)\nprint(gcd(x, 4), collections.deque(), mode)\nmode = 1\n")
    assert prelude.splitlines() == ["from math import gcd", "import collections",
                                    '__import__("sys").setrecursionlimit(50000)']


def test_integers_of_any_length_print_and_return():
    """Python 3.11 refuses int<->str over 4300 digits; the graders' Pythons did not."""
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        big = str(7**6000)
    finally:
        sys.set_int_max_str_digits(old)
    code = CodeReward(timeout_s=5.0)
    verdicts = code.verdicts(
        ["p"] * 4,
        ["print(len(str(2**20000)))", "def f(x):\n    return 7**x", "def f(x):\n    return 7**x",
         "def f(x):\n    return 7**x + 1"],
        tests=[[{"input": "", "output": "6021"}], [{"input": "6000", "output": big, "testtype": "functional"}],
               '{"fn_name": "f", "inputs": [[6000]], "outputs": [%s]}' % big,
               [{"input": "6000", "output": big, "testtype": "functional"}]],
        fn_name=[None, "f", None, "f"])
    assert [v.score for v in verdicts] == [1.0, 1.0, 1.0, 0.0], verdicts
    assert "wrong value" in verdicts[3].reason
