"""Tests for the RFT filter (`policies/updates/rft.py`): which scored rollouts are kept for
training, and the metrics that say why the rest were dropped. Hand-made rows, no model."""

from __future__ import annotations

import pytest
from datasets import Dataset, Features, Value

from policies import tables
from policies.tables import ScoredRollouts
from policies.updates.config import DifficultyBand
from policies.updates.rft import difficulty_accept_rate, filter_metrics, select_accepted, to_examples

SCORED = Features({"prompt_id": Value("string"), "completion": Value("string"), "reward": Value("float64"),
                   "prompt_text": Value("string")})


def scored(rows: list[tuple[str, str, float | None]]) -> ScoredRollouts:
    """Scored rollouts from (prompt_id, completion, reward) triples."""
    return ScoredRollouts.of(Dataset.from_dict({
        "prompt_id": [pid for pid, _, _ in rows],
        "completion": [text for _, text, _ in rows],
        "reward": [reward for _, _, reward in rows],
        "prompt_text": [f"Q:{pid}\n" for pid, _, _ in rows],
    }, features=SCORED))


@pytest.mark.parametrize(
    "rows,threshold,max_per_prompt,dedup,kept,dropped",
    [
        pytest.param([("p", "a", 1.0), ("p", "b", 0.99), ("p", "c", 1.1)], 1.0, 4, True,
                     [0, 2], {"below_threshold": 1}, id="threshold-inclusive"),
        pytest.param([("p", "a", 0.5), ("p", "b", 0.0)], 0.5, 4, True,
                     [0], {"below_threshold": 1}, id="lower-threshold"),
        pytest.param([("p", "a", -1.0)], -1.0, 4, True, [0], {}, id="negative-threshold"),
        pytest.param([("p", "a", None), ("p", "b", 1.0), ("q", "c", None)], 0.0, 4, True,
                     [1], {"below_threshold": 2}, id="none-reward-dropped"),
        pytest.param([("p", "a", float("nan")), ("p", "b", 1.0), ("q", "c", float("nan"))], -1.0, 4, True,
                     [1], {"below_threshold": 2}, id="nan-reward-dropped"),
        pytest.param([("p", "x=1", 1.0), ("p", " x=1\n", 1.0), ("p", "x = 1", 1.0)], 1.0, 4, True,
                     [0, 2], {"duplicate": 1}, id="duplicate-after-strip"),
        pytest.param([("p", "x=1", 1.0), ("q", "x=1", 1.0)], 1.0, 4, True,
                     [0, 1], {}, id="same-text-other-prompt-kept"),
        pytest.param([("p", "x=1", 1.0), ("p", "x=1", 1.0)], 1.0, 4, False,
                     [0, 1], {}, id="dedup-off"),
        pytest.param([("p", "x=1", 0.0), ("p", "x=1", 1.0)], 1.0, 4, True,
                     [1], {"below_threshold": 1}, id="rejected-copy-does-not-block-accepted"),
        pytest.param([("p", "a", 1.0), ("p", "b", 1.0), ("p", "c", 1.0), ("q", "d", 1.0)], 1.0, 2, True,
                     [0, 1, 3], {"over_cap": 1}, id="cap-per-prompt"),
        pytest.param([("p", "a", 1.0), ("p", "a", 1.0), ("p", "b", 1.0), ("p", "c", 1.0)], 1.0, 2, True,
                     [0, 2], {"duplicate": 1, "over_cap": 1}, id="duplicates-do-not-use-the-cap"),
        pytest.param([("q", "a", 1.0), ("p", "b", 1.0), ("q", "c", 0.0), ("p", "d", 1.0), ("q", "e", 1.0)],
                     1.0, 4, True, [0, 1, 3, 4], {"below_threshold": 1}, id="rollout-order-kept"),
        pytest.param([], 1.0, 4, True, [], {}, id="empty"),
    ],
)
def test_select_accepted(rows, threshold, max_per_prompt, dedup, kept, dropped):
    assert select_accepted(scored(rows), threshold, max_per_prompt, dedup) == (kept, dropped)


def test_filter_metrics():
    rollouts = scored([
        ("p", "a", 1.0), ("p", "a", 1.0), ("p", "b", 1.0), ("p", "c", 1.0),  # p: 2 kept, dup, over cap
        ("q", "d", 0.0), ("q", "e", None),  # q: nothing right
        ("r", "f", 1.0), ("r", "g", 0.0),  # r: 1 kept
    ])
    kept, dropped = select_accepted(rollouts, threshold=1.0, max_per_prompt=2, dedup=True)
    assert filter_metrics(rollouts, kept, dropped) == {
        "rollout/prompt_solve_rate": 2 / 3,
        "filter/kept": 3.0,
        "filter/stack/accept_rate": 3 / 8,
        "filter/dropped_below_threshold": 3.0,
        "filter/dropped_out_of_band": 0.0,
        "filter/dropped_duplicate": 1.0,
        "filter/dropped_over_cap": 1.0,
    }


def test_filter_metrics_of_nothing_are_zero():
    rollouts = scored([])
    kept, dropped = select_accepted(rollouts, 1.0, 4, True)
    metrics = filter_metrics(rollouts, kept, dropped)
    assert set(metrics.values()) == {0.0}
    assert all(isinstance(v, float) for v in metrics.values())


def test_to_examples_pairs_each_kept_completion_with_its_rendered_prompt():
    rollouts = scored([("p", "a", 1.0), ("q", "b", 0.0), ("q", "c", 1.0)])
    kept, _ = select_accepted(rollouts, 1.0, 4, True)
    assert to_examples(rollouts, kept).to_dict() == {
        "prompt": ["Q:p\n", "Q:q\n"], "completion": ["a", "c"], "prompt_id": ["p", "q"]}


# p passes 1/4, q 3/4, r 4/4, s 0/4
BAND_ROWS = ([("p", f"p{i}", float(i < 1)) for i in range(4)] + [("q", f"q{i}", float(i < 3)) for i in range(4)]
             + [("r", f"r{i}", 1.0) for i in range(4)] + [("s", f"s{i}", 0.0) for i in range(4)])


@pytest.mark.parametrize(
    "lo,hi,kept_prompts",
    [
        pytest.param(0.2, 0.8, {"p", "q"}, id="middle-band-drops-all-solved-and-unsolved"),
        pytest.param(0.25, 0.75, {"p", "q"}, id="band-edges-inclusive"),
        pytest.param(0.5, 1.0, {"q", "r"}, id="easy-half"),
        pytest.param(0.0, 1.0, {"p", "q", "r"}, id="full-band-keeps-every-solved-prompt"),
        pytest.param(0.9, 0.95, set(), id="empty-band"),
    ],
)
def test_difficulty_band_drops_whole_prompts_by_pass_rate(lo, hi, kept_prompts):
    rollouts = scored(BAND_ROWS)
    kept, dropped = select_accepted(rollouts, 1.0, 4, True, DifficultyBand(lo=lo, hi=hi))
    assert {rollouts.column("prompt_id")[i] for i in kept} == kept_prompts
    solved_samples = {"p": 1, "q": 3, "r": 4}
    assert len(kept) == sum(solved_samples[p] for p in kept_prompts)
    assert dropped.get("out_of_band", 0) == 8 - len(kept)
    in_band = sum(lo <= rate <= hi for rate in (0.25, 0.75, 1.0, 0.0))
    assert difficulty_accept_rate(rollouts, 1.0, DifficultyBand(lo=lo, hi=hi)) == in_band / 4


def test_difficulty_band_must_be_ordered():
    with pytest.raises(ValueError, match="must not exceed"):
        DifficultyBand(lo=0.8, hi=0.2)


def test_selection_reads_in_batches_and_gives_the_same_rows(monkeypatch, tmp_path):
    # Duplicates and the cap span batch boundaries: the selection must not reset between batches.
    rows = [("p", "a", 1.0), ("q", "a", 1.0), ("p", " a", 1.0), ("p", "b", 1.0), ("q", "c", 0.0),
            ("p", "c", 1.0), ("q", "d", 1.0), ("p", "d", 1.0)]
    whole = select_accepted(scored(rows), 1.0, 2, True, DifficultyBand(lo=0.5, hi=1.0))
    assert whole == ([0, 1, 3, 6], {"duplicate": 1, "over_cap": 2, "below_threshold": 1})
    # The filter phase's own path: scored.parquet on disk, three rows decoded at a time.
    path = tmp_path / "scored.parquet"
    Dataset.from_dict({c: [r[i] for r in rows] for i, c in enumerate(["prompt_id", "completion", "reward"])}
                      | {"prompt_text": [f"Q:{r[0]}\n" for r in rows]}, features=SCORED).to_parquet(path)
    monkeypatch.setattr(tables, "BATCH_ROWS", 3)
    on_disk = ScoredRollouts.open(path)
    assert select_accepted(on_disk, 1.0, 2, True, DifficultyBand(lo=0.5, hi=1.0)) == whole
    assert to_examples(on_disk, [6, 0, 3])["completion"][:] == ["d", "a", "b"]  # rows from 3 batches, asked order
