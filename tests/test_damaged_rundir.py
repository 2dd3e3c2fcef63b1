"""Damaged, edited, copied run dirs (a real tiny run, then one change to a copy of it each):
derived data is made again (rollout shards, metrics.jsonl), everything else is refused in one
line naming the file and the fix, and a copied run dir resumes on its own checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import comparable, roll_back_to_generate
from loop.cli import main

TINY = {
    "name": "tiny", "seed": 5, "rounds": 1,
    "model": {"tiny": {"arch": "qwen2", "num_layers": 1, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64}},
    "data": {"task": {"train_size": 24, "eval_size": 4, "seed_size": 4, "num_operands": 2, "max_operand": 9},
             "prompts_per_round": 4},
    "rollout": {"n": 2, "max_new_tokens": 8, "batch_size": 8, "prompts_per_shard": 1},
    "update": {"threshold": 0.0, "batch_size": 4, "seed_epochs": 0, "learning_rate": 1e-3},
    "eval": {"k": 1},
    "tracking": {"wandb": False},
}




@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("damage")
    config = tmp / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "runs_dir": str(tmp / "runs")}))
    assert main(["run", str(config)]) == 0
    return tmp / "runs" / "tiny"


@pytest.fixture
def run(reference: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "runs" / "tiny"
    shutil.copytree(reference, copy)
    return copy


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    return err


def test_state_stores_paths_relative_to_the_run_dir(reference: Path):
    state = json.loads((reference / "state.json").read_text())
    assert state["generator"] == "./round_001/checkpoint"
    assert state["policies"] == {"0": "./round_000/base", "1": "./round_001/checkpoint"}


def test_copied_run_dir_resumes_from_another_directory_on_its_own_checkpoints(run: Path, tmp_path, monkeypatch, capsys):
    moved = tmp_path / "elsewhere" / "tiny"
    shutil.move(run, moved)
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["resume", "tiny", "--set", "rounds=2", "--force"]) == 0
    state = json.loads((moved / "state.json").read_text())
    assert state["policies"]["2"] == "./round_002/checkpoint" and (moved / "round_002" / "checkpoint").exists()


@pytest.mark.parametrize("change", ["learning_rate", "rollout_n"])
def test_edited_config_yaml_is_refused_without_force(run: Path, capsys, change):
    raw = yaml.safe_load((run / "config.yaml").read_text())
    if change == "learning_rate":
        raw["update"]["learning_rate"] *= 10
    else:
        raw["rollout"]["n"] = 4
    (run / "config.yaml").write_text(yaml.safe_dump(raw))
    assert main(["resume", str(run)]) == 2
    assert "config.yaml was edited since the run started" in one_error_line(capsys)
    assert main(["resume", str(run), "--force"]) == 0
    assert main(["resume", str(run)]) == 0  # accepted once, it is the run's config


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_missing_or_truncated_rollout_shard_is_made_again(run: Path, reference: Path, damage):
    roll_back_to_generate(run)
    shard = run / "round_001" / "rollouts" / "shard_00002.parquet"
    if damage == "deleted":
        shard.unlink()
    else:
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    assert main(["resume", str(run)]) == 0
    from datasets import Dataset

    assert Dataset.from_parquet(str(shard)).num_rows == 2
    assert comparable(run) == comparable(reference)  # the same samples: the shard is a seeded computation


@pytest.mark.parametrize("damage", ["deleted", "garbage-line", "binary"])
def test_metrics_jsonl_is_rebuilt_from_the_phase_files(run: Path, reference: Path, capsys, damage):
    if damage == "deleted":
        (run / "metrics.jsonl").unlink()
    elif damage == "garbage-line":
        with (run / "metrics.jsonl").open("a") as f:
            f.write("{not json\n")
    else:
        (run / "metrics.jsonl").write_bytes(bytes(range(256)))
    if damage != "deleted":
        assert main(["status", str(run)]) == 2  # status only reads: it names the file and the fix
        line = one_error_line(capsys)
        assert f"{run / 'metrics.jsonl'}:" in line and "`loop resume` rebuilds it" in line
    assert main(["resume", str(run)]) == 0
    assert "rebuilt" in capsys.readouterr().out
    assert comparable(run) == comparable(reference)
    assert (run / "metrics.jsonl").read_text() == (reference / "metrics.jsonl").read_text()


@pytest.mark.parametrize("content,what", [
    ('{"round": 1, "pha', "not JSON"),
    ("\x00\x01garbage", "not JSON"),
    ("[1, 2]", "a JSON list"),
    ('{"round": "one"}', "key 'round'"),
    ('{"round": 1, "bogus": 2}', "key 'bogus'"),
    ('{"policies": ["a"]}', "key 'policies'"),
], ids=["truncated", "garbage", "list", "round-string", "unknown-key", "policies-list"])
def test_damaged_state_json_is_one_line_naming_it(run: Path, capsys, content, what):
    (run / "state.json").write_text(content)
    for command in (["resume", str(run)], ["status", str(run)]):
        assert main(command) == 2
        line = one_error_line(capsys)
        assert f"{run / 'state.json'} is damaged" in line and what in line and "restore it" in line


def test_missing_round_checkpoint_is_one_line_naming_it(run: Path, capsys):
    shutil.rmtree(run / "round_001" / "checkpoint")
    assert main(["resume", str(run)]) == 2
    line = one_error_line(capsys)
    assert f"{run / 'round_001' / 'checkpoint'} is missing" in line and "restore it" in line
