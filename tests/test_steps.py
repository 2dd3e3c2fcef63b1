"""The `steps` reward: every worked `a+b=c` step checked, so lucky guesses are not kept."""

from __future__ import annotations

import pytest

from rewards import StepsReward

STEPS_CASES = [
    ("3+5=8\n8+2=10\n10+7=17\nThe answer is 17.", False, 1.0),
    ("6+2=7\n7+6=13\n13+4=18\nThe answer is 18.", False, 1 / 3),  # a lucky guess: right answer, wrong steps
    ("6+2=7\n7+6=13\n13+4=18\nThe answer is 18.", True, 0.0),
    ("9-12=-3\n-3-4=-7", True, 1.0),
    ("2*3=6, 6 + 4 = 10", True, 1.0),
    ("The answer is 17.", False, None),  # no step shown: cannot judge
    ("", False, None),
    ("1+1=" + "9" * 5000, True, None),  # absurdly long numbers are not steps
]


@pytest.mark.parametrize("text,all_or_nothing,expected", STEPS_CASES)
def test_steps_reward_checks_every_worked_step(text, all_or_nothing, expected):
    score = StepsReward(all_or_nothing=all_or_nothing)(["Q"], [text])[0]
    assert score == (pytest.approx(expected) if expected is not None else None)


def test_steps_reward_says_which_step_is_wrong():
    verdict = StepsReward().verdicts(["Q"], [[{"role": "assistant", "content": "2+2=5\n5+1=6"}]])[0]
    assert verdict.score == 0.5 and "2+2=5" in verdict.reason


@pytest.mark.parametrize("prompt, text, expected", [
    ("Q:3+5+2+7\n", "3+5=8\n8+2=10\n10+7=17\nThe answer is 17.", 1.0),
    ("Q:3+2+0+4+3\n", "2+2=4;+4\n4+4=8;+4\n8+4=12;\nThe answer is 12.", 0.0),  # true steps, not the problem's
    ("Q:3+2+0+4\n", "3+2=5\n5+4=9\nThe answer is 9.", 0.0),  # an operand skipped (a zero: the total is right)
    ("Q:3+5+2gw\n", "  3+5=  8;+2gw\n  8+2= 10;gw..\nThe answer is 10.", 1.0),  # `aligned` layout
    ("Q:9-12*2\n", "9-12=-3\n-3*2=-6", 1.0),
    ("What is it?", "1+1=2", None),  # no problem in the prompt to follow: cannot judge
])
def test_follow_prompt_demands_the_problems_own_steps_in_order(prompt, text, expected):
    assert StepsReward(all_or_nothing=True, follow_prompt=True)([prompt], [text])[0] == expected
