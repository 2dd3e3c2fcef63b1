"""The background scorer (`loop.scorer`): a real low-priority worker process scores shards while
they are generated; the round's table is the one scoring in process writes, whoever scored
which shard, and whatever became of the worker."""

from __future__ import annotations

import math
import os
import signal
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datasets import Dataset

from loop.scorer import BackgroundScorer, write_part
from loop.scoring import score_shards
from policies.atomic import save_parquet
from policies.judges import build_rewards
from rewards.registry import RewardSpec
from test_scoring import rollout_shard

DEMO = [RewardSpec(name="length", weight=0.0, gate=1.0, args={"min_tokens": 10}),
        RewardSpec(name="math"), RewardSpec(name="steps", args={"all_or_nothing": True})]


def write_shards(round_dir: Path, sizes: list[int]) -> list[Path]:
    shards, start = [], 0
    for index, size in enumerate(sizes):
        shards.append(round_dir / "rollouts" / f"shard_{index:05d}.parquet")
        save_parquet(rollout_shard(start, size), shards[-1])
        start += size
    return shards


def scorer(specs: list[RewardSpec] = DEMO) -> BackgroundScorer:
    return BackgroundScorer(specs)


def assert_same_scoring(tmp_path: Path, shards: list[Path], got: tuple[list, dict], out: Path) -> None:
    expected_preview, expected_metrics = score_shards(shards, tmp_path / "expected.parquet", build_rewards(DEMO),
                                                      preview_rows=3)
    expected = Dataset.from_parquet(str(tmp_path / "expected.parquet"))
    table = Dataset.from_parquet(str(out))
    assert table.features == expected.features
    assert table.to_dict() == expected.to_dict()
    preview, metrics = got
    assert preview == expected_preview
    assert metrics.keys() == expected_metrics.keys()
    for key, value in expected_metrics.items():
        assert value == pytest.approx(metrics[key]) or (math.isnan(value) and math.isnan(metrics[key])), key
    assert not (out.parent / "scored_parts").exists()


def test_the_round_table_is_the_one_scoring_in_process_writes(tmp_path: Path):
    shards = write_shards(tmp_path / "round_001", [12, 8, 16, 4])
    background = scorer()
    try:
        for shard in shards:  # as generation hands them over
            background.submit(shard)
        got = finish_round(background, shards)
    finally:
        background.close()
    out = tmp_path / "round_001" / "scored.parquet"
    assert_same_scoring(tmp_path, shards, got, out)
    assert metadata_keys(out) == metadata_keys(tmp_path / "expected.parquet")  # no part provenance left


def finish_round(background: BackgroundScorer, shards: list[Path]) -> tuple[list, dict]:
    """The reward phase of round 1: `round_001/scored.parquet`, and its preview and metrics."""
    return background.finish(shards, shards[0].parent.parent / "scored.parquet", build_rewards(DEMO), preview_rows=3)


def metadata_keys(path: Path) -> set[bytes]:
    return set(pq.read_metadata(path).metadata)


def wait_for_part(shard: Path) -> None:
    deadline = time.monotonic() + 60
    while not BackgroundScorer.part_of(shard).exists():
        assert time.monotonic() < deadline, f"the worker never scored {shard.name}"
        time.sleep(0.05)


def test_the_worker_runs_at_idle_priority_and_its_death_loses_nothing(tmp_path: Path):
    shards = write_shards(tmp_path / "round_001", [12, 8, 16, 4])
    background = scorer()
    try:
        background.submit(shards[0])
        wait_for_part(shards[0])
        pid = background._sandbox._process.pid
        assert os.sched_getscheduler(pid) == os.SCHED_IDLE
        if Path("/proc/self/autogroup").exists():  # kernels with autogroup scheduling (most distributions')
            assert Path(f"/proc/{pid}/autogroup").read_text().split()[-1] == "19"
        os.kill(pid, signal.SIGKILL)  # as the OOM killer would
        background._sandbox._process.wait()  # (a call sent before it is gone fails: `finish` redoes it here)
        background.submit(shards[1])  # a fresh worker takes it, and goes idle once it has
        wait_for_part(shards[1])
        assert os.sched_getscheduler(background._sandbox._process.pid) == os.SCHED_IDLE
        got = finish_round(background, shards)  # the rest, never handed over, are scored on the way
    finally:
        background.close()
    assert_same_scoring(tmp_path, shards, got, tmp_path / "round_001" / "scored.parquet")


def test_a_part_counts_only_for_the_same_shard_and_the_same_rewards(tmp_path: Path):
    """What a resumed run finds: a part of a shard since regenerated, and a part scored under
    other rewards (`--force`), are scored again; a part whose footer matches is used as it is."""
    shards = write_shards(tmp_path / "round_001", [12, 8, 16])
    parts = tmp_path / "round_001" / "scored_parts"
    lenient = [RewardSpec(name="length", weight=0.0, gate=1.0, args={"min_tokens": 1})] + DEMO[1:]
    write_part(shards[0], parts / shards[0].name, build_rewards(lenient), scorer(lenient).rewards_id)
    write_part(shards[1], parts / shards[1].name, build_rewards(DEMO), scorer().rewards_id)
    save_parquet(rollout_shard(12, 8), shards[1])  # regenerated: same rows, a new file
    # Scored under the lenient gate but labelled as DEMO's: if it is used as it is, the table shows it.
    write_part(shards[2], parts / shards[2].name, build_rewards(lenient), scorer().rewards_id)
    background = scorer()
    try:
        background.submit(shards[2])  # its part matches: not sent to the worker
        assert background._futures == {}
        got = background.finish(shards, tmp_path / "round_001" / "scored.parquet", build_rewards(DEMO), preview_rows=3)
    finally:
        background.close()
    table = Dataset.from_parquet(str(tmp_path / "round_001" / "scored.parquet")).to_dict()
    score_shards(shards[:2], tmp_path / "first.parquet", build_rewards(DEMO))
    score_shards(shards[2:], tmp_path / "last.parquet", build_rewards(lenient))
    first, last = (Dataset.from_parquet(str(tmp_path / f"{name}.parquet")).to_dict() for name in ("first", "last"))
    assert table == {column: first[column] + last[column] for column in first}
    assert got[1]["rollout/samples"] == 36.0


def test_no_rollouts_give_an_empty_table_with_every_reward_column(tmp_path: Path):
    background = scorer()
    try:
        preview, metrics = background.finish([], tmp_path / "scored.parquet", build_rewards(DEMO), preview_rows=3)
    finally:
        background.close()
    table = pq.read_table(tmp_path / "scored.parquet")
    assert table.num_rows == 0 and "reward/math" in table.column_names and "reason/steps" in table.column_names
    assert preview == [] and metrics["rollout/samples"] == 0.0


def count_words(prompts, completions, **columns):
    return [float(len(c.split())) for c in completions]


@pytest.mark.parametrize("spec, background", [
    (RewardSpec(name="math"), True),
    (RewardSpec(name="majority"), True),
    (RewardSpec(name="code"), False),  # its sandbox counters (`pop_metrics`) would be split over two processes
    (RewardSpec(name="judge", args={"backend": "policy"}), False),  # judges through the live policy
    (RewardSpec(name="test_scorer:count_words"), False),  # a user's function may keep state, or not import there
])
def test_which_rewards_may_be_scored_in_the_background(spec: RewardSpec, background: bool):
    assert BackgroundScorer.supports([DEMO[0], spec]) is background


def test_the_worker_measures_the_rollouts_diversity_as_this_process_does(tmp_path: Path):
    import torch

    from loop.monitor.config import MonitorConfig
    from loop.monitor.monitor import Monitor

    shards = write_shards(tmp_path / "round_001", [12, 8, 16])
    cfg = MonitorConfig(sample_prompts=6, embed_prompts=3, self_bleu_texts=8)
    background = BackgroundScorer(DEMO, (cfg.model_dump(mode="json"), str(tmp_path), 7))
    try:
        background.measure_rollouts(1, shards, threads=1)
        assert background.rollout_set(shards) is None  # the worker is still booting: measured in process
        background.measure_rollouts(1, shards, threads=1)
        background._rollout_set[1].result()  # a worker that has booted (in a run: during round 0)
        assert background.rollout_set(shards[:2]) is None  # measured for other shards: not used
        background.measure_rollouts(1, shards, threads=1)
        background._rollout_set[1].result()
        measured = background.rollout_set(shards)
    finally:
        background.close()
    torch.set_num_threads(1)
    expected = Monitor(cfg, tmp_path, 7, print).rollout_set(1, shards)
    assert measured.pop("monitor/rollouts_background_seconds") > 0
    assert any("embed" in key for key in expected)  # the embedding model ran on both sides
    assert measured.keys() == expected.keys()
    for key, value in expected.items():
        assert measured[key] == value or (math.isnan(value) and math.isnan(measured[key])), key


@pytest.mark.parametrize("overrides, background", [
    ([], True),
    (["threads.background=false"], False),
    (["rewards=[{name: math}, {name: \"test_scorer:count_words\"}]"], False),  # a user function
])
def test_a_run_scores_in_the_background_unless_told_not_to_or_it_cannot(tmp_path: Path, overrides, background):
    from loop.config import load_config

    cfg = load_config("configs/demo.yaml", overrides)
    made = BackgroundScorer.for_run(cfg, tmp_path, print)
    assert (made is not None) is background
    if made is not None:
        assert made.monitor[1:] == (str(tmp_path), cfg.seed)  # the run dir it was given, not the config's
        made.close()
