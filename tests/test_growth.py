"""Prompt-set growth: the dedup/contamination rules and majority answers on hand-made inputs,
then a tiny model writing new problems between rounds, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import Dataset

from conftest import write_config
from loop.cli import main
from loop.growth import GrowthConfig, NearDuplicates, _drop_reason, majority_answer

POOL = ["Q:3+5+2\n", "Q:7+1+9\n", "What is the sum of the first 10 positive integers?"]
EVAL = ["Q:4+4+4\n", "How many primes are there below 20?"]


@pytest.mark.parametrize("problem, why", [
    ("", "empty"),
    ("  ?? ", "empty"),
    ("x" * 2000, "too_long"),
    ("q:3+5+2", "duplicate"),  # case and whitespace aside
    ("What is the sum of the first 10 positive integers ?", "near_duplicate"),
    ("Q:4+4+4", "contaminated"),
    ("How many primes are there below 20", "contaminated"),  # near-duplicate of an eval problem
    ("What is the product of the first 5 odd numbers?", ""),
    ("Q:8+6+3+1\n", ""),
])
def test_drop_reasons(problem: str, why: str):
    cfg = GrowthConfig()
    seen, held_out = NearDuplicates(cfg.near_dup, cfg.ngram, POOL), NearDuplicates(cfg.near_dup, cfg.ngram, EVAL)
    assert _drop_reason(problem, cfg, seen, held_out) == why


def test_majority_answer_needs_agreement():
    texts = ["so 12", "The answer is 12.", "\\boxed{12}", "it is 13"]
    assert majority_answer(texts, 0.5) == ("12", 0.75)
    assert majority_answer(texts, 0.8) == (None, 0.75)
    assert majority_answer(["no idea", "none"], 0.5) == (None, 0.0)


def test_unimportable_verifier_is_a_config_error():
    with pytest.raises(ValueError, match="cannot import"):
        GrowthConfig(answer="no_such_module:solve")


def test_tiny_policy_grows_the_next_rounds_prompts(tmp_path: Path):
    growth = {"proposals": 12, "examples_per_proposal": 2, "template": "{examples}\nQ:", "prefix": "Q:",
              "suffix": "\n", "stop": "\n", "max_new_tokens": 10, "solutions": 2, "min_agreement": 0.5}
    config = write_config(tmp_path, rounds=2, control__enabled=False, growth=growth)
    assert main(["run", str(config)]) == 0
    run = tmp_path / "runs" / "tiny"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    eval_prompts = {json.loads(l)["prompt"] for l in (run / "data" / "eval.jsonl").read_text().splitlines()}
    for r in (1, 2):
        proposals = Dataset.from_parquet(str(run / f"round_{r:03d}" / "growth.parquet"))
        kept = proposals.filter(lambda p: p["dropped"] == "")
        row = rows[r]
        assert row["growth/proposed"] == 12 and row["growth/kept"] == len(kept)
        assert sum(row[k] for k in row if k.startswith("growth/dropped_")) == 12 - len(kept)
        assert row["rollout/prompts"] == 16 + len(kept)
        assert all(p.startswith("Q:") and p.endswith("\n") for p in kept["problem"])
        assert not set(kept["problem"]) & eval_prompts
        scored = Dataset.from_parquet(str(run / f"round_{r:03d}" / "scored.parquet"))
        grown = {pid: ans for pid, ans in zip(scored["prompt_id"], scored["reference_answer"]) if pid.startswith("grown:")}
        assert grown == {f"grown:{r}:{i}": a for i, a in zip(kept["index"], kept["answer"])}
    assert rows[1]["growth/kept"] + rows[2]["growth/kept"] > 0  # the survivors' path was exercised
    earlier = Dataset.from_parquet(str(run / "round_001" / "growth.parquet"))
    later = Dataset.from_parquet(str(run / "round_002" / "growth.parquet"))
    kept_earlier = {p for p, d in zip(earlier["problem"], earlier["dropped"]) if not d}
    assert not kept_earlier & {p for p, d in zip(later["problem"], later["dropped"]) if not d}
