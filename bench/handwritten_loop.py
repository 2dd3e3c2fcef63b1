"""The demo's RFT loop written by hand in plain torch/transformers, timed against `loop run`.

What a framework costs is the time it adds over the loop anyone could write in an afternoon.
This script is that loop, doing the same work as `loop run configs/demo.yaml` without the
control: the same tiny model and task data (the only selfloop imports build those and read
the config), then

    round 0   seed SFT: plain AdamW, completion-only loss, same lr / batch size / epochs
              (steps = ceil(epochs * ceil(examples / batch size)), as the Trainer counts them);
              greedy pass@1 and sampled pass@k on the held-out set
    round r   sample n completions for `prompts_per_round` prompts with batched `model.generate`;
              keep the right ones ("The answer is N." by regex, and every `a+b=c` step right
              when the config's rewards include `steps`), dedup, at most K per prompt;
              SFT on them (as many steps as `loop run` took); evaluate as in round 0

It first runs

    python -m loop run CONFIG --set name=bench_demo --set control.enabled=false --set tracking.wandb=false

as a subprocess (after deleting runs/bench_demo), then the hand-written loop, which takes the
same number of optimizer steps per round as `loop run` took (read from its metrics.jsonl):
the two keep different numbers of samples, and the steps are the work. Each prints wall
time, accuracy and phase times per round; then the ratio of the wall times.
Goal: `loop run` <= 1.5x the hand-written loop (issue 15: 1.1x). Both sides include interpreter
start-up and imports. The two run one after the other, so on a shared machine run it twice; or,
with `--concurrent` (after one plain run), at the same time, one core each.
With `--skip-loop` the hand-written loop counts its steps by the Trainer's rule instead.

Default is the full demo (2-3 minutes per side on 2 CPU cores, one thread). Shorter:

    python bench/handwritten_loop.py --rounds 1                      # a quick check of both
    python bench/handwritten_loop.py --skip-loop                     # only the hand-written one
    python bench/handwritten_loop.py                                 # the full demo, both
    python bench/handwritten_loop.py --concurrent                    # then both at once, a core each
"""

from __future__ import annotations

import time

_STARTED = time.perf_counter()  # before the heavy imports: the loop's wall time includes its own

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import transformers  # noqa: E402

from loop.config import LoopConfig, load_config  # noqa: E402
from loop.tasks import Problem, generate_task  # noqa: E402
from policies.loading import char_tokenizer, tiny_model  # noqa: E402

_IMPORTED = time.perf_counter()

ANSWER = re.compile(r"The answer is (-?\d+)\.")
STEP = re.compile(r"(-?\d+)\s*([-+])\s*(-?\d+)\s*=\s*(-?\d+)")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/demo.yaml")
    p.add_argument("--rounds", type=int, default=None, help="shorten both loops (default: the config's)")
    p.add_argument("--seed-epochs", type=float, default=None, help="shorten both seed SFTs (default: the config's)")
    p.add_argument("--skip-loop", action="store_true", help="only run the hand-written loop")
    p.add_argument("--name", default="bench_demo", help="run name of `loop run` (its run dir is deleted first)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads for both sides (OMP_NUM_THREADS for `loop run`); 0 = default")
    p.add_argument("--concurrent", action="store_true",
                   help="run both at once, each pinned to its own core (1 thread each), so that both see the "
                        "machine's speed of the same minutes; the hand-written loop takes the steps of the "
                        "last `loop run` of --name (run once without this flag first)")
    return p.parse_args()


# --- checking answers -------------------------------------------------------------------
def is_right(text: str, answer: str, check_steps: bool) -> bool:
    """The last "The answer is N." says the reference answer (and, if asked, every step is right)."""
    found = ANSWER.findall(text)
    if not found or found[-1] != answer:
        return False
    if not check_steps:
        return True
    steps = STEP.findall(text)
    return bool(steps) and all((int(a) + int(b) if op == "+" else int(a) - int(b)) == int(c)
                               for a, op, b, c in steps)


# --- training ---------------------------------------------------------------------------
def encode(tokenizer, pairs: list[tuple[str, str]], max_length: int) -> dict[str, torch.Tensor]:
    """Right-padded batch; labels only on the completion and its EOS (completion-only loss)."""
    rows = []
    for prompt, completion in pairs:
        prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
        completion_ids = tokenizer.encode(completion, add_special_tokens=False) + [tokenizer.eos_token_id]
        ids = (prompt_ids + completion_ids)[:max_length]
        labels = ([-100] * len(prompt_ids) + completion_ids)[:max_length]
        rows.append((ids, labels))
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id
    return {
        "input_ids": torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows]),
        "attention_mask": torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows]),
        "labels": torch.tensor([labels + [-100] * (width - len(labels)) for _, labels in rows]),
    }


def trainer_steps(examples: int, epochs: float, batch_size: int) -> int:
    """Optimizer steps the HF Trainer takes: ceil(epochs * batches per epoch), grad_accum 1."""
    return math.ceil(epochs * math.ceil(examples / batch_size)) if examples else 0


def sft(model, tokenizer, pairs: list[tuple[str, str]], cfg: LoopConfig, steps: int, seed: int) -> int:
    """`steps` AdamW steps over `pairs`, reshuffled each pass; returns the steps taken."""
    u = cfg.update
    if not pairs:
        return 0
    optimizer = torch.optim.AdamW(model.parameters(), lr=u.learning_rate, weight_decay=u.weight_decay)
    rng = random.Random(seed)
    model.train()
    done = 0
    while done < steps:
        order = list(range(len(pairs)))
        rng.shuffle(order)
        for start in range(0, len(order), u.batch_size):
            if done == steps:
                break
            batch = encode(tokenizer, [pairs[i] for i in order[start : start + u.batch_size]], u.max_length)
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # the Trainer's default max_grad_norm
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            done += 1
    model.eval()
    return steps


# --- sampling and evaluation ------------------------------------------------------------
@torch.inference_mode()
def sample(model, tokenizer, prompts: list[str], n: int, temperature: float, top_p: float,
           max_new_tokens: int, batch_size: int) -> list[list[str]]:
    """`n` completions per prompt (greedy when temperature is 0), `batch_size` sequences per call."""
    per_call = max(1, batch_size // n)
    greedy = temperature == 0
    settings = dict(do_sample=not greedy, max_new_tokens=max_new_tokens, num_return_sequences=n,
                    pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    if not greedy:
        # top_k=0: the whole vocabulary, as `loop run` samples (None would be transformers' 50)
        settings.update(temperature=temperature, top_p=top_p, top_k=0)
    texts = []
    for start in range(0, len(prompts), per_call):
        enc = tokenizer(prompts[start : start + per_call], return_tensors="pt", padding=True,
                        add_special_tokens=False)
        out = model.generate(**enc, **settings)
        texts += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return [texts[i : i + n] for i in range(0, len(texts), n)]


def evaluate(model, tokenizer, problems: list[Problem], cfg: LoopConfig) -> dict[str, float]:
    """Greedy pass@1 and sampled pass@k on the held-out problems, judged on the final answer."""
    max_new = cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens
    prompts = [p.prompt for p in problems]
    greedy = sample(model, tokenizer, prompts, 1, 0.0, 1.0, max_new, cfg.rollout.batch_size)
    metrics = {"pass@1": sum(is_right(row[0], p.answer, False) for row, p in zip(greedy, problems)) / len(problems)}
    k = cfg.eval.k
    if k > 1:
        sampled = sample(model, tokenizer, prompts, k, cfg.eval.temperature, 1.0, max_new, cfg.rollout.batch_size)
        metrics[f"pass@{k}"] = sum(any(is_right(t, p.answer, False) for t in row)
                                   for row, p in zip(sampled, problems)) / len(problems)
    return metrics


def gates_of(cfg: LoopConfig, tokenizer):
    """The config's `length` and `repetition` gates, written out by hand: text -> kept?"""
    checks = []
    for spec in cfg.rewards:
        if spec.gate is None or spec.name not in ("length", "repetition"):
            continue
        if spec.name == "length":
            lo, hi = spec.args.get("min_tokens", 0), spec.args.get("max_tokens") or float("inf")
            # the loop counts generated tokens with the EOS: +1 (a truncated sample is off by one)
            count = lambda t: len(tokenizer(t, add_special_tokens=False)["input_ids"]) + 1  # noqa: E731
            checks.append(lambda t, lo=lo, hi=hi, count=count: lo <= count(t) <= hi)
        else:
            n, max_share = spec.args.get("n", 4), spec.args.get("max_share", 0.3)
            checks.append(lambda t, n=n, m=max_share: repeated_share(t.split(), n) <= m)
    return lambda text: all(check(text) for check in checks)


def repeated_share(words: list[str], n: int) -> float:
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def keep(problems: list[Problem], samples: list[list[str]], k: int, check_steps: bool,
         passes_gates=lambda text: True) -> list[tuple[str, str]]:
    """Right completions past the gates, identical ones of a prompt dropped, at most `k` per prompt."""
    pairs = []
    for problem, texts in zip(problems, samples):
        seen: set[str] = set()
        for text in texts:
            if (len(seen) < k and text.strip() not in seen and passes_gates(text)
                    and is_right(text, problem.answer, check_steps)):
                seen.add(text.strip())
                pairs.append((problem.prompt, text))
    return pairs


# --- the two loops ----------------------------------------------------------------------
def handwritten(cfg: LoopConfig, steps_by_round: dict[int, int] | None) -> float:
    """Run the loop; print a line per round; return the wall seconds of the whole loop.

    `steps_by_round` (from `loop run`'s metrics) fixes each round's optimizer steps; without
    it they follow from the kept examples by the Trainer's rule.
    """

    def steps_for(r: int, examples: int, epochs: float) -> int:
        if steps_by_round is not None:
            return steps_by_round.get(r, 0)
        return trainer_steps(examples, epochs, cfg.update.batch_size)

    start = time.perf_counter()
    splits = generate_task(cfg.data.task, cfg.seed)
    tokenizer = char_tokenizer()
    tokenizer.padding_side = "left"  # generation; `encode` pads training batches itself
    model = tiny_model(cfg.model.tiny, tokenizer, cfg.seed).eval()
    check_steps = any(r.name == "steps" for r in cfg.rewards)
    passes_gates = gates_of(cfg, tokenizer)
    ro = cfg.rollout
    order = list(splits["train"])
    random.Random(cfg.seed).shuffle(order)

    clock = PhaseClock()
    seed_pairs = [(p.prompt, p.rationale) for p in splits["seed"]]
    with clock("train"):
        steps = sft(model, tokenizer, seed_pairs, cfg, steps_for(0, len(seed_pairs), cfg.update.seed_epochs), cfg.seed)
    with clock("evaluate"):
        metrics = evaluate(model, tokenizer, splits["eval"], cfg)
    print(f"  round 0: {_fmt(metrics)} | seed steps {steps} | {clock.report(start)}", flush=True)
    for r in range(1, cfg.rounds + 1):
        round_start, clock = time.perf_counter(), PhaseClock()
        first = (r - 1) * cfg.data.prompts_per_round
        problems = [order[(first + i) % len(order)] for i in range(cfg.data.prompts_per_round)]
        torch.manual_seed(cfg.seed * 1000 + r)
        with clock("generate"):
            samples = sample(model, tokenizer, [p.prompt for p in problems], ro.n, ro.temperature, ro.top_p,
                             ro.max_new_tokens, ro.batch_size)
        with clock("filter"):
            pairs = keep(problems, samples, cfg.update.max_per_prompt, check_steps, passes_gates)
        with clock("train"):
            steps = sft(model, tokenizer, pairs, cfg, steps_for(r, len(pairs), cfg.update.epochs), cfg.seed + r)
        with clock("evaluate"):
            metrics = evaluate(model, tokenizer, splits["eval"], cfg)
        print(f"  round {r}: {_fmt(metrics)} | kept {len(pairs)} | steps {steps} | {clock.report(round_start)}",
              flush=True)
    return time.perf_counter() - start


class PhaseClock:
    """Seconds per named phase of one round, for lines comparable with `loop run`'s `time/<phase>_s`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, phase: str):
        start = time.perf_counter()
        yield
        self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - start

    def report(self, round_start: float) -> str:
        phases = " ".join(f"{phase} {seconds:.1f}s" for phase, seconds in self.seconds.items())
        return f"{time.perf_counter() - round_start:.1f}s ({phases})"


def _fmt(metrics: dict[str, float]) -> str:
    return " ".join(f"{name} {value:.3f}" for name, value in metrics.items())


def start_loop_run(args: argparse.Namespace, cfg: LoopConfig, core: int | None = None) -> subprocess.Popen:
    """`loop run` on the same config as a subprocess (its run dir deleted first), optionally
    pinned to one core."""
    shutil.rmtree(Path(cfg.runs_dir) / args.name, ignore_errors=True)
    overrides = [f"name={args.name}", "control.enabled=false", "tracking.wandb=false", f"rounds={cfg.rounds}",
                 f"update.seed_epochs={cfg.update.seed_epochs}"]
    cmd = [sys.executable, "-m", "loop", "run", args.config] + [a for o in overrides for a in ("--set", o)]
    env = dict(os.environ)
    if args.threads > 0:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    print("$ " + " ".join(cmd[1:]) + (f"  (pinned to core {core})" if core is not None else ""), flush=True)
    pin = (lambda: os.sched_setaffinity(0, {core})) if core is not None else None
    # To a file, not a pipe: nobody reads a pipe while the hand-written loop runs beside it.
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, preexec_fn=pin)
    proc.log = log
    return proc


def finish_loop_run(proc: subprocess.Popen, start: float, args: argparse.Namespace,
                    cfg: LoopConfig) -> tuple[float, list[dict]]:
    """Wait for `loop run`; its wall seconds (from `start`) and metrics.jsonl rows."""
    proc.wait()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        proc.log.seek(0)
        sys.exit(f"`loop run` failed with exit code {proc.returncode}:\n{proc.log.read()[-6000:]}")
    rows = read_rows(Path(cfg.runs_dir) / args.name)
    for row in rows:
        print("  " + _loop_line(row, cfg.eval.k))
    return wall, rows


def read_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def steps_of(rows: list[dict]) -> dict[int, int]:
    """Optimizer steps per round of a `loop run` (round 0: the seed SFT's)."""
    return {row["round"]: int(row.get("train/seed_steps", row.get("train/steps", 0))) for row in rows}


def _loop_line(row: dict, k: int) -> str:
    """One `loop run` round in the hand-written loop's format, from its metrics.jsonl line."""
    accuracy = " ".join(f"{key[5:]} {row[key]:.3f}" for key in ("eval/pass@1", f"eval/pass@{k}") if key in row)
    if "train/seed_steps" in row or row["round"] == 0:
        work = f"seed steps {int(row.get('train/seed_steps', 0))}"
    else:
        work = f"kept {int(row.get('train/examples', 0))} | steps {int(row.get('train/steps', 0))}"
    phases = " ".join(f"{key[5:-2]} {value:.1f}s" for key, value in row.items()
                      if key.startswith("time/") and key.endswith("_s") and key != "time/round_s")
    return f"round {row['round']}: {accuracy} | {work} | {row.get('time/round_s', 0.0):.1f}s ({phases})"


def main() -> None:
    args = parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    transformers.logging.set_verbosity_error()
    overrides = [f"rounds={args.rounds}"] if args.rounds else []
    overrides += [f"update.seed_epochs={args.seed_epochs}"] if args.seed_epochs is not None else []
    cfg = load_config(args.config, overrides)
    imports = _IMPORTED - _STARTED
    print(f"RFT loop: {cfg.rounds} rounds x {cfg.data.prompts_per_round} prompts x n={cfg.rollout.n}, "
          f"seed epochs {cfg.update.seed_epochs:g} | threads {torch.get_num_threads()}", flush=True)
    if args.concurrent:
        wall, rows, ours = concurrent(args, cfg, imports)
    else:
        steps_by_round, wall, rows = None, 0.0, []
        if not args.skip_loop:
            start = time.perf_counter()
            wall, rows = finish_loop_run(start_loop_run(args, cfg), start, args, cfg)
            steps_by_round = steps_of(rows)
            print("hand-written, taking the same optimizer steps per round as `loop run`:", flush=True)
        ours = handwritten(cfg, steps_by_round) + imports
    if rows:
        in_rounds = sum(row.get("time/round_s", 0.0) for row in rows)
        print(f"loop run: {wall:.1f}s wall ({in_rounds:.1f}s inside its rounds, the rest start-up and bookkeeping)")
    print(f"hand-written: {ours:.1f}s wall ({imports:.1f}s of it imports)")
    if args.skip_loop:
        return
    ratio = wall / ours
    print(f"loop run / hand-written: {ratio:.2f}x (goal <= 1.5x: {'met' if ratio <= 1.5 else 'NOT met'}; "
          f"issue 15's 1.1x: {'met' if ratio <= 1.1 else 'NOT met'})")


def concurrent(args: argparse.Namespace, cfg: LoopConfig, imports: float) -> tuple[float, list[dict], float]:
    """Both loops at once, `loop run` on one core and this process on another: whatever the
    machine's speed does during those minutes, both see it (run one after the other, the same
    pair measured 1.08x and 1.30x an hour apart here)."""
    cores = sorted(os.sched_getaffinity(0))  # the cores we may use, not necessarily 0 and 1
    if args.threads != 1 or len(cores) < 2:
        sys.exit("--concurrent needs --threads 1 and at least 2 cores")
    previous = Path(cfg.runs_dir) / args.name / "metrics.jsonl"
    if not previous.exists():
        sys.exit(f"--concurrent takes the optimizer steps of an earlier `loop run` ({previous} is missing): "
                 f"run once without --concurrent first")
    steps = steps_of(read_rows(previous.parent))
    start = time.perf_counter()
    proc = start_loop_run(args, cfg, core=cores[1])
    os.sched_setaffinity(0, {cores[0]})
    print(f"hand-written on core {cores[0]} at the same time, taking the steps of the earlier `loop run`: {steps}",
          flush=True)
    ours = handwritten(cfg, steps) + imports
    wall, rows = finish_loop_run(proc, start, args, cfg)
    if steps_of(rows) != steps:
        print(f"WARNING: this `loop run` took other steps ({steps_of(rows)}): the two did different work")
    return wall, rows, ours


if __name__ == "__main__":
    main()
