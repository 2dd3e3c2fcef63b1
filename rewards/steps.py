"""The `steps` reward: is every worked arithmetic step in the rationale right?

A final-answer check alone accepts lucky guesses: "6+2=7, 7+6=13, 13+4=18" ends on the right
18 through two wrong steps, and training on it teaches the wrong steps. This verifier reads
each `a+b=c` / `a-b=c` (integers; `*` too) line of the completion and checks it exactly, so
a loop can keep only rationales that are right all the way through.
"""

from __future__ import annotations

import re
from typing import Any

from rewards.verdict import Verdict, completion_text

EXPRESSION = re.compile(r"\d+(?:\s*[-+*]\s*\d+)+")
STEP = re.compile(r"(?<!\d)(-?\d{1,12})\s*([-+*])\s*(-?\d{1,12})\s*=\s*(-?\d{1,24})(?!\d)")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


class StepsReward:
    """Score = share of correct steps (or 1.0/0.0 with `all_or_nothing`); None when no step is shown.

    >>> steps = StepsReward()
    >>> steps(prompts=["Q", "Q"], completions=["2+3=5\\n5-1=4", "2+3=5\\n5-1=3"])
    [1.0, 0.5]
    >>> StepsReward(all_or_nothing=True)(prompts=["Q"], completions=["2+3=5\\n5-1=3"])
    [0.0]
    """

    __name__ = "steps"
    cost = 0  # the filter stack runs cheaper rewards first
    sample_columns = ()  # a verdict reads only the completion and its prompt (rewards.compose)

    def __init__(self, all_or_nothing: bool = False, follow_prompt: bool = False):
        self.all_or_nothing, self.follow_prompt = all_or_nothing, follow_prompt

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        return [v.score for v in self.verdicts(prompts, completions, **kwargs)]

    def verdicts(self, prompts: list, completions: list, **kwargs: Any) -> list[Verdict]:
        return [self.judge(c, p) for p, c in zip(prompts, completions)]

    def judge(self, completion: Any, prompt: Any = None) -> Verdict:
        steps = STEP.findall(completion_text(completion))
        if not steps:
            return Verdict(None, "no arithmetic step shown")
        if self.follow_prompt:
            expected = expected_steps(completion_text(prompt) if prompt is not None else "")
            if expected is None:
                return Verdict(None, "no arithmetic problem in the prompt to follow")
            shown = [f"{int(a)}{op}{int(b)}" for a, op, b, _ in steps]
            if shown != expected:
                return Verdict(0.0, f"steps do not follow the problem: {' '.join(shown[:4])} for {' '.join(expected[:4])}")
        wrong = [f"{a}{op}{b}={c}" for a, op, b, c in steps if OPS[op](int(a), int(b)) != int(c)]
        if not wrong:
            return Verdict(1.0, f"all {len(steps)} steps correct")
        share = 1 - len(wrong) / len(steps)
        return Verdict(0.0 if self.all_or_nothing else share, f"wrong step(s): {', '.join(wrong[:3])}")


def expected_steps(prompt: str) -> list[str] | None:
    """The problem's steps left to right (`a+b` each, no result), from the first `a+b-c...` in the prompt."""
    found = EXPRESSION.search(prompt)
    if found is None:
        return None
    numbers = [int(n) for n in re.findall(r"\d+", found.group())]
    ops = re.findall(r"[-+*]", found.group())
    steps, acc = [], numbers[0]
    for op, x in zip(ops, numbers[1:]):
        steps.append(f"{acc}{op}{x}")
        acc = OPS[op](acc, x)
    return steps
