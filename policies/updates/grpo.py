"""GRPO (Shao et al. 2024, DeepSeek-R1): online RL with TRL's `GRPOTrainer`.

The round's rollouts (generated and scored by the loop, like every algorithm's) decide which
prompts to train on: a prompt whose samples all score the same has zero advantage everywhere
and carries no signal, so it is dropped (DAPO's dynamic sampling) and counted. The trainer then
runs `grpo.steps` steps (default: one pass over the kept prompts), sampling `rollout.n`
completions per prompt from the policy as it learns, with the run's reward functions as
`reward_funcs` and their weights as `reward_weights` (TRL sums them; gates do not reject here,
so give a filter a weight if it should count). On CPU the trainer generates with
`transformers`; `grpo.use_vllm` switches it to vLLM (colocate or server) on GPUs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from datasets import Dataset

from policies.engines.config import RolloutConfig
from policies.updates.config import UpdateConfig
from rewards.registry import RewardSpec
from policies.atomic import parquet_rows
from policies.launch import train
from policies.training import TrainJob, TrainResult
from policies.schema import ACCEPT_RATE, prompt_own_columns
from policies.tables import ScoredRollouts
from policies.updates.base import BuildContext

def trl_totals(scored: ScoredRollouts, weights: dict[str, float]) -> list[float]:
    """Each sample's reward as `GRPOTrainer` computes it: the weighted sum of the present scores."""
    keys = list(weights)
    return [sum(weights[k] * v for k, v in zip(keys, values) if v is not None)
            for _, *values in scored.rows([f"reward/{key}" for key in keys])]


def signal_prompts(prompt_ids: list[str], totals: list[float], tol: float = 1e-6) -> list[str]:
    """Prompts whose samples do not all score the same, in first-seen order."""
    groups: dict[str, list[float]] = defaultdict(list)
    for pid, total in zip(prompt_ids, totals):
        groups[pid].append(total)
    return [pid for pid, values in groups.items() if max(values) - min(values) > tol]


class GRPO:
    name = "grpo"

    def __init__(self, cfg: UpdateConfig, rewards: list[RewardSpec], rollout: RolloutConfig):
        self.cfg, self.rewards, self.rollout = cfg, rewards, rollout

    def build_examples(self, scored: ScoredRollouts, ctx: BuildContext) -> tuple[Dataset, dict[str, float]]:
        prompt_ids = scored.column("prompt_id")
        first = {}
        for i, pid in enumerate(prompt_ids):
            first.setdefault(pid, i)
        kept = list(first)
        if self.cfg.grpo.drop_all_equal:
            totals = trl_totals(scored, {spec.key: spec.weight for spec in self.rewards})
            kept = signal_prompts(prompt_ids, totals)
        # The trainer only takes full steps: cycle the kept prompts up to a whole number of steps.
        per_step = self.cfg.grpo.prompts_per_step
        padded = [kept[i % len(kept)] for i in range(-(-len(kept) // per_step) * per_step)] if kept else []
        # The prompt's own columns (`reference_answer`, a code problem's `tests`) go to the reward
        # functions as in the loop; the trainer's `prompt` is the rendered text.
        own = [c for c in prompt_own_columns(scored.column_names) if c != "prompt_text"]
        rows = scored.take([first[pid] for pid in padded], own + ["prompt_text"])
        examples = rows.rename_column("prompt", "problem").rename_column("prompt_text", "prompt")
        metrics = {"grpo/signal_prompts": float(len(kept)),
                   "grpo/dropped_all_equal_prompts": float(len(first) - len(kept)),
                   ACCEPT_RATE: _samples_of(set(kept), prompt_ids) / max(len(prompt_ids), 1)}
        return examples, metrics

    def train(self, job: TrainJob, num_processes: int, callbacks: tuple = ()) -> TrainResult:
        g, ro = self.cfg.grpo, self.rollout
        prompts = parquet_rows(job.dataset_path)  # a whole number of steps' worth
        steps = g.steps or prompts // g.prompts_per_step * g.num_iterations
        options = {
            "trl": {"num_generations": ro.n, "max_completion_length": ro.max_new_tokens, "temperature": ro.temperature,
                    "top_p": ro.top_p, "beta": g.beta, "loss_type": g.loss_type, "scale_rewards": g.scale_rewards,
                    "num_iterations": g.num_iterations, "epsilon": g.epsilon, "epsilon_high": g.epsilon_high,
                    "use_vllm": g.use_vllm, "vllm_mode": g.vllm_mode,
                    "vllm_gpu_memory_utilization": g.vllm_gpu_memory_utilization},
            "rewards": [spec.model_dump() for spec in self.rewards],
        }
        per_device = g.prompts_per_step * ro.n // num_processes
        job = replace(job.with_settings(batch_size=per_device, grad_accum=1, max_steps=steps), algorithm="grpo",
                      options=options)
        return train(job, num_processes, callbacks)



def _samples_of(prompts: set[str], prompt_ids: list[str]) -> int:
    return sum(pid in prompts for pid in prompt_ids)
