"""Procedurally generated tasks: the demos' problems, with worked solutions.

`arithmetic`: chains like `47+8-15`. A solution works it left to right, one step per line, and
ends in "The answer is N." — the form the `math` reward checks.
`code`: "f(x): add 7, then multiply by 3" asks for a Python function, one statement per step;
its `tests` (assert lines) are what the `code` reward runs in the sandbox.
Problems are unique, and the train, eval and seed splits are disjoint by construction.
"""

from __future__ import annotations

import operator
import random
import string
from collections.abc import Callable
from dataclasses import dataclass

from datasets import Dataset

from loop.config import TaskConfig

APPLY = {"+": operator.add, "-": operator.sub, "*": operator.mul}
WORDS = {"+": "add {x}", "-": "subtract {x}", "*": "multiply by {x}"}
CODE_TEST_INPUTS = (0, 1, 5)
FILLER = string.digits + "+|"  # what an `aligned` field's unused columns hold


@dataclass(frozen=True)
class Problem:
    prompt: str
    answer: str
    rationale: str
    tests: list[str] | None = None  # assert lines, for code problems
    difficulty: int | None = None  # operand count, when the task spans several (easy -> hard)


def _solve(operands: list[int], ops: list[str], solution: str = "chain", field: str = "") -> tuple[str, int]:
    """Left to right, one step per line. `rewrite` appends what is left to add (`3+5=8;+2+7`), so
    a step needs only the line above it, never the k-th operand of the prompt. `aligned` works on
    the prompt's fixed-width `field` (the problem, `|`, then filler): each line carries the
    field with the consumed operands cut off, in the same columns, so every character of a step
    is read from a fixed offset in the line above, for 4 operands as for 8."""
    lines, acc = [], operands[0]
    pending = [f"{op}{x}" for op, x in zip(ops, operands[1:])]
    for i, (op, x) in enumerate(zip(ops, operands[1:])):
        new = APPLY[op](acc, x)
        if solution == "aligned":  # one-digit operands: the rest starts 2 columns further each step
            width = len(str(9 * (len(field) // 2)))  # the largest running total
            lines.append(f"{acc:>{width}}{op}{x}={new:>{width}};{field[2 * i + 3:]}{'.' * (2 * i)}")
        else:
            lines.append(f"{acc}{op}{x}={new}" + (";" + "".join(pending[i + 1:]) if solution == "rewrite" else ""))
        acc = new
    lines.append(f"The answer is {acc}.")
    return "\n".join(lines), acc


def _arithmetic(rng: random.Random, cfg: TaskConfig, levels: range | None = None) -> Problem:
    count = rng.choice(levels) if levels else cfg.num_operands
    operands = [rng.randint(0, cfg.max_operand) for _ in range(count)]
    ops = [rng.choice(sorted(set(cfg.ops))) for _ in range(count - 1)]
    expr = str(operands[0]) + "".join(f"{op}{x}" for op, x in zip(ops, operands[1:]))
    if cfg.solution == "aligned":
        expr = _aligned_field(expr, cfg.max_operands or cfg.num_operands)
    rationale, answer = _solve(operands, ops, cfg.solution, expr)
    return Problem(prompt=f"Q:{expr}\n", answer=str(answer), rationale=rationale,
                   difficulty=count if levels else None)


def _aligned_field(expr: str, max_operands: int) -> str:
    """The problem, `|`, then filler drawn per problem (seeded by it) from the problem's own
    characters, to one width for every level. Columns that only harder problems use hold digits,
    `+` and `|` in easy ones too, so what the model learns there is to copy any character; the
    first `|` alone ends the problem (a column's content never does)."""
    filler = random.Random(expr)
    width = 2 * max_operands + 2  # the longest problem and its `|`
    return expr + "|" + "".join(filler.choice(FILLER) for _ in range(width - len(expr) - 1))


def _code(rng: random.Random, cfg: TaskConfig, levels: range | None = None) -> Problem:
    """f(x) applies `num_operands - 1` steps to x; the solution is one statement per step."""
    steps = [(rng.choice(sorted(set(cfg.ops))), rng.randint(1, cfg.max_operand)) for _ in range(cfg.num_operands - 1)]
    body = [f"    y = {'x' if i == 0 else 'y'} {op} {x}" for i, (op, x) in enumerate(steps)]
    solution = "```python\ndef f(x):\n" + "\n".join(body) + "\n    return y\n```"
    tests = []
    for value in CODE_TEST_INPUTS:
        result = value
        for op, x in steps:
            result = APPLY[op](result, x)
        tests.append(f"assert f({value}) == {result}")
    prompt = "f(x): " + ", then ".join(WORDS[op].format(x=x) for op, x in steps) + "\n"
    return Problem(prompt=prompt, answer="", rationale=solution, tests=tests)


def generate_task(cfg: TaskConfig, seed: int) -> dict[str, list[Problem]]:
    """Unique problems split into `train` (no rationale used), `eval` (held out) and `seed`."""
    make = _code if cfg.kind == "code" else _arithmetic
    rng = random.Random(seed)
    sizes = {"eval": cfg.eval_size, "seed": cfg.seed_size, "train": cfg.train_size}
    levels = {name: None for name in sizes}  # one operand count: the same draws as ever
    if cfg.max_operands is not None:  # easy -> hard: the seed set stops at seed_max_operands
        levels = {name: range(cfg.num_operands, cfg.max_operands + 1) for name in sizes}
        levels["seed"] = range(cfg.num_operands, (cfg.seed_max_operands or cfg.max_operands) + 1)
    seen: set[str] = set()  # TaskConfig checked that the problem space is large enough
    splits = {}
    for name, size in sizes.items():
        splits[name] = []
        while len(splits[name]) < size:
            p = make(rng, cfg, levels[name])
            if p.prompt not in seen:
                seen.add(p.prompt)
                splits[name].append(p)
    return splits


def curriculum_top(task: TaskConfig, round_idx: int, frontier_pass: Callable[[int, int], float]) -> int:
    """The hardest level round r draws from: one past the seed set's hardest in round 1, then one
    more each round, or, with `curriculum_advance_at`, one more only after a round whose pass rate
    at its hardest level (`frontier_pass(round, level)`) reached it: a fixed schedule outruns a
    model that has not learned the last level yet, and a level with no passing sample teaches
    nothing. Derived from earlier rounds' results, so a resumed run draws the same levels."""
    seed_top = task.seed_max_operands or task.max_operands
    if task.curriculum_advance_at is None:
        return min(seed_top + round_idx, task.max_operands)
    top = min(seed_top + 1, task.max_operands)
    for earlier in range(1, round_idx):
        if top < task.max_operands and frontier_pass(earlier, top) >= task.curriculum_advance_at:
            top += 1
    return top


def curriculum_pool(train: Dataset, task: TaskConfig | None, round_idx: int,
                    frontier_pass: Callable[[int, int], float]) -> tuple[Dataset, dict[str, float]]:
    """The training prompts round r draws from: with `task.curriculum`, levels up to
    `curriculum_top`, only the hardest `curriculum_levels` of them if set; otherwise all of them."""
    if task is None or not task.curriculum:
        return train, {}
    top = curriculum_top(task, round_idx, frontier_pass)
    bottom = top - task.curriculum_levels + 1 if task.curriculum_levels else task.num_operands
    pool = train.filter(lambda row: bottom <= row["difficulty"] <= top)
    return pool, {"curriculum/max_difficulty": float(top), "curriculum/pool": float(len(pool))}
