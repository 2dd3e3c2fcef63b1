"""Rollouts: sharded, seeded generation to Parquet, and scoring with the configured rewards.

One row per sample, with provenance (`round`, `prompt_id`, `sample_index`, `generator_id`).
Each shard is seeded from (run seed, round, name, shard index) and written atomically, so a
killed generation resumes at the first missing shard and produces the same samples.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
from datasets import Dataset, Features, Value, concatenate_datasets

from policies.atomic import parquet_rows, save_parquet
from policies.engines.base import RolloutEngine, SamplingParams
from policies.schema import PROMPT, ROLLOUT, SCORE
from rewards import WeightedReward, score_all


def seed_for(*parts: object) -> int:
    """A stable 63-bit seed from any parts (independent of PYTHONHASHSEED)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generate_shards(engine: RolloutEngine, prompts: Dataset, params: SamplingParams, out_dir: Path,
                    prompts_per_shard: int, seed: int, round_idx: int,
                    advance: Callable[[int], None] = lambda n: None) -> Dataset:
    """Generate `params.n` samples per prompt into `out_dir/shard_*.parquet`, skipping finished shards."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shards = []
    for index, start in enumerate(range(0, len(prompts), prompts_per_shard)):
        path = out_dir / f"shard_{index:05d}.parquet"
        rows = prompts.select(range(start, min(start + prompts_per_shard, len(prompts))))
        if not _complete(path, len(rows) * params.n):
            shard_seed = seed_for(seed, round_idx, out_dir.name, index)
            torch.manual_seed(shard_seed)
            completions = engine.generate(rows["prompt_text"][:], replace(params, seed=shard_seed % 2**31))
            records = _records(rows, completions, engine.generator_id, round_idx)
            extra = Features({k: v for k, v in rows.features.items() if k not in PROMPT})
            save_parquet(Dataset.from_list(records, features=Features({**ROLLOUT, **extra})), path)
        shards.append(Dataset.from_parquet(str(path)))
        advance(len(rows))
    return concatenate_datasets(shards)


def _complete(shard: Path, rows: int) -> bool:
    """A shard that exists, parses and holds all its rows; anything else is made again."""
    try:
        return parquet_rows(shard) == rows
    except (OSError, ValueError):  # missing, truncated (pyarrow raises ArrowInvalid, a ValueError)
        return False


def _records(rows: Dataset, completions, generator_id: str, round_idx: int) -> list[dict]:
    records = []
    for row, samples in zip(rows, completions):
        # Columns beyond the canonical ones (a code problem's `tests`) ride along for the rewards.
        extra = {k: v for k, v in row.items() if k not in PROMPT}
        for k, c in enumerate(samples):
            records.append({
                "round": round_idx, "prompt_id": row["prompt_id"], "sample_index": k,
                "prompt": row["prompt"], "prompt_text": row["prompt_text"],
                "reference_answer": row["reference_answer"], "completion": c.text,
                "token_count": c.token_count, "sum_logprob": c.sum_logprob,
                "finish_reason": c.finish_reason, "generator_id": generator_id, **extra,
            })
    return records


def score(rollouts: Dataset, rewards: list[WeightedReward]) -> tuple[Dataset, dict[str, float]]:
    """Add `reward` (weighted total), `reward/<name>` and `reason/<name>` columns; reward metrics."""
    columns = rollouts.to_dict()  # plain lists: iterating Arrow-backed columns row by row is slow
    prompts, completions = columns.pop("prompt_text"), columns.pop("completion")
    table = score_all(rewards, prompts, completions, **columns)
    out = {**columns, "prompt_text": prompts, "completion": completions, "reward": table.total,
           "rejected_by": table.rejected_by}
    metrics = {"reward/total/mean": _mean(table.total)}
    for name, values in table.scores.items():
        out[f"reward/{name}"], out[f"reason/{name}"] = values, table.reasons[name]
        metrics[f"reward/{name}/mean"] = _mean(values)
        metrics[f"reward/{name}/none_rate"] = sum(v is None for v in values) / max(len(values), 1)
        metrics |= {f"reward/{name}/{k}": float(v) for k, v in table.metrics.get(name, {}).items()}
    for name, (reached, passed) in table.gates.items():
        metrics[f"filter/{name}/accept_rate"] = passed / reached if reached else float("nan")
    if table.gates:
        metrics["filter/gates/accept_rate"] = _mean([not r for r in table.rejected_by])
    scored = Dataset.from_dict(out, features=_scored_features(rollouts.features, out))
    metrics["rollout/samples"] = float(len(rollouts))
    metrics["rollout/tokens_mean"] = _mean(columns["token_count"])
    metrics["rollout/truncated_rate"] = _mean([r == "length" for r in columns["finish_reason"]])
    metrics["rollout/logprob_mean"] = _mean(columns["sum_logprob"])
    return scored, metrics


def _mean(values) -> float:
    present = [float(v) for v in values if v is not None]
    return sum(present) / len(present) if present else float("nan")


def _scored_features(rollout: Features, columns: dict) -> Features:
    """The rollout's own types, `SCORE`, and float/string per reward (a column of all-None
    scores would otherwise be typed `null` and change type between rounds)."""
    per_reward = {c: Value("float64") if c.startswith("reward/") else Value("string")
                  for c in columns if c.startswith(("reward/", "reason/"))}
    return Features({**rollout, **SCORE, **per_reward})
