"""Code sandbox throughput: executions per second of the `code` reward on this machine.

Scores a batch of small, correct programs with assert tests (one sandboxed process per
sample) through `CodeReward`, with 1 and 2 workers, in the bubblewrap sandbox and in the
rlimits-only fallback, and prints one table with the ratios side by side: what parallel
workers buy, and what the sandbox costs over a bare subprocess.

    python bench/code_sandbox.py                 # 64 samples, 3 repeats per setting (~15 s)
    python bench/code_sandbox.py --samples 200 --repeats 5 --workers 1 2 4
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rewards.code import CodeReward  # noqa: E402
from rewards.execution import Limits, LocalExecutor  # noqa: E402

# (program, tests): typical of MBPP-style tasks, each well under a millisecond of work.
TASKS = [
    (
        "def add(a, b):\n    return a + b\n",
        ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(0, 0) == 0"],
    ),
    (
        "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
        ["assert fib(0) == 0", "assert fib(10) == 55", "assert fib(20) == 6765"],
    ),
    (
        "def is_palindrome(s):\n    s = ''.join(c.lower() for c in s if c.isalnum())\n    return s == s[::-1]\n",
        ["assert is_palindrome('A man, a plan, a canal: Panama')", "assert not is_palindrome('abc')"],
    ),
    (
        "def primes_below(n):\n    sieve = [True] * n\n    out = []\n    for i in range(2, n):\n"
        "        if sieve[i]:\n            out.append(i)\n            for j in range(i * i, n, i):\n"
        "                sieve[j] = False\n    return out\n",
        ["assert primes_below(10) == [2, 3, 5, 7]", "assert len(primes_below(1000)) == 168"],
    ),
]


GOAL_SCALING = 1.6  # what a second worker should buy on a 2-core machine
GOAL_SANDBOX = 0.7  # the sandbox may cost at most ~30% over a bare subprocess


def batch(samples: int) -> tuple[list[str], list[list[str]]]:
    """`samples` completions (as a model would write them) and their tests."""
    chosen = [TASKS[i % len(TASKS)] for i in range(samples)]
    return [f"Here is my solution:\n```python\n{program}```" for program, _ in chosen], [tests for _, tests in chosen]


def build(use_bwrap: bool, workers: int) -> CodeReward:
    """A warmed-up reward: bwrap probed, interpreter files in the page cache."""
    reward = CodeReward(workers=workers, executor=LocalExecutor(Limits(timeout_s=10.0), use_bwrap=use_bwrap))
    completions, tests = batch(2)
    reward(prompts=["p"] * 2, completions=completions, tests=tests)
    return reward


def measure(reward: CodeReward, samples: int) -> float:
    """Executions per second for one batch of `samples`."""
    completions, tests = batch(samples)
    start = time.perf_counter()
    scores = reward(prompts=["p"] * samples, completions=completions, tests=tests)
    elapsed = time.perf_counter() - start
    if scores != [1.0] * samples:
        raise SystemExit(f"bench programs failed: {reward.verdicts(['p'], completions[:1], tests=tests[:1])}")
    return samples / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="code execution is NOT sandboxed")
    rewards = {}
    for use_bwrap in ([False] if shutil.which("bwrap") is None else [True, False]):
        for workers in args.workers:
            reward = build(use_bwrap, workers)
            rewards[(reward.executor.isolation, workers)] = reward
    runs: dict[tuple[str, int], list[float]] = {key: [] for key in rewards}
    for _ in range(args.repeats):  # settings alternate, so drift on a shared machine hits all alike
        for key, reward in rewards.items():
            runs[key].append(measure(reward, args.samples))
    rates = {key: statistics.median(values) for key, values in runs.items()}
    base = args.workers[0]
    print(f"{args.samples} samples per batch, median of {args.repeats}; one sandboxed process per sample")
    print(f"{'isolation':>10} {'workers':>8} {'exec/s':>8} {'ms/exec':>8} {f'vs {base} worker':>12} {'vs rlimits':>10}")
    for (isolation, workers), rate in rates.items():
        scaling = rate / rates[(isolation, base)]
        fallback = rates.get(("rlimits", workers))
        versus = f"{rate / fallback:>9.2f}x" if fallback else f"{'-':>10}"
        print(f"{isolation:>10} {workers:>8} {rate:>8.1f} {1000 / rate:>8.1f} {scaling:>11.2f}x {versus}")
    print(f"goals: {max(args.workers)} workers >= {GOAL_SCALING}x {base} worker (on >= 2 cores); "
          f"bwrap >= {GOAL_SANDBOX}x rlimits-only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
