"""Constitutional AI (Bai et al. 2022): critique each sample under a sampled principle, revise
it, and learn from the revisions: SL-CAI (SFT on the revisions, `cai.output: sft`) or RLAIF
preference pairs (`cai.output: dpo`, TRL's DPOTrainer): the revision preferred over the
original, or (`cai.pairs: judge`) an AI judge's preference between two samples (cai_judge.py).

The critic is the live policy (`cai.critic: null`, the paper's setting) or another model. For
each of the first `samples_per_prompt` samples of a prompt, a principle is drawn (seeded by
round, prompt and sample, so a rerun draws the same), the critic writes a critique, then a
revision. Guards drop a revision that is empty, identical to the original (after whitespace),
repetitive (the `repetition` filter), or far longer than the original. Every step is recorded
per sample in `round_NNN/constitution.parquet` (principle, critique, revision, guard verdict).
"""

from __future__ import annotations

import random
from dataclasses import replace

import torch
from datasets import Dataset

from policies.atomic import save_parquet
from policies.launch import train
from policies.schema import ACCEPT_RATE, DPO_PAIR, SFT_EXAMPLE
from policies.tables import ScoredRollouts
from policies.training import TrainJob, TrainResult
from policies.updates.base import BuildContext
from policies.updates.cai_judge import judge_pairs, pairs_and_metrics
from policies.updates.config import Principle, UpdateConfig
from rewards.filters import RepetitionReward

GUARDS = ("empty", "identical", "repetitive", "too_long")


def fill(template: str, **values: str) -> str:
    """`{name}` slots filled by plain replacement: braces in a completion stay as they are."""
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


def draw_principle(principles: list[Principle], round_idx: int, prompt_id: str, sample_index: int) -> Principle:
    # str seeds hash with SHA-512: the same draw in every process, whatever PYTHONHASHSEED is
    return random.Random(f"cai:{round_idx}:{prompt_id}:{sample_index}").choice(principles)


def guard(original: str, revision: str, max_length_ratio: float, repetition: RepetitionReward) -> str:
    """Why a revision is unusable ("" if it is usable)."""
    if not revision.strip():
        return "empty"
    if " ".join(revision.split()) == " ".join(original.split()):
        return "identical"
    if repetition(["."], [revision])[0] == 0.0:
        return "repetitive"
    if len(revision) > max_length_ratio * len(original) + 20:
        return "too_long"
    return ""


class CAI:
    name = "cai"

    def __init__(self, cfg: UpdateConfig):
        self.cfg, self.settings = cfg, cfg.cai
        self._critic = None

    def _generator(self, ctx: BuildContext):
        if self.settings.critic is None:
            if ctx.policy is None:
                raise RuntimeError("cai: the critic is the policy, but no policy generator was given")
            return ctx.policy
        if self._critic is None:
            from policies.judges import EngineGenerator

            def make():
                from policies.engines.hf import HFEngine  # loads only when the first critique is asked

                return HFEngine(self.settings.critic, generator_id="critic", batch_size=64)
            self._critic = EngineGenerator(make, chat_template=True)
        return self._critic

    def revise(self, scored: ScoredRollouts, ctx: BuildContext) -> Dataset:
        """One row per revised sample: the original, principle, critique, revision and guard verdict."""
        s = self.settings
        principles = s.load_principles()
        rows = [row for row in scored.records(["prompt_id", "sample_index", "prompt", "prompt_text", "completion"])
                if row["sample_index"] < s.samples_per_prompt]
        drawn = [draw_principle(principles, ctx.round, r["prompt_id"], r["sample_index"]) for r in rows]
        conversations = [fill(s.critique_template, prompt=r["prompt"], completion=r["completion"],
                              critique_request=p.critique) for r, p in zip(rows, drawn)]
        generator = self._generator(ctx)
        torch.manual_seed(ctx.round)  # the filter phase reruns whole on resume: same critiques
        critiques = [c.strip() for c in generator.complete(conversations, s.max_new_tokens, s.temperature)]
        requests = [fill(s.revision_template, conversation=conv, critique=crit, revision_request=p.revision)
                    for conv, crit, p in zip(conversations, critiques, drawn)]
        revisions = [r.strip() for r in generator.complete(requests, s.max_new_tokens, s.temperature)]
        repetition = RepetitionReward(**s.repetition)
        verdicts = [guard(r["completion"], rev, s.max_length_ratio, repetition) for r, rev in zip(rows, revisions)]
        return Dataset.from_dict({
            "prompt_id": [r["prompt_id"] for r in rows], "sample_index": [r["sample_index"] for r in rows],
            "prompt_text": [r["prompt_text"] for r in rows], "original": [r["completion"] for r in rows],
            "principle": [p.name or p.critique for p in drawn], "critique": critiques, "revision": revisions,
            "dropped": verdicts})

    def build_examples(self, scored: ScoredRollouts, ctx: BuildContext) -> tuple[Dataset, dict[str, float]]:
        if self.settings.pairs == "judge":
            return self._judged_pairs(scored, ctx)
        log = self.revise(scored, ctx)
        if ctx.out_dir is not None:
            save_parquet(log, ctx.out_dir / "constitution.parquet")
        usable = log.filter(lambda row: row["dropped"] == "")
        metrics = {"cai/revised": float(len(log)), "cai/usable": float(len(usable)),
                   **{f"cai/dropped_{g}": float(sum(v == g for v in log["dropped"][:])) for g in GUARDS},
                   ACCEPT_RATE: len(usable) / max(len(scored), 1)}  # originals the update learns from
        columns = {"prompt": usable["prompt_text"][:], "prompt_id": usable["prompt_id"][:]}
        if self.settings.output == "dpo":
            pairs = {**columns, "chosen": usable["revision"][:], "rejected": usable["original"][:]}
            return Dataset.from_dict(pairs, features=DPO_PAIR), metrics
        return Dataset.from_dict({**columns, "completion": usable["revision"][:]}, features=SFT_EXAMPLE), metrics

    def _judged_pairs(self, scored: ScoredRollouts, ctx: BuildContext) -> tuple[Dataset, dict[str, float]]:
        """RLAIF from an AI judge's preferences between two samples (see cai_judge)."""
        log = judge_pairs(self.settings, self.settings.load_principles(), scored, ctx, draw_principle)
        if ctx.out_dir is not None:
            save_parquet(log, ctx.out_dir / "constitution.parquet")
        columns, metrics = pairs_and_metrics(log, len(scored))
        return Dataset.from_dict(columns, features=DPO_PAIR), metrics

    def train(self, job: TrainJob, num_processes: int, callbacks: tuple = ()) -> TrainResult:
        if self.settings.output == "dpo":
            options = self.cfg.dpo.model_dump(include={"beta", "loss_type", "loss_weights"})
            job = replace(job, algorithm="dpo", options=options)
        return train(job, num_processes, callbacks)
