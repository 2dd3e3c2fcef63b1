"""Procedurally generated tasks: the demo's problems, with worked rationales and answers.

`arithmetic`: chains like `47+8-15`. A solution works it left to right, one step per line, and
ends in "The answer is N." — the form the `math` reward checks. Problems are unique, and the
train, eval and seed splits are disjoint by construction.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from loop.config import TaskConfig

@dataclass(frozen=True)
class Problem:
    prompt: str
    answer: str
    rationale: str


def _solve(operands: list[int], ops: list[str]) -> tuple[str, int]:
    lines, acc = [], operands[0]
    for op, x in zip(ops, operands[1:]):
        new = acc + x if op == "+" else acc - x
        lines.append(f"{acc}{op}{x}={new}")
        acc = new
    lines.append(f"The answer is {acc}.")
    return "\n".join(lines), acc


def _problem(rng: random.Random, cfg: TaskConfig) -> Problem:
    operands = [rng.randint(0, cfg.max_operand) for _ in range(cfg.num_operands)]
    ops = [rng.choice(sorted(set(cfg.ops))) for _ in range(cfg.num_operands - 1)]
    expr = str(operands[0]) + "".join(f"{op}{x}" for op, x in zip(ops, operands[1:]))
    rationale, answer = _solve(operands, ops)
    return Problem(prompt=f"Q:{expr}\n", answer=str(answer), rationale=rationale)


def generate_arithmetic(cfg: TaskConfig, seed: int) -> dict[str, list[Problem]]:
    """Unique problems split into `train` (no rationale used), `eval` (held out) and `seed`."""
    rng = random.Random(seed)
    sizes = {"eval": cfg.eval_size, "seed": cfg.seed_size, "train": cfg.train_size}
    total = sum(sizes.values())  # TaskConfig checked that the problem space is large enough
    seen: set[str] = set()
    problems: list[Problem] = []
    while len(problems) < total:
        p = _problem(rng, cfg)
        if p.prompt not in seen:
            seen.add(p.prompt)
            problems.append(p)
    splits, start = {}, 0
    for name, size in sizes.items():
        splits[name] = problems[start : start + size]
        start += size
    return splits
