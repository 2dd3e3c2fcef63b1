"""Rewards and verifiers: score a batch of completions, one float (or None) per sample.

The contract, shared with TRL so one function serves offline scoring and
`trl.GRPOTrainer(reward_funcs=...)` alike:

    reward(prompts, completions, **columns) -> list[float | None]

- `completions` are strings or chat-message lists (`[{"role": "assistant", "content": ...}]`,
  the last message is read).
- Dataset columns arrive as keyword arguments (`reference_answer=[...]`); unknown ones,
  and TRL's extras (`trainer_state`, `completion_ids`, `log_extra`...), are ignored.
- `None` means "cannot judge this sample" (e.g. no reference answer): skip it, do not
  count it wrong.
- Built-in rewards also offer `verdicts(...) -> list[Verdict]` with the reason behind
  each score, and carry `__name__` for TRL's metric names. One whose checks run in worker
  processes (math) also offers `start_verdicts(...)`, which starts them and returns the
  function that waits for the verdicts.

Pick rewards by name with `build_reward` (see `reward_names()`, or "package.module:function")
and combine them with `score_all` (or `start_scoring`, in two steps); a reward with a `gate`
is a filter stage.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Names load on first use (PEP 562): a sandbox worker imports `rewards.<module>` for one
# function, and importing every reward here (math-verify, sympy, the code sandbox) made each
# worker's start ~0.3 s dearer.
_EXPORTS = {
    "CodeReward": "rewards.code",
    "ScoreTable": "rewards.compose", "WeightedReward": "rewards.compose", "as_trl": "rewards.compose",
    "passes": "rewards.compose", "score_all": "rewards.compose", "start_scoring": "rewards.compose",
    "extract_answer": "rewards.extract",
    "LengthReward": "rewards.filters", "MajorityReward": "rewards.filters", "RepetitionReward": "rewards.filters",
    "FormatReward": "rewards.format",
    "JudgeReward": "rewards.judge", "PairVerdict": "rewards.judge",
    "MathReward": "rewards.math",
    "BUILTIN_REWARDS": "rewards.registry", "build_reward": "rewards.registry", "reward_names": "rewards.registry",
    "StepsReward": "rewards.steps",
    "Verdict": "rewards.verdict", "completion_text": "rewards.verdict",
}
__all__ = [
    "BUILTIN_REWARDS", "CodeReward", "FormatReward", "JudgeReward", "LengthReward", "MajorityReward", "MathReward",
    "PairVerdict", "RepetitionReward", "ScoreTable", "StepsReward", "Verdict", "WeightedReward", "as_trl",
    "build_reward", "completion_text", "extract_answer", "passes", "reward_names", "score_all", "start_scoring",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rewards' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from rewards.code import CodeReward
    from rewards.compose import ScoreTable, WeightedReward, as_trl, passes, score_all, start_scoring
    from rewards.extract import extract_answer
    from rewards.filters import LengthReward, MajorityReward, RepetitionReward
    from rewards.format import FormatReward
    from rewards.judge import JudgeReward, PairVerdict
    from rewards.math import MathReward
    from rewards.registry import BUILTIN_REWARDS, build_reward, reward_names
    from rewards.steps import StepsReward
    from rewards.verdict import Verdict, completion_text
