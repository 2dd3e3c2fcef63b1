"""STaR (Zelikman et al. 2022): RFT plus rationalization.

For prompts where no sample was accepted, generate again with the reference answer given as
a hint, verify, and train on the rationales that reach the right answer *without* the hint in
the prompt, so the model learns to produce them unaided.
"""

from __future__ import annotations

from datasets import Dataset, concatenate_datasets

from policies.updates.config import UpdateConfig
from policies.launch import train
from policies.training import TrainJob, TrainResult
from policies.schema import PROMPT
from policies.tables import ScoredRollouts
from policies.updates.base import BuildContext
from policies.updates.rft import RFT, select_accepted, to_examples


class STaR:
    name = "star"

    def __init__(self, cfg: UpdateConfig):
        self.cfg = cfg
        self.rft = RFT(cfg)

    def build_examples(self, scored: ScoredRollouts, ctx: BuildContext) -> tuple[Dataset, dict[str, float]]:
        examples, metrics = self.rft.build_examples(scored, ctx)
        if not self.cfg.star.rationalize:
            return examples, metrics
        unsolved = self._unsolved_prompts(scored, set(examples["prompt_id"][:]))
        metrics["star/unsolved_prompts"] = float(len(unsolved))
        if len(unsolved) == 0:
            return examples, metrics
        template = self.cfg.star.hint_template
        hinted = unsolved.map(lambda row: {"prompt_text": ctx.render(
            template.replace("{prompt}", row["prompt"]).replace("{answer}", row["reference_answer"]))})
        rationales = ctx.sample(hinted, "rationalize")
        kept, _ = select_accepted(rationales, self.cfg.threshold, self.cfg.max_per_prompt, self.cfg.dedup)
        # Train on the rationale under the *original* prompt: the hint must not be needed.
        plain = {pid: text for pid, text in zip(unsolved["prompt_id"][:], unsolved["prompt_text"][:])}
        rationalized = to_examples(rationales, kept).map(lambda row: {"prompt": plain[row["prompt_id"]]})
        metrics["star/rationalized"] = float(len(rationalized))
        metrics["star/rationalize_accept_rate"] = len(kept) / max(len(rationales), 1)
        return concatenate_datasets([examples, rationalized]), metrics

    @staticmethod
    def _unsolved_prompts(scored: ScoredRollouts, solved: set[str]) -> Dataset:
        first = {}
        for i, pid in scored.rows(["prompt_id"]):
            if pid not in solved and pid not in first:
                first[pid] = i
        return scored.take(sorted(first.values()), list(PROMPT))

    def train(self, job: TrainJob, num_processes: int, callbacks: tuple = ()) -> TrainResult:
        return train(job, num_processes, callbacks)
