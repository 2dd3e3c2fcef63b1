"""Cheap filters, written as rewards: length band, repetition, majority vote.

Each one scores 1.0 (keep) or 0.0 (reject) with a reason, under TRL's reward signature, so it
can be a weighted reward, a GRPO `reward_func`, or, with a `gate` in the run's config, a stage
of the filter stack that rejects samples before any costlier reward (math, code sandbox,
judge) is called on them. They run in-process in microseconds per sample: `cost = 0`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal, InvalidOperation
from typing import Any

from rewards.extract import extract_answer
from rewards.verdict import Verdict, completion_text


class LengthReward:
    """1.0 when the completion's length lies in [min_tokens, max_tokens], else 0.0.

    Length is read from the token ids TRL passes (`completion_ids`), else from the loop's
    rollout column `token_count`, else counted in whitespace-separated words.

    >>> LengthReward(min_tokens=2, max_tokens=3)(["Q"] * 3, ["a", "a b", "a b c d"])
    [0.0, 1.0, 0.0]
    """

    __name__ = "length"
    cost = 0
    sample_columns = ("completion_ids", "token_count")  # a verdict reads only these (rewards.compose)

    def __init__(self, min_tokens: int = 0, max_tokens: int | None = None):
        if min_tokens < 0 or (max_tokens is not None and max_tokens < min_tokens):
            raise ValueError(f"length reward: need 0 <= min_tokens <= max_tokens, got {min_tokens}, {max_tokens}")
        self.min_tokens, self.max_tokens = min_tokens, max_tokens

    def __call__(self, prompts: list, completions: list, **columns: Any) -> list[float | None]:
        return [v.score for v in self.verdicts(prompts, completions, **columns)]

    def verdicts(self, prompts: list, completions: list, completion_ids: list | None = None,
                 token_count: list | None = None, **columns: Any) -> list[Verdict]:
        if completion_ids is not None:
            lengths = [len(ids) for ids in completion_ids]
        elif token_count is not None:
            lengths = [int(n) for n in token_count]
        else:
            lengths = [len(completion_text(c).split()) for c in completions]
        return [self._judge(n) for n in lengths]

    def _judge(self, n: int) -> Verdict:
        if n < self.min_tokens:
            return Verdict(0.0, f"too short: {n} < {self.min_tokens} tokens")
        if self.max_tokens is not None and n > self.max_tokens:
            return Verdict(0.0, f"too long: {n} > {self.max_tokens} tokens")
        return Verdict(1.0, f"{n} tokens")


class RepetitionReward:
    """1.0 unless more than `max_share` of the completion's word n-grams are repeats.

    A looping model ("and then and then and then ...") repeats most of its n-grams; a normal
    answer few. Completions shorter than n words have no n-grams and pass.

    >>> RepetitionReward(n=2, max_share=0.3)(["Q"] * 2, ["a b c d e", "a b a b a b a b"])
    [1.0, 0.0]
    """

    __name__ = "repetition"
    cost = 0
    sample_columns = ()  # a verdict reads only the completion (rewards.compose)

    def __init__(self, n: int = 4, max_share: float = 0.3):
        if n < 1 or not 0.0 <= max_share <= 1.0:
            raise ValueError(f"repetition reward: need n >= 1 and 0 <= max_share <= 1, got n={n}, max_share={max_share}")
        self.n, self.max_share = n, max_share

    def __call__(self, prompts: list, completions: list, **columns: Any) -> list[float | None]:
        return [v.score for v in self.verdicts(prompts, completions, **columns)]

    def verdicts(self, prompts: list, completions: list, **columns: Any) -> list[Verdict]:
        return [self._judge(completion_text(c)) for c in completions]

    def _judge(self, text: str) -> Verdict:
        words = text.split()
        grams = [tuple(words[i : i + self.n]) for i in range(len(words) - self.n + 1)]
        if not grams:
            return Verdict(1.0, f"shorter than {self.n} words")
        share = 1 - len(set(grams)) / len(grams)
        if share > self.max_share:
            return Verdict(0.0, f"{share:.0%} of {self.n}-grams repeated (max {self.max_share:.0%})")
        return Verdict(1.0, f"{share:.0%} of {self.n}-grams repeated")


class MajorityReward:
    """Self-consistency for prompts without a reference: 1.0 when a sample's final answer is its
    prompt's majority answer, 0.0 otherwise.

    Samples are grouped by prompt text (the loop passes a prompt's n samples together; so does
    TRL's GRPO). The majority must hold at least `min_share` of the group's answered samples;
    a tie for first place is no majority. Samples without an extractable answer score 0.0.

    >>> MajorityReward()(["Q"] * 4, ["The answer is 4.", "The answer is 4.", "The answer is 5.", "hm"])
    [1.0, 1.0, 0.0, 0.0]
    """

    __name__ = "majority"
    cost = 0

    def __init__(self, min_share: float = 0.5):
        if not 0.0 < min_share <= 1.0:
            raise ValueError(f"majority reward: min_share must be in (0, 1], got {min_share}")
        self.min_share = min_share

    def __call__(self, prompts: list, completions: list, **columns: Any) -> list[float | None]:
        return [v.score for v in self.verdicts(prompts, completions, **columns)]

    def verdicts(self, prompts: list, completions: list, **columns: Any) -> list[Verdict]:
        answers = [_normalized(extract_answer(completion_text(c))) for c in completions]
        groups: dict[str, list[int]] = defaultdict(list)
        for i, prompt in enumerate(prompts):
            groups[completion_text(prompt)].append(i)
        verdicts: list[Verdict] = [Verdict(0.0)] * len(completions)
        for members in groups.values():
            majority, reason = self._majority([answers[i] for i in members])
            for i in members:
                if answers[i] is None:
                    verdicts[i] = Verdict(0.0, "no final answer")
                elif majority is None:
                    verdicts[i] = Verdict(0.0, reason)
                else:
                    agree = answers[i] == majority
                    verdicts[i] = Verdict(1.0 if agree else 0.0, f"{'agrees' if agree else 'disagrees'} with {reason}")
        return verdicts

    def _majority(self, answers: list[str | None]) -> tuple[str | None, str]:
        votes = Counter(a for a in answers if a is not None)
        if not votes:
            return None, "no answers to vote on"
        ranked = votes.most_common(2)
        top, count = ranked[0]
        if len(ranked) > 1 and ranked[1][1] == count:
            return None, f"no majority (tie at {count} votes)"
        share = count / sum(votes.values())
        if share < self.min_share:
            return None, f"no majority ({top!r} has {share:.0%} < {self.min_share:.0%})"
        return top, f"majority {top!r} ({count}/{sum(votes.values())})"


def _normalized(answer: str | None) -> str | None:
    """"4", "4.0" and "4.00" are one vote; non-numeric answers compare as stripped text."""
    if answer is None:
        return None
    try:
        return str(Decimal(answer.replace(",", "")).normalize())
    except InvalidOperation:
        return answer.strip()
