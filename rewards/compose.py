"""Score samples with several weighted rewards at once, keeping each component visible.

The loop reads `ScoreTable`: per-reward scores and reasons for its logs and rollout
tables, and the weighted `total` used to keep or drop samples. `as_trl` hands the same
rewards and weights to `GRPOTrainer`, which does its own weighting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class WeightedReward:
    """A reward function under the name its metrics are logged with, and its weight."""

    name: str
    fn: Callable
    weight: float = 1.0


@dataclass
class ScoreTable:
    """Per-component scores and reasons, and their weighted total, one entry per sample.

    `total[i]` is the weighted sum over components that could judge sample i; it is
    `None` only when none could.
    """

    scores: dict[str, list[float | None]] = field(default_factory=dict)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    total: list[float | None] = field(default_factory=list)


def score_all(
    rewards: list[WeightedReward], prompts: list, completions: list, **columns: Any
) -> ScoreTable:
    """Run every reward on the samples and combine them by weight.

    Rewards with a `verdicts` method (the built-ins) contribute their reasons; plain
    functions contribute empty reasons.

    >>> from rewards.format import FormatReward
    >>> def brevity(prompts, completions, **columns):
    ...     return [1.0 if len(c) < 10 else 0.0 for c in completions]
    >>> table = score_all(
    ...     [WeightedReward("format", FormatReward(), 0.5), WeightedReward("brevity", brevity, 2.0)],
    ...     prompts=["Q", "Q"],
    ...     completions=["#### 7", "It is probably seven."],
    ... )
    >>> table.scores["format"], table.total
    ([1.0, 0.0], [2.5, 0.0])
    """
    names = [reward.name for reward in rewards]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"reward names must be unique; repeated: {', '.join(duplicates)}")
    table = ScoreTable()
    for reward in rewards:
        scores, reasons = _run(reward, prompts, completions, columns)
        table.scores[reward.name] = scores
        table.reasons[reward.name] = reasons
    table.total = [_weighted_sum(rewards, table.scores, i) for i in range(len(completions))]
    return table


def as_trl(rewards: list[WeightedReward]) -> tuple[list[Callable], list[float]]:
    """The same rewards as `GRPOTrainer(reward_funcs=...)` and `GRPOConfig(reward_weights=...)`."""
    return [reward.fn for reward in rewards], [reward.weight for reward in rewards]


def _run(reward: WeightedReward, prompts: list, completions: list, columns: dict) -> tuple[list, list]:
    verdicts = getattr(reward.fn, "verdicts", None)
    if callable(verdicts):
        judged = verdicts(prompts, completions, **columns)
        scores, reasons = [v.score for v in judged], [v.reason for v in judged]
    else:
        scores = list(reward.fn(prompts, completions, **columns))
        reasons = [""] * len(scores)
    if len(scores) != len(completions):
        raise ValueError(
            f"reward {reward.name!r} returned {len(scores)} scores for {len(completions)} completions"
        )
    return scores, reasons


def _weighted_sum(rewards: list[WeightedReward], scores: dict, index: int) -> float | None:
    parts = [r.weight * scores[r.name][index] for r in rewards if scores[r.name][index] is not None]
    return sum(parts) if parts else None
