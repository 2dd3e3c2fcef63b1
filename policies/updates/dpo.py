"""Iterative DPO / RPO (Pang et al. 2024) and Self-Rewarding (Yuan et al. 2024).

Per prompt, pair the best-scoring samples with the worst-scoring ones: chosen must beat
rejected by more than `min_margin` (ties never pair), prompts whose samples all score the same
carry no preference and are dropped, and at most `max_pairs_per_prompt` pairs are made. Samples
a gate rejected rank below every scored one (a degenerate answer is a fine "rejected"); samples
with no score at all (an unparseable judge) are left out. Scores are the weighted total, or one
reward's column (`dpo.score`): with a pairwise `judge` whose backend is the policy itself, this
is the Self-Rewarding loop.

Training is TRL's `DPOTrainer`; the reference model is the policy at the start of the round
(the model the round trains from; with LoRA, the same weights with the adapter disabled), and
`loss_type: [sigmoid, sft]` adds RPO's NLL term on the chosen answer.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from datasets import Dataset

from policies.updates.config import UpdateConfig
from policies.launch import train
from policies.training import TrainJob, TrainResult
from policies.schema import ACCEPT_RATE, DPO_PAIR
from policies.tables import ScoredRollouts
from policies.updates.base import BuildContext
from policies.updates.rft import completion_key

GATED = float("-inf")  # the rank of a sample a gate rejected


def build_pairs(scored: ScoredRollouts, score_column: str, max_pairs: int,
                min_margin: float) -> tuple[list[dict], dict]:
    """Preference pairs as `prompt`/`chosen`/`rejected`/`prompt_id` rows, and drop counts.

    Pairs are chosen from each prompt's (rank, completion key, row) alone; only the rows that
    made a pair are read back whole.
    """
    groups: dict[str, dict[bytes, tuple[float, int]]] = defaultdict(dict)  # a text's first sample
    prompts = set()
    for i, pid, score, gate, completion in scored.rows(["prompt_id", score_column, "rejected_by", "completion"]):
        prompts.add(pid)
        if gate or score is not None:
            groups[pid].setdefault(completion_key(completion), (GATED if gate else float(score), i))
    made, dropped = [], defaultdict(int)
    for pid, samples in groups.items():
        pairs = _pairs_of(list(samples.values()), max_pairs, min_margin)
        if not pairs:
            dropped["all_equal" if len({rank for rank, _ in samples.values()}) == 1 else "no_margin"] += 1
        made += [(pid, *pair) for pair in pairs]
    dropped["unscored"] = len(prompts - set(groups))
    texts = scored.take([row for _, chosen, rejected, _ in made for row in (chosen, rejected)],
                        ["prompt_text", "completion"])
    prompt_texts, completions = texts["prompt_text"][:], texts["completion"][:]
    return [{"prompt": prompt_texts[2 * k], "chosen": completions[2 * k], "rejected": completions[2 * k + 1],
             "prompt_id": pid, "margin": margin} for k, (pid, _, _, margin) in enumerate(made)], dict(dropped)


def _pairs_of(samples: list[tuple[float, int]], max_pairs: int, min_margin: float) -> list[tuple[int, int, float]]:
    """Best with worst, second best with second worst, ...; distinct texts, a real margin.
    (chosen row, rejected row, margin) each."""
    ranked = sorted(samples, key=lambda s: s[0], reverse=True)
    pairs = []
    for (hi, chosen), (lo, rejected) in zip(ranked, reversed(ranked)):
        if len(pairs) == max_pairs or not hi - lo > min_margin:
            break
        pairs.append((chosen, rejected, hi - lo))
    return pairs


class DPO:
    name = "dpo"

    def __init__(self, cfg: UpdateConfig):
        self.cfg = cfg

    def build_examples(self, scored: ScoredRollouts, ctx: BuildContext) -> tuple[Dataset, dict[str, float]]:
        dpo = self.cfg.dpo
        column = "reward" if dpo.score is None else f"reward/{dpo.score}"
        pairs, dropped = build_pairs(scored, column, dpo.max_pairs_per_prompt, dpo.min_margin)
        finite = [p["margin"] for p in pairs if p["margin"] != float("inf")]
        used = 2 * len(pairs) / max(len(scored), 1)  # share of samples that made a pair
        metrics = {"dpo/pairs": float(len(pairs)),
                   "dpo/prompts_with_pairs": float(len({p["prompt_id"] for p in pairs})),
                   "dpo/margin_mean": sum(finite) / len(finite) if finite else float("nan"),
                   ACCEPT_RATE: used}
        for rule in ("all_equal", "no_margin", "unscored"):
            metrics[f"filter/dropped_{rule}"] = float(dropped.get(rule, 0))
        return Dataset.from_dict({c: [p[c] for p in pairs] for c in DPO_PAIR}, features=DPO_PAIR), metrics

    def train(self, job: TrainJob, num_processes: int, callbacks: tuple = ()) -> TrainResult:
        options = self.cfg.dpo.model_dump(include={"beta", "loss_type", "loss_weights"})
        return train(replace(job, algorithm="dpo", options=options), num_processes, callbacks)

