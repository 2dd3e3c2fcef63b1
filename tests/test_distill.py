"""Distillation from a teacher, end to end on tiny models: a 2-layer teacher (same char
tokenizer) writes the rollouts of the prompts a 1-layer student fails (`mode: mixed`) or all of
them (`mode: all`), and GKD trains the student on the teacher's logits."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from datasets import Dataset

from conftest import comparable, roll_back_to_generate, weight_change, write_config
from loop.cli import main
from policies.model_config import ModelConfig, TinyModelConfig

TEACHER = ModelConfig(tiny=TinyModelConfig(num_layers=2, hidden_size=48, num_heads=2, intermediate_size=96))


def even_first_operand(prompts, completions, prompt, **columns):
    """A user reward that 'solves' exactly the problems whose first operand is even (`Q:4+7`),
    so which prompts the student fails is known in advance (a grown prompt without one fails)."""
    first = [re.match(r"Q:(\d+)", p) for p in prompt]
    return [1.0 if m and int(m.group(1)) % 2 == 0 else 0.0 for m in first]


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory) -> Path:
    from policies.loading import build_tiny

    return build_tiny(TEACHER, seed=1, out_dir=tmp_path_factory.mktemp("teacher") / "model")


def _run(tmp_path: Path, **changes) -> Path:
    config = write_config(tmp_path, rounds=1, control__enabled=False, **changes)
    assert main(["run", str(config)]) == 0
    return tmp_path / "runs" / "tiny"


def test_mixed_mode_teacher_answers_exactly_the_prompts_the_student_failed(tmp_path: Path, teacher_dir: Path):
    run = _run(tmp_path, teacher={"model": str(teacher_dir), "mode": "mixed"},
               rewards=[{"name": "test_distill:even_first_operand"}], update__threshold=1.0)
    rd = run / "round_001"
    student = Dataset.from_parquet(sorted(str(p) for p in (rd / "rollouts").glob("*.parquet")))
    scored = Dataset.from_parquet(str(rd / "scored.parquet"))
    failed = {pid for pid, p in zip(student["prompt_id"], student["prompt"]) if even_first_operand([], [], [p])[0] == 0}
    assert 0 < len(failed) < len(set(student["prompt_id"]))  # the test needs both kinds
    for pid, gen in zip(scored["prompt_id"], scored["generator_id"]):
        assert gen == ("teacher:model" if pid in failed else "round_000"), pid
    assert len(scored) == len(student)  # the teacher's samples replaced the student's, n per prompt
    metrics = json.loads((run / "metrics.jsonl").read_text().splitlines()[1])
    assert metrics["distill/teacher_prompts"] == len(failed)
    assert metrics["distill/student_prompts"] == len(set(student["prompt_id"])) - len(failed)
    assert metrics["distill/teacher_share"] == pytest.approx(len([p for p in scored["prompt_id"] if p in failed]) / len(scored))


def test_teacher_writes_all_rollouts_and_gkd_trains_on_its_logits(tmp_path: Path, teacher_dir: Path):
    run = _run(tmp_path, teacher={"model": str(teacher_dir), "mode": "all"},
               update__algorithm="gkd", update__gkd={"teacher": str(teacher_dir), "max_new_tokens": 8, "lmbda": 0.5})
    scored = Dataset.from_parquet(str(run / "round_001" / "scored.parquet"))
    assert set(scored["generator_id"]) == {"teacher:model"}
    assert not (run / "round_001" / "teacher_rollouts").exists()  # no student samples to replace
    metrics = json.loads((run / "metrics.jsonl").read_text().splitlines()[1])
    assert metrics["train/steps"] > 0 and metrics["train/loss"] == metrics["train/loss"]  # finite
    assert metrics["distill/teacher_share"] == 1.0
    assert weight_change(run / "round_000" / "checkpoint", run / "round_001" / "checkpoint") > 0


def test_gkd_without_a_teacher_is_a_config_error(tmp_path: Path, capsys):
    assert main(["run", str(write_config(tmp_path, update__algorithm="gkd"))]) == 2
    assert "update.gkd.teacher" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_damaged_shards_of_a_teacher_and_grown_prompts_are_made_again_on_resume(tmp_path: Path, teacher_dir: Path):
    """Killed right after generation (state rolled back to it), with a student shard deleted, a
    teacher shard truncated and a grown prompt's shard deleted: the resumed round scores and
    trains on the same samples as the uninterrupted run."""
    growth = {"proposals": 6, "examples_per_proposal": 2, "template": "{examples}\nQ:", "prefix": "Q:",
              "suffix": "\n", "stop": "\n", "max_new_tokens": 8, "answer": "none"}
    run = _run(tmp_path, teacher={"model": str(teacher_dir), "mode": "mixed"}, growth=growth,
               rewards=[{"name": "test_distill:even_first_operand"}], update__threshold=1.0)
    reference = tmp_path / "reference"
    shutil.copytree(run, reference)
    scored_before = Dataset.from_parquet(str(run / "round_001" / "scored.parquet"))
    assert any(pid.startswith("grown:") for pid in scored_before["prompt_id"])  # the test needs grown prompts
    roll_back_to_generate(run)
    rd = run / "round_001"
    (rd / "scored.parquet").unlink()
    student, teacher = sorted((rd / "rollouts").glob("shard_*.parquet")), sorted((rd / "teacher_rollouts").glob("shard_*.parquet"))
    student[0].unlink()
    student[-1].unlink()  # the last shards hold the grown prompts
    teacher[0].write_bytes(teacher[0].read_bytes()[: teacher[0].stat().st_size // 2])
    assert main(["resume", str(run)]) == 0
    scored_after = Dataset.from_parquet(str(rd / "scored.parquet"))
    assert scored_after.to_list() == scored_before.to_list()
    assert comparable(run) == comparable(reference)
