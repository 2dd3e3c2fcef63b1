"""Math reward throughput: samples per second scored by `MathReward` on this machine.

Workloads, each scored after a warm-up (workers started, sympy imported) and repeated,
medians reported:

- `plain`: GSM8K-style completions ending in a plain number ("... #### 1,234" or
  "The answer is 72."), half right, half wrong: the in-process fast path;
- `mixed`: half plain numbers, half LaTeX answers (`\\frac`, `\\sqrt`, intervals, tuples,
  equations) that need the sandboxed symbolic check, with 1 worker and with one per core,
  alternated in the same run; every repeat uses answers never seen before (no cache hit);
- `mixed, repeated`: the same batch scored again (the (answer, reference) cache);
- `LaTeX parse`: symbolic checks in this process with latex2sympy's stock full-LL ANTLR
  parsing vs the two-stage SLL-then-LL parsing `rewards.symbolic` installs.

    python bench/math_reward.py                  # 2000 plain, 400 mixed samples, 3 repeats
    python bench/math_reward.py --plain 20000 --mixed 1000 --repeats 5

Goals: thousands of plain samples/s; mixed with one worker per core >= 1.8x one worker.
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
from rewards.sandbox_pool import default_workers  # noqa: E402

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


def mixed_samples(count: int, offset: int = 0) -> tuple[list[str], list[str]]:
    """`count` samples, half LaTeX; a different `offset` gives answers never seen before."""
    completions, references = plain_samples(count // 2)
    for i in range(offset, offset + count - len(completions)):
        answer, reference = LATEX_ANSWERS[i % len(LATEX_ANSWERS)](i)
        completions.append(f"Step {i}: simplify. Therefore the answer is $\\boxed{{{answer}}}$.")
        references.append(reference)
    return completions, references


def rate(reward: MathReward, completions: list[str], references: list[str]) -> float:
    start = time.perf_counter()
    reward(["q"] * len(completions), completions, reference_answer=references)
    return len(completions) / (time.perf_counter() - start)


def warm_up(reward: MathReward) -> None:
    completions, references = mixed_samples(8 * reward.workers, offset=10**7)
    reward(["q"] * len(completions), completions, reference_answer=references)


def latex_parse_rates(count: int, repeats: int) -> dict[str, float]:
    """LaTeX pairs/s through `symbolic_equal` here, stock LL parsing vs two-stage."""
    from latex2sympy2_extended.latex2sympy2 import _Latex2Sympy

    from rewards import symbolic
    from rewards.math import normalize_answer

    parsers = {"full LL (stock)": symbolic._create_ll_parser, "SLL then LL": symbolic._create_two_stage_parser}
    rates: dict[str, list[float]] = {name: [] for name in parsers}
    offset = 2 * 10**7
    for _ in range(repeats + 1):  # the first round warms ANTLR's DFA caches for both
        for name, create_parser in parsers.items():
            _Latex2Sympy.create_parser = create_parser
            pairs = [LATEX_ANSWERS[i % len(LATEX_ANSWERS)](i) for i in range(offset, offset + count)]
            offset += count
            start = time.perf_counter()
            for answer, reference in pairs:
                symbolic.symbolic_equal(normalize_answer(answer), normalize_answer(reference))
            rates[name].append(count / (time.perf_counter() - start))
    _Latex2Sympy.create_parser = symbolic._create_two_stage_parser
    return {name: statistics.median(values[1:]) for name, values in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plain", type=int, default=2000, help="plain-number samples")
    parser.add_argument("--mixed", type=int, default=400, help="mixed samples (half LaTeX)")
    parser.add_argument("--workers", type=int, default=default_workers(), help="the pool to compare with 1 worker")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"commit {commit or '?'}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    with MathReward(workers=1) as one, MathReward(workers=args.workers) as pool:
        plain = statistics.median(rate(one, *plain_samples(args.plain)) for _ in range(args.repeats))
        warm_up(one), warm_up(pool)
        mixed: dict[int, list[float]] = {1: [], args.workers: []}
        for repeat in range(args.repeats):
            for reward in (one, pool) if repeat % 2 == 0 else (pool, one):
                mixed[reward.workers].append(rate(reward, *mixed_samples(args.mixed, offset=(2 * repeat + (reward is pool)) * args.mixed)))
        cached = rate(pool, *mixed_samples(args.mixed, offset=args.mixed))  # scored by `pool` in repeat 0
    one_rate, pool_rate = statistics.median(mixed[1]), statistics.median(mixed[args.workers])
    parse = latex_parse_rates(max(args.mixed // 10, 10), args.repeats)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("| workload | samples | samples/s |\n|---|---|---|")
    print(f"| plain numbers, 1 worker | {args.plain} | {plain:,.0f} |")
    print(f"| mixed (half LaTeX), 1 worker | {args.mixed} | {one_rate:,.0f} |")
    print(f"| mixed (half LaTeX), {args.workers} workers | {args.mixed} | {pool_rate:,.0f} ({pool_rate / one_rate:.2f}x) |")
    print(f"| mixed, repeated (cache) | {args.mixed} | {cached:,.0f} |")
    for name, value in parse.items():
        print(f"| LaTeX pairs in-process, {name} | {max(args.mixed // 10, 10)} | {value:,.1f} |")
    print(f"goal: plain >= 1,000 samples/s -> {'met' if plain >= 1000 else 'NOT met'}")
    print(f"goal: {args.workers} workers >= 1.8x one -> {'met' if pool_rate >= 1.8 * one_rate else 'NOT met'}")


if __name__ == "__main__":
    main()
