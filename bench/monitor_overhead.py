"""Monitoring overhead: the share of each round's time spent on monitoring, measured in one run.

Each round the monitor times its own work (`monitor/rollouts_seconds` and
`monitor/hygiene_seconds` inside the filter phase, `monitor/eval_seconds` inside evaluation)
beside the controller's phase timers (`time/round_s`), so one run gives both sides under the
same load. Prints per round and in total: monitoring seconds, round seconds, the ratio.

Goal: monitoring <= 5% of the demo's round time. Round 0 includes the one-off imports and
model load of sentence-transformers, so the steady-state figure is rounds 1..N.

    loop run configs/demo.yaml && python bench/monitor_overhead.py          # reads runs/demo
    python bench/monitor_overhead.py runs/NAME
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

GOAL = 0.05


def monitor_seconds(record: dict) -> float:
    return sum(float(v) for k, v in record.items() if k.startswith("monitor/") and k.endswith("_seconds"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default="runs/demo")
    args = parser.parse_args(argv)
    metrics = Path(args.run_dir) / "metrics.jsonl"
    if not metrics.exists():
        print(f"error: {metrics} does not exist; run `loop run configs/demo.yaml` first", file=sys.stderr)
        return 2
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    print(f"{'round':>5} {'monitor s':>10} {'round s':>9} {'share':>7}")
    for row in rows:
        mon, total = monitor_seconds(row), row.get("time/round_s", 0.0)
        print(f"{row['round']:>5} {mon:>10.2f} {total:>9.1f} {mon / total if total else 0:>7.1%}")
    later = rows[1:]
    mon, total = sum(map(monitor_seconds, later)), sum(r.get("time/round_s", 0.0) for r in later)
    share = mon / total if total else 0.0
    first = monitor_seconds(rows[0]) / max(rows[0].get("time/round_s", 1.0), 1e-9) if rows else 0.0
    print(f"rounds 1..{len(rows) - 1}: monitoring {mon:.1f}s of {total:.1f}s = {share:.1%} "
          f"(goal <= {GOAL:.0%}: {'met' if share <= GOAL else 'NOT met'}); round 0 (incl. one-off loading): {first:.1%}")
    return 0 if share <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
