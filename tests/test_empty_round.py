"""A round whose filter keeps nothing: the policy stays as it was, the round is recorded, the
run goes on (and a resume of such a run does not crash). Real tiny runs, nothing faked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import write_config
from loop.cli import main

# The shared tiny run, smaller still: a few prompts, short samples, no seed SFT.
SMALL = {
    "name": "empty",
    "data": {"task": {"train_size": 24, "eval_size": 4, "seed_size": 4, "num_operands": 2, "max_operand": 9},
             "prompts_per_round": 4},
    "rollout": {"n": 2, "max_new_tokens": 8, "batch_size": 8, "prompts_per_shard": 2},
    "eval": {"k": 1},
}


@pytest.mark.parametrize("update", [
    {"algorithm": "rft", "threshold": 99.0},  # no reward reaches 99
    {"algorithm": "rft", "threshold": 99.0, "replay_fraction": 0.5},  # nothing to mix seed data into
    {"algorithm": "dpo", "dpo": {"min_margin": 99.0}},  # rewards are 0 or 1: no pair beats a margin of 99
], ids=["rft", "rft-replay", "dpo"])
def test_round_that_keeps_nothing_keeps_the_policy_and_goes_on(tmp_path: Path, capsys, update):
    config = write_config(tmp_path, **SMALL, update={"batch_size": 4, "seed_epochs": 0, **update})
    assert main(["run", str(config)]) == 0
    run = tmp_path / "runs" / "empty"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert all(r["train/examples"] == 0 and r["train/steps"] == 0 for r in rows[1:])
    state = json.loads((run / "state.json").read_text())
    assert state["done"]
    assert state["policies"]["1"] == state["policies"]["2"] == state["policies"]["0"]
    assert not (run / "round_001" / "checkpoint").exists()
    assert "no accepted samples" in capsys.readouterr().out
    assert main(["resume", str(run)]) == 0  # a finished run with empty rounds resumes cleanly
