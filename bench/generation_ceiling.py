"""How much faster than raw batched `generate` can a smarter batching scheme make the hf engine?

Two measurements bound it for a run's model on this machine:

1. *Work wasted on finished rows.* A batch runs until its longest row ends; continuous
   batching, length bucketing or dropping finished rows can at best skip the decode steps of
   rows that already stopped. From a run's rollouts: the share of row-steps that produced a
   token (`token_count`, capped at `max_new_tokens`, over `max_new_tokens`). 1 / share is the
   ceiling of any such scheme.
2. *Whether a decode step costs per row.* Milliseconds per decode step at several batch sizes
   (1 thread, KV cache of a 20-token prompt): if the per-row cost is flat at the engine's batch
   size, skipping rows saves in proportion; if not, fewer rows save less.

    python bench/generation_ceiling.py runs/demo_seed0
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from policies.loading import load_model  # noqa: E402


def useful_share(run: Path, max_new_tokens: int) -> list[tuple[int, int, float, float]]:
    """Per round: (round, samples, share truncated, share of row-steps that made a token)."""
    out = []
    for round_dir in sorted(run.glob("round_*")):
        files = sorted(glob.glob(str(round_dir / "rollouts" / "*.parquet")))
        if not files:
            continue
        table = pq.read_table(files, columns=["token_count", "finish_reason"]).to_pydict()
        counts = table["token_count"]
        truncated = sum(f == "length" for f in table["finish_reason"]) / len(counts)
        share = sum(min(c, max_new_tokens) for c in counts) / (len(counts) * max_new_tokens)
        out.append((int(round_dir.name.split("_")[1]), len(counts), truncated, share))
    return out


@torch.inference_mode()
def step_cost(model, batch_sizes: list[int], steps: int = 40) -> list[tuple[int, float]]:
    """(batch size, ms per decode step)."""
    out = []
    for bs in batch_sizes:
        ids = torch.randint(5, 50, (bs, 20))
        past = model(input_ids=ids, use_cache=True).past_key_values
        start = time.perf_counter()
        for _ in range(steps):
            past = model(input_ids=ids[:, -1:], past_key_values=past, use_cache=True).past_key_values
        out.append((bs, (time.perf_counter() - start) / steps * 1000))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[512, 256, 128, 64, 32])
    args = parser.parse_args()
    cfg = yaml.safe_load((args.run / "config.yaml").read_text())
    max_new = cfg["rollout"]["max_new_tokens"]
    print(f"{args.run}: max_new_tokens {max_new}, engine batch {cfg['rollout']['batch_size']}")
    print("| round | samples | truncated | row-steps that made a token | ceiling 1/share |\n|---|---|---|---|---|")
    for r, n, truncated, share in useful_share(args.run, max_new):
        print(f"| {r} | {n:,} | {truncated:.1%} | {share:.1%} | {1 / share:.2f}x |")
    torch.set_num_threads(1)
    model = load_model(args.run / "round_000" / "checkpoint", device="cpu")
    print("\n| batch | ms per decode step | us per row |\n|---|---|---|")
    for bs, ms in step_cost(model, args.batch_sizes):
        print(f"| {bs} | {ms:.2f} | {ms * 1000 / bs:.1f} |")


if __name__ == "__main__":
    main()
