"""RFT (rejection-sampling fine-tuning): keep what the verifier accepts, then SFT on it.

Keep samples whose total reward is >= `threshold`, drop identical completions of the same
prompt, keep at most K per prompt, and fine-tune on the completions only. With `init: base`
(the controller's concern) this is the ReST-EM / STaR recipe of restarting from the base
model each round; with `init: previous` it continues from the last round.
"""

from __future__ import annotations

from collections import Counter

from datasets import Dataset

from policies.updates.config import DifficultyBand, UpdateConfig
from policies.launch import train
from policies.training import TrainJob, TrainResult
from policies.schema import ACCEPT_RATE, SFT_EXAMPLE
from policies.updates.base import BuildContext


def select_accepted(scored: Dataset, threshold: float, max_per_prompt: int, dedup: bool,
                    band: DifficultyBand | None = None) -> tuple[list[int], dict]:
    """Row indices to train on, in rollout order, and counts of what each rule dropped.

    With a difficulty `band`, prompts whose pass rate (share of their samples at or above
    `threshold`) lies outside [lo, hi] are dropped whole: all-solved prompts teach little,
    never-solved ones give nothing right to learn from.
    """
    prompt_ids, rewards = scored["prompt_id"][:], scored["reward"][:]
    passing = [r is not None and r >= threshold for r in rewards]
    out_of_band = _outside_band(prompt_ids, passing, band) if band is not None else set()
    kept, seen, per_prompt = [], set(), Counter()
    dropped = Counter()
    for i, (pid, text) in enumerate(zip(prompt_ids, scored["completion"][:])):
        if not passing[i]:
            dropped["below_threshold"] += 1
        elif pid in out_of_band:
            dropped["out_of_band"] += 1
        elif dedup and (pid, text.strip()) in seen:
            dropped["duplicate"] += 1
        elif per_prompt[pid] >= max_per_prompt:
            dropped["over_cap"] += 1
        else:
            kept.append(i)
            seen.add((pid, text.strip()))
            per_prompt[pid] += 1
    return kept, dict(dropped)


def _outside_band(prompt_ids: list[str], passing: list[bool], band: DifficultyBand) -> set[str]:
    samples, passed = Counter(prompt_ids), Counter(pid for pid, ok in zip(prompt_ids, passing) if ok)
    return {pid for pid, n in samples.items() if not band.lo <= passed[pid] / n <= band.hi}


def filter_metrics(scored: Dataset, kept: list[int], dropped: dict) -> dict[str, float]:
    prompt_ids = scored["prompt_id"][:]
    prompts = set(prompt_ids)
    solved = {prompt_ids[i] for i in kept}
    total = max(len(scored), 1)
    metrics = {
        "rollout/prompt_solve_rate": len(solved) / max(len(prompts), 1),
        "filter/kept": float(len(kept)),
        ACCEPT_RATE: len(kept) / total,  # see policies/schema.py
    }
    for rule in ("below_threshold", "out_of_band", "duplicate", "over_cap"):
        metrics[f"filter/dropped_{rule}"] = float(dropped.get(rule, 0))
    return metrics


def difficulty_accept_rate(scored: Dataset, threshold: float, band: DifficultyBand) -> float:
    """Share of prompts whose pass rate lies inside the band."""
    prompt_ids = scored["prompt_id"][:]
    passing = [r is not None and r >= threshold for r in scored["reward"][:]]
    prompts = set(prompt_ids)
    return 1 - len(_outside_band(prompt_ids, passing, band)) / max(len(prompts), 1)


def to_examples(scored: Dataset, rows: list[int]) -> Dataset:
    picked = scored.select(rows)
    return Dataset.from_dict({"prompt": picked["prompt_text"][:], "completion": picked["completion"][:],
                              "prompt_id": picked["prompt_id"][:]}, features=SFT_EXAMPLE)


class RFT:
    name = "rft"

    def __init__(self, cfg: UpdateConfig):
        self.cfg = cfg

    def build_examples(self, scored: Dataset, ctx: BuildContext) -> tuple[Dataset, dict[str, float]]:
        cfg = self.cfg
        kept, dropped = select_accepted(scored, cfg.threshold, cfg.max_per_prompt, cfg.dedup, cfg.difficulty)
        metrics = filter_metrics(scored, kept, dropped)
        if cfg.difficulty is not None:
            metrics["filter/difficulty/accept_rate"] = difficulty_accept_rate(scored, cfg.threshold, cfg.difficulty)
        return to_examples(scored, kept), metrics

    def train(self, job: TrainJob, num_processes: int, callbacks: tuple = ()) -> TrainResult:
        return train(job, num_processes, callbacks)
