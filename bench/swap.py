"""Weight swap: `HFEngine.load_weights` in place against building a new `HFEngine`, side by side.

Between rounds the controller makes the new checkpoint the generator by copying its tensors
into the running engine's model (`load_weights(checkpoint_dir, generator_id)`) instead of
constructing a fresh engine (tokenizer + `from_pretrained` + move to device). This measures
both on the same two checkpoints, alternating A -> B -> A so every swap really changes the
weights, and checks after each swap that the engine's weights equal the checkpoint's.

Three sizes: the demo's (0.5M parameters), hidden 512 x 8 layers (33.6M) and hidden 1536 x
13 layers (~490M). Both sides end with every weight resident in memory (one byte per page is
read): `from_pretrained` memory-maps safetensors lazily, and a rebuild that has not read its
weights yet would only move that cost into the first generation. Both read the same files
through the same page cache, one after the other in one process; the rebuild also drops the
engine it replaces, as the swap drops the weights it replaces.

On CPU the swap points the live parameters at the new file's memory map (no bytes copied, as
`from_pretrained` does), so what the rebuild pays on top is building the modules, tokenizer
and generation config.

Goal: the in-place swap faster than a rebuild at every size (>= 10x on the demo shape).

    python bench/swap.py                        # all three sizes
    python bench/swap.py --sizes demo 512x8     # skip the ~490M model (2 GB per checkpoint)
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
import transformers
from safetensors import safe_open

from loop.config import load_config
from policies.model_config import TinyModelConfig
from policies.checkpoint import save_policy
from policies.engines.hf import HFEngine
from policies.loading import char_tokenizer, tiny_model


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/demo.yaml", help="its model.tiny is the small shape")
    p.add_argument("--repeats", type=int, default=15, help="for the demo shape; fewer for bigger ones")
    p.add_argument("--sizes", nargs="+", default=["demo", "512x8", "1536x13"], help="demo or HIDDENxLAYERS")
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
    for path in sorted(checkpoint.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():
                tensor = handle.get_tensor(name)
                if not torch.equal(live[name], tensor.to(live[name].device, live[name].dtype)):
                    raise AssertionError(f"after the swap {name} differs from {checkpoint}")


def touch(engine: HFEngine) -> None:
    """Read one byte per memory page of every weight's storage, so all of them are resident.

    Per storage, not per parameter: both sides keep many weights in one storage (a view of the
    file's memory map), and one strided read per storage costs the same on both."""
    storages = {p.untyped_storage().data_ptr(): p.untyped_storage() for p in engine.model.parameters()}
    for storage in storages.values():
        torch.empty(0, dtype=torch.uint8).set_(storage, 0, (storage.nbytes(),))[::4096].sum()


def measure(shape: TinyModelConfig, repeats: int, dtype: str) -> dict[str, float]:
    """Median seconds of an in-place swap and of a rebuild, alternated, on this model shape:
    the call alone ("swap", "rebuild") and the call plus paging every weight in ("..._resident")."""
    times: dict[str, list[float]] = {"swap": [], "rebuild": [], "swap_resident": [], "rebuild_resident": []}
    with tempfile.TemporaryDirectory(prefix="bench_swap_") as tmp:
        ckpt_a, ckpt_b, n_params = make_checkpoints(shape, Path(tmp))
        engine = HFEngine(ckpt_a, "a", dtype=dtype)
        HFEngine(ckpt_b, "b", dtype=dtype)  # warm-up: imports, file cache, allocator
        engine.load_weights(ckpt_b, "b")
        rebuilt = HFEngine(ckpt_a, "a", dtype=dtype)
        for rep in range(repeats):
            target = ckpt_a if rep % 2 == 0 else ckpt_b  # engine holds the other one
            for name in ("swap", "rebuild") if rep % 2 == 0 else ("rebuild", "swap"):
                start = time.perf_counter()
                if name == "swap":
                    engine.load_weights(target, target.name)
                    called = time.perf_counter()
                    touch(engine)
                else:  # the new engine replaces the old one, whose memory is released here
                    rebuilt = HFEngine(target, target.name, dtype=dtype)
                    called = time.perf_counter()
                    touch(rebuilt)
                times[name].append(called - start)
                times[f"{name}_resident"].append(time.perf_counter() - start)
            assert_serves(engine, target)
            assert_serves(rebuilt, target)
        del rebuilt
    return {"params": n_params, **{name: statistics.median(t) for name, t in times.items()}}


def main() -> None:
    args = parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    transformers.logging.disable_progress_bar()
    cfg = load_config(args.config)
    small = cfg.model.tiny
    print(f"median of alternated swaps/rebuilds | threads {torch.get_num_threads()} | "
          f"load average {os.getloadavg()[0]:.1f}")
    for size in args.sizes:
        if size == "demo":
            shape, repeats = small, args.repeats
        else:
            hidden, layers = map(int, size.split("x"))
            shape = small.model_copy(update={"hidden_size": hidden, "num_layers": layers,
                                             "intermediate_size": 4 * hidden, "num_heads": max(1, hidden // 64)})
            repeats = max(3, args.repeats // (3 if hidden * layers < 10_000 else 5))
        r = measure(shape, repeats, cfg.model.dtype)
        speedup = r["rebuild_resident"] / r["swap_resident"]
        goal = 10 if size == "demo" else 1
        print(f"{size:>8} ({shape.num_layers} layers, hidden {shape.hidden_size}, {r['params'] / 1e6:.1f}M params, "
              f"{repeats} repeats): swap {r['swap_resident'] * 1e3:8.1f} ms | new engine "
              f"{r['rebuild_resident'] * 1e3:8.1f} ms | {speedup:6.1f}x (goal: faster"
              f"{' and >= 10x' if size == 'demo' else ''}: {'met' if speedup >= goal else 'NOT met'}) | "
              f"calls alone {r['swap'] * 1e3:.1f} vs {r['rebuild'] * 1e3:.1f} ms = "
              f"{r['rebuild'] / r['swap']:.1f}x | paging in alone {page_in(r, 'swap'):.1f} vs "
              f"{page_in(r, 'rebuild'):.1f} ms | load {os.getloadavg()[0]:.1f}", flush=True)


def page_in(r: dict[str, float], side: str) -> float:
    """Milliseconds of the median resident figure beyond the median call: what mapping and
    reading every weight page cost. It bounds the resident ratio: a swap can be no faster."""
    return (r[f"{side}_resident"] - r[side]) * 1e3


if __name__ == "__main__":
    main()
