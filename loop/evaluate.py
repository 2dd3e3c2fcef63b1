"""Held-out evaluation: greedy pass@1, and pass@k / maj@k / mean@k from k sampled completions.

Correctness is the verdict of one reward (default `math`) — the same verifier that scores
training rollouts, so "accuracy" and "reward" can never disagree about what is right.
"""

from __future__ import annotations

from collections import Counter

import torch
from datasets import Dataset

from policies.engines.base import RolloutEngine, SamplingParams
from rewards import extract_answer


def sample_metrics(correct: list[list[bool]], answers: list[list[str | None]], k: int) -> dict[str, float]:
    """pass@k (any of k right), maj@k (the most common answer is right), mean@k (share right)."""
    n = max(len(correct), 1)
    pass_k = sum(any(row) for row in correct) / n
    mean_k = sum(sum(row) / len(row) for row in correct) / n
    maj = 0
    for row_ok, row_answers in zip(correct, answers):
        votes = Counter(a for a in row_answers if a is not None)
        if votes:
            top, _ = votes.most_common(1)[0]
            maj += row_ok[row_answers.index(top)]
    return {f"eval/pass@{k}": pass_k, f"eval/maj@{k}": maj / n, f"eval/mean@{k}": mean_k}


def per_level(levels: list[int], correct: list[bool], prefix: str) -> dict[str, float]:
    """`{prefix}/pass@1/level_<d>`: greedy accuracy on the problems of each difficulty level."""
    by_level: dict[int, list[bool]] = {}
    for level, ok in zip(levels, correct):
        by_level.setdefault(int(level), []).append(ok)
    return {f"{prefix}/pass@1/level_{d:02d}": sum(v) / len(v) for d, v in sorted(by_level.items())}


def judge(verifier, problems: Dataset, completions: list[list[str]]) -> list[list[bool]]:
    flat = [c for row in completions for c in row]
    columns = {name: [value for value, row in zip(problems[name][:], completions) for _ in row]
               for name in problems.column_names if name not in ("prompt_id", "prompt", "prompt_text")}
    prompts = [p for p, row in zip(problems["prompt_text"][:], completions) for _ in row]
    scores = verifier(prompts, flat, **columns)
    out, i = [], 0
    for row in completions:
        out.append([(s or 0.0) >= 1.0 for s in scores[i : i + len(row)]])
        i += len(row)
    return out


def evaluate(engine: RolloutEngine, problems: Dataset, verifier, k: int, temperature: float,
             max_new_tokens: int, stop: tuple[str, ...], seed: int, prefix: str = "eval",
             observe=None) -> dict[str, float]:
    """`observe(prompt_ids, completions, correct, answers) -> dict`, if given, sees the k sampled
    completions per problem (with their log-probs) and the verdicts, and adds its metrics."""
    greedy = engine.generate(problems["prompt_text"][:], SamplingParams(1, 0.0, 1.0, max_new_tokens, stop))
    greedy_ok = judge(verifier, problems, [[c.text for c in row] for row in greedy])
    metrics = {f"{prefix}/pass@1": sum(row[0] for row in greedy_ok) / max(len(greedy_ok), 1)}
    if "difficulty" in problems.column_names:  # easy -> hard tasks: greedy accuracy per level
        metrics |= per_level(problems["difficulty"][:], [row[0] for row in greedy_ok], prefix)
    if k > 1 and prefix == "eval":
        torch.manual_seed(seed)
        sampled = engine.generate(problems["prompt_text"][:], SamplingParams(k, temperature, 1.0, max_new_tokens, stop))
        texts = [[c.text for c in row] for row in sampled]
        correct, answers = judge(verifier, problems, texts), [[extract_answer(t) for t in row] for row in texts]
        metrics |= sample_metrics(correct, answers, k)
        metrics[f"{prefix}/headroom"] = metrics[f"{prefix}/pass@{k}"] - metrics[f"{prefix}/pass@1"]
        if observe is not None:
            metrics |= observe(problems["prompt_id"][:], sampled, correct, answers)
    # A verifier that counts its work (the code sandbox) reports it here, not in the next round's rewards.
    pop = getattr(verifier, "pop_metrics", None)
    if callable(pop):
        metrics |= {f"{prefix}/verifier/{key}": float(value) for key, value in pop().items()}
    return metrics
