"""Prompt-set growth between rounds (Self-Instruct, Wang et al. 2023; Evol-Instruct, Xu et al. 2023).

At the start of each round the author model (the policy, or the `teacher`) is shown a few
problems from the pool and asked for a new one, `proposals` times. Each proposal is cut at
`stop`, wrapped in `prefix`/`suffix`, then must survive, in order:

    empty / too_long       nothing usable, or longer than `max_chars`
    duplicate              the same text (case and whitespace aside) is already in the pool,
                           or was proposed earlier this round
    near_duplicate         MinHash (datasketch) Jaccard of character n-grams >= `near_dup`
                           against the pool or an earlier proposal
    contaminated           exact or near-duplicate of a held-out eval problem
    no_answer              `answer: majority`: the policy solves it `solutions` times and the
                           most common final answer must hold >= `min_agreement` of them;
                           `answer: "pkg.module:fn"`: a verifier fn(problem) -> answer or None

The survivors join that round's prompts (ids `grown:<round>:<i>`) and the pool that later
proposals are checked against. Every proposal and its verdict is kept in
`round_NNN/growth.parquet`; per round `growth/proposed`, `growth/kept` and
`growth/dropped_<why>` go to metrics.jsonl.
"""

from __future__ import annotations

import importlib
import random
import re
from collections import Counter
from pathlib import Path
from typing import Callable, Literal

from datasets import Dataset
from pydantic import Field, field_validator

from policies.atomic import save_parquet
from policies.engines import RolloutEngine, SamplingParams
from policies.tables import read_parquet
from rewards import extract_answer
from rewards.section import Section

DROP_REASONS = ("empty", "too_long", "duplicate", "near_duplicate", "contaminated", "no_answer")


class GrowthConfig(Section):
    proposals: int = Field(32, ge=1, description="New problems asked for per round.")
    author: Literal["policy", "teacher"] = "policy"
    examples_per_proposal: int = Field(3, ge=1, description="Pool problems shown with each request.")
    template: str = Field("Here are some problems:\n{examples}\nWrite one new problem, harder than these.\nProblem:",
                          description="The request; {examples} is the pool problems, one per line.")
    prefix: str = Field("", description="Put before the proposal (e.g. `Q:` when the template ends in it).")
    suffix: str = ""
    stop: str = Field("\n\n", description="A proposal ends at the first occurrence.")
    max_new_tokens: int = Field(128, ge=1)
    temperature: float = Field(1.0, ge=0)
    max_chars: int = Field(1000, ge=1)
    answer: str = Field("majority", description="majority | none | package.module:function(problem) -> answer or None")
    solutions: int = Field(4, ge=1, description="Samples per proposal for the majority answer.")
    min_agreement: float = Field(0.5, gt=0, le=1)
    near_dup: float = Field(0.8, gt=0, le=1, description="MinHash Jaccard at or above which two problems are one.")
    ngram: int = Field(3, ge=1, description="Character n-gram size for near-duplicate detection.")

    @field_validator("answer")
    @classmethod
    def _answer_source(cls, value: str) -> str:
        if value not in ("majority", "none"):
            resolve_verifier(value)  # an unimportable function fails at config time
        return value


def resolve_verifier(path: str) -> Callable[[str], str | None]:
    module, _, name = path.partition(":")
    if not name:
        raise ValueError(f"answer: {path!r} is neither majority, none nor package.module:function")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"answer: cannot import {path!r} ({err})") from None


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


class NearDuplicates:
    """Exact and MinHash-LSH near-duplicate lookups over a growing set of texts."""

    def __init__(self, threshold: float, ngram: int, texts: list[str] = ()):
        from datasketch import MinHashLSH

        self.threshold, self.ngram = threshold, ngram
        self.lsh, self.exact, self.count = MinHashLSH(threshold=threshold, num_perm=128), set(), 0
        for text in texts:
            self.add(text)

    def _minhash(self, text: str):
        from datasketch import MinHash

        normal = _normal(text)
        grams = {normal[i:i + self.ngram] for i in range(max(len(normal) - self.ngram + 1, 1))}
        m = MinHash(num_perm=128, seed=1)
        m.update_batch([g.encode() for g in grams])
        return m

    def has_exact(self, text: str) -> bool:
        return _normal(text) in self.exact

    def has_near(self, text: str) -> bool:
        return bool(self.lsh.query(self._minhash(text)))

    def add(self, text: str) -> None:
        if _normal(text) not in self.exact:
            self.exact.add(_normal(text))
            self.lsh.insert(str(self.count), self._minhash(text))
            self.count += 1


def majority_answer(texts: list[str], min_agreement: float) -> tuple[str | None, float]:
    """The most common final answer and its share of all samples (None below `min_agreement`)."""
    answers = [a for a in (extract_answer(t) for t in texts) if a is not None]
    if not answers:
        return None, 0.0
    top, count = Counter(answers).most_common(1)[0]
    share = count / len(texts)
    return (top if share >= min_agreement else None), share


def propose(cfg: GrowthConfig, author, pool: list[str], rng: random.Random) -> list[str]:
    """`cfg.proposals` new problem texts from the author, each shown a few pool problems."""
    requests = []
    for _ in range(cfg.proposals):
        shown = rng.sample(pool, min(cfg.examples_per_proposal, len(pool)))
        requests.append(cfg.template.replace("{examples}", "\n".join(p.strip() for p in shown)))
    raw = author.complete(requests, cfg.max_new_tokens, cfg.temperature)
    return [cfg.prefix + text.split(cfg.stop)[0].strip() + cfg.suffix if text.split(cfg.stop)[0].strip() else ""
            for text in raw]


def grow(cfg: GrowthConfig, author, solver: RolloutEngine, render: Callable[[str], str], pool: list[str],
         eval_prompts: list[str], round_idx: int, seed: int, out_dir: Path,
         solve_params: SamplingParams) -> tuple[Dataset, dict[str, float]]:
    """The round's new prompts (`prompt_id`, `prompt`, `reference_answer`, `prompt_text`) and metrics.
    Resumable: a round whose `growth.parquet` exists is read back, not proposed again."""
    record = out_dir / "growth.parquet"
    if not record.exists():
        save_parquet(_judge(cfg, author, solver, render, pool, eval_prompts, round_idx, seed, solve_params), record)
    proposals = read_parquet(str(record))
    kept = proposals.filter(lambda row: row["dropped"] == "")
    grown = Dataset.from_dict({"prompt_id": [f"grown:{round_idx}:{i}" for i in kept["index"][:]],
                               "prompt": kept["problem"][:], "reference_answer": kept["answer"][:],
                               "prompt_text": [render(p) for p in kept["problem"][:]]})
    dropped = Counter(proposals["dropped"][:])
    metrics = {"growth/proposed": float(len(proposals)), "growth/kept": float(len(kept)),
               **{f"growth/dropped_{why}": float(dropped.get(why, 0)) for why in DROP_REASONS}}
    return grown, metrics


def kept_problems(round_dirs) -> list[str]:
    """The problems earlier rounds grew: part of the pool new proposals are checked against."""
    kept = []
    for rd in round_dirs:
        if (Path(rd) / "growth.parquet").exists():
            proposals = read_parquet(str(Path(rd) / "growth.parquet"))
            kept += [p for p, why in zip(proposals["problem"][:], proposals["dropped"][:]) if not why]
    return kept


def _judge(cfg: GrowthConfig, author, solver, render, pool, eval_prompts, round_idx, seed, solve_params) -> Dataset:
    import torch

    rng = random.Random(f"growth:{seed}:{round_idx}")
    torch.manual_seed(rng.randrange(2**31))
    problems = propose(cfg, author, pool, rng)
    seen, held_out = NearDuplicates(cfg.near_dup, cfg.ngram, pool), NearDuplicates(cfg.near_dup, cfg.ngram, eval_prompts)
    verdicts = []
    for problem in problems:
        why = _drop_reason(problem, cfg, seen, held_out)
        if not why:
            seen.add(problem)
        verdicts.append(why)
    answers, agreement = _answers(cfg, solver, render, problems, verdicts, solve_params)
    verdicts = ["no_answer" if not why and cfg.answer != "none" and answers[i] is None else why
                for i, why in enumerate(verdicts)]
    return Dataset.from_dict({"index": list(range(len(problems))), "problem": problems,
                              "answer": [a or "" for a in answers], "agreement": agreement, "dropped": verdicts})


def _drop_reason(problem: str, cfg: GrowthConfig, seen: NearDuplicates, held_out: NearDuplicates) -> str:
    if not problem.strip() or not re.search(r"\w", problem):
        return "empty"
    if len(problem) > cfg.max_chars:
        return "too_long"
    if held_out.has_exact(problem) or held_out.has_near(problem):
        return "contaminated"
    if seen.has_exact(problem):
        return "duplicate"
    if seen.has_near(problem):
        return "near_duplicate"
    return ""


def _answers(cfg, solver, render, problems, verdicts, params) -> tuple[list[str | None], list[float]]:
    """Reference answers of the surviving proposals (None where there is none)."""
    answers, agreement = [None] * len(problems), [0.0] * len(problems)
    alive = [i for i, why in enumerate(verdicts) if not why]
    if cfg.answer == "none" or not alive:
        return answers, agreement
    if cfg.answer != "majority":
        verify = resolve_verifier(cfg.answer)
        for i in alive:
            answers[i] = verify(problems[i])
            agreement[i] = 1.0 if answers[i] is not None else 0.0
        return answers, agreement
    samples = solver.generate([render(problems[i]) for i in alive], params)
    for i, completions in zip(alive, samples):
        answers[i], agreement[i] = majority_answer([c.text for c in completions], cfg.min_agreement)
    return answers, agreement
