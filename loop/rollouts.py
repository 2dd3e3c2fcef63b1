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

import pyarrow.parquet as pq
import torch
from datasets import Dataset, Features

from policies.atomic import parquet_rows, save_parquet
from policies.engines.base import RolloutEngine, SamplingParams
from policies.schema import PROMPT, ROLLOUT
from rewards import passes


def seed_for(*parts: object) -> int:
    """A stable 63-bit seed from any parts (independent of PYTHONHASHSEED)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generate_shards(engine: RolloutEngine, prompts: Dataset, params: SamplingParams, out_dir: Path,
                    prompts_per_shard: int, seed: int, round_idx: int,
                    advance: Callable[[int], None] = lambda n: None,
                    on_shard: Callable[[Path], None] = lambda path: None) -> list[Path]:
    """Generate `params.n` samples per prompt into `out_dir/shard_*.parquet`, skipping finished
    shards; returns the shards' paths (the rows stay on disk: a round can be larger than memory).
    `on_shard` gets each shard, in order, as soon as it is complete (a background scorer's cue)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    shards = []
    for index, start in enumerate(range(0, len(prompts), prompts_per_shard)):
        path = out_dir / f"shard_{index:05d}.parquet"
        stop = min(start + prompts_per_shard, len(prompts))
        if not _complete(path, (stop - start) * params.n):
            rows = prompts.select(range(start, stop))
            shard_seed = seed_for(seed, round_idx, out_dir.name, index)
            torch.manual_seed(shard_seed)
            completions = engine.generate(rows["prompt_text"][:], replace(params, seed=shard_seed % 2**31))
            records = _records(rows, completions, engine.generator_id, round_idx)
            extra = Features({k: v for k, v in rows.features.items() if k not in PROMPT})
            save_parquet(Dataset.from_list(records, features=Features({**ROLLOUT, **extra})), path)
        shards.append(path)
        on_shard(path)
        advance(stop - start)
    return shards


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


def level_pass_rate(scored_path: Path, level: int, threshold: float) -> float:
    """Share of a round's samples at difficulty `level` whose reward reached `threshold` (0 if none)."""
    table = pq.read_table(scored_path, columns=["difficulty", "reward"]).to_pydict()
    at_level = [r for d, r in zip(table["difficulty"], table["reward"]) if d == level]
    return sum(passes(r, threshold) for r in at_level) / len(at_level) if at_level else 0.0
