"""Rollout throughput: the `hf` engine against plain `transformers` generate, side by side.

Measures generated tokens per second (each sample counted through its first EOS, EOS included)
of three ways to draw `n` samples for each of the same prompts with the same model:

    engine      `HFEngine.generate(prompts, SamplingParams(n, temperature=1.0, ...))` with the
                config's `rollout.kv_cache` (unset in the demo: static)
    dynamic     the same engine with `kv_cache: dynamic` (transformers' default cache)
    raw         batched `model.generate(num_return_sequences=n)` + decode, same batch size,
                no log-prob recording: the floor a hand-written rollout loop would get
    sequential  `model.generate` once per sample (batch of 1), the naive loop; `--per-prompt`
                makes it one call per prompt with num_return_sequences=n instead

The engine runs each prompt through the model once for its n samples (raw `generate` repeats
it n times first), so its lead grows with the prompt's length and n: `--shots K` puts K worked
problems before each prompt, the length of a real task's few-shot prompt.

Goals: engine >= 0.95x raw (log-probs and bookkeeping are nearly free; issue 15 asks 1.3x)
and engine >= 10x sequential (batching is what the engine is for). The model is the demo's tiny Qwen2
(`model.tiny` in configs/demo.yaml, random weights) unless `--model` names a saved policy,
e.g. `runs/demo/round_000/checkpoint`; prompts are the demo's arithmetic problems.

The three are measured in alternating order over `--repeats` rounds after a warm-up and the
medians reported. Sequential is timed on a subset (`--sequential-samples`) since it is a rate.
`--threads` (default 1) fixes torch's intra-op threads: on a small shared CPU box two threads
spin-waiting against other processes make single timings vary by 10x or more.

    python bench/engine_throughput.py                      # 256 prompts x n=4, 40 new tokens
    python bench/engine_throughput.py --prompts 512 --repeats 7 --model runs/demo/round_000/checkpoint
    python bench/engine_throughput.py --shots 3 --n 8   # ~150-token few-shot prompts, 8 samples each
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
from loop.tasks import generate_task
from policies.engines.base import SamplingParams
from policies.engines.hf import HFEngine
from policies.loading import build_tiny
from policies.prompts import render_prompt


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/demo.yaml", help="model shape, task and rollout settings")
    p.add_argument("--model", default=None, help="a saved policy dir; default: build the config's tiny model")
    p.add_argument("--prompts", type=int, default=256)
    p.add_argument("--n", type=int, default=None, help="samples per prompt (default: rollout.n)")
    p.add_argument("--shots", type=int, default=0,
                   help="worked seed problems put before each prompt: a few-shot prompt, as long as real tasks' are")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: rollout.max_new_tokens")
    p.add_argument("--batch-size", type=int, default=None, help="sequences per call (default: rollout.batch_size)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sequential-samples", type=int, default=32, help="samples timed one at a time per repeat")
    p.add_argument("--per-prompt", action="store_true", help="sequential = one call per prompt with n samples")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads; 0 = torch's default")
    return p.parse_args()


def tokens_through_eos(new_tokens: torch.Tensor, eos_ids: list[int]) -> int:
    """Generated tokens summed over rows, each row counted through its first EOS (EOS included)."""
    is_stop = torch.isin(new_tokens, torch.tensor(eos_ids, device=new_tokens.device))
    first = torch.where(is_stop.any(dim=1), is_stop.int().argmax(dim=1) + 1, new_tokens.shape[1])
    return int(first.sum())


class RawGenerate:
    """Plain `model.generate` on the engine's own model and tokenizer: nothing but sampling + decode."""

    def __init__(self, model, tokenizer, temperature: float, max_new_tokens: int):
        self.model, self.tokenizer = model, tokenizer
        eos = model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        self.eos_ids = sorted({*eos, tokenizer.eos_token_id} - {None})
        self.kwargs = dict(do_sample=True, temperature=temperature, top_p=1.0, top_k=0,  # 0: all tokens, as the engine
                           max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                           eos_token_id=self.eos_ids)

    @torch.inference_mode()
    def __call__(self, prompts: list[str], prompts_per_call: int, n: int) -> int:
        tokens = 0
        for start in range(0, len(prompts), prompts_per_call):
            enc = self.tokenizer(prompts[start : start + prompts_per_call], return_tensors="pt",
                                 padding=True, add_special_tokens=False).to(self.model.device)
            sequences = self.model.generate(**enc, **self.kwargs, num_return_sequences=n)
            new_tokens = sequences[:, enc["input_ids"].shape[1] :]
            tokens += tokens_through_eos(new_tokens, self.eos_ids)
            self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return tokens


def timed(fn, *args) -> tuple[float, int]:
    start = time.perf_counter()
    tokens = fn(*args)
    return time.perf_counter() - start, tokens


def main() -> None:
    args = parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    transformers.logging.disable_progress_bar()
    cfg = load_config(args.config)
    n = args.n or cfg.rollout.n
    max_new = args.max_new_tokens or cfg.rollout.max_new_tokens
    batch_size = args.batch_size or cfg.rollout.batch_size
    scratch = tempfile.TemporaryDirectory(prefix="bench_engine_")  # removed at exit
    model_dir = args.model or build_tiny(cfg.model, cfg.seed, Path(scratch.name) / "tiny")

    engine = HFEngine(model_dir, "bench", batch_size=batch_size, dtype=cfg.model.dtype, kv_cache=cfg.rollout.kv_cache)
    dynamic = HFEngine(model_dir, "bench", batch_size=batch_size, dtype=cfg.model.dtype, kv_cache="dynamic")
    task = cfg.data.task.model_copy(update={"train_size": max(args.prompts, cfg.data.task.train_size)})
    splits = generate_task(task, cfg.seed)
    shots = "".join(f"{s.prompt}{s.rationale}\n" for s in splits["seed"][: args.shots])
    prompts = [render_prompt(engine.tokenizer, shots + p.prompt, cfg.model.chat_template)
               for p in splits["train"][: args.prompts]]
    params = SamplingParams(n=n, temperature=1.0, max_new_tokens=max_new)
    per_call = max(1, batch_size // n)
    raw = RawGenerate(engine.model, engine.tokenizer, 1.0, max_new)

    def run_engine(ps: list[str], which: HFEngine = engine) -> int:
        return sum(c.token_count for row in which.generate(ps, params) for c in row)

    seq_prompts = prompts[: max(1, args.sequential_samples // n)]
    if args.per_prompt:
        def run_sequential() -> int:
            return raw(seq_prompts, 1, n)
    else:
        def run_sequential() -> int:
            return sum(raw([p], 1, 1) for p in seq_prompts for _ in range(n))

    measures = {"engine": lambda: run_engine(prompts), "dynamic": lambda: run_engine(prompts, dynamic),
                "raw": lambda: raw(prompts, per_call, n), "sequential": run_sequential}
    prompt_tokens = statistics.mean(len(engine.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
    print(f"model {model_dir} | {len(prompts)} prompts of {prompt_tokens:.0f} tokens x n={n}, max_new_tokens={max_new}, "
          f"{per_call} prompts/call | sequential: {len(seq_prompts) * n} samples, "
          f"{'per prompt' if args.per_prompt else 'per sample'} | threads {torch.get_num_threads()}")
    run_engine(prompts[:per_call])  # warm-up: allocator, kernels, tokenizer caches
    run_engine(prompts[:per_call], dynamic)
    raw(prompts[:per_call], per_call, n)
    raw(prompts[:1], 1, 1)

    rates: dict[str, list[float]] = {name: [] for name in measures}
    seconds: dict[str, list[float]] = {name: [] for name in measures}
    for rep in range(args.repeats):
        order = list(measures) if rep % 2 == 0 else list(reversed(measures))
        for name in order:
            torch.manual_seed(rep)
            dt, tokens = timed(measures[name])
            rates[name].append(tokens / dt)
            seconds[name].append(dt)
        print(f"  repeat {rep + 1}/{args.repeats}: " + "  ".join(
            f"{name} {rates[name][-1]:,.0f} tok/s ({seconds[name][-1]:.2f}s)" for name in measures), flush=True)

    med = {name: statistics.median(values) for name, values in rates.items()}
    for name in measures:
        print(f"{name:>10}: {med[name]:>10,.0f} tokens/s  (median of {args.repeats}; "
              f"median {statistics.median(seconds[name]):.2f}s per measurement)")
    vs_raw, vs_seq = med["engine"] / med["raw"], med["engine"] / med["sequential"]
    print(f"engine / raw batched : {vs_raw:.3f}x  (goal >= 0.95x: {'met' if vs_raw >= 0.95 else 'NOT met'}; "
          f"issue 15's 1.3x: {'met' if vs_raw >= 1.3 else 'NOT met'})")
    print(f"engine ({engine.kv_cache} KV cache) / dynamic: {med['engine'] / med['dynamic']:.3f}x; "
          f"dynamic / raw: {med['dynamic'] / med['raw']:.3f}x")
    print(f"engine / sequential  : {vs_seq:.1f}x  (goal >= 10x: {'met' if vs_seq >= 10 else 'NOT met'})")


if __name__ == "__main__":
    main()
