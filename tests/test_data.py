"""Tests for `loop/data.py` and `loop/tasks.py`: prompts and reference answers from a local file
or the built-in task, held-out splits that never leak into training, the per-round slices of
training prompts, and generated rationales that are arithmetically right."""

from __future__ import annotations

import json
import re

import pytest
from datasets import Dataset

from loop.config import ColumnMap, ConfigError, DataConfig, TaskConfig
from loop.data import assert_disjoint, load_task_data, round_prompts
from loop.tasks import generate_task
from rewards import extract_answer

SMALL_TASK = TaskConfig(train_size=50, eval_size=10, seed_size=5, num_operands=3, max_operand=9)
GSM8K_COLUMNS = ColumnMap(prompt="question", answer="answer")


def write_jsonl(path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def gsm8k_rows(n: int, start: int = 0) -> list[dict]:
    return [{"question": f"Tom has {i} apples and buys {i}. How many now?",
             "answer": f"Tom has {i}+{i} = {2 * i} apples.\n#### {2 * i}",
             "source": "test"} for i in range(start, start + n)]


# --- built-in task --------------------------------------------------------------------


def test_builtin_task_is_written_to_the_data_dir_and_loaded(tmp_path):
    data = load_task_data(DataConfig(task=SMALL_TASK), seed=0, data_dir=tmp_path)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.jsonl", "seed.jsonl", "task.json", "train.jsonl"]
    assert (len(data.train), len(data.eval), len(data.seed)) == (50, 10, 5)
    assert set(data.train.column_names) == {"prompt_id", "prompt", "reference_answer"}
    assert set(data.eval.column_names) == {"prompt_id", "prompt", "reference_answer"}
    assert set(data.seed.column_names) == {"prompt_id", "prompt", "reference_answer", "rationale"}
    train, evaluation, seed = (set(split["prompt"]) for split in (data.train, data.eval, data.seed))
    assert len(train) == 50 and not train & evaluation and not seed & evaluation and not seed & train
    assert len(set(data.train["prompt_id"])) == 50


def test_builtin_task_files_follow_the_task_config(tmp_path):
    """Resuming reads the same files; a changed task (resume --force) makes new ones."""
    first = load_task_data(DataConfig(task=SMALL_TASK), seed=0, data_dir=tmp_path)
    again = load_task_data(DataConfig(task=SMALL_TASK), seed=0, data_dir=tmp_path)
    other = load_task_data(DataConfig(task=SMALL_TASK), seed=1, data_dir=tmp_path)
    assert first.train["prompt"] == again.train["prompt"] != other.train["prompt"]


def test_builtin_task_files_hold_the_generated_problems(tmp_path):
    data = load_task_data(DataConfig(task=SMALL_TASK), seed=3, data_dir=tmp_path)
    problems = generate_task(SMALL_TASK, seed=3)
    expected = {p.prompt: p for split in problems.values() for p in split}
    for split in (data.train, data.eval, data.seed):
        for row in split:
            assert row["reference_answer"] == expected[row["prompt"]].answer
    for row in data.seed:
        assert row["rationale"] == expected[row["prompt"]].rationale
    assert set(data.eval["prompt"]) == {p.prompt for p in problems["eval"]}


def test_builtin_task_loads_the_same_data_twice(tmp_path):
    first = load_task_data(DataConfig(task=SMALL_TASK), seed=0, data_dir=tmp_path)
    second = load_task_data(DataConfig(task=SMALL_TASK), seed=0, data_dir=tmp_path)
    assert first.train.to_dict() == second.train.to_dict()
    assert first.eval.to_dict() == second.eval.to_dict()


def test_builtin_task_without_seed_set(tmp_path):
    task = SMALL_TASK.model_copy(update={"seed_size": 0})
    assert load_task_data(DataConfig(task=task), seed=0, data_dir=tmp_path).seed is None


# --- local files ----------------------------------------------------------------------


def test_local_jsonl_with_column_mapping(tmp_path):
    cfg = DataConfig(path=write_jsonl(tmp_path / "train.jsonl", gsm8k_rows(6)),
                     eval_path=write_jsonl(tmp_path / "test.jsonl", gsm8k_rows(2, start=100)),
                     columns=GSM8K_COLUMNS)
    data = load_task_data(cfg, seed=0, data_dir=tmp_path / "data")
    assert data.train.column_names == ["prompt_id", "prompt", "reference_answer"]
    assert data.train["prompt"] == [row["question"] for row in gsm8k_rows(6)]
    assert data.train["reference_answer"] == ["0", "2", "4", "6", "8", "10"]
    assert data.train["prompt_id"] == [f"train.jsonl:{i}" for i in range(6)]
    assert data.eval["reference_answer"] == ["200", "202"]
    assert data.eval["prompt_id"] == ["test.jsonl:0", "test.jsonl:1"]
    assert data.seed is None




@pytest.mark.parametrize(
    "raw,expected",
    [
        ("Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips.\n#### 72", "72"),
        ("Weng earns 12/60 = 0.2 per minute.\n#### 10", "10"),
        ("42", "42"),
        (" 7 \n", "7"),
        (42, "42"),
        ("-3", "-3"),
        ("3/4", "3/4"),
        (r"\frac{1}{2}", r"\frac{1}{2}"),
        (r"2\sqrt{3}", r"2\sqrt{3}"),
    ],
)
def test_reference_answer_from_the_answer_column(tmp_path, raw, expected):
    rows = [{"question": f"q{i}", "answer": raw} for i in range(3)]
    cfg = DataConfig(path=write_jsonl(tmp_path / "train.jsonl", rows), eval_size=1, columns=GSM8K_COLUMNS)
    data = load_task_data(cfg, seed=0, data_dir=tmp_path / "data")
    assert data.train["reference_answer"] == [expected, expected]
    assert data.eval["reference_answer"] == [expected]


def test_eval_split_carved_from_training_file_is_disjoint(tmp_path):
    cfg = DataConfig(path=write_jsonl(tmp_path / "train.jsonl", gsm8k_rows(10)), eval_size=3, columns=GSM8K_COLUMNS)
    data = load_task_data(cfg, seed=0, data_dir=tmp_path / "data")
    assert (len(data.train), len(data.eval)) == (7, 3)
    assert not set(data.train["prompt"]) & set(data.eval["prompt"])
    assert set(data.train["prompt"]) | set(data.eval["prompt"]) == {r["question"] for r in gsm8k_rows(10)}


def test_eval_size_that_leaves_no_training_data_is_rejected(tmp_path):
    cfg = DataConfig(path=write_jsonl(tmp_path / "train.jsonl", gsm8k_rows(3)), eval_size=3, columns=GSM8K_COLUMNS)
    with pytest.raises(ConfigError, match="data.eval_size=3 leaves no training prompts"):
        load_task_data(cfg, seed=0, data_dir=tmp_path / "data")


@pytest.mark.parametrize(
    "columns,field,column",
    [
        (ColumnMap(prompt="problem", answer="answer"), "prompt", "problem"),
        (ColumnMap(prompt="question", answer="solution"), "answer", "solution"),
    ],
)
def test_mapped_column_that_does_not_exist_is_rejected(tmp_path, columns, field, column):
    cfg = DataConfig(path=write_jsonl(tmp_path / "train.jsonl", gsm8k_rows(4)), eval_size=1, columns=columns)
    with pytest.raises(ConfigError) as err:
        load_task_data(cfg, seed=0, data_dir=tmp_path / "data")
    message = str(err.value)
    assert f"data.columns.{field}: column {column!r} is not in train.jsonl" in message
    assert "question, answer, source" in message  # the columns there are, to pick from


def test_seed_file_needs_its_rationale_column(tmp_path):
    cfg = DataConfig(path=write_jsonl(tmp_path / "train.jsonl", gsm8k_rows(4)), eval_size=1,
                     seed_path=write_jsonl(tmp_path / "seed.jsonl", gsm8k_rows(2, start=50)),
                     columns=ColumnMap(prompt="question", answer="answer", rationale="steps"))
    with pytest.raises(ConfigError, match="data.columns.rationale: column 'steps'"):
        load_task_data(cfg, seed=0, data_dir=tmp_path / "data")


def test_eval_prompt_in_training_data_is_rejected(tmp_path):
    cfg = DataConfig(path=write_jsonl(tmp_path / "train.jsonl", gsm8k_rows(4)),
                     eval_path=write_jsonl(tmp_path / "test.jsonl", gsm8k_rows(2, start=3)), columns=GSM8K_COLUMNS)
    with pytest.raises(ConfigError, match="1 eval prompts also appear in training data"):
        load_task_data(cfg, seed=0, data_dir=tmp_path / "data")


@pytest.mark.parametrize(
    "train,evaluation,leaks",
    [
        (["a", "b"], ["c"], False),
        ([], ["c"], False),
        (["a", "b"], ["b", "c"], True),
        (["a"], ["a"], True),
    ],
)
def test_assert_disjoint(train, evaluation, leaks):
    train_ds, eval_ds = Dataset.from_dict({"prompt": train}), Dataset.from_dict({"prompt": evaluation})
    if leaks:
        with pytest.raises(ConfigError, match="held-out data must be disjoint"):
            assert_disjoint(train_ds, eval_ds)
    else:
        assert_disjoint(train_ds, eval_ds)


# --- per-round prompts ----------------------------------------------------------------


def prompts(n: int) -> Dataset:
    return Dataset.from_dict({"prompt_id": [f"p{i}" for i in range(n)], "prompt": [f"Q:{i}" for i in range(n)]})


@pytest.mark.parametrize(
    "size,per_round,rounds",
    [
        (10, 4, 5),  # wraps inside round 3
        (10, 3, 10),  # wraps inside rounds 4 and 7
        (10, 5, 6),  # passes end exactly on round boundaries
        (7, 7, 3),  # one pass per round
        (5, 8, 3),  # asking for more than there is takes a pass
    ],
)
def test_round_prompts_walk_through_whole_passes(size, per_round, rounds):
    train = prompts(size)
    served = [pid for r in range(1, rounds + 1) for pid in round_prompts(train, r, per_round, seed=0)["prompt_id"]]
    per_round = min(per_round, size)
    assert len(served) == rounds * per_round
    passes = [served[i : i + size] for i in range(0, len(served), size)]
    for chunk in passes[:-1] if len(served) % size else passes:
        assert sorted(chunk) == sorted(train["prompt_id"])  # every prompt once per pass
    assert passes[0] != passes[1]  # a fresh shuffle each pass


def test_round_prompts_within_a_pass_are_disjoint_consecutive_slices():
    train = prompts(12)
    rounds = [round_prompts(train, r, 4, seed=5)["prompt_id"] for r in (1, 2, 3)]
    assert [pid for ids in rounds for pid in ids] == train.shuffle(seed=5)["prompt_id"]
    assert rounds[0] != sorted(rounds[0])  # shuffled, not in file order (seed 5 on 12 rows)


def test_round_prompts_wrap_into_the_next_pass():
    train = prompts(10)
    third = round_prompts(train, 3, 4, seed=0)["prompt_id"]
    assert third == train.shuffle(seed=0)["prompt_id"][8:] + train.shuffle(seed=1)["prompt_id"][:2]
    assert round_prompts(train, 4, 4, seed=0)["prompt_id"] == train.shuffle(seed=1)["prompt_id"][2:6]


def test_round_prompts_are_deterministic_and_seeded():
    train = prompts(30)
    assert round_prompts(train, 2, 8, seed=0)["prompt_id"] == round_prompts(train, 2, 8, seed=0)["prompt_id"]
    assert round_prompts(train, 2, 8, seed=0)["prompt_id"] != round_prompts(train, 2, 8, seed=1)["prompt_id"]
    assert set(round_prompts(train, 2, 8, seed=0).column_names) == {"prompt_id", "prompt"}


# --- the arithmetic task --------------------------------------------------------------

STEP = re.compile(r"^(-?\d+)([+*-])(\d+)=(-?\d+)$")


def check_problem(problem, task: TaskConfig) -> None:
    """The prompt's chain, worked left to right in the rationale, one correct step per line."""
    expr = re.fullmatch(r"Q:(\d+(?:[+*-]\d+)+)\n", problem.prompt).group(1)
    operands = [int(x) for x in re.findall(r"\d+", expr)]
    ops = re.findall(r"[+*-]", expr)
    assert len(operands) == task.num_operands and all(0 <= x <= task.max_operand for x in operands)
    assert set(ops) <= set(task.ops)

    *steps, final = problem.rationale.split("\n")
    assert len(steps) == task.num_operands - 1
    acc = operands[0]
    for line, op, x in zip(steps, ops, operands[1:]):
        left, step_op, right, result = STEP.fullmatch(line).groups()
        assert (int(left), step_op, int(right)) == (acc, op, x)
        acc = {"+": acc + x, "-": acc - x, "*": acc * x}[op]
        assert int(result) == acc
    assert final == f"The answer is {acc}."
    assert problem.answer == str(acc)
    assert extract_answer(problem.rationale) == problem.answer  # the math reward accepts the seed rationale


@pytest.mark.parametrize("num_operands,max_operand,ops",
                         [(2, 20, "+-"), (3, 49, "+-"), (5, 99, "+-"), (3, 9, "+"), (3, 20, "+*-")])
def test_generated_rationales_are_correct(num_operands, max_operand, ops):
    task = TaskConfig(train_size=150, eval_size=30, seed_size=20, num_operands=num_operands,
                      max_operand=max_operand, ops=ops)
    splits = generate_task(task, seed=7)
    assert {name: len(split) for name, split in splits.items()} == {"eval": 30, "seed": 20, "train": 150}
    problems = [p for split in splits.values() for p in split]
    for problem in problems:
        check_problem(problem, task)
    assert len({p.prompt for p in problems}) == len(problems)  # unique, so splits are disjoint
    if "-" in ops:
        assert any(p.answer.startswith("-") for p in problems)  # negative results are exercised


def test_code_problems_have_solutions_that_pass_their_tests():
    task = TaskConfig(kind="code", train_size=60, eval_size=10, seed_size=10, num_operands=3, max_operand=9, ops="+-*")
    problems = [p for split in generate_task(task, seed=1).values() for p in split]
    assert len({p.prompt for p in problems}) == len(problems) == 80
    for problem in problems:
        assert problem.prompt.startswith("f(x): ") and problem.prompt.count(", then ") == 1
        program = re.fullmatch(r"```python\n(.*)```", problem.rationale, re.DOTALL).group(1)
        namespace: dict = {}
        exec(program, namespace)  # our own generated solutions, not model output
        for test in problem.tests:
            exec(test, namespace)
        assert problem.answer == "" and len(problem.tests) == 3


def test_code_task_files_map_tests_for_the_code_reward(tmp_path):
    cfg = DataConfig(task=TaskConfig(kind="code", train_size=40, eval_size=8, seed_size=4, num_operands=3, max_operand=9))
    data = load_task_data(cfg, seed=0, data_dir=tmp_path)
    assert set(data.train.column_names) == {"prompt_id", "prompt", "reference_answer", "tests"}
    assert data.eval["reference_answer"][0] == "" and data.eval["tests"][0][0].startswith("assert f(")
    assert data.seed["rationale"][0].startswith("```python")


def test_generated_problems_are_seeded():
    assert generate_task(SMALL_TASK, seed=0) == generate_task(SMALL_TASK, seed=0)
    assert generate_task(SMALL_TASK, seed=0) != generate_task(SMALL_TASK, seed=1)


def test_extra_columns_ride_along_and_a_missing_one_is_named(tmp_path):
    path = tmp_path / "code.jsonl"
    rows = [{"question": f"f{i}", "test_list": [f"assert f({i})"]} for i in range(12)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    columns = {"prompt": "question", "answer": None, "extra": {"tests": "test_list"}}
    data = load_task_data(DataConfig(path=str(path), eval_size=2, columns=columns), seed=0, data_dir=tmp_path)
    assert data.train["reference_answer"][0] == "" and len(data.train["tests"][0]) == 1
    bad = DataConfig(path=str(path), eval_size=2, columns={**columns, "extra": {"tests": "tests"}})
    with pytest.raises(ConfigError, match=r"data.columns.extra.tests: column 'tests' is not in code.jsonl"):
        load_task_data(bad, seed=0, data_dir=tmp_path)


@pytest.mark.parametrize("rationale", [None, "", "  \n"], ids=["null", "empty", "blank"])
def test_seed_row_without_a_rationale_is_named(tmp_path, rationale):
    """A null would be trained on as the text "None"; an empty one as an empty completion."""
    seed = [{**row, "steps": f"{i} steps"} for i, row in enumerate(gsm8k_rows(3, start=50))]
    seed[1]["steps"] = rationale
    cfg = DataConfig(path=write_jsonl(tmp_path / "train.jsonl", gsm8k_rows(4)), eval_size=1,
                     seed_path=write_jsonl(tmp_path / "seed.jsonl", seed),
                     columns=ColumnMap(prompt="question", answer="answer", rationale="steps"))
    with pytest.raises(ConfigError, match=r"data.columns.rationale: 1 row\(s\) of seed.jsonl have no 'steps' \(row 2 "):
        load_task_data(cfg, seed=0, data_dir=tmp_path / "data")


def test_null_in_a_mapped_extra_column_is_named(tmp_path):
    rows = [{"question": f"f{i}", "test_list": [f"assert f({i})"]} for i in range(12)]
    rows[5]["test_list"] = None
    columns = {"prompt": "question", "answer": None, "extra": {"tests": "test_list"}}
    cfg = DataConfig(path=write_jsonl(tmp_path / "code.jsonl", rows), eval_size=2, columns=columns)
    with pytest.raises(ConfigError, match=r"data.columns.extra.tests: 1 row\(s\) of code.jsonl have no 'test_list' \(row 6 "):
        load_task_data(cfg, seed=0, data_dir=tmp_path)


def test_a_broken_jsonl_line_is_named_by_its_line_number(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in gsm8k_rows(6)) + '{"question": "x", "answer": \n')
    with pytest.raises(ConfigError, match=r"data.path: .*train.jsonl could not be read as JSON lines \(line 7: "):
        load_task_data(DataConfig(path=str(path), eval_size=1, columns=GSM8K_COLUMNS), seed=0, data_dir=tmp_path)


@pytest.mark.parametrize("field, value", [("question", [{"role": "user", "content": "1+1"}]), ("answer", [2]),
                                          ("answer", True)])
def test_a_prompt_or_answer_that_is_not_text_is_named(tmp_path, field, value):
    """str() of a chat-message list or a list of answers would reach the policy as "[{'role': ...}]"."""
    rows = gsm8k_rows(6)
    rows[3][field] = value
    cfg = DataConfig(path=write_jsonl(tmp_path / "train.jsonl", rows), eval_size=1, columns=GSM8K_COLUMNS)
    with pytest.raises(ConfigError, match=rf"data.columns.{'prompt' if field == 'question' else 'answer'}: row 4 of "
                                          rf"train.jsonl holds a (list|bool) in '{field}'"):
        load_task_data(cfg, seed=0, data_dir=tmp_path / "data")
