"""Score samples with several weighted rewards at once, keeping each component visible.

The loop reads `ScoreTable`: per-reward scores and reasons for its logs and rollout
tables, and the weighted `total` used to keep or drop samples. `as_trl` hands the same
rewards and weights to `GRPOTrainer`, which does its own weighting.

A reward with a `gate` is also a filter: samples scoring below it (or `None`) are rejected
there, get a `None` total, and are never shown to a later reward. Rewards run cheapest first
(by their `cost` attribute: filters 0, math 1, code sandbox 2, judge 3; ties keep config
order), so a sandbox or a judge is never called on a sample a cheap filter already rejected.

A reward whose verdict is a function of the sample alone says so with a `sample_columns`
attribute: the dataset columns it reads besides the prompt and the completion. Samples equal
in all of those are then judged once: a policy that has learnt a task repeats itself, and in
the CPU demo's later rounds 60% of the samples are a copy of another sample of their prompt.

`start_scoring` is `score_all` in two steps, for a caller with other work to do while a
reward's worker processes check (`start_verdicts`: the math reward's symbolic checks).
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
    gate: float | None = None  # reject samples scoring below this (or None)

    @property
    def cost(self) -> float:
        return getattr(self.fn, "cost", 1)


@dataclass
class ScoreTable:
    """Per-component scores and reasons, and their weighted total, one entry per sample.

    `total[i]` is the weighted sum over components that could judge sample i; it is
    `None` when none could, or when a gate rejected the sample (`rejected_by[i]` names it).
    `gates[name]` counts (samples that reached the gate, samples that passed it);
    `metrics[name]` holds what a reward reports of itself through `pop_metrics()`.
    """

    scores: dict[str, list[float | None]] = field(default_factory=dict)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    total: list[float | None] = field(default_factory=list)
    rejected_by: list[str] = field(default_factory=list)
    gates: dict[str, tuple[int, int]] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


def score_all(
    rewards: list[WeightedReward], prompts: list, completions: list, *, pop_metrics: bool = True, **columns: Any
) -> ScoreTable:
    """Run every reward on the samples and combine them by weight.

    With `pop_metrics=False` the rewards keep counting (`table.metrics` stays empty), so a
    caller scoring in batches pops them once, over all batches.

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
    return start_scoring(rewards, prompts, completions, pop_metrics=pop_metrics, **columns)()


def start_scoring(
    rewards: list[WeightedReward], prompts: list, completions: list, *, pop_metrics: bool = True, **columns: Any
) -> Callable[[], ScoreTable]:
    """`score_all` in two steps: the function returned finishes the table.

    A reward with a `start_verdicts` method (the math reward, whose symbolic checks run in
    worker processes) is started and left to its workers while the later rewards judge, unless
    it gates: its rejects must be known first. A caller scoring in batches starts the next
    batch before it finishes this one, so the workers check while this process judges.
    """
    names = [reward.name for reward in rewards]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"reward names must be unique; repeated: {', '.join(duplicates)}")
    ordered = sorted(rewards, key=lambda r: r.cost)  # stable: ties keep config order
    table = ScoreTable(rejected_by=[""] * len(completions))
    unrecorded = []
    for reward in ordered:
        record = _start(reward, table, prompts, completions, columns, pop_metrics)
        if reward.gate is None:
            unrecorded.append(record)
        else:
            record()

    def finish() -> ScoreTable:
        for record in unrecorded:
            record()
        table.scores = {r.name: table.scores[r.name] for r in ordered}
        table.reasons = {r.name: table.reasons[r.name] for r in ordered}
        table.total = [None if table.rejected_by[i] else _weighted_sum(rewards, table.scores, i)
                       for i in range(len(completions))]
        return table

    return finish


def _start(reward: WeightedReward, table: ScoreTable, prompts: list, completions: list, columns: dict,
           pop_metrics: bool) -> Callable[[], None]:
    """Start `reward` on the samples no gate has rejected; the function returned puts its
    scores, reasons, metrics and gate counts in `table`."""
    n = len(completions)
    alive = [i for i in range(n) if not table.rejected_by[i]]
    scores, reasons = [None] * n, [f"skipped: rejected by {table.rejected_by[i]}" for i in range(n)]
    judged = lambda: ([], [])  # noqa: E731 - nobody left to judge
    if alive:
        sub_columns = {k: [v[i] for i in alive] for k, v in columns.items() if _per_sample(v, n)}
        sub_columns |= {k: v for k, v in columns.items() if not _per_sample(v, n)}
        judged = _start_run(reward, [prompts[i] for i in alive], [completions[i] for i in alive], sub_columns)

    def record() -> None:
        got, why = judged()
        for j, i in enumerate(alive):
            scores[i], reasons[i] = got[j], why[j]
        table.scores[reward.name], table.reasons[reward.name] = scores, reasons
        pop = getattr(reward.fn, "pop_metrics", None) if pop_metrics else None
        if callable(pop):
            table.metrics[reward.name] = dict(pop())
        if reward.gate is not None:
            passed = [i for i in alive if scores[i] is not None and scores[i] >= reward.gate]
            table.gates[reward.name] = (len(alive), len(passed))
            for i in set(alive) - set(passed):
                table.rejected_by[i] = reward.name

    return record


def passes(total: float | None, threshold: float) -> bool:
    """Whether a sample's weighted total keeps it: gated and unjudged samples (None) never do,
    nor a NaN total (which compares false with everything)."""
    return total is not None and total >= threshold


def _per_sample(value: Any, n: int) -> bool:
    """A dataset column (one value per sample), as opposed to TRL extras like `trainer_state`."""
    return isinstance(value, (list, tuple)) and len(value) == n


def as_trl(rewards: list[WeightedReward]) -> tuple[list[Callable], list[float]]:
    """The same rewards as `GRPOTrainer(reward_funcs=...)` and `GRPOConfig(reward_weights=...)`."""
    return [reward.fn for reward in rewards], [reward.weight for reward in rewards]


def _start_run(reward: WeightedReward, prompts: list, completions: list,
               columns: dict) -> Callable[[], tuple[list, list]]:
    """The reward started on these samples, each distinct sample judged once (see the module
    doc); the function returned gives its scores and reasons."""
    firsts, copy_of = _distinct_samples(reward, prompts, completions, columns)
    if len(firsts) == len(completions):
        return _start_judge(reward, prompts, completions, columns)
    n = len(completions)
    sub_columns = {k: [v[i] for i in firsts] if _per_sample(v, n) else v for k, v in columns.items()}
    judged = _start_judge(reward, [prompts[i] for i in firsts], [completions[i] for i in firsts], sub_columns)

    def spread() -> tuple[list, list]:
        scores, reasons = judged()
        return [scores[j] for j in copy_of], [reasons[j] for j in copy_of]

    return spread


def _distinct_samples(reward: WeightedReward, prompts: list, completions: list,
                      columns: dict) -> tuple[list[int], list[int]]:
    """(the first index of each distinct sample, each sample's position among those firsts).
    Every sample is distinct unless the reward declares `sample_columns`, and when a value is
    unhashable (a chat-message completion, token ids)."""
    n = len(completions)
    read = getattr(reward.fn, "sample_columns", None)
    if read is None:
        return list(range(n)), list(range(n))
    keyed = [prompts, completions] + [columns[c] for c in read if _per_sample(columns.get(c), n)]
    firsts, position, copy_of = [], {}, []
    try:
        for i, key in enumerate(zip(*keyed)):
            j = position.setdefault(key, len(firsts))
            if j == len(firsts):
                firsts.append(i)
            copy_of.append(j)
    except TypeError:  # unhashable: judge each sample
        return list(range(n)), list(range(n))
    return firsts, copy_of


def _start_judge(reward: WeightedReward, prompts: list, completions: list,
                 columns: dict) -> Callable[[], tuple[list, list]]:
    """`start_verdicts` where the reward has it (its workers go on meanwhile), else judged now."""
    start = getattr(reward.fn, "start_verdicts", None)
    verdicts = start(prompts, completions, **columns) if callable(start) else None
    if verdicts is None:
        judged = _judge(reward, prompts, completions, columns)
        return lambda: judged
    return lambda: _checked(reward, *_split(verdicts()), len(completions))


def _judge(reward: WeightedReward, prompts: list, completions: list, columns: dict) -> tuple[list, list]:
    verdicts = getattr(reward.fn, "verdicts", None)
    if callable(verdicts):
        scores, reasons = _split(verdicts(prompts, completions, **columns))
    else:
        scores = list(reward.fn(prompts, completions, **columns))
        reasons = [""] * len(scores)
    return _checked(reward, scores, reasons, len(completions))


def _split(verdicts: list) -> tuple[list, list]:
    return [v.score for v in verdicts], [v.reason for v in verdicts]


def _checked(reward: WeightedReward, scores: list, reasons: list, n: int) -> tuple[list, list]:
    if len(scores) != n:
        raise ValueError(f"reward {reward.name!r} returned {len(scores)} scores for {n} completions")
    return scores, reasons


def _weighted_sum(rewards: list[WeightedReward], scores: dict, index: int) -> float | None:
    parts = [r.weight * scores[r.name][index] for r in rewards if scores[r.name][index] is not None]
    return sum(parts) if parts else None
