"""Is the policy as sure as it is right? Confidence scores and their calibration.

Two confidences per sampled eval completion, both in [0, 1]:
- sequence: the policy's per-token probability of the sample, exp(sum log p / tokens) — the
  geometric mean, which is what the recorded `sum_logprob` and `token_count` determine;
- consistency: the share of the prompt's k samples whose final answer equals this one's.
Correctness is the eval verifier's verdict. Bins follow scikit-learn's `calibration_curve`
(equal width; a value on an edge falls in the lower bin), so the tests can check against it.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

import numpy as np

NAN = float("nan")


def sequence_confidence(sum_logprob: float, token_count: int) -> float:
    return math.exp(sum_logprob / token_count) if token_count else NAN


def consistency_confidence(answers: Sequence[Sequence[str | None]]) -> list[list[float]]:
    """Per sample: the share of its prompt's samples that agree with its answer (no answer: 0)."""
    out = []
    for row in answers:
        votes = Counter(a for a in row if a is not None)
        out.append([votes[a] / len(row) if a is not None else 0.0 for a in row])
    return out


def reliability_bins(confidence: Sequence[float], correct: Sequence[bool], bins: int) -> list[dict]:
    """Per equal-width bin: its edges, sample count, mean confidence and accuracy (NaN if empty)."""
    conf, ok = np.asarray(confidence, float), np.asarray(correct, float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    ids = np.searchsorted(edges[1:-1], conf)
    count = np.bincount(ids, minlength=bins)
    conf_sum = np.bincount(ids, weights=conf, minlength=bins)
    ok_sum = np.bincount(ids, weights=ok, minlength=bins)
    return [{"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": int(count[b]),
             "confidence": float(conf_sum[b] / count[b]) if count[b] else NAN,
             "accuracy": float(ok_sum[b] / count[b]) if count[b] else NAN} for b in range(bins)]


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], bins: int) -> float:
    """ECE: the count-weighted mean |accuracy - confidence| over equal-width bins."""
    table = reliability_bins(confidence, correct, bins)
    total = sum(b["count"] for b in table)
    if not total:
        return NAN
    return sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in table if b["count"]) / total


def brier_score(confidence: Sequence[float], correct: Sequence[bool]) -> float:
    """Mean squared gap between confidence and the 0/1 verdict."""
    conf, ok = np.asarray(confidence, float), np.asarray(correct, float)
    return float(np.mean((conf - ok) ** 2)) if len(conf) else NAN


def auroc(confidence: Sequence[float], correct: Sequence[bool]) -> float:
    """Probability that a right sample is more confident than a wrong one (ties count half);
    NaN when all samples are right or all wrong."""
    conf, ok = np.asarray(confidence, float), np.asarray(correct, bool)
    n_pos, n_neg = int(ok.sum()), int((~ok).sum())
    if not n_pos or not n_neg:
        return NAN
    order = np.argsort(conf, kind="mergesort")
    ranks = np.empty(len(conf))
    sorted_conf = conf[order]
    start = 0
    for end in range(1, len(conf) + 1):  # average ranks over runs of tied confidences
        if end == len(conf) or sorted_conf[end] != sorted_conf[start]:
            ranks[order[start:end]] = (start + end + 1) / 2
            start = end
    return float((ranks[ok].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def calibration_metrics(confidence: Sequence[float], correct: Sequence[bool], bins: int) -> dict[str, float]:
    """ECE, Brier score and AUROC of one confidence against correctness."""
    return {"ece": expected_calibration_error(confidence, correct, bins),
            "brier": brier_score(confidence, correct), "auroc": auroc(confidence, correct),
            "mean_confidence": float(np.mean(confidence)) if len(confidence) else NAN}
