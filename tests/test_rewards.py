"""Tests for `rewards/`: answer extraction, the math and format rewards, the sandbox,
the registry and weighted composition. CPU only; the slowest cases are the deliberate
1-second timeouts."""

from __future__ import annotations

import doctest
import importlib
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rewards import (
    BUILTIN_REWARDS,
    FormatReward,
    MathReward,
    ScoreTable,
    Verdict,
    WeightedReward,
    build_reward,
    extract_answer,
    reward_names,
    score_all,
)
from rewards.compose import as_trl
from rewards.verdict import completion_text

TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def math_reward():
    with MathReward(timeout_s=TIMEOUT_S) as reward:
        yield reward


def length_reward(prompts, completions, scale=1.0, **kwargs):
    """A user reward for the registry tests, importable as `test_rewards:length_reward`."""
    return [scale * len(completion_text(c)) for c in completions]


# --- extraction ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,expected",
    [
        (r"so $x = \boxed{42}$", "42"),
        (r"\boxed{1} first, then \boxed{2}", "2"),
        (r"Thus \boxed{\frac{1}{2}}.", r"\frac{1}{2}"),
        (r"\boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt{3}}{2}"),
        (r"\boxed{\boxed{3}}", "3"),
        (r"\boxed{5} beats #### 6 and the answer is 7", "5"),
        ("Natalia sold 48/2 = 24 clips in May.\n#### 72", "72"),
        ("#### 1 \n later #### 1,234", "1,234"),
        ("So the answer is 18.", "18"),
        ("The answer is $\\frac{3}{4}$.", r"\frac{3}{4}"),
        ("the answer is 3, so THE ANSWER IS: 4. I hope this helps", "4"),
        ("The final answer is 3.5.", "3.5"),
        ("The answer is x = 5\nDone", "x = 5"),
        ("She has 3 apples, then 5 more, 8 in all", "8"),
        ("It costs 1,234,567 dollars", "1234567"),
        ("The temperature fell to -7 degrees", "-7"),
        ("10 - 3 = 7", "7"),
        ("pi is about 3.14159.", "3.14159"),
        ("the list 1,2,3", "3"),
        ("I don't know.", None),
        ("", None),
        (r"\boxed{} and nothing else", None),
        ("The answer is", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "text",
    ["x" * 100_000, "{" * 100_000, r"\boxed{" * 20_000, "the answer is " * 10_000, "1," * 50_000,
     r"\(" * 50_000, "the answer is " + r"\[" * 50_000, "$$a" * 30_000, r"\boxed{1} " * 20_000],
)
def test_extract_answer_is_linear_on_degenerate_text(text):
    start = time.monotonic()
    extract_answer(text)
    assert time.monotonic() - start < 1.0


# --- math reward -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion,reference,expected",
    [
        ("The answer is 72.", "72", 1.0),
        ("#### 1,234", "1234", 1.0),
        ("The answer is 18 dollars.", "18", 1.0),
        ("The answer is \\$18.", "18", 1.0),
        ("so 72.0 in total", "72", 1.0),
        ("The answer is 71.", "72", 0.0),
        ("The answer is -5", "5", 0.0),
        (r"\boxed{0.5}", r"\frac{1}{2}", 1.0),
        (r"\boxed{\frac{1}{2}}", "0.5", 1.0),
        (r"\boxed{\sqrt{4}}", "2", 1.0),
        (r"\boxed{\dfrac{3}{4}}", r"\frac34", 1.0),
        (r"\boxed{\frac{1}{3}}", "0.5", 0.0),
        (r"\boxed{3\pi}", "3*pi", 1.0),
        ("The answer is x**2 + 2*x + 1", "(x+1)^2", 1.0),
        ("The answer is x**2 + 2*x + 1", "1", 0.0),
        (r"\boxed{x = 5}", "5", 1.0),
        (r"\boxed{(1, 2)}", "(1,2)", 1.0),
        (r"\boxed{50\%}", "50", 1.0),
        ("I am not sure.", "72", 0.0),
        ([{"role": "assistant", "content": "The answer is 12"}], "12", 1.0),
        ([{"role": "user", "content": "7?"}, {"role": "assistant", "content": r"\boxed{\frac{6}{2}}"}], "3", 1.0),
        ("The answer is 4", None, None),
        ("The answer is 4", "", None),
        ("The answer is 4", 4, 1.0),
    ],
)
def test_math_reward_scores(math_reward, completion, reference, expected):
    assert math_reward(prompts=["q"], completions=[completion], reference_answer=[reference]) == [expected]


@pytest.mark.parametrize(
    "completion,reference,reason_part",
    [
        ("no digits", "3", "no answer found"),
        ("The answer is 3", None, "missing reference answer"),
        ("The answer is 3", r"\boxed{}", "could not be parsed"),
        ("The answer is 4", "3", "differs from"),
        ("The answer is 3", "3", "matches"),
    ],
)
def test_math_reward_reasons(math_reward, completion, reference, reason_part):
    (verdict,) = math_reward.verdicts(["q"], [completion], reference_answer=[reference])
    assert reason_part in verdict.reason


@pytest.mark.parametrize(
    "completion",
    [
        "The answer is 9**9**9**9",
        r"\boxed{9^{9^{9^{9}}}}",
        "The answer is 10^{10^{10}}",
        "7" * 100_000,
        "The answer is " + "x+" * 50_000 + "x",
        r"\boxed{" * 50_000,
        r"\boxed{\frac{1}{2",
        r"}}}{{{\boxed{\frac{}}}",
        "The answer is open(0).read()",
        "The answer is __import__('os').getcwd()",
    ],
)
def test_math_reward_survives_pathological_answers(math_reward, completion):
    start = time.monotonic()
    verdicts = math_reward.verdicts(["q", "q"], [completion, "The answer is 2"], reference_answer=["3", "2"])
    assert time.monotonic() - start < TIMEOUT_S + 5
    assert verdicts[0].score == 0.0 and verdicts[0].reason
    # Whatever the first sample did to the worker, the next one is scored normally.
    assert verdicts[1].score == 1.0


def test_math_reward_timeout_is_marked_and_recovers(math_reward):
    verdicts = math_reward.verdicts(
        ["q"] * 3,
        [r"\boxed{9^{9^{9^{9}}}}", r"\boxed{\frac{4}{2}}", r"\boxed{\frac{4}{3}}"],
        reference_answer=["2", "2", "2"],
    )
    assert verdicts[0] == Verdict(0.0, f"cannot verify: timeout after {TIMEOUT_S:g}s", timed_out=True)
    assert [v.score for v in verdicts[1:]] == [1.0, 0.0]
    assert not any(v.timed_out for v in verdicts[1:])


def test_math_reward_fast_path_needs_no_worker():
    reward = MathReward()
    count = 5_000
    completions = [f"Step one... so the answer is {i:,}." for i in range(count)]
    start = time.monotonic()
    scores = reward(prompts=["q"] * count, completions=completions, reference_answer=[str(i) for i in range(count)])
    elapsed = time.monotonic() - start
    assert scores == [1.0] * count
    assert reward._pool.running == 0  # workers are started only for symbolic checks
    assert elapsed < 2.0, f"{count / elapsed:.0f} samples/s is too slow for the fast path"


def test_math_reward_worker_is_closed_and_restartable():
    reward = MathReward(timeout_s=5.0, workers=2)
    assert reward(["q"], [r"\boxed{\frac{2}{4}}"], reference_answer=["0.5"]) == [1.0]
    processes = [sandbox._process for sandbox in reward._pool._sandboxes if sandbox.running]
    assert len(processes) == 1 and processes[0].poll() is None  # one check needs one worker
    reward.close()
    assert processes[0].poll() is not None and reward._pool.running == 0
    assert reward(["q"], [r"\boxed{\frac{3}{6}}"], reference_answer=["0.5"]) == [1.0]
    copy = pickle.loads(pickle.dumps(reward))  # TRL and dataloaders may pickle rewards
    assert copy._pool.running == 0 and copy.timeout_s == 5.0
    reward.close()


def test_math_reward_plugs_into_trl_contract(math_reward):
    # Exactly how GRPOTrainer._calculate_rewards calls a synchronous reward function.
    scores = math_reward(
        prompts=[[{"role": "user", "content": "1+1?"}]] * 3,
        completions=[[{"role": "assistant", "content": c}] for c in ("#### 2", "#### 3", "hmm")],
        completion_ids=[[1, 2], [3], [4]],
        reference_answer=["2", "2", "2"],
        question=["1+1?"] * 3,
        trainer_state=None,
        log_extra=lambda column, values: None,
        log_metric=lambda name, value: None,
    )
    assert scores == [1.0, 0.0, 0.0]
    assert math_reward.__name__ == "math" and FormatReward().__name__ == "format"


@pytest.mark.parametrize(
    "columns,message",
    [
        ({}, "reference_answer"),
        ({"reference_answer": ["1", "2"]}, "2 reference answers"),
    ],
)
def test_math_reward_rejects_bad_columns(math_reward, columns, message):
    with pytest.raises(ValueError, match=message):
        math_reward(["q"], ["#### 1"], **columns)


@pytest.mark.parametrize("timeout_s", [0, -1.0, float("nan")])
def test_math_reward_rejects_bad_timeouts(timeout_s):
    with pytest.raises(ValueError, match="timeout_s must be a positive"):
        MathReward(timeout_s=timeout_s)


# --- sandbox ---------------------------------------------------------------------------


# --- format reward ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern,completion,expected",
    [
        (None, "So the answer is 12.", 1.0),
        (None, "THE FINAL ANSWER IS: 12", 1.0),
        (None, r"Hence \boxed{\frac{1}{2}}", 1.0),
        (None, "48 + 24 = 72\n#### 72", 1.0),
        (None, "It is 12.", 0.0),
        (None, "The answer is", 0.0),
        (None, r"\boxed{}", 0.0),
        (None, "####", 0.0),
        (None, "the answer is" + " " * 100_000, 0.0),
        (None, [{"role": "assistant", "content": "The answer is 3"}], 1.0),
        (r"<answer>.+?</answer>\s*$", "<think>hm</think><answer>7</answer>", 1.0),
        (r"<answer>.+?</answer>\s*$", "The answer is 7", 0.0),
    ],
)
def test_format_reward(pattern, completion, expected):
    reward = FormatReward(pattern)
    assert reward(prompts=["q"], completions=[completion], reference_answer=["7"]) == [expected]


def test_format_reward_rejects_invalid_pattern():
    with pytest.raises(ValueError, match="invalid regular expression"):
        FormatReward("(unclosed")


# --- registry --------------------------------------------------------------------------


def test_builtin_rewards_are_listed_and_built():
    assert reward_names() == ["code", "format", "judge", "length", "majority", "math", "repetition",
                              "steps"] \
        == sorted(BUILTIN_REWARDS)
    assert isinstance(build_reward("math", timeout_s=3.0), MathReward)
    assert build_reward("format", pattern="X").pattern == "X"


@pytest.mark.parametrize("separator", [":", "."])
def test_build_reward_imports_dotted_paths(separator):
    path = f"{__name__}{separator}length_reward"
    assert build_reward(path) is length_reward
    scaled = build_reward(path, scale=2.0)
    assert scaled.__name__ == "length_reward"
    assert scaled(prompts=["q"], completions=["abc"], trainer_state=None) == [6.0]
    assert build_reward("operator:add")(2, 3) == 5


@pytest.mark.parametrize(
    "name,message",
    [
        ("accuracy", "Built-in rewards: code, format, judge, length, majority, math"),
        ("accuracy", "package.module:function"),
        ("no_such_package.module:reward", "cannot import module"),
        ("operator:no_such_function", "has no attribute"),
        ("operator:__doc__", "is not callable"),
    ],
)
def test_build_reward_explains_unknown_names(name, message):
    with pytest.raises(ValueError, match=message):
        build_reward(name)


def test_build_reward_reports_bad_builtin_arguments():
    with pytest.raises(ValueError, match="'math'.*timeout"):
        build_reward("math", timeout=3)


# --- composition -----------------------------------------------------------------------


def half_known(prompts, completions, **kwargs):
    """Judges only completions that mention a number."""
    return [1.0 if any(ch.isdigit() for ch in c) else None for c in completions]


def never_known(prompts, completions, **kwargs):
    return [None] * len(completions)


@pytest.mark.parametrize(
    "rewards,expected_total",
    [
        ([WeightedReward("format", FormatReward(), 1.0)], [1.0, 0.0, 0.0]),
        ([WeightedReward("format", FormatReward(), 0.5), WeightedReward("known", half_known, 2.0)], [2.5, 2.0, 0.0]),
        ([WeightedReward("known", half_known, -1.0), WeightedReward("never", never_known, 3.0)], [-1.0, -1.0, None]),
        ([WeightedReward("never", never_known, 1.0)], [None, None, None]),
    ],
)
def test_score_all_weights_and_skips_none(rewards, expected_total):
    table = score_all(rewards, prompts=["q"] * 3, completions=["#### 4", "4", "none"], reference_answer=["4"] * 3)
    assert table.total == expected_total
    assert set(table.scores) == set(table.reasons) == {r.name for r in rewards}


def test_score_all_keeps_reasons(math_reward):
    rewards = [WeightedReward("math", math_reward, 1.0), WeightedReward("known", half_known, 1.0)]
    table = score_all(rewards, prompts=["q", "q"], completions=["#### 4", "no idea"], reference_answer=["4", "4"])
    assert isinstance(table, ScoreTable)
    assert table.scores == {"math": [1.0, 0.0], "known": [1.0, None]}
    assert "matches" in table.reasons["math"][0] and table.reasons["math"][1] == "no answer found"
    assert table.reasons["known"] == ["", ""]
    assert table.total == [2.0, 0.0]


def test_score_all_rejects_duplicate_names():
    with pytest.raises(ValueError, match="repeated: known"):
        score_all([WeightedReward("known", half_known, 1.0)] * 2, prompts=["q"], completions=["1"])


def test_as_trl_splits_functions_and_weights():
    format_reward = FormatReward()
    funcs, weights = as_trl([WeightedReward("format", format_reward, 0.2), WeightedReward("known", half_known, 1.0)])
    assert funcs == [format_reward, half_known] and weights == [0.2, 1.0]


# --- docstring examples ----------------------------------------------------------------


@pytest.mark.parametrize(
    "module_name",
    [
        "rewards.verdict",
        "rewards.extract",
        "rewards.symbolic",
        "rewards.sandbox",
        "rewards.math",
        "rewards.format",
        "rewards.registry",
        "rewards.compose",
        "rewards.filters",
        "rewards.judge",
        "rewards.judge_length",
    ],
)
def test_docstring_examples_run(module_name):
    result = doctest.testmod(importlib.import_module(module_name))
    assert result.attempted > 0 and result.failed == 0


def test_importing_rewards_loads_a_reward_only_when_it_is_asked_for():
    # A sandbox worker imports `rewards.<module>` for one function: the package must not pull
    # in math-verify, sympy and the code sandbox on the way (each worker's start paid ~0.3 s).
    probe = ("import sys, rewards; assert 'math_verify' not in sys.modules and 'rewards.code' not in sys.modules; "
             "assert sorted(rewards.__all__) == sorted(rewards._EXPORTS); "
             "[getattr(rewards, name) for name in rewards.__all__]; "
             "from rewards import MathReward, score_all; assert MathReward.__module__ == 'rewards.math'")
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=Path(__file__).resolve().parents[1])

