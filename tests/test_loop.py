"""The whole loop on a tiny model: a 2-round run, kill-and-resume in three places, bad input.

The kill tests SIGKILL a real `loop run` process (no fault injection) once the run dir shows
it is inside generation, inside training, or just past a phase boundary; `loop resume` must
then end with the same per-round metrics as an uninterrupted run with the same seed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from loop.cli import main

TINY = {
    "name": "tiny",
    "seed": 3,
    "rounds": 2,
    "model": {"tiny": {"arch": "qwen2", "num_layers": 1, "hidden_size": 32, "num_heads": 2,
                       "intermediate_size": 64}},
    "data": {"task": {"train_size": 64, "eval_size": 12, "seed_size": 16, "num_operands": 2, "max_operand": 9},
             "prompts_per_round": 16},
    "rollout": {"n": 2, "max_new_tokens": 24, "batch_size": 8, "prompts_per_shard": 1},
    # threshold 0 keeps every sample, so every round trains (a random tiny model is rarely right)
    "update": {"threshold": 0.0, "max_per_prompt": 2, "batch_size": 4, "save_steps": 1, "seed_epochs": 1,
               "learning_rate": 1e-3},
    "eval": {"k": 2},
    "control": {"enabled": True},
    "tracking": {"wandb": False},
}


def write_config(tmp_path: Path, **changes) -> Path:
    cfg = json.loads(json.dumps(TINY))
    cfg["runs_dir"] = str(tmp_path / "runs")
    for dotted, value in changes.items():
        node = cfg
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def comparable(run_dir: Path) -> list[dict]:
    """metrics.jsonl without wall-clock values, which legitimately differ between runs."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if not k.startswith("time/") and not k.endswith("seconds")} for row in rows]


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
        assert all(0.0 <= r[key] <= 1.0 for r in rows), key
    for key in ("rollout/accept_rate", "reward/math/mean", "train/steps", "train/examples"):
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


def _launch(config: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "loop", "run", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"loop exited ({proc.returncode}) before the kill point: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the kill point was never reached")
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def _state(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def _kill_points(run_dir: Path):
    rollouts = run_dir / "round_001" / "rollouts"
    train = run_dir / "round_001" / "train"
    return {
        "generate": (lambda: (rollouts / "shard_00002.parquet").exists(),
                     lambda: len(list(rollouts.glob("shard_*.parquet"))) < 16),
        "train": (lambda: any(train.glob("checkpoint-*/trainer_state.json")),
                  lambda: not (train / "result.json").exists()),
        "between phases": (lambda: _state(run_dir).get("phase") == "reward" and _state(run_dir)["round"] == 1,
                           lambda: _state(run_dir).get("round") == 1),
    }


@pytest.mark.parametrize("where", ["generate", "train", "between phases"])
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path: Path, reference: Path, where: str):
    config = write_config(tmp_path)
    run_dir = tmp_path / "runs" / "tiny"
    ready, still_inside = _kill_points(run_dir)[where]
    _kill_when(_launch(config), ready)
    assert still_inside(), f"the kill landed after {where}"
    assert not _state(run_dir).get("done")

    assert main(["resume", str(run_dir)]) == 0
    assert comparable(run_dir) == comparable(reference)
    assert _state(run_dir)["done"]


def test_status_says_where_a_run_stands(reference: Path, capsys):
    assert main(["status", str(reference)]) == 0
    out = capsys.readouterr().out
    assert "finished" in out and "round 2" in out


def test_resume_with_changed_config_needs_force(reference: Path, capsys):
    assert main(["resume", str(reference), "--set", "rollout.temperature=0.5"]) == 2
    assert "rollout.temperature: 1.0 -> 0.5" in capsys.readouterr().out


def test_second_process_on_the_same_run_is_refused(tmp_path: Path, capsys):
    from loop.rundir import RunDir

    config = write_config(tmp_path)
    holder = RunDir(tmp_path / "runs" / "tiny")
    holder.lock()
    try:
        assert main(["run", str(config)]) == 2
        assert f"in use by another process (pid {os.getpid()})" in capsys.readouterr().out
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
    out = capsys.readouterr().out
    assert message in out and out.startswith("error:")
    assert not (tmp_path / "runs").exists(), "nothing may be written for bad input"


def test_missing_mapped_column_is_caught_before_anything_is_written(tmp_path: Path, capsys):
    data = tmp_path / "problems.jsonl"
    data.write_text("".join(json.dumps({"question": f"{i}+1", "answer": str(i + 1)}) + "\n" for i in range(30)))
    config = write_config(tmp_path, data__task=None, data__path=str(data), data__eval_size=5,
                          data__columns={"prompt": "problem", "answer": "answer"}, update__seed_epochs=0,
                          control__enabled=False, model__tiny=None, model__name=str(tmp_path))
    assert main(["run", str(config)]) == 2
    assert "data.columns.prompt: column 'problem' is not in problems.jsonl (its columns: question, answer)" \
        in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()


def test_run_dir_made_by_another_config_is_refused(reference: Path, tmp_path: Path, capsys):
    config = write_config(tmp_path, runs_dir=str(reference.parent), seed=4)
    assert main(["run", str(config)]) == 2
    assert "was made by another config (seed: 3 -> 4)" in capsys.readouterr().out
