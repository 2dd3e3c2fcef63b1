"""Loop overhead: the share of each round's time spent outside the heavy phases of a finished run.

Reads `metrics.jsonl` of a run dir (one line per round, with `time/<phase>_s` per phase and
`time/round_s`) and prints, per round and in total, the time spent in the heavy work
(generate, train, evaluate, control; and round 0's `init`, which is the seed SFT) against
everything else the controller does between them (reward, filter, swap, ...).

Goal: the rest < 3% of each round. Note `time/round_s` is the controller's sum of its phase
timers, so bookkeeping between phases (state.json, merging metrics) is not in it; the
end-to-end comparison against a hand-written loop (`bench/handwritten_loop.py`) catches that.

    loop run configs/demo.yaml            # makes runs/demo, if there is none yet
    python bench/overhead.py              # reads runs/demo
    python bench/overhead.py runs/NAME
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HEAVY = ("generate", "train", "evaluate", "control", "init")
GOAL = 0.03


def phase_times(record: dict) -> dict[str, float]:
    """`{phase: seconds}` from one round's metrics line (`time/round_s` left out)."""
    return {key[len("time/") : -len("_s")]: float(value) for key, value in record.items()
            if key.startswith("time/") and key.endswith("_s") and key != "time/round_s"}


def split(record: dict) -> tuple[float, float, dict[str, float]]:
    """(round seconds, heavy seconds, {other phase: seconds}) for one round."""
    times = phase_times(record)
    total = float(record.get("time/round_s", sum(times.values())))
    heavy = sum(t for phase, t in times.items() if phase in HEAVY)
    return total, heavy, {phase: t for phase, t in times.items() if phase not in HEAVY}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir", nargs="?", default="runs/demo")
    args = p.parse_args()
    metrics = Path(args.run_dir) / "metrics.jsonl"
    if not metrics.exists():
        print(f"{metrics} does not exist: make a run first, e.g. `loop run configs/demo.yaml` "
              f"(writes runs/demo) or `loop run CONFIG --set name=NAME`, then "
              f"`python bench/overhead.py runs/NAME`", file=sys.stderr)
        return 2
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    print(f"{metrics}: {len(rows)} rounds; heavy = {', '.join(HEAVY)}")
    print(f"{'round':>5} {'round s':>9} {'heavy s':>9} {'other s':>9} {'other %':>8}  other phases")
    sum_total = sum_other = 0.0
    worst = 0.0
    for row in rows:
        total, heavy, other = split(row)
        rest = total - heavy
        share = rest / total if total > 0 else 0.0
        sum_total, sum_other, worst = sum_total + total, sum_other + rest, max(worst, share)
        detail = ", ".join(f"{phase} {seconds:.3f}s" for phase, seconds in sorted(other.items()))
        print(f"{row['round']:>5} {total:>9.2f} {heavy:>9.2f} {rest:>9.3f} {100 * share:>7.2f}%  {detail}")
    share = sum_other / sum_total if sum_total > 0 else 0.0
    print(f"total {sum_total:>9.2f} {sum_total - sum_other:>9.2f} {sum_other:>9.3f} {100 * share:>7.2f}%")
    met = worst < GOAL
    print(f"outside generate/train/evaluate/control: {100 * share:.2f}% overall, worst round "
          f"{100 * worst:.2f}% (goal < {100 * GOAL:.0f}% per round: {'met' if met else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
