"""GKD (Agarwal et al. 2024, "On-Policy Distillation of Language Models"): the student learns
the teacher's token distributions, on the round's kept samples and on its own samples.

The examples are RFT's (what the filter keeps: with `teacher:` rollouts, the teacher's
verified samples). TRL's `GKDTrainer` then minimizes the generalized JSD (`beta`) between
student and teacher logits; with probability `lmbda` a batch's completions are first
re-sampled from the student (on-policy), and `seq_kd` adds teacher-sampled sequences. The
teacher (`update.gkd.teacher`) must share the student's tokenizer.
"""

from __future__ import annotations

from dataclasses import replace

from datasets import Dataset

from policies.launch import train
from policies.tables import ScoredRollouts
from policies.training import TrainJob, TrainResult
from policies.updates.base import BuildContext
from policies.updates.config import UpdateConfig
from policies.updates.rft import RFT


class GKD:
    name = "gkd"

    def __init__(self, cfg: UpdateConfig):
        self.cfg = cfg
        self._filter = RFT(cfg)  # the same selection as RFT; only the update differs

    def build_examples(self, scored: ScoredRollouts, ctx: BuildContext) -> tuple[Dataset, dict[str, float]]:
        return self._filter.build_examples(scored, ctx)

    def train(self, job: TrainJob, num_processes: int, callbacks: tuple = ()) -> TrainResult:
        return train(replace(job, algorithm="gkd", options=self.cfg.gkd.model_dump()), num_processes, callbacks)
