"""Scoring rollouts with the run's rewards: `reward`, `reward/<name>` and `reason/<name>` columns
added to each row, and the reward metrics of a round.

No torch here: the background scorer (`loop/scorer.py`) runs this module in a worker process
that must start in about a second.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset, Features, Value

from policies.schema import ROLLOUT, SCORE
from rewards import WeightedReward, start_scoring

# Rows scored at a time: memory stays bounded by this, not by the round's size.
SCORE_BATCH_ROWS = 8192


def score(rollouts: Dataset, rewards: list[WeightedReward]) -> tuple[Dataset, dict[str, float]]:
    """Add `reward` (weighted total), `reward/<name>` and `reason/<name>` columns; reward metrics."""
    totals = ScoreTotals()
    out = _score_batch(rollouts.to_dict(), rewards, totals)
    return Dataset.from_dict(out, features=_scored_features(rollouts.features, out)), totals.metrics(rewards)


def score_shards(rollout_files: list[Path], out_path: Path, rewards: list[WeightedReward],
                 batch_rows: int = SCORE_BATCH_ROWS, preview_rows: int = 64) -> tuple[list[dict], dict[str, float]]:
    """Score rollout shards batch by batch into one Parquet file, atomically.

    Returns the first `preview_rows` rows scored (for the tracker's table) and the reward metrics over all
    rows. Peak memory is one batch of rows plus the rewards' own state, whatever the row count.
    A killed call leaves no `out_path` and is simply run again.
    """
    totals = ScoreTotals()
    with ScoredWriter(out_path, batch_rows, preview_rows) as out:
        for table in scored_batches(rollout_files, rewards, totals, batch_rows):
            out.write(table)
        out.close(empty_schema=empty_scored_schema(rewards))
    return out.preview, totals.metrics(rewards)


def scored_batches(rollout_files: list[Path], rewards: list[WeightedReward], totals: ScoreTotals,
                   batch_rows: int = SCORE_BATCH_ROWS):
    """The scored rows of the rollout files, in order, as Arrow tables of at most `batch_rows` rows.

    Batches are started ahead (`rewards.compose.start_scoring`) and finished once those in
    flight hold more than `batch_rows` rows: the checks a reward runs in worker processes (the
    math reward's symbolic ones) go on while this process judges the next batches, and a few
    small shards ahead cover the threads' hand-offs (tens of ms) that one would not.
    """
    started: deque = deque()
    in_flight = 0
    for path in rollout_files:
        shard = pq.ParquetFile(path)
        for batch in shard.iter_batches(batch_rows):
            started.append((_start_batch(batch.to_pydict(), rewards), shard.schema_arrow))
            in_flight += batch.num_rows
            while in_flight > batch_rows:
                table = _finish_batch(*started.popleft(), totals)
                in_flight -= table.num_rows
                yield table
    while started:
        yield _finish_batch(*started.popleft(), totals)


def empty_scored_schema(rewards: list[WeightedReward]) -> pa.Schema:
    """The columns a scored table of no rollouts has."""
    columns = {f"{prefix}{reward.name}": [] for reward in rewards for prefix in ("reward/", "reason/")}
    return _scored_features(ROLLOUT, columns).arrow_schema


class ScoredWriter:
    """Scored tables into one Parquet file, atomically (a temp file renamed by `close`).

    Tables are gathered into row groups of at least `group_rows` rows: shards are small (a few
    hundred rows), and one row group each would make the file's footer, held in memory while
    writing, grow with the round. The first `preview_rows` rows are kept in `preview`.
    """

    def __init__(self, out_path: Path, group_rows: int = SCORE_BATCH_ROWS, preview_rows: int = 0):
        self.out_path, self.group_rows, self.preview_rows = Path(out_path), group_rows, preview_rows
        self.preview: list[dict] = []
        self._writer: pq.ParquetWriter | None = None
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.out_path.name}.", suffix=".tmp", dir=self.out_path.parent)
        os.close(fd)

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, table.schema)
        elif table.schema != self._writer.schema:  # e.g. a batch with a reward column all None
            table = table.cast(self._writer.schema)
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= self.group_rows:
            self._flush()
        if len(self.preview) < self.preview_rows:
            self.preview += table.slice(0, self.preview_rows - len(self.preview)).to_pylist()

    def close(self, empty_schema: pa.Schema, metadata: dict[str, str] | None = None) -> None:
        """Finish the file (with `empty_schema` if nothing was written) and move it into place;
        `metadata` goes into the file's footer."""
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._tmp, empty_schema)
        self._flush()
        if metadata:
            self._writer.add_key_value_metadata(metadata)
        self._writer.close()
        os.replace(self._tmp, self.out_path)

    def _flush(self) -> None:
        if self._pending:
            self._writer.write_table(pa.concat_tables(self._pending))
            self._pending, self._pending_rows = [], 0

    def __enter__(self) -> ScoredWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        if self._writer is not None and exc_info[0] is not None:
            self._writer.close()
        Path(self._tmp).unlink(missing_ok=True)  # already renamed when `close` ran


def _score_batch(columns: dict[str, list], rewards: list[WeightedReward], totals: ScoreTotals) -> dict[str, list]:
    """One batch of rollout columns (plain lists) with the score columns added."""
    return _finish_columns(*_start_batch(columns, rewards), totals)


def _start_batch(columns: dict[str, list], rewards: list[WeightedReward]) -> tuple[dict, Callable]:
    prompts, completions = columns["prompt_text"], columns["completion"]
    return columns, start_scoring(rewards, prompts, completions, pop_metrics=False, **_reward_columns(columns))


def _finish_batch(started: tuple[dict, Callable], source_schema: pa.Schema, totals: ScoreTotals) -> pa.Table:
    out = _finish_columns(*started, totals)
    return pa.Table.from_pydict(out, schema=_scored_schema(source_schema, tuple(out)))


def _finish_columns(columns: dict[str, list], scoring: Callable, totals: ScoreTotals) -> dict[str, list]:
    table = scoring()
    rest = _reward_columns(columns)
    out = {**rest, "prompt_text": columns["prompt_text"], "completion": columns["completion"],
           "reward": table.total, "rejected_by": table.rejected_by}
    for name, values in table.scores.items():
        out[f"reward/{name}"], out[f"reason/{name}"] = values, table.reasons[name]
    totals.add(table, rest)
    return out


def _reward_columns(columns: dict[str, list]) -> dict[str, list]:
    """The columns besides the prompt and completion, which rewards read as keyword arguments."""
    return {k: v for k, v in columns.items() if k not in ("prompt_text", "completion")}


class ScoreTotals:
    """Running sums behind the reward metrics, so batches (and parts scored apart) combine exactly."""

    def __init__(self, state: dict | None = None):
        state = state or {}
        self.sums: dict[str, list[float]] = state.get("sums", {})  # metric -> [sum of present values, count]
        self.nones: dict[str, int] = state.get("nones", {})
        self.gates: dict[str, list[int]] = state.get("gates", {})
        self.rows: int = state.get("rows", 0)
        self.gate_passed: int = state.get("gate_passed", 0)

    def state(self) -> dict:
        """Everything `merge` needs (JSON-serializable)."""
        return {"sums": self.sums, "nones": self.nones, "gates": self.gates, "rows": self.rows,
                "gate_passed": self.gate_passed}

    def merge(self, other: ScoreTotals) -> None:
        for key, (total, count) in other.sums.items():
            mine = self.sums.setdefault(key, [0.0, 0])
            mine[0], mine[1] = mine[0] + total, mine[1] + count
        for name, nones in other.nones.items():
            self.nones[name] = self.nones.get(name, 0) + nones
        for name, (reached, passed) in other.gates.items():
            mine = self.gates.setdefault(name, [0, 0])
            mine[0], mine[1] = mine[0] + reached, mine[1] + passed
        self.rows += other.rows
        self.gate_passed += other.gate_passed

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


@functools.lru_cache(maxsize=8)
def _scored_schema(rollout: pa.Schema, columns: tuple[str, ...]) -> pa.Schema:
    """`_scored_features` of a shard's schema, made once: a round's shards share it, and
    building it through `datasets` costs a few milliseconds a shard."""
    return _scored_features(Features.from_arrow_schema(rollout), dict.fromkeys(columns)).arrow_schema


def _scored_features(rollout: Features, columns: dict) -> Features:
    """The rollout's own types, `SCORE`, and float/string per reward (a column of all-None
    scores would otherwise be typed `null` and change type between rounds)."""
    per_reward = {c: Value("float64") if c.startswith("reward/") else Value("string")
                  for c in columns if c.startswith(("reward/", "reason/"))}
    return Features({**rollout, **SCORE, **per_reward})
