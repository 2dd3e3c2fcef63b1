"""Disk stays bounded: Trainer checkpoints go once their phase is recorded; old policies on request."""

from __future__ import annotations

from pathlib import Path

from conftest import comparable, write_config
from loop.cli import main
from loop.retention import dir_bytes


def test_a_finished_run_keeps_policies_not_trainer_state(tmp_path: Path, capsys):
    config = write_config(tmp_path, rounds=3, storage={"policies": 1})
    assert main(["run", str(config)]) == 0
    run = tmp_path / "runs" / "tiny"
    assert not list(run.rglob("checkpoint-*")), "Trainer checkpoints outlived their recorded phase"
    model = dir_bytes(run / "round_000" / "checkpoint")
    # storage.policies = 1: the last round's policy, and round 0 (init: base restarts from it), stay
    assert (run / "round_000" / "checkpoint").is_dir() and (run / "round_003" / "checkpoint").is_dir()
    assert not (run / "round_001" / "checkpoint").exists() and not (run / "round_002" / "control" / "checkpoint").exists()
    per_round = {r: dir_bytes(run / f"round_{r:03d}") / model for r in range(4)}
    with capsys.disabled():
        print("\nbytes kept per round / model size:", {r: round(v, 2) for r, v in per_round.items()})
    # Rounds 1-2 keep rollouts, examples and metrics only (on a model this tiny, rollouts weigh
    # as much as weights); round 3 also its policy and the control's.
    weights = lambda r: [f for f in (run / f"round_{r:03d}").rglob("*") if f.suffix in (".safetensors", ".pt", ".bin")]
    assert not weights(1) and not weights(2)
    assert per_round[3] - per_round[2] > 1.9
    assert len(comparable(run)) == 4


def test_resume_after_pruning_still_works(tmp_path: Path):
    """A resumed run with more rounds continues from the kept policy."""
    config = write_config(tmp_path, rounds=1, storage={"policies": 1})
    assert main(["run", str(config)]) == 0
    assert main(["resume", str(tmp_path / "runs" / "tiny"), "--set", "rounds=2", "--force"]) == 0
    run = tmp_path / "runs" / "tiny"
    assert (run / "round_002" / "checkpoint").is_dir() and not (run / "round_001" / "checkpoint").exists()
