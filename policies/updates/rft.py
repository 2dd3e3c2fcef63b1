"""RFT (rejection-sampling fine-tuning): keep what the verifier accepts, then SFT on it.

Keep samples whose total reward is >= `threshold`, drop identical completions of the same
prompt, keep at most K per prompt, and fine-tune on the completions only. With `init: base`
(the controller's concern) this is the ReST-EM / STaR recipe of restarting from the base
model each round; with `init: previous` it continues from the last round.
"""

from __future__ import annotations

import hashlib
from collections import Counter

from datasets import Dataset

from policies.updates.config import DifficultyBand, UpdateConfig
from policies.launch import train
from policies.training import TrainJob, TrainResult
from policies.schema import ACCEPT_RATE, SFT_EXAMPLE
from policies.tables import ScoredRollouts
from policies.updates.base import BuildContext
from rewards import passes


def select_accepted(scored: ScoredRollouts, threshold: float, max_per_prompt: int, dedup: bool,
                    band: DifficultyBand | None = None,
                    counts: dict[str, list[int]] | None = None) -> tuple[list[int], dict]:
    """Row indices to train on, in rollout order, and counts of what each rule dropped.

    With a difficulty `band`, prompts whose pass rate (share of their samples at or above
    `threshold`) lies outside [lo, hi] are dropped whole: all-solved prompts teach little,
    never-solved ones give nothing right to learn from. One streaming pass per rule that
    needs the whole round: the band's per-prompt pass counts first, then the selection,
    which remembers only a digest of each kept completion. A caller that already holds the
    band's `counts` (`pass_counts` at the same threshold) passes them and saves that pass.
    """
    if band is not None and counts is None:
        counts = pass_counts(scored, threshold)
    out_of_band = _outside_band(counts, band) if band is not None else set()
    kept, seen, per_prompt = [], set(), Counter()
    dropped = Counter()
    for i, pid, reward, text in scored.rows(["prompt_id", "reward", "completion"]):
        if not passes(reward, threshold):  # None (unjudged, gated) and NaN never pass
            dropped["below_threshold"] += 1
        elif pid in out_of_band:
            dropped["out_of_band"] += 1
        elif dedup and (key := completion_key(text, pid)) in seen:
            dropped["duplicate"] += 1
        elif per_prompt[pid] >= max_per_prompt:
            dropped["over_cap"] += 1
        else:
            kept.append(i)
            if dedup:
                seen.add(key)
            per_prompt[pid] += 1
    return kept, dict(dropped)


def pass_counts(scored: ScoredRollouts, threshold: float) -> dict[str, list[int]]:
    """Per prompt: [samples, samples at or above `threshold`]."""
    counts: dict[str, list[int]] = {}
    for _, pid, reward in scored.rows(["prompt_id", "reward"]):
        entry = counts.setdefault(pid, [0, 0])
        entry[0] += 1
        entry[1] += passes(reward, threshold)
    return counts


def _outside_band(counts: dict[str, list[int]], band: DifficultyBand) -> set[str]:
    return {pid for pid, (n, passed) in counts.items() if not band.lo <= passed / n <= band.hi}


def completion_key(text: str, prompt_id: str = "") -> bytes:
    """A completion's identity for dedup (whitespace at the ends ignored), in 16 bytes; with
    `prompt_id`, its identity among that prompt's samples (one small object per kept sample
    in the dedup set, not a tuple). The id is length-prefixed, so no (id, text) pair can
    spell another."""
    return hashlib.blake2b(f"{len(prompt_id)}:{prompt_id}{text.strip()}".encode(), digest_size=16).digest()


def filter_metrics(scored: ScoredRollouts, kept: list[int], dropped: dict) -> dict[str, float]:
    """The filter's figures; `kept` in rollout order, as `select_accepted` returns it."""
    prompts, solved = set(), set()
    upcoming = iter(kept)
    next_kept = next(upcoming, None)
    for i, pid in scored.rows(["prompt_id"]):
        prompts.add(pid)
        if i == next_kept:
            solved.add(pid)
            next_kept = next(upcoming, None)
    total = max(len(scored), 1)
    metrics = {
        "rollout/prompt_solve_rate": len(solved) / max(len(prompts), 1),
        "filter/kept": float(len(kept)),
        ACCEPT_RATE: len(kept) / total,  # see policies/schema.py
    }
    for rule in ("below_threshold", "out_of_band", "duplicate", "over_cap"):
        metrics[f"filter/dropped_{rule}"] = float(dropped.get(rule, 0))
    return metrics


def difficulty_accept_rate(scored: ScoredRollouts, threshold: float, band: DifficultyBand) -> float:
    """Share of prompts whose pass rate lies inside the band."""
    return _inside_band_share(pass_counts(scored, threshold), band)


def _inside_band_share(counts: dict[str, list[int]], band: DifficultyBand) -> float:
    return 1 - len(_outside_band(counts, band)) / max(len(counts), 1)


def to_examples(scored: ScoredRollouts, rows: list[int]) -> Dataset:
    """The kept rows as SFT examples, column by column in Arrow (no per-row Python objects)."""
    picked = scored.take_table(rows, ["prompt_text", "completion", "prompt_id"])
    # Renamed and cast in Arrow: `Dataset.cast` would copy the table through `map`.
    return Dataset(picked.rename_columns(list(SFT_EXAMPLE)).cast(SFT_EXAMPLE.arrow_schema))


class RFT:
    name = "rft"

    def __init__(self, cfg: UpdateConfig):
        self.cfg = cfg

    def build_examples(self, scored: ScoredRollouts, ctx: BuildContext) -> tuple[Dataset, dict[str, float]]:
        cfg = self.cfg
        counts = pass_counts(scored, cfg.threshold) if cfg.difficulty is not None else None  # one pass for both uses
        kept, dropped = select_accepted(scored, cfg.threshold, cfg.max_per_prompt, cfg.dedup, cfg.difficulty, counts)
        metrics = filter_metrics(scored, kept, dropped)
        if cfg.difficulty is not None:
            metrics["filter/difficulty/accept_rate"] = _inside_band_share(counts, cfg.difficulty)
        return to_examples(scored, kept), metrics

    def train(self, job: TrainJob, num_processes: int, callbacks: tuple = ()) -> TrainResult:
        return train(job, num_processes, callbacks)
