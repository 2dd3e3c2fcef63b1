"""Weight swap: `HFEngine.load_weights` in place against building a new `HFEngine`, side by side.

Between rounds the controller makes the new checkpoint the generator by copying its tensors
into the running engine's model (`load_weights(checkpoint_dir, generator_id)`) instead of
constructing a fresh engine (tokenizer + `from_pretrained` + move to device). This measures
both on the same two checkpoints, alternating A -> B -> A so every swap really changes the
weights, and checks after each swap that the engine's weights equal the checkpoint's.

Goal: the in-place swap >= 10x faster than a rebuild. For scaling it also times both on a
bigger tiny model (default hidden 512, 8 layers; `--big-hidden`, `--big-layers`).

    python bench/swap.py                        # demo shape (configs/demo.yaml model.tiny), then big
    python bench/swap.py --repeats 31 --big-hidden 1024 --big-layers 12
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import transformers

from loop.config import load_config
from policies.model_config import TinyModelConfig
from policies.checkpoint import read_state_dict, save_policy
from policies.engines.hf import HFEngine
from policies.loading import char_tokenizer, tiny_model


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/demo.yaml", help="its model.tiny is the small shape")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--big-hidden", type=int, default=512)
    p.add_argument("--big-layers", type=int, default=8)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads; 0 = torch's default")
    return p.parse_args()


def make_checkpoints(shape: TinyModelConfig, root: Path) -> tuple[Path, Path, int]:
    """Two policies of one shape with different weights (seeds 0 and 1); returns their dirs, #params."""
    tokenizer = char_tokenizer()
    dirs = []
    for seed in (0, 1):
        model = tiny_model(shape, tokenizer, seed)
        dirs.append(save_policy(model, tokenizer, root / f"seed{seed}"))
    return dirs[0], dirs[1], sum(p.numel() for p in model.parameters())


def assert_serves(engine: HFEngine, checkpoint: Path) -> None:
    """The engine's weights equal the checkpoint's (so the swap did the whole job)."""
    live = engine.model.state_dict()
    for name, tensor in read_state_dict(checkpoint).items():
        if not torch.equal(live[name], tensor.to(live[name].device, live[name].dtype)):
            raise AssertionError(f"after the swap {name} differs from {checkpoint}")


def measure(shape: TinyModelConfig, repeats: int, dtype: str) -> dict[str, float]:
    """Median seconds of an in-place swap and of a rebuild, alternated, on this model shape."""
    with tempfile.TemporaryDirectory(prefix="bench_swap_") as tmp:
        ckpt_a, ckpt_b, n_params = make_checkpoints(shape, Path(tmp))
        engine = HFEngine(ckpt_a, "a", dtype=dtype)
        HFEngine(ckpt_b, "b", dtype=dtype)  # warm-up: imports, file cache, allocator
        engine.load_weights(ckpt_b, "b")
        swaps, rebuilds = [], []
        for rep in range(repeats):
            target = ckpt_a if rep % 2 == 0 else ckpt_b  # engine holds the other one
            steps = [("swap", swaps), ("rebuild", rebuilds)]
            for name, times in steps if rep % 2 == 0 else reversed(steps):
                start = time.perf_counter()
                if name == "swap":
                    engine.load_weights(target, target.name)
                else:
                    rebuilt = HFEngine(target, target.name, dtype=dtype)
                times.append(time.perf_counter() - start)
            assert_serves(engine, target)
            assert_serves(rebuilt, target)
            del rebuilt
    return {"params": n_params, "swap": statistics.median(swaps), "rebuild": statistics.median(rebuilds)}


def main() -> None:
    args = parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    transformers.logging.disable_progress_bar()
    cfg = load_config(args.config)
    small = cfg.model.tiny
    big = small.model_copy(update={"hidden_size": args.big_hidden, "num_layers": args.big_layers,
                                   "intermediate_size": 4 * args.big_hidden,
                                   "num_heads": max(1, args.big_hidden // 64)})
    print(f"median of {args.repeats} alternated swaps/rebuilds | threads {torch.get_num_threads()}")
    results = {}
    for label, shape in (("demo", small), ("big", big)):
        r = measure(shape, args.repeats, cfg.model.dtype)
        results[label] = r
        print(f"{label:>5} ({shape.arch}, {shape.num_layers} layers, hidden {shape.hidden_size}, "
              f"{r['params'] / 1e6:.1f}M params): swap {r['swap'] * 1e3:8.1f} ms | "
              f"new engine {r['rebuild'] * 1e3:8.1f} ms | {r['rebuild'] / r['swap']:6.1f}x", flush=True)
    speedup = results["demo"]["rebuild"] / results["demo"]["swap"]
    growth = results["big"]["swap"] / results["demo"]["swap"]
    size = results["big"]["params"] / results["demo"]["params"]
    print(f"in-place swap vs new engine (demo shape): {speedup:.1f}x faster "
          f"(goal >= 10x: {'met' if speedup >= 10 else 'NOT met'})")
    print(f"swap time grows {growth:.1f}x for {size:.1f}x the parameters")


if __name__ == "__main__":
    main()
