"""`loop rescore`: a real tiny run's rollouts re-scored under another reward configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from datasets import Dataset
from sklearn.metrics import cohen_kappa_score

from conftest import write_config
from loop.cli import main

MIN_TOKENS = 12


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("rescore")
    assert main(["run", str(write_config(tmp, rounds=2, control__enabled=False))]) == 0
    return tmp / "runs" / "tiny"


def _expected_kept(scored: Dataset, min_tokens: int) -> list[bool]:
    """RFT's rule written out: threshold 0 passes every scored sample, dedup per prompt, K = 2."""
    kept, seen, per_prompt = [], set(), {}
    for pid, text, n in zip(scored["prompt_id"], scored["completion"], scored["token_count"]):
        ok = n >= min_tokens and (pid, text.strip()) not in seen and per_prompt.get(pid, 0) < 2
        if ok:
            seen.add((pid, text.strip()))
            per_prompt[pid] = per_prompt.get(pid, 0) + 1
        kept.append(ok)
    return kept


def test_rescore_writes_a_comparable_sibling_run(source: Path, tmp_path: Path, capsys):
    other = tmp_path / "strict.yaml"
    other.write_text(yaml.safe_dump({"rewards": [
        {"name": "length", "weight": 0.0, "gate": 1.0, "args": {"min_tokens": MIN_TOKENS}}, {"name": "math"}]}))
    assert main(["rescore", str(source), "--rewards", str(other), "--as", "tiny_strict"]) == 0
    target = source.parent / "tiny_strict"
    rows = [json.loads(line) for line in (target / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rows] == [1, 2]
    for r, row in zip((1, 2), rows):
        original = Dataset.from_parquet(str(source / f"round_{r:03d}" / "scored.parquet"))
        rescored = Dataset.from_parquet(str(target / f"round_{r:03d}" / "scored.parquet"))
        assert rescored["completion"] == original["completion"]  # nothing was generated
        new, old = _expected_kept(original, MIN_TOKENS), _expected_kept(original, 0)
        assert rescored["kept/rescored"] == new and rescored["kept/original"] == old
        n = len(original)
        assert row["filter/stack/accept_rate"] == pytest.approx(sum(new) / n)
        source_row = json.loads((source / "metrics.jsonl").read_text().splitlines()[r])
        assert row["rescore/original_accept_rate"] == pytest.approx(source_row["filter/stack/accept_rate"])
        assert row["rescore/both_keep"] == pytest.approx(sum(a and b for a, b in zip(old, new)) / n)
        assert row["rescore/either_keep"] == pytest.approx(sum(a or b for a, b in zip(old, new)) / n)
        if len(set(old)) > 1 or len(set(new)) > 1:
            assert row["rescore/kappa"] == pytest.approx(cohen_kappa_score(old, new))
        assert row["filter/length/accept_rate"] == pytest.approx(sum(t >= MIN_TOKENS for t in original["token_count"]) / n)
    assert yaml.safe_load((target / "config.yaml").read_text())["rewards"][0]["name"] == "length"
    capsys.readouterr()
    assert main(["compare", str(source), str(target), "--out", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    assert "tiny_strict" in out and "kappa" in out


@pytest.mark.parametrize("content, message", [
    ({"rewards": [{"name": "math"}], "model": {"name": "x"}}, "remove model"),
    ({"update": {"threshold": 1.0}}, "expected a mapping with a `rewards:` list"),
    ({"rewards": [{"name": "nonsense"}]}, "rewards"),
])
def test_bad_rewards_file_is_one_line_and_writes_nothing(source: Path, tmp_path: Path, capsys, content, message):
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(content))
    assert main(["rescore", str(source), "--rewards", str(other), "--as", "nope"]) == 2
    assert message in capsys.readouterr().err
    assert not (source.parent / "nope").exists()


def test_rescore_refuses_an_existing_name(source: Path, tmp_path: Path, capsys):
    other = tmp_path / "same.yaml"
    other.write_text(yaml.safe_dump({"rewards": [{"name": "math"}]}))
    assert main(["rescore", str(source), "--rewards", str(other), "--as", "tiny"]) == 2
    assert "the run itself" in capsys.readouterr().err


def test_shipped_rewards_file_is_a_valid_rescore(source: Path):
    from loop.rescore import rescore_config
    from loop.rundir import RunDir

    cfg = rescore_config(RunDir(source), Path(__file__).parent.parent / "configs/rewards/answer_only.yaml", "x")
    assert [s.name for s in cfg.rewards] == ["length", "repetition", "math"] and cfg.update.threshold == 1.0


def _saved_run(tmp_path: Path, config_text: str | None = None) -> Path:
    """A run dir as far as rescore reads it before anything is written: its config.yaml."""
    from loop.config import to_dict, validate

    run = tmp_path / "runs" / "tiny"
    run.mkdir(parents=True)
    raw = yaml.safe_load(write_config(tmp_path).read_text())
    (run / "config.yaml").write_text(config_text if config_text is not None else yaml.safe_dump(to_dict(validate(raw))))
    return run


@pytest.mark.parametrize("content, message", [
    ("rewards: [{name: math\n", "--rewards file 'r.yaml': invalid YAML at line 2"),
    ("rewards: [{name: math}]\nrewards: [{name: format}]\n", "duplicate key 'rewards'"),
    ("DIR", "--rewards file 'r.yaml' is a directory; give a YAML file"),
    ("rewards: [{name: math}]\nupdate: 3\n", "`update:` must be a mapping"),
])
def test_unreadable_rewards_file_is_one_line_and_writes_nothing(tmp_path: Path, monkeypatch, capsys, content, message):
    run = _saved_run(tmp_path)
    monkeypatch.chdir(tmp_path)
    if content == "DIR":
        (tmp_path / "r.yaml").mkdir()
    else:
        (tmp_path / "r.yaml").write_text(content)
    assert main(["rescore", str(run), "--rewards", "r.yaml", "--as", "new"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in run.parent.iterdir()) == ["tiny"]


def test_a_run_with_an_empty_config_is_refused_naming_it(tmp_path: Path, capsys):
    run = _saved_run(tmp_path, config_text="")
    (tmp_path / "r.yaml").write_text("rewards: [{name: math}]\n")
    assert main(["rescore", str(run), "--rewards", str(tmp_path / "r.yaml"), "--as", "new"]) == 2
    assert "config.yaml is damaged (empty)" in capsys.readouterr().err
