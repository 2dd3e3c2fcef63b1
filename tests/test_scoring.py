"""Scoring a round's rollouts in bounded batches (`loop.scoring.score_shards`): the file and
the metrics are exactly those of scoring every row at once, with the real demo rewards."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datasets import Dataset, concatenate_datasets

from loop.scoring import score, score_shards
from policies.atomic import save_parquet
from policies.schema import ROLLOUT
from rewards import Verdict, WeightedReward, build_reward


def rollout_shard(start: int, count: int) -> Dataset:
    rows = []
    for i in range(start, start + count):
        answer = i % 7
        # right, wrong, too short for the length gate, and no answer at all, in turn
        completion = [f"1+{answer - 1}={answer}\nThe answer is {answer}.", f"1+1=2\nThe answer is {answer + 1}.",
                      "7", "I am not sure how to do this one."][i % 4]
        rows.append({"prompt_id": f"p{i // 4}", "prompt": f"1+{answer - 1}", "prompt_text": f"Q:1+{answer - 1}\n",
                     "reference_answer": str(answer), "round": 1, "sample_index": i % 4, "completion": completion,
                     "token_count": len(completion), "sum_logprob": -float(i), "finish_reason": "stop" if i % 3 else "length",
                     "generator_id": "round_000"})
    return Dataset.from_list(rows, features=ROLLOUT)


def demo_rewards() -> list[WeightedReward]:
    return [WeightedReward("length", build_reward("length", min_tokens=10), 0.0, gate=1.0),
            WeightedReward("math", build_reward("math"), 1.0),
            WeightedReward("steps", build_reward("steps", all_or_nothing=True), 1.0)]


def test_scoring_in_batches_equals_scoring_all_at_once(tmp_path: Path):
    shards = [rollout_shard(0, 13), rollout_shard(13, 8)]
    files = []
    for index, shard in enumerate(shards):
        files.append(tmp_path / f"shard_{index:05d}.parquet")
        save_parquet(shard, files[-1])
    out = tmp_path / "scored.parquet"
    preview, metrics = score_shards(files, out, demo_rewards(), batch_rows=5, preview_rows=3)
    expected, expected_metrics = score(concatenate_datasets(shards), demo_rewards())
    streamed = Dataset.from_parquet(str(out))
    assert streamed.features == expected.features
    assert streamed.to_dict() == expected.to_dict()
    assert preview == expected.select(range(3)).to_list()
    assert metrics.keys() == expected_metrics.keys()
    for key, value in expected_metrics.items():
        assert value == pytest.approx(metrics[key]) or (math.isnan(value) and math.isnan(metrics[key])), key
    assert metrics["rollout/samples"] == 21 and 0 < metrics["filter/length/accept_rate"] < 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left
    # Small shards are written in row groups of at least `batch_rows` (but the last): one
    # group per shard would grow the footer the writer holds in memory with the round.
    groups = pq.ParquetFile(out).metadata
    assert [groups.row_group(i).num_rows for i in range(groups.num_row_groups)] == [5, 5, 8, 3]


class LoggedAhead:
    """A user reward whose checks run elsewhere (`start_verdicts`): logs each batch's start and finish."""

    __name__ = "ahead"
    cost = 1

    def __init__(self):
        self.log: list[tuple[str, int]] = []

    def start_verdicts(self, prompts, completions, **columns):
        self.log.append(("start", len(completions)))

        def finish():
            self.log.append(("finish", len(completions)))
            return [Verdict(1.0, "") for _ in completions]

        return finish


def test_batches_are_started_ahead_so_checks_elsewhere_overlap_the_next_batches(tmp_path: Path):
    files = []
    for index, rows in enumerate([3, 3, 3, 2]):
        files.append(tmp_path / f"shard_{index:05d}.parquet")
        save_parquet(rollout_shard(10 * index, rows), files[-1])
    ahead = LoggedAhead()
    score_shards(files, tmp_path / "scored.parquet", [WeightedReward("ahead", ahead, 1.0)], batch_rows=5)
    # A batch is finished once those started hold more than 5 rows: never more than 5 rows plus
    # the batch just read wait on the checks.
    assert ahead.log == [("start", 3), ("start", 3), ("finish", 3), ("start", 3), ("finish", 3),
                         ("start", 2), ("finish", 3), ("finish", 2)]


def test_scoring_no_rollouts_writes_an_empty_table(tmp_path: Path):
    preview, metrics = score_shards([], tmp_path / "scored.parquet", demo_rewards())
    scored = pq.read_table(tmp_path / "scored.parquet")  # (datasets refuses to load an empty file)
    assert scored.num_rows == 0 and "reward/math" in scored.column_names and "reason/steps" in scored.column_names
    assert preview == [] and metrics["rollout/samples"] == 0.0
