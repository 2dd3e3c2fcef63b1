"""Tests for `loop/evaluate.py`: pass@k / maj@k / mean@k from hand-made verdicts, judging with
the real `math` reward, and the metric keys of an evaluation on the tiny model."""

from __future__ import annotations

import pytest
from datasets import Dataset

from loop.evaluate import evaluate, judge, sample_metrics
from policies.engines.hf import HFEngine
from rewards import MathReward

T, F = True, False


@pytest.mark.parametrize(
    "correct,answers,expected",
    [
        pytest.param([[T, T]], [["4", "4"]], (1.0, 1.0, 1.0), id="all-right"),
        pytest.param([[F, F]], [["5", "6"]], (0.0, 0.0, 0.0), id="all-wrong"),
        pytest.param([[T, F, F]], [["4", "5", "5"]], (1.0, 0.0, 1 / 3), id="majority-wrong"),
        pytest.param([[F, T, T]], [["5", "4", "4"]], (1.0, 1.0, 2 / 3), id="majority-right"),
        pytest.param([[F, T, F, T]], [["5", "4", "5", "4"]], (1.0, 0.0, 0.5), id="tie-first-seen-wins-wrong"),
        pytest.param([[T, F, T, F]], [["4", "5", "4", "5"]], (1.0, 1.0, 0.5), id="tie-first-seen-wins-right"),
        pytest.param([[F, F, T]], [[None, None, "4"]], (1.0, 1.0, 1 / 3), id="none-does-not-vote"),
        pytest.param([[F, F, T, F]], [[None, "5", "4", "5"]], (1.0, 0.0, 0.25), id="none-skipped-majority-wrong"),
        pytest.param([[F, F]], [[None, None]], (0.0, 0.0, 0.0), id="no-answers"),
        pytest.param([[T, F], [F, F], [F, T]], [["1", "2"], ["3", "3"], ["6", "7"]], (2 / 3, 1 / 3, 1 / 3),
                     id="several-problems"),
        pytest.param([], [], (0.0, 0.0, 0.0), id="no-problems"),
    ],
)
def test_sample_metrics(correct, answers, expected):
    k = len(correct[0]) if correct else 4
    metrics = sample_metrics(correct, answers, k)
    assert set(metrics) == {f"eval/pass@{k}", f"eval/maj@{k}", f"eval/mean@{k}"}
    got = (metrics[f"eval/pass@{k}"], metrics[f"eval/maj@{k}"], metrics[f"eval/mean@{k}"])
    assert got == pytest.approx(expected)


@pytest.fixture(scope="module")
def engine(tiny_model_dir) -> HFEngine:
    return HFEngine(tiny_model_dir, "round_000", device="cpu")


@pytest.fixture(scope="module")
def math_reward():
    with MathReward(timeout_s=2.0) as reward:
        yield reward


def test_judge_uses_the_verifier_per_problem(math_reward):
    problems = Dataset.from_dict({"prompt_text": ["Q:2+2\n", "Q:9-4\n", "Q:1+1\n"],
                                  "reference_answer": ["4", "5", None]})
    completions = [["2+2=4\nThe answer is 4.", "The answer is 5."], ["9-4=5\nThe answer is 5."], ["2"]]
    # The third problem has no reference answer: the verifier cannot judge (None), which is not right.
    assert judge(math_reward, problems, completions) == [[True, False], [True], [False]]


def always_right(prompts, completions, **columns):
    """A user reward that accepts every completion."""
    return [1.0 for _ in completions]


def cannot_judge(prompts, completions, **columns):
    return [None for _ in completions]


@pytest.mark.parametrize(
    "verifier,k,prefix,expected",
    [
        (always_right, 1, "eval", {"eval/pass@1": 1.0}),
        (always_right, 3, "eval", {"eval/pass@1": 1.0, "eval/pass@3": 1.0, "eval/mean@3": 1.0, "eval/headroom": 0.0}),
        (always_right, 3, "control", {"control/pass@1": 1.0}),  # the control run evaluates greedy only
        (cannot_judge, 3, "eval", {"eval/pass@1": 0.0, "eval/pass@3": 0.0, "eval/mean@3": 0.0, "eval/headroom": 0.0}),
    ],
)
def test_evaluate_metric_keys(engine, verifier, k, prefix, expected):
    problems = Dataset.from_dict({"prompt_text": ["Q:2+2\n", "Q:9-4\n"], "reference_answer": ["4", "5"]})
    metrics = evaluate(engine, problems, verifier, k=k, temperature=1.0, max_new_tokens=4, stop=(), seed=0,
                       prefix=prefix)
    assert {key: v for key, v in metrics.items() if "maj@" not in key} == expected
    assert set(metrics) - set(expected) == ({f"eval/maj@{k}"} if k > 1 and prefix == "eval" else set())
