"""The `format` reward: does the completion state its final answer in the required form?

Scoring the form separately from correctness gives a small model a signal it can learn
early ("end with `The answer is X`"), before it gets many answers right, and keeps
answers extractable for the `math` reward.
"""

from __future__ import annotations

import re
from typing import Any

from rewards.verdict import Verdict, completion_text

# "The answer is <something>", "\boxed{...}" or GSM8K's "#### X", each with content.
DEFAULT_PATTERN = (
    r"(?i:\bthe\s+(?:final\s+)?answer\s+is\b\s*(?::\s*)?\S)"
    r"|\\boxed\s*\{\s*[^}\s]"
    r"|####[ \t]*\S"
)


class FormatReward:
    """Reward 1.0 when the completion matches `pattern` (searched anywhere), else 0.0.

    By default the completion must present a final answer as "The answer is X",
    `\\boxed{X}` or `#### X`; pass a regular expression to require another form.

    >>> format_reward = FormatReward()
    >>> format_reward(prompts=["Q", "Q"], completions=["So the answer is 12.", "It is 12."])
    [1.0, 0.0]
    >>> FormatReward(r"<answer>.+</answer>")(prompts=["Q"], completions=["<answer>12</answer>"])
    [1.0]
    """

    __name__ = "format"  # TRL names the reward's logged metrics after reward_func.__name__
    cost = 0  # the filter stack runs cheaper rewards first
    sample_columns = ()  # a verdict reads only the completion (rewards.compose)

    def __init__(self, pattern: str | None = None):
        self.pattern = pattern
        try:
            self._regex = re.compile(pattern if pattern is not None else DEFAULT_PATTERN, re.DOTALL)
        except re.error as exc:
            raise ValueError(f"format reward: invalid regular expression {pattern!r}: {exc}") from exc

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        return [v.score for v in self.verdicts(prompts, completions, **kwargs)]

    def verdicts(self, prompts: list, completions: list, **kwargs: Any) -> list[Verdict]:
        """One `Verdict` per completion; dataset columns in `kwargs` are ignored."""
        return [self.judge(completion) for completion in completions]

    def judge(self, completion: Any) -> Verdict:
        """Score one completion, given as a string or a chat-message list."""
        if self._regex.search(completion_text(completion)):
            return Verdict(1.0, "final answer in the required form")
        expected = "'The answer is X', \\boxed{X} or '#### X'" if self.pattern is None else repr(self.pattern)
        return Verdict(0.0, f"no final answer in the required form ({expected})")
