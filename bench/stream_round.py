"""Reward + filter of a round at 100k / 400k / 1M rollouts: peak memory and rows/s.

Writes demo-shaped rollout shards (512 rows each, completions of ~200 characters: worked
sums, right, wrong, truncated), then, in a fresh process per size, runs what the loop's
reward and filter phases run: `score_shards` with the rewards of `configs/demo.yaml` into
`scored.parquet`, then RFT's selection into `examples.parquet`. Prints each size's peak RSS
(the process's high-water mark, interpreter and imports included) and rows/s.

    python bench/stream_round.py                      # 100k, 400k, 1M rows
    python bench/stream_round.py --rows 20000 50000   # quick

Goal: the 1M figure under 4 GiB and flat in the row count.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROWS_PER_SHARD = 512  # the demo's prompts_per_shard (128) x n (4)


def write_rollouts(rows: int, out_dir: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from policies.schema import ROLLOUT

    rng = random.Random(rows)
    out_dir.mkdir(parents=True)
    for shard, start in enumerate(range(0, rows, ROWS_PER_SHARD)):
        records = [_rollout(i, rng) for i in range(start, min(start + ROWS_PER_SHARD, rows))]
        table = pa.Table.from_pylist(records, schema=ROLLOUT.arrow_schema)
        pq.write_table(table, out_dir / f"shard_{shard:05d}.parquet")


def _rollout(i: int, rng: random.Random) -> dict:
    prompt_index = i // 4
    operands = [(prompt_index * 7 + k * 3) % 9 + 1 for k in range(14)]
    total, steps = operands[0], []
    for operand in operands[1:]:
        wrong = rng.random() < 0.1
        steps.append(f"{total}+{operand}={total + operand + wrong}")
        total += operand + wrong
    truncated = rng.random() < 0.37
    completion = "\n".join(steps) + ("" if truncated else f"\nThe answer is {total}.")
    prompt = "+".join(map(str, operands))
    return {"prompt_id": f"p{prompt_index}", "prompt": prompt, "prompt_text": f"Q:{prompt}\n",
            "reference_answer": str(sum(operands)), "round": 1, "sample_index": i % 4, "completion": completion,
            "token_count": len(completion) + 1, "sum_logprob": -rng.random() * 20,
            "finish_reason": "length" if truncated else "stop", "generator_id": "round_000"}


def measure(rollout_dir: Path, work_dir: Path) -> dict:
    """One round's reward and filter phases, as the loop runs them; figures as a dict."""
    import yaml

    from loop.scoring import score_shards
    from policies.atomic import save_parquet
    from policies.tables import ScoredRollouts
    from policies.updates.rft import filter_metrics, select_accepted, to_examples
    from rewards import WeightedReward, build_reward

    demo = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    rewards = [WeightedReward(r["name"], build_reward(r["name"], **r.get("args", {})), r["weight"], r.get("gate"))
               for r in demo["rewards"]]
    update = demo["update"]
    start = time.perf_counter()
    _, metrics = score_shards(sorted(rollout_dir.glob("shard_*.parquet")), work_dir / "scored.parquet", rewards)
    reward_s = time.perf_counter() - start
    start = time.perf_counter()
    scored = ScoredRollouts.open(work_dir / "scored.parquet")
    kept, dropped = select_accepted(scored, update["threshold"], update["max_per_prompt"], True)
    filter_metrics(scored, kept, dropped)
    save_parquet(to_examples(scored, kept), work_dir / "examples.parquet")
    filter_s = time.perf_counter() - start
    return {"rows": int(metrics["rollout/samples"]), "kept": len(kept), "reward_s": reward_s, "filter_s": filter_s,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 400_000, 1_000_000])
    parser.add_argument("--measure", nargs=2, metavar=("ROLLOUTS", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), Path(args.measure[1]))))
        return
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    print(f"commit {commit or '?'}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print("| rollouts | kept | peak RSS | reward rows/s | filter rows/s | load |\n|---|---|---|---|---|---|")
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            write_rollouts(rows, Path(tmp) / "rollouts")
            # A fresh process per size, so each peak is its own; the datasets cache stays in tmp.
            env = {**os.environ, "HF_DATASETS_CACHE": str(Path(tmp) / "cache"), "OMP_NUM_THREADS": "1"}
            done = subprocess.run([sys.executable, __file__, "--measure", str(Path(tmp) / "rollouts"), tmp],
                                  capture_output=True, text=True, env=env, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"| {r['rows']:,} | {r['kept']:,} | {r['peak_rss_mib']:,.0f} MiB | {r['rows'] / r['reward_s']:,.0f} "
                  f"| {r['rows'] / r['filter_s']:,.0f} | {os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
