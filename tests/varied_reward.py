"""A user reward, named by its import path `varied_reward:distinct_share`: the share of distinct
characters in a completion. It varies between a random tiny model's samples, so GRPO has
advantages to learn from where every built-in reward would score them all alike."""

from __future__ import annotations


def distinct_share(prompts: list, completions: list, **columns) -> list[float]:
    return [len(set(text)) / max(len(text), 1) for text in completions]
