"""Correct solutions, written the ways models and reference solutions write them, score 1.0.

Each case is a shape a public benchmark's own harness accepts (HumanEval, MBPP, APPS,
CodeContests, LiveCodeBench): a script ending with `exit()`, a module with a
`__main__` block, a whole function next to the prompt's helpers, a body that lost its
indentation, a solution followed by a usage example, large outputs. Programs really run
(in bwrap where it works, else the rlimits fallback).
"""

from __future__ import annotations

import base64
import json
import pickle
import zlib

import pytest

from rewards.code import CodeReward, extract_program
from rewards.execution import Limits, LocalExecutor

pytestmark = pytest.mark.filterwarnings("ignore:code execution is NOT sandboxed")

ADD_TESTS = ["assert add(2, 2) == 4", "assert add(1, 5) == 6"]
ADD = 'def add(a, b):\n    """\n    >>> add(1, 2)\n    3\n    """\n    return a + b\n\n'

# HumanEval/10's shape: a helper, then the stub of the entry point.
PALINDROME_PROMPT = '''

def is_palindrome(string: str) -> bool:
    """ Test if given string is a palindrome """
    return string == string[::-1]


def make_palindrome(string: str) -> str:
    """ Find the shortest palindrome that begins with a supplied string.
    >>> make_palindrome('cata')
    'catac'
    """
'''
PALINDROME_TEST = "\n\nMETADATA = {}\n\n\ndef check(candidate):\n    assert candidate('') == ''\n" \
                  "    assert candidate('cata') == 'catac'\n"
PALINDROME_BODY = ("if not string:\n    return ''\ni = 0\nwhile not is_palindrome(string[i:]):\n    i += 1\n"
                   "return string + string[:i][::-1]\n")
PALINDROME_FUNCTION = "def make_palindrome(string: str) -> str:\n" + "".join(
    "    " + line + "\n" for line in PALINDROME_BODY.splitlines())
# HumanEval/38's shape: `check` itself calls the prompt's helper.
CYCLIC_PROMPT = '''

def encode_cyclic(s: str):
    """ returns encoded string by cycling groups of three characters. """
    groups = [s[(3 * i):min((3 * i + 3), len(s))] for i in range((len(s) + 2) // 3)]
    groups = [(group[1:] + group[0]) if len(group) == 3 else group for group in groups]
    return "".join(groups)


def decode_cyclic(s: str):
    """ takes as input string encoded with encode_cyclic function. Returns decoded string. """
'''
CYCLIC_TEST = "\n\ndef check(candidate):\n    for s in ('abc', 'abcdefg', 'xy'):\n" \
              "        assert candidate(encode_cyclic(s)) == s\n"
CYCLIC_FUNCTION = "```python\ndef decode_cyclic(s: str):\n    return encode_cyclic(encode_cyclic(s))\n```"


@pytest.fixture(scope="module")
def code() -> CodeReward:
    return CodeReward(timeout_s=5.0, workers=2)


@pytest.mark.parametrize("use_bwrap", [None, False], ids=["default", "rlimits"])
def test_exit_and_quit_end_a_script_as_with_site(use_bwrap):
    reward = CodeReward(executor=LocalExecutor(Limits(timeout_s=5.0), use_bwrap=use_bwrap), workers=2)
    script = "n = int(input())\nif n > 3:\n    print('NO')\n    {}()\nprint('YES')\n"
    programs = [script.format("exit"), script.format("quit"), "print('NO')\nexit(0)\n"]
    tests = [[{"input": "5\n", "output": "NO\n"}]] * 3
    assert reward(["p"] * 3, programs, tests=tests) == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("main_block", [
    "import doctest\n    doctest.testmod()",
    "import unittest\n    unittest.main()",
    "a, b = map(int, input().split())\n    print(add(a, b))",
    "import sys\n    sys.exit(0)",
], ids=["doctest", "unittest", "input", "sys.exit"])
def test_a_main_block_does_not_run_under_function_tests(code, main_block):
    program = ADD + "if __name__ == '__main__':\n    " + main_block + "\n"
    assert code(["p"], [program], tests=[ADD_TESTS]) == [1.0]


def test_stdin_programs_still_run_as_main(code):
    program = "def main():\n    print(int(input()) * 2)\n\nif __name__ == '__main__':\n    main()\n"
    assert code(["p"], [program], tests=[[{"input": "21\n", "output": "42\n"}]]) == [1.0]


def test_a_whole_function_keeps_the_prompts_helpers(code):
    prompts, tests = [PALINDROME_PROMPT, CYCLIC_PROMPT], [PALINDROME_TEST, CYCLIC_TEST]
    completions = [f"```python\n{PALINDROME_FUNCTION}```", CYCLIC_FUNCTION]
    verdicts = code.verdicts(prompts, completions, tests=tests, entry_point=["make_palindrome", "decode_cyclic"])
    assert [v.score for v in verdicts] == [1.0, 1.0], verdicts


@pytest.mark.parametrize("completion", [
    PALINDROME_BODY,  # no indentation at all
    "```python\n" + PALINDROME_BODY + "```",
    "```python\n" + "".join("    " + line + "\n" for line in PALINDROME_BODY.splitlines()) + "```",
], ids=["bare", "fenced", "fenced-indented"])
def test_a_body_without_its_indentation_is_indented(code, completion):
    verdict = code.verdicts([PALINDROME_PROMPT], [completion], tests=[PALINDROME_TEST],
                            entry_point=["make_palindrome"])[0]
    assert verdict.score == 1.0, verdict


@pytest.mark.parametrize("after", [
    "\n\nExample:\n```python\nprint(make_palindrome('cat'))\n```",
    "\n\nTests:\n```python\nassert make_palindrome('cat') == 'catac'\n```",
    "\n\nOutput:\n```\ncatac\n```",
    "\n\n```python\n>>> make_palindrome('cat')\n'catac'\n```",
], ids=["usage", "asserts", "output", "doctest"])
def test_a_usage_example_after_the_solution_is_not_the_program(code, after):
    completion = f"```python\n{PALINDROME_FUNCTION}```" + after
    verdict = code.verdicts([PALINDROME_PROMPT], [completion], tests=[PALINDROME_TEST],
                            entry_point=["make_palindrome"])[0]
    assert verdict.score == 1.0, verdict
    assert extract_program(completion, "make_palindrome") == PALINDROME_FUNCTION
    assert extract_program(completion) == PALINDROME_FUNCTION  # without the entry point too


def test_extraction_for_stdin_problems_and_fences_in_lists():
    script = "n = int(input())\nprint(n * 2)\n"
    assert extract_program(f"```python\n{script}```\nFor 3 it prints:\n```python\nprint(6)\n```") == script
    assert extract_program(f"```\n{script}```\nOutput:\n```\n6\n```") == script
    listed = "1. The code:\n   ```python\n" + "".join("   " + line + "\n" for line in script.splitlines()) + "   ```\n"
    assert extract_program(listed) == script
    assert extract_program("```python\nprint('YES')\n```") == "print('YES')\n"  # only an example: still it
    untagged = "```\ndef f(x):\n    return x\n```\nUsage:\n```python\nprint(f(1))\n```"
    assert extract_program(untagged, "f") == "def f(x):\n    return x\n"  # the entry point's block, untagged


def test_large_results_fit_under_the_output_cap(code):
    """A 20000-element list, 14 results of ~88k characters, a 1.3 MB expected stdout."""
    program = "class Solution:\n    def f(self, n):\n        return list(range(n))\n"
    one = [{"input": "20000", "output": json.dumps(list(range(20000))), "testtype": "functional"}]
    many = [{"input": "15000", "output": json.dumps(list(range(15000))), "testtype": "functional"}] * 14
    lines = [{"input": "200000", "output": "\n".join(map(str, range(200000)))}]
    printer = "n = int(input())\nprint('\\n'.join(map(str, range(n))))\n"
    verdicts = code.verdicts(["p"] * 3, [program, program, printer], tests=[one, many, lines], fn_name=["f", "f", None])
    assert [v.score for v in verdicts] == [1.0, 1.0, 1.0], verdicts


def test_output_over_the_cap_is_named_as_the_reason():
    small = CodeReward(executor=LocalExecutor(Limits(timeout_s=5.0, max_output_bytes=50_000)), workers=2)
    printer = "print('x' * 60_000)\n"
    returner = "def f(n):\n    return 'x' * n\n"
    calls = [{"input": "100", "output": json.dumps("x" * 100), "testtype": "functional"},
             {"input": "60000", "output": json.dumps("x" * 60_000), "testtype": "functional"}]
    verdicts = small.verdicts(["p", "p"], [printer, returner], tests=[[{"input": "", "output": "x" * 60_000}], calls],
                              fn_name=[None, "f"])
    assert verdicts[0].score == 0.0 and "max_output_bytes" in verdicts[0].reason, verdicts[0]
    assert verdicts[1].score == 0.5 and "too long to report" in verdicts[1].reason, verdicts[1]


def test_livecodebench_compressed_private_tests(code):
    """base64(zlib(pickle(json))), as LiveCodeBench ships private_test_cases; a pickle that
    names a function is refused, never run."""
    cases = [{"input": "2\nabc\nxy\n", "output": "cba\nyx\n", "testtype": "stdin"}]
    packed = base64.b64encode(zlib.compress(pickle.dumps(json.dumps(cases)))).decode()
    solution = "t = int(input())\nfor _ in range(t):\n    print(input()[::-1])\n"
    assert code(["p"], [solution], tests=[packed]) == [1.0]
    hostile = base64.b64encode(zlib.compress(pickle.dumps(print))).decode()
    verdict = code.verdicts(["p"], [solution], tests=[hostile])[0]
    assert verdict.score is None and "compressed" in verdict.reason


def test_a_reasoning_models_code_is_read_after_its_thinking(code):
    # What it tries while thinking is not its answer; cut off while thinking, it has none.
    wrong = "```python\ndef add(a, b):\n    return a - b\n```"
    right = "```python\ndef add(a, b):\n    return a + b\n```"
    completions = [f"<think>first try:\n{wrong}\nno, that subtracts</think>\n{right}",
                   f"<think>first try:\n{right}\nhmm</think>\nFinal:\n{wrong}",
                   f"<think>let me write it:\n{right}"]
    verdicts = code.verdicts(["p"] * 3, completions, tests=[ADD_TESTS] * 3)
    assert [v.score for v in verdicts] == [1.0, 0.0, 0.0], verdicts
    assert verdicts[2].reason == "no code after the reasoning"
