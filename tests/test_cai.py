"""Constitutional AI on a tiny model: critiques and revisions by the policy itself, logged per
sample, guarded, and turned into SFT examples (SL-CAI) or preference pairs (RLAIF). The tiny
model's critiques are noise; what is checked is that every step lands where it should."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from datasets import Dataset

from conftest import weight_change, write_config
from loop.cli import main
from policies.updates.cai import guard
from policies.updates.config import CAISettings
from rewards.filters import RepetitionReward


@pytest.mark.parametrize("original, revision, verdict", [
    ("3+4=7", "", "empty"),
    ("3+4=7", "   \n", "empty"),
    ("3+4=7\nThe answer is 7.", "3+4=7  The answer   is 7.", "identical"),
    ("x", "the cat the cat the cat the cat the cat the cat", "repetitive"),
    ("ab", "c" * 100, "too_long"),
    ("3+4=8", "3+4=7", ""),
])
def test_guards(original: str, revision: str, verdict: str):
    assert guard(original, revision, max_length_ratio=4.0, repetition=RepetitionReward(n=2, max_share=0.3)) == verdict


def _run(tmp_path: Path, **cai) -> Path:
    config = write_config(tmp_path, rounds=1, control__enabled=False, update__algorithm="cai",
                          update__cai={"max_new_tokens": 12, "samples_per_prompt": 1, **cai})
    assert main(["run", str(config)]) == 0
    return tmp_path / "runs" / "tiny"


def test_sl_cai_trains_on_the_guarded_revisions(tmp_path: Path):
    run = _run(tmp_path)
    rd = run / "round_001"
    log = Dataset.from_parquet(str(rd / "constitution.parquet"))
    scored = Dataset.from_parquet(str(rd / "scored.parquet"))
    assert len(log) == len(set(scored["prompt_id"]))  # one revised sample per prompt
    names = {p.name for p in CAISettings().principles}
    assert set(log["principle"]) <= names
    for row in log:
        original = scored.filter(lambda s: s["prompt_id"] == row["prompt_id"] and s["sample_index"] == 0)[0]
        assert row["original"] == original["completion"]
        assert row["dropped"] == guard(row["original"], row["revision"], 4.0, RepetitionReward(n=4, max_share=0.3))
    examples = Dataset.from_parquet(str(rd / "train" / "examples.parquet"))
    usable = log.filter(lambda row: row["dropped"] == "")
    assert examples["completion"] == usable["revision"] and examples["prompt"] == usable["prompt_text"]
    assert len(usable) > 0  # 12-char babble against ~24-char originals: most revisions pass the guards
    assert weight_change(run / "round_000" / "checkpoint", rd / "checkpoint") > 0


def test_rlaif_pairs_prefer_the_revision_under_principles_from_a_file(tmp_path: Path):
    principles = tmp_path / "constitution.yaml"
    principles.write_text(yaml.safe_dump([
        {"name": "steps", "critique": "Which step is wrong?", "revision": "Fix the wrong step."},
        {"name": "terse", "critique": "What is superfluous?", "revision": "Say it in fewer words."}]))
    run = _run(tmp_path, output="dpo", principles_file=str(principles))
    rd = run / "round_001"
    log = Dataset.from_parquet(str(rd / "constitution.parquet"))
    assert set(log["principle"]) <= {"steps", "terse"} and len(set(log["principle"])) == 2
    pairs = Dataset.from_parquet(str(rd / "train" / "examples.parquet"))
    usable = log.filter(lambda row: row["dropped"] == "")
    assert pairs["chosen"] == usable["revision"] and pairs["rejected"] == usable["original"]
    assert all(c.strip() != r.strip() for c, r in zip(pairs["chosen"], pairs["rejected"]))


def test_missing_principles_file_is_a_config_error(tmp_path: Path, capsys):
    config = write_config(tmp_path, update__algorithm="cai", update__cai={"principles_file": str(tmp_path / "nope.yaml")})
    assert main(["run", str(config)]) == 2
    assert "principles_file" in capsys.readouterr().err and not (tmp_path / "runs").exists()
