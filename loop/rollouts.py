"""Rollouts: sharded, seeded generation to Parquet, and scoring with the configured rewards.

One row per sample, with provenance (`round`, `prompt_id`, `sample_index`, `generator_id`).
Each shard is seeded from (run seed, round, name, shard index) and written atomically, so a
killed generation resumes at the first missing shard and produces the same samples.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
import os
import tempfile
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from datasets import Dataset, Features, Value

from policies.atomic import parquet_rows, save_parquet
from policies.engines.base import RolloutEngine, SamplingParams
from policies.schema import PROMPT, ROLLOUT, SCORE
from rewards import WeightedReward, passes, score_all


def seed_for(*parts: object) -> int:
    """A stable 63-bit seed from any parts (independent of PYTHONHASHSEED)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generate_shards(engine: RolloutEngine, prompts: Dataset, params: SamplingParams, out_dir: Path,
                    prompts_per_shard: int, seed: int, round_idx: int,
                    advance: Callable[[int], None] = lambda n: None) -> list[Path]:
    """Generate `params.n` samples per prompt into `out_dir/shard_*.parquet`, skipping finished
    shards; returns the shards' paths (the rows stay on disk: a round can be larger than memory)."""
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
        shards.append(path)
        advance(len(rows))
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


# Rows scored at a time: memory stays bounded by this, not by the round's size.
SCORE_BATCH_ROWS = 8192


def score(rollouts: Dataset, rewards: list[WeightedReward]) -> tuple[Dataset, dict[str, float]]:
    """Add `reward` (weighted total), `reward/<name>` and `reason/<name>` columns; reward metrics."""
    totals = _ScoreTotals()
    out = _score_batch(rollouts.to_dict(), rewards, totals)
    return Dataset.from_dict(out, features=_scored_features(rollouts.features, out)), totals.metrics(rewards)


def score_shards(rollout_files: list[Path], out_path: Path, rewards: list[WeightedReward],
                 batch_rows: int = SCORE_BATCH_ROWS, preview_rows: int = 64) -> tuple[list[dict], dict[str, float]]:
    """Score rollout shards batch by batch into one Parquet file, atomically.

    Returns the first `preview_rows` rows scored (for the tracker's table) and the reward metrics over all
    rows. Peak memory is one batch of rows plus the rewards' own state, whatever the row count.
    A killed call leaves no `out_path` and is simply run again.
    """
    totals, preview, writer, pending, pending_rows = _ScoreTotals(), [], None, [], 0
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    os.close(fd)
    try:
        for path in rollout_files:
            shard = pq.ParquetFile(path)
            features = Features.from_arrow_schema(shard.schema_arrow)
            for batch in shard.iter_batches(batch_rows):
                out = _score_batch(batch.to_pydict(), rewards, totals)
                table = pa.Table.from_pydict(out, schema=_scored_features(features, out).arrow_schema)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                elif table.schema != writer.schema:  # a batch with a reward column all None
                    table = table.cast(writer.schema)
                # Shards are small (a few hundred rows): one row group each would make the
                # file's footer, held in memory while writing, grow with the round.
                pending.append(table)
                pending_rows += table.num_rows
                if pending_rows >= batch_rows:
                    writer.write_table(pa.concat_tables(pending))
                    pending, pending_rows = [], 0
                if len(preview) < preview_rows:
                    preview += table.slice(0, preview_rows - len(preview)).to_pylist()
        if writer is None:  # no rollouts: an empty table with the columns it would have had
            columns = {f"{prefix}{reward.name}": [] for reward in rewards for prefix in ("reward/", "reason/")}
            writer = pq.ParquetWriter(tmp, _scored_features(ROLLOUT, columns).arrow_schema)
        if pending:
            writer.write_table(pa.concat_tables(pending))
        writer.close()
        os.replace(tmp, out_path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return preview, totals.metrics(rewards)


def _score_batch(columns: dict[str, list], rewards: list[WeightedReward], totals: _ScoreTotals) -> dict[str, list]:
    """One batch of rollout columns (plain lists) with the score columns added."""
    prompts, completions = columns.pop("prompt_text"), columns.pop("completion")
    table = score_all(rewards, prompts, completions, pop_metrics=False, **columns)
    out = {**columns, "prompt_text": prompts, "completion": completions, "reward": table.total,
           "rejected_by": table.rejected_by}
    for name, values in table.scores.items():
        out[f"reward/{name}"], out[f"reason/{name}"] = values, table.reasons[name]
    totals.add(table, columns)
    return out


class _ScoreTotals:
    """Running sums behind the reward metrics, so batches combine exactly."""

    def __init__(self):
        self.sums: dict[str, list[float]] = {}  # metric -> [sum of present values, count]
        self.nones: dict[str, int] = {}
        self.gates: dict[str, list[int]] = {}
        self.rows = self.gate_passed = 0

    def add(self, table, columns: dict[str, list]) -> None:
        self.rows += len(table.total)
        self._add("reward/total/mean", table.total)
        for name, values in table.scores.items():
            self._add(f"reward/{name}/mean", values)
            self.nones[name] = self.nones.get(name, 0) + sum(v is None for v in values)
        for name, (reached, passed) in table.gates.items():
            counts = self.gates.setdefault(name, [0, 0])
            counts[0], counts[1] = counts[0] + reached, counts[1] + passed
        self.gate_passed += sum(not r for r in table.rejected_by)
        self._add("rollout/tokens_mean", columns["token_count"])
        self._add("rollout/truncated_rate", [r == "length" for r in columns["finish_reason"]])
        self._add("rollout/logprob_mean", columns["sum_logprob"])

    def _add(self, key: str, values) -> None:
        present = [float(v) for v in values if v is not None]
        total = self.sums.setdefault(key, [0.0, 0])
        total[0], total[1] = total[0] + sum(present), total[1] + len(present)

    def metrics(self, rewards: list[WeightedReward]) -> dict[str, float]:
        metrics = {key: s / n if n else float("nan") for key, (s, n) in self.sums.items()}
        for name, nones in self.nones.items():
            metrics[f"reward/{name}/none_rate"] = nones / max(self.rows, 1)
        for reward in rewards:  # counters kept since the last pop: the whole scoring pass
            pop = getattr(reward.fn, "pop_metrics", None)
            if callable(pop):
                metrics |= {f"reward/{reward.name}/{k}": float(v) for k, v in pop().items()}
        for name, (reached, passed) in self.gates.items():
            metrics[f"filter/{name}/accept_rate"] = passed / reached if reached else float("nan")
        if self.gates:
            metrics["filter/gates/accept_rate"] = self.gate_passed / max(self.rows, 1)
        metrics["rollout/samples"] = float(self.rows)
        return metrics


def _mean(values) -> float:
    present = [float(v) for v in values if v is not None]
    return sum(present) / len(present) if present else float("nan")


def _scored_features(rollout: Features, columns: dict) -> Features:
    """The rollout's own types, `SCORE`, and float/string per reward (a column of all-None
    scores would otherwise be typed `null` and change type between rounds)."""
    per_reward = {c: Value("float64") if c.startswith("reward/") else Value("string")
                  for c in columns if c.startswith(("reward/", "reason/"))}
    return Features({**rollout, **SCORE, **per_reward})


def level_pass_rate(scored_path: Path, level: int, threshold: float) -> float:
    """Share of a round's samples at difficulty `level` whose reward reached `threshold` (0 if none)."""
    table = pq.read_table(scored_path, columns=["difficulty", "reward"]).to_pydict()
    at_level = [r for d, r in zip(table["difficulty"], table["reward"]) if d == level]
    return sum(passes(r, threshold) for r in at_level) / len(at_level) if at_level else 0.0
