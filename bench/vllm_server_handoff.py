"""The `vllm_server` engine's weight hand-off as a share of a round, against stand-in servers.

Each round the new policy is written to shared storage and every server reloads it in place:
`/collective_rpc reload_weights`, `/reset_prefix_cache`, `/update_weight_version`, `GET
/weight_info` (`VLLMServerEngine.load_weights`). This starts `--servers` stand-ins
(tests/openai_server.py, one process each: a real tiny HF model behind vLLM's routes), then
per round, alternating two checkpoints of the demo's shape so every reload really changes the
weights:

- save: `save_policy` of the new weights (what training's final save costs on shared storage),
- reload: `engine.load_weights` on every server (the hand-off proper),
- generate: the round's rollouts (`--prompts` x `rollout.n` at the demo's sampling settings).

It prints medians and the share of the round outside generation, (save + reload) / (save +
reload + generate). A real round also trains and evaluates, so this share is an upper bound
for the hand-off's cost in a loop. With `--run RUN_DIR` it also reads a finished run's
`metrics.jsonl` (e.g. from bench/demo_vllm_server.sh): its swap phase against its rounds.

Goal: the hand-off under 5% of the round.

    python bench/vllm_server_handoff.py                   # 2 servers, 256 prompts, 5 rounds
    python bench/vllm_server_handoff.py --run runs/demo_vllm_server_seed0
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from loop.config import load_config
from policies.checkpoint import save_policy
from policies.engines.base import SamplingParams
from policies.engines.config import ServerOptions
from policies.engines.vllm_server import VLLMServerEngine
from policies.loading import char_tokenizer, tiny_model

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/demo.yaml", help="model shape and sampling settings")
    p.add_argument("--servers", type=int, default=2)
    p.add_argument("--prompts", type=int, default=256, help="prompts per round (the demo has 1024)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads per server; 0 = torch's default")
    p.add_argument("--run", type=Path, help="also report a finished run's swap share from its metrics.jsonl")
    return p.parse_args()


def start_server(model_dir: Path, threads: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)} | ({"OMP_NUM_THREADS": str(threads)} if threads else {})
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "openai_server.py"), str(model_dir)],
                            stdout=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()  # "serving DIR at URL"
    if not line.startswith("serving"):
        proc.kill()
        raise RuntimeError(f"stand-in server did not start: {line!r}")
    return proc, line.rsplit(" at ", 1)[1].strip()


def measure(args: argparse.Namespace, root: Path) -> None:
    cfg = load_config(args.config)
    tokenizer = char_tokenizer()
    models = [tiny_model(cfg.model.tiny, tokenizer, seed) for seed in (0, 1)]
    first = save_policy(models[0], tokenizer, root / "start")
    servers = [start_server(first, args.threads) for _ in range(args.servers)]
    try:
        engine = VLLMServerEngine([url for _, url in servers], ServerOptions(), first, "round_000")
        ro = cfg.rollout
        problems = [f"Q:{i % 10}+{i // 10 % 10}+{i // 100}=" for i in range(args.prompts)]
        times: dict[str, list[float]] = {"save": [], "reload": [], "generate": []}
        for r in range(1, args.rounds + 1):
            start = time.perf_counter()
            ckpt = save_policy(models[r % 2], tokenizer, root / f"round_{r:03d}")
            times["save"].append(time.perf_counter() - start)
            start = time.perf_counter()
            engine.load_weights(ckpt, f"round_{r:03d}")
            times["reload"].append(time.perf_counter() - start)
            start = time.perf_counter()
            engine.generate(problems, SamplingParams(ro.n, ro.temperature, ro.top_p, ro.max_new_tokens, seed=r))
            times["generate"].append(time.perf_counter() - start)
            print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in times.items()), flush=True)
    finally:
        for proc, _ in servers:
            proc.kill()
            proc.wait()
    med = {k: statistics.median(v) for k, v in times.items()}
    outside = med["save"] + med["reload"]
    params = sum(p.numel() for p in models[0].parameters())
    print(f"\n{args.servers} servers, {params / 1e6:.2f}M parameters, {args.prompts} prompts x n={ro.n}, "
          f"max_new_tokens {ro.max_new_tokens}; medians over {args.rounds} rounds:")
    print(f"  save {med['save'] * 1e3:.1f} ms, reload on every server {med['reload'] * 1e3:.1f} ms, "
          f"generate {med['generate']:.2f} s")
    print(f"  outside generation: {100 * outside / (outside + med['generate']):.2f}% of the round "
          f"(reload alone {100 * med['reload'] / (outside + med['generate']):.2f}%)")


def report_run(run: Path) -> None:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][1:]  # round 0 has no swap
    swap = sum(r.get("time/swap_s", 0.0) for r in rows)
    generate = sum(r.get("time/generate_s", 0.0) for r in rows)
    total = sum(r.get("time/round_s", 0.0) for r in rows)
    print(f"\n{run}, rounds 1..{len(rows)}: swap {swap:.2f} s of {total:.1f} s = {100 * swap / total:.2f}% of the "
          f"rounds (generate {generate:.1f} s; swap / (swap + generate) = {100 * swap / (swap + generate):.2f}%)")


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        measure(args, Path(tmp))
    if args.run:
        report_run(args.run)


if __name__ == "__main__":
    main()
