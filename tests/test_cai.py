"""Constitutional AI on a tiny model: critiques and revisions by the policy itself, logged per
sample, guarded, and turned into SFT examples (SL-CAI) or preference pairs (RLAIF). The tiny
model's critiques are noise; what is checked is that every step lands where it should."""

from __future__ import annotations

import json
import re
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


def _run(tmp_path: Path, changes: dict | None = None, **cai) -> Path:
    config = write_config(tmp_path, rounds=1, control__enabled=False, update__algorithm="cai",
                          update__cai={"max_new_tokens": 12, "samples_per_prompt": 1, **cai}, **(changes or {}))
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


def test_rlaif_pairs_from_the_policy_judging_two_samples_under_a_principle(tmp_path: Path):
    """The tiny policy is its own judge; its babble holds an 'A', 'B', '1' or '2' often enough (the
    test's pattern reads the last one as the verdict) that, over 32 pairs, some agree in both
    orders, some flip and some are unreadable: each lands where it should, and only agreeing
    pairs train."""
    principles = [{"name": "steps", "critique": "Which step is wrong?", "revision": "Fix it.",
                   "preference": "Which response has every step right?"},
                  {"name": "terse", "critique": "What is superfluous?", "revision": "Say less."}]
    run = _run(tmp_path, output="dpo", pairs="judge", principles=principles, changes={"data__prompts_per_round": 32},
               judge={"backend": "policy", "pattern": "([12AB])", "max_new_tokens": 32, "temperature": 1.0})
    rd = run / "round_001"
    log = Dataset.from_parquet(str(rd / "constitution.parquet"))
    scored = Dataset.from_parquet(str(rd / "scored.parquet"))
    assert len(log) == len(set(scored["prompt_id"]))  # one pair per prompt (rollout.n = 2)
    assert set(log["principle"]) <= {"steps", "terse"}
    for row in log:
        a, b = (scored.filter(lambda s: s["prompt_id"] == row["prompt_id"] and s["sample_index"] == i)[0]["completion"]
                for i in (0, 1))
        assert (row["a"], row["b"]) == (a, b)
        if row["dropped"] == "identical":
            assert row["judge_answers"] == "" and " ".join(a.split()) == " ".join(b.split())
            continue
        forward, backward = row["judge_answers"].removeprefix("A-vs-B: ").split(" | B-vs-A: ")
        read = [re.findall("[12AB]", text) for text in (forward, backward)]
        if not all(read):
            assert row["dropped"] == "unparseable"
            continue
        first, second = (r[-1] in "1A" for r in read)  # True: the sample shown first
        if first != second:  # both orders name the same sample
            assert row["dropped"] == "" and row["winner"] == ("a" if first else "b")
        else:
            assert row["dropped"] == "tie" and row["winner"] == ""
    drops = log["dropped"][:]
    assert {"", "tie", "unparseable"} <= set(drops), drops  # the fixed seed exercises every path
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    for why in ("identical", "tie", "unparseable"):
        assert metrics[f"cai/dropped_{why}"] == drops.count(why)
    assert metrics["cai/pairs"] == drops.count("")
    pairs = Dataset.from_parquet(str(rd / "train" / "examples.parquet"))
    kept = log.filter(lambda row: row["dropped"] == "")
    assert pairs["chosen"] == [r["a"] if r["winner"] == "a" else r["b"] for r in kept]
    assert pairs["rejected"] == [r["b"] if r["winner"] == "a" else r["a"] for r in kept]
    assert weight_change(run / "round_000" / "checkpoint", rd / "checkpoint") > 0


@pytest.mark.parametrize("cai, message", [
    ({"pairs": "judge"}, "cai.output: dpo"),
    ({"pairs": "judge", "output": "dpo", "judge": {"backend": "hf"}}, "needs model"),
    ({"pairs": "judge", "output": "dpo", "judge_template": "{prompt} {a} {b}"}, "{principle}"),
    ({"pairs": "judge", "output": "dpo", "judge": {"backend": "policy", "colour": 1}}, "colour"),
    ({"pairs": "judge", "output": "dpo", "n": 1}, "rollout.n >= 2"),
])
def test_bad_judge_settings_are_config_errors(tmp_path: Path, capsys, cai: dict, message: str):
    n = cai.pop("n", 2)
    config = write_config(tmp_path, update__algorithm="cai", update__cai=cai, rollout__n=n)
    assert main(["run", str(config)]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "runs").exists()
