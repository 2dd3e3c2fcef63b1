"""Length control for judge scores, and the judge's health metrics.

LLM judges prefer longer answers whatever their quality, and a policy trained on such a judge
learns to ramble. `LengthControl` takes that trend out of a batch's scores or charges for
length beyond a target; `Tally` counts what `JudgeReward.pop_metrics` reports, including the
correlation of raw scores with length, so the bias stays visible whichever mode is chosen.
Lengths are in characters: every backend can count them, and none needs a tokenizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

LENGTH_MODES = ("none", "normalize", "penalty")


@dataclass(frozen=True)
class LengthControl:
    """How scores are adjusted for completion length (characters).

    - `none`: scores as judged.
    - `normalize`: subtract the least-squares fit of score on length over the batch, keeping
      the batch mean: `score - slope * (length - mean length)`. A linear fit was chosen over
      dividing by per-length-bucket means because it uses every sample (a GRPO batch of 64 leaves
      buckets of a handful), needs no bucket edges, and takes out exactly the linear trend that
      `length_corr` measures. Adjusted scores may leave [0, 1] slightly.
    - `penalty`: `score - coef * max(0, length - target) / target`: no charge up to `target`
      characters, then `coef` per `target` characters beyond it.

    >>> LengthControl("normalize").apply([0.2, 0.5, 0.8, None], [10, 20, 30, 40])
    [0.5, 0.5, 0.5, None]
    >>> LengthControl("penalty", coef=0.5, target=100).apply([1.0, 1.0], [100, 300])
    [1.0, 0.0]
    """

    mode: str = "none"
    coef: float = 0.1
    target: float | None = None

    @classmethod
    def from_args(cls, args: dict | None) -> "LengthControl":
        """Build from the reward's `length:` mapping, naming the bad key and the fix."""
        args = dict(args or {})
        unknown = sorted(set(args) - {"mode", "coef", "target"})
        if unknown:
            raise ValueError(f"judge reward: length has unknown key(s) {', '.join(unknown)}; "
                             "use mode (none|normalize|penalty), coef and target (penalty only)")
        control = cls(**args)
        if control.mode not in LENGTH_MODES:
            raise ValueError(f"judge reward: length.mode must be one of {', '.join(LENGTH_MODES)}, "
                             f"got {control.mode!r}")
        if control.mode == "penalty":
            if not (isinstance(control.target, (int, float)) and control.target > 0):
                raise ValueError("judge reward: length.mode 'penalty' needs length.target, the length in "
                                 f"characters beyond which to penalize (> 0), got {control.target!r}")
            if not (isinstance(control.coef, (int, float)) and control.coef >= 0):
                raise ValueError(f"judge reward: length.coef must be a number >= 0, got {control.coef!r}")
        return control

    def apply(self, scores: list[float | None], lengths: list[int]) -> list[float | None]:
        """Adjusted scores, one per sample; None stays None."""
        if self.mode == "penalty":
            return [None if s is None else s - self.coef * max(0.0, n - self.target) / self.target
                    for s, n in zip(scores, lengths)]
        if self.mode == "normalize":
            slope, mean_length = _slope([(s, n) for s, n in zip(scores, lengths) if s is not None])
            return [None if s is None else s - slope * (n - mean_length) for s, n in zip(scores, lengths)]
        return list(scores)


@dataclass
class Tally:
    """Judge counts since the metrics were last read."""

    calls: int = 0  # judge requests sent (a pairwise comparison sends two)
    errors: int = 0  # requests that failed (HTTP error, timeout)
    unparseable: int = 0  # answers the pattern could not read
    pairs_judged_both: int = 0  # pairwise: comparisons read in both orders
    position_flips: int = 0  # ... whose verdict changed with the order
    scored: list[tuple[float, int]] = field(default_factory=list)  # (raw score, length in chars)

    def record_scores(self, scores: list[float | None], lengths: list[int]) -> None:
        self.scored += [(s, n) for s, n in zip(scores, lengths) if s is not None]

    def metrics(self, pairwise: bool) -> dict[str, float]:
        answered = self.calls - self.errors
        metrics = {
            "calls": float(self.calls),
            "errors": float(self.errors),
            "unparseable": float(self.unparseable),
            "unparseable_rate": self.unparseable / answered if answered else math.nan,
            "length_corr": pearson(self.scored),
        }
        if pairwise:
            both = self.pairs_judged_both
            metrics["position_flip_rate"] = self.position_flips / both if both else math.nan
        return metrics


def pearson(points: list[tuple[float, float]]) -> float:
    """Pearson correlation of (x, y) points; NaN with fewer than 2 points or a constant side."""
    if len(points) < 2:
        return math.nan
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    cov = sum((x - mean_x) * (y - mean_y) for x, y in points)
    var_x = sum((x - mean_x) ** 2 for x, _ in points)
    var_y = sum((y - mean_y) ** 2 for _, y in points)
    if var_x == 0 or var_y == 0:
        return math.nan
    return cov / math.sqrt(var_x * var_y)


def _slope(points: list[tuple[float, int]]) -> tuple[float, float]:
    """Least-squares slope of score on length, and the mean length (slope 0 if undefined)."""
    if not points:
        return 0.0, 0.0
    mean_score = sum(s for s, _ in points) / len(points)
    mean_length = sum(n for _, n in points) / len(points)
    var_length = sum((n - mean_length) ** 2 for _, n in points)
    if var_length == 0:
        return 0.0, mean_length
    cov = sum((s - mean_score) * (n - mean_length) for s, n in points)
    return cov / var_length, mean_length
