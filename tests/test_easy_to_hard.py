"""Easy -> hard: difficulty levels in the arithmetic task, a seed set capped below the hardest
level, the curriculum's pool one level harder per round, and per-level held-out accuracy."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from datasets import Dataset

from conftest import write_config
from loop.cli import main
from loop.config import TaskConfig
from loop.evaluate import per_level
from loop.tasks import generate_task

TASK = {"train_size": 300, "eval_size": 60, "seed_size": 30, "num_operands": 2, "max_operands": 5,
        "seed_max_operands": 3, "max_operand": 9, "ops": "+"}


def test_levels_are_operand_counts_and_the_seed_set_stops_early():
    splits = generate_task(TaskConfig(**TASK), seed=0)
    for name, problems in splits.items():
        for p in problems:
            assert p.difficulty == p.prompt.count("+") + 1
            assert p.rationale.count("\n") == p.difficulty - 1  # one line per step, then the answer
    assert {p.difficulty for p in splits["seed"]} <= {2, 3}
    assert Counter(p.difficulty for p in splits["eval"]).keys() == {2, 3, 4, 5}


def test_single_level_tasks_draw_the_same_problems_as_before():
    plain = generate_task(TaskConfig(train_size=50, eval_size=10, seed_size=5, num_operands=3), seed=1)
    assert all(p.difficulty is None for ps in plain.values() for p in ps)
    assert plain["eval"][0].prompt == "Q:17+72-97\n"  # pinned: the demo's data must not move


@pytest.mark.parametrize("bad", [{"seed_max_operands": 6}, {"max_operands": None}, {"kind": "code"},
                                 {"curriculum": False, "curriculum_levels": 2},
                                 {"curriculum": False, "curriculum_advance_at": 0.2}, {"curriculum_advance_at": 0}])
def test_inconsistent_levels_are_refused(bad):
    with pytest.raises(ValueError):
        TaskConfig(**{**TASK, "curriculum": True, **bad})


def test_per_level_accuracy():
    assert per_level([2, 3, 3, 10], [True, False, True, False], "eval") == {
        "eval/pass@1/level_02": 1.0, "eval/pass@1/level_03": 0.5, "eval/pass@1/level_10": 0.0}


def test_curriculum_pool_extends_one_level_per_round(tmp_path: Path):
    config = write_config(tmp_path, rounds=2, control__enabled=False,
                          data__task={**TASK, "curriculum": True}, data__prompts_per_round=8)
    assert main(["run", str(config)]) == 0
    run = tmp_path / "runs" / "tiny"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert set(k for k in rows[0] if k.startswith("eval/pass@1/level_")) == {f"eval/pass@1/level_0{d}" for d in (2, 3, 4, 5)}
    for r in (1, 2):
        scored = Dataset.from_parquet(str(run / f"round_{r:03d}" / "scored.parquet"))
        assert max(scored["difficulty"]) <= 3 + r
        assert rows[r]["curriculum/max_difficulty"] == 3 + r


def test_curriculum_advances_only_after_a_round_that_passed_its_hardest_level():
    from loop.tasks import curriculum_top

    task = TaskConfig(**TASK, curriculum=True, curriculum_advance_at=0.2)  # seed levels 2-3, hardest 5
    rates = {(1, 4): 0.1, (2, 4): 0.25}  # level 4 learned in round 2; 5 is the hardest there is
    asked = []

    def frontier_pass(round_idx: int, level: int) -> float:
        asked.append((round_idx, level))
        return rates[round_idx, level]

    assert [curriculum_top(task, r, frontier_pass) for r in range(1, 6)] == [4, 4, 5, 5, 5]
    assert set(asked) == {(1, 4), (2, 4)}  # each round's own hardest level, until the last level
    fixed = TaskConfig(**TASK, curriculum=True)
    assert [curriculum_top(fixed, r, frontier_pass) for r in range(1, 5)] == [4, 5, 5, 5]


@pytest.mark.parametrize("threshold, levels", [(0.0, [4, 5]), (100.0, [4, 4])])
def test_the_run_advances_its_curriculum_by_what_passed(tmp_path: Path, threshold, levels):
    # threshold 0 passes every sample (level 4 learned: round 2 asks level 5); 100 passes none.
    config = write_config(tmp_path, rounds=2, control__enabled=False, data__prompts_per_round=8,
                          update__threshold=threshold,
                          data__task={**TASK, "curriculum": True, "curriculum_advance_at": 0.5})
    assert main(["run", str(config)]) == 0
    run = tmp_path / "runs" / "tiny"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [rows[r]["curriculum/max_difficulty"] for r in (1, 2)] == levels
    assert max(Dataset.from_parquet(str(run / "round_002" / "scored.parquet"))["difficulty"]) == levels[1]


def test_rewrite_solutions_carry_what_is_left_and_pass_the_verifiers():
    from rewards import build_reward

    splits = generate_task(TaskConfig(**TASK, solution="rewrite"), seed=0)
    for p in splits["train"][:40]:
        operands = p.prompt.removeprefix("Q:").strip().split("+")
        lines = p.rationale.splitlines()
        assert len(lines) == p.difficulty  # one step per line, then the answer
        for i, line in enumerate(lines[:-1]):  # each step names the operands still to add
            assert line.split(";")[1] == "".join(f"+{x}" for x in operands[i + 2:])
    steps, answer = build_reward("steps", all_or_nothing=True), build_reward("math")
    texts, prompts = [p.rationale for p in splits["train"]], [p.prompt for p in splits["train"]]
    assert set(steps(prompts, texts)) == {1.0}
    assert set(answer(prompts, texts, reference_answer=[p.answer for p in splits["train"]])) == {1.0}
    assert [p.prompt for p in splits["train"]] == [p.prompt for p in generate_task(TaskConfig(**TASK), seed=0)["train"]]


def test_curriculum_levels_keeps_only_the_hardest_levels_of_the_pool():
    from loop.tasks import curriculum_pool

    train = Dataset.from_dict({"prompt": [f"p{d}" for d in range(2, 6)], "difficulty": list(range(2, 6))})
    for levels, round_idx, expected in [(None, 1, [2, 3, 4]), (1, 1, [4]), (2, 2, [4, 5]), (2, 5, [4, 5])]:
        pool, metrics = curriculum_pool(train, TaskConfig(**TASK, curriculum=True, curriculum_levels=levels), round_idx,
                                         lambda *_: 0.0)
        assert pool["difficulty"] == expected and metrics["curriculum/pool"] == len(expected)


def test_aligned_solutions_have_one_width_at_every_level_and_pass_the_verifiers():
    from rewards import build_reward

    splits = generate_task(TaskConfig(**TASK, solution="aligned"), seed=0)
    problems = splits["train"] + splits["seed"]
    assert len({len(p.prompt) for p in problems}) == 1  # the prompt too: "Q:3+5|2+90|..."
    assert {p.difficulty for p in problems} == {2, 3, 4, 5}
    step_lines = {len(line) for p in problems for line in p.rationale.splitlines()[:-1]}
    assert len(step_lines) == 1, step_lines  # every step line, whatever the level
    for p in problems[:40]:
        operands = re.findall(r"\d", p.prompt.split("|")[0])
        for i, line in enumerate(p.rationale.splitlines()[:-1]):
            rest = "".join(f"+{x}" for x in operands[i + 2:])
            assert line.split(";")[1].startswith(rest + "|")  # then the filler (and dots)
            assert re.fullmatch(r"\|[0-9+|]*\.*", line.split(";")[1][len(rest):])
    filler = "".join(p.prompt.split("|", 1)[1] for p in problems)
    assert set(filler) == set("0123456789+|\n")  # columns only harder problems use hold every character
    steps, answer = build_reward("steps", all_or_nothing=True), build_reward("math")
    texts, prompts = [p.rationale for p in problems], [p.prompt for p in problems]
    assert set(steps(prompts, texts)) == {1.0}
    assert set(answer(prompts, texts, reference_answer=[p.answer for p in problems])) == {1.0}
