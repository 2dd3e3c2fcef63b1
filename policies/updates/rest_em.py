"""ReST-EM (Singh et al. 2023): expectation-maximization with a binary reward.

E-step: the round's samples, kept when the verifier accepts them (total reward >= `threshold`),
at most K per problem (`max_per_prompt`; the paper keeps 10 of 32) so easy problems do not
swamp the data. M-step: fine-tune **from the base model** (round 0's policy), not from the last
checkpoint: `update.init` defaults to `base` for this algorithm, and `previous` is refused.
"""

from __future__ import annotations

from collections import Counter

from datasets import Dataset

from policies.tables import ScoredRollouts
from policies.updates.base import BuildContext
from policies.updates.rft import RFT


class ReSTEM(RFT):
    name = "rest_em"

    def build_examples(self, scored: ScoredRollouts, ctx: BuildContext) -> tuple[Dataset, dict[str, float]]:
        examples, metrics = super().build_examples(scored, ctx)
        per_prompt = Counter(examples["prompt_id"][:])
        metrics["rest_em/prompts_at_cap"] = float(sum(n == self.cfg.max_per_prompt for n in per_prompt.values()))
        return examples, metrics
