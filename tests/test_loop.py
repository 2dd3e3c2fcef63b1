"""The whole loop on a tiny model: a 2-round run, kill-and-resume in three places, bad input.

The kill tests SIGKILL a real `loop run` process (no fault injection) once the run dir shows
it is inside generation, inside training, or just past a phase boundary; `loop resume` must
then end with the same per-round metrics as an uninterrupted run with the same seed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from conftest import comparable, kill_when, launch, read_state, weight_change, write_config
from loop.cli import main

@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted 2-round run."""
    tmp = tmp_path_factory.mktemp("reference")
    assert main(["run", str(write_config(tmp))]) == 0
    return tmp / "runs" / "tiny"


def test_two_round_run_writes_the_documented_layout(reference: Path):
    rows = comparable(reference)
    assert [r["round"] for r in rows] == [0, 1, 2]
    for key in ("eval/pass@1", "eval/pass@2", "eval/maj@2", "control/pass@1"):
        assert all(0.0 <= r[key] <= 1.0 and (r[key] * 12).is_integer() for r in rows), key  # of 12 problems
    for key in ("filter/stack/accept_rate", "reward/math/mean", "train/steps", "train/examples"):
        assert all(key in r for r in rows[1:]), key
    times = json.loads((reference / "metrics.jsonl").read_text().splitlines()[1])
    assert {f"time/{p}_s" for p in ("generate", "reward", "filter", "train", "swap", "evaluate")} <= set(times)
    state = json.loads((reference / "state.json").read_text())
    assert state["done"] and state["generator_id"] == "round_002"
    for r in (1, 2):
        rd = reference / f"round_{r:03d}"
        assert len(list((rd / "rollouts").glob("shard_*.parquet"))) == 16
        assert (rd / "checkpoint" / "model.safetensors").exists()
        assert (rd / "scored.parquet").exists() and (rd / "train" / "examples.parquet").exists()
        assert weight_change(reference / f"round_{r - 1:03d}" / "checkpoint", rd / "checkpoint") > 0  # it trained
    assert yaml.safe_load((reference / "config.yaml").read_text())["seed"] == 3
    assert (reference / "accuracy.png").stat().st_size > 1000
    assert not list(reference.rglob("*.tmp"))


def test_rollouts_record_provenance(reference: Path):
    from datasets import Dataset

    scored = Dataset.from_parquet(str(reference / "round_002" / "scored.parquet"))
    row = scored[0]
    assert row["generator_id"] == "round_001" and row["round"] == 2
    assert row["sample_index"] in (0, 1) and row["token_count"] > 0 and row["sum_logprob"] < 0
    assert {"reward", "reward/math", "reason/math"} <= set(scored.column_names)


def _kill_points(run_dir: Path):
    rollouts = run_dir / "round_001" / "rollouts"
    train = run_dir / "round_001" / "train"
    return {
        "generate": (lambda: (rollouts / "shard_00002.parquet").exists(),
                     lambda: len(list(rollouts.glob("shard_*.parquet"))) < 16),
        "train": (lambda: any(train.glob("checkpoint-*/trainer_state.json")),
                  lambda: not (train / "result.json").exists()),
        "between phases": (lambda: read_state(run_dir).get("phase") == "reward" and read_state(run_dir)["round"] == 1,
                           lambda: read_state(run_dir).get("round") == 1),
    }


@pytest.mark.parametrize("where", ["generate", "train", "between phases"])
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path: Path, reference: Path, where: str):
    config = write_config(tmp_path)
    run_dir = tmp_path / "runs" / "tiny"
    ready, still_inside = _kill_points(run_dir)[where]
    kill_when(launch(config), ready)
    assert still_inside(), f"the kill landed after {where}"
    assert not read_state(run_dir).get("done")

    assert main(["resume", str(run_dir)]) == 0
    assert comparable(run_dir) == comparable(reference)
    assert read_state(run_dir)["done"]


def test_status_says_where_a_run_stands(reference: Path, capsys):
    assert main(["status", str(reference)]) == 0
    out = capsys.readouterr().out
    assert "finished" in out and "round 2" in out


def test_resume_with_changed_config_needs_force(reference: Path, capsys):
    assert main(["resume", str(reference), "--set", "rollout.temperature=0.5"]) == 2
    assert "rollout.temperature: 1.0 -> 0.5" in capsys.readouterr().err


def test_second_process_on_the_same_run_is_refused(tmp_path: Path, capsys):
    from loop.rundir import RunDir

    config = write_config(tmp_path)
    holder = RunDir(tmp_path / "runs" / "tiny")
    holder.lock()
    try:
        assert main(["run", str(config)]) == 2
        assert f"in use by another process (pid {os.getpid()})" in capsys.readouterr().err
    finally:
        holder.unlock()


BAD_INPUT = [
    ({"data__task": None, "data__path": "missing.jsonl"}, "data.path: file 'missing.jsonl' does not exist"),
    ({"rewards": [{"name": "nonesuch"}]}, "nonesuch"),
    ({"model__name": "./no/such/model"}, "model path './no/such/model' does not exist"),
    ({"rollout__n": 0}, "rollout.n: Input should be greater than or equal to 1"),
    ({"rollout__nn": 3}, "rollout.nn: unknown key"),
]


@pytest.mark.parametrize("changes,message", BAD_INPUT, ids=[m.split(":")[0] for _, m in BAD_INPUT])
def test_bad_input_is_one_clear_line_and_exit_2(tmp_path: Path, capsys, changes, message):
    assert main(["run", str(write_config(tmp_path, **changes))]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error:")
    assert not (tmp_path / "runs").exists(), "nothing may be written for bad input"


def test_missing_mapped_column_is_caught_before_anything_is_written(tmp_path: Path, capsys):
    data = tmp_path / "problems.jsonl"
    data.write_text("".join(json.dumps({"question": f"{i}+1", "answer": str(i + 1)}) + "\n" for i in range(30)))
    config = write_config(tmp_path, data__task=None, data__path=str(data), data__eval_size=5,
                          data__columns={"prompt": "problem", "answer": "answer"}, update__seed_epochs=0,
                          control__enabled=False)
    assert main(["run", str(config)]) == 2
    assert "data.columns.prompt: column 'problem' is not in problems.jsonl (its columns: question, answer)" \
        in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_run_dir_made_by_another_config_is_refused(reference: Path, tmp_path: Path, capsys):
    config = write_config(tmp_path, runs_dir=str(reference.parent), seed=4)
    assert main(["run", str(config)]) == 2
    assert "was made by another config (seed: 3 -> 4)" in capsys.readouterr().err
