"""Math reward throughput: samples per second scored by `MathReward` on this machine.

Two workloads, each scored after a warm-up (the worker started, sympy imported) and
repeated, medians reported:

- `plain`: GSM8K-style completions ending in a plain number ("... #### 1,234" or
  "The answer is 72."), half right, half wrong: the in-process fast path;
- `mixed`: half plain numbers, half LaTeX answers (`\\frac`, `\\sqrt`, intervals, tuples,
  equations) that need the sandboxed symbolic check.

    python bench/math_reward.py                  # 2000 plain, 200 mixed samples, 3 repeats
    python bench/math_reward.py --plain 20000 --mixed 1000 --repeats 5

Goal: thousands of plain samples/s (the reward must never be the loop's bottleneck on
grade-school data).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rewards.math import MathReward  # noqa: E402

# (completion's answer, reference) for sample i: the kinds of answers MATH problems have,
# some right, some wrong. They vary with i so no parse cache sees one string twice.
LATEX_ANSWERS = [
    lambda i: (rf"\frac{{{i + 1}}}{{{2 * i + 2}}}", "0.5"),
    lambda i: (rf"{i + 2}\sqrt{{3}}", rf"\sqrt{{{3 * (i + 2) ** 2}}}"),
    lambda i: (rf"x \in [{i}, \infty)", rf"[{i},\infty)"),
    lambda i: (rf"({i}, {i + 1})", rf"({i},{i + 1})"),
    lambda i: (rf"\{{{i}, {i + 1}\}}", rf"\{{{i + 1},{i}\}}"),
    lambda i: (rf"y = {i + 2}x + 1", rf"y={i + 2}x+1"),
    lambda i: (rf"x \in ({i},{i + 4})", rf"x \in ({i + 1},{i + 4})"),
    lambda i: (rf"\frac{{{i + 3}}}{{4}}", rf"\frac{{4}}{{{i + 3}}}"),
    lambda i: (rf"{i + 10},\!080", f"{i + 10}080"),
    lambda i: (rf"x^2 - {(i + 1) ** 2} = 0", rf"x = \pm {i + 1}"),
]


def plain_samples(count: int) -> tuple[list[str], list[str]]:
    completions, references = [], []
    for i in range(count):
        answer = 17 * i + 3
        style = f"She sells {i} cups.\n#### {answer:,}" if i % 2 else f"So the answer is {answer}."
        completions.append(style)
        references.append(str(answer if i % 4 < 2 else answer + 1))
    return completions, references


def mixed_samples(count: int) -> tuple[list[str], list[str]]:
    completions, references = plain_samples(count // 2)
    for i in range(count - len(completions)):
        answer, reference = LATEX_ANSWERS[i % len(LATEX_ANSWERS)](i)
        completions.append(f"Step {i}: simplify. Therefore the answer is $\\boxed{{{answer}}}$.")
        references.append(reference)
    return completions, references


def samples_per_second(reward: MathReward, completions: list[str], references: list[str], repeats: int) -> float:
    reward(["q"] * 20, completions[-20:], reference_answer=references[-20:])  # warm-up: worker, imports
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        reward(["q"] * len(completions), completions, reference_answer=references)
        rates.append(len(completions) / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain", type=int, default=2000, help="plain-number samples")
    parser.add_argument("--mixed", type=int, default=200, help="mixed samples (half LaTeX)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"commit {commit or '?'}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    with MathReward() as reward:
        plain = samples_per_second(reward, *plain_samples(args.plain), args.repeats)
        mixed = samples_per_second(reward, *mixed_samples(args.mixed), args.repeats)
    print("| workload | samples | samples/s |\n|---|---|---|")
    print(f"| plain numbers | {args.plain} | {plain:,.0f} |")
    print(f"| mixed (half LaTeX) | {args.mixed} | {mixed:,.0f} |")
    print(f"goal: plain >= 1,000 samples/s -> {'met' if plain >= 1000 else 'NOT met'}")


if __name__ == "__main__":
    main()
