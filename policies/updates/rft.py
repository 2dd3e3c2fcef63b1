"""RFT (rejection-sampling fine-tuning): keep what the verifier accepts, then SFT on it.

Keep samples whose total reward is >= `threshold`, drop identical completions of the same
prompt, keep at most K per prompt, and fine-tune on the completions only. With `init: base`
(the controller's concern) this is the ReST-EM / STaR recipe of restarting from the base
model each round; with `init: previous` it continues from the last round.
"""

from __future__ import annotations

from collections import Counter

from datasets import Dataset

from loop.config import UpdateConfig
from policies.launch import train
from policies.sft import SFTJob, SFTResult
from policies.updates.base import BuildContext


def select_accepted(scored: Dataset, threshold: float, max_per_prompt: int, dedup: bool) -> tuple[list[int], dict]:
    """Row indices to train on, in rollout order, and counts of what each rule dropped."""
    kept, seen, per_prompt = [], set(), Counter()
    dropped = Counter()
    for i, (pid, text, reward) in enumerate(zip(scored["prompt_id"][:], scored["completion"][:], scored["reward"][:])):
        if reward is None or reward < threshold:
            dropped["below_threshold"] += 1
        elif dedup and (pid, text.strip()) in seen:
            dropped["duplicate"] += 1
        elif per_prompt[pid] >= max_per_prompt:
            dropped["over_cap"] += 1
        else:
            kept.append(i)
            seen.add((pid, text.strip()))
            per_prompt[pid] += 1
    return kept, dict(dropped)


def filter_metrics(scored: Dataset, kept: list[int], dropped: dict) -> dict[str, float]:
    prompt_ids = scored["prompt_id"][:]
    prompts = set(prompt_ids)
    solved = {prompt_ids[i] for i in kept}
    total = max(len(scored), 1)
    metrics = {
        "rollout/accept_rate": len(kept) / total,
        "rollout/prompt_solve_rate": len(solved) / max(len(prompts), 1),
        "filter/kept": float(len(kept)),
    }
    for rule in ("below_threshold", "duplicate", "over_cap"):
        metrics[f"filter/dropped_{rule}"] = float(dropped.get(rule, 0))
    return metrics


def to_examples(scored: Dataset, rows: list[int]) -> Dataset:
    picked = scored.select(rows)
    return Dataset.from_dict({"prompt": picked["prompt_text"][:], "completion": picked["completion"][:],
                              "prompt_id": picked["prompt_id"][:]})


class RFT:
    name = "rft"

    def __init__(self, cfg: UpdateConfig):
        self.cfg = cfg

    def build_examples(self, scored: Dataset, ctx: BuildContext) -> tuple[Dataset, dict[str, float]]:
        kept, dropped = select_accepted(scored, self.cfg.threshold, self.cfg.max_per_prompt, self.cfg.dedup)
        return to_examples(scored, kept), filter_metrics(scored, kept, dropped)

    def train(self, job: SFTJob, num_processes: int, callbacks: tuple = ()) -> SFTResult:
        return train(job, num_processes, callbacks)
