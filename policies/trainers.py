"""The TRL trainer for each kind of training job: `TRAINERS[job.algorithm](job, model, tokenizer, dataset)`.

Update algorithms decide *what* to train on and name a trainer in their `TrainJob`; the job
runner (`policies/training.py`) builds it from here. TRL's public configs only: no subclassing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from policies.training import TrainJob


def build_sft(job: TrainJob, model, tokenizer, dataset):
    """Supervised fine-tuning on prompt/completion pairs, loss on the completion only (TRL's
    default for such data): the seed policy, the control and every SFT-style round."""
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(**job.trainer_args(), max_length=job.settings.max_length)
    tokenizer.padding_side = "right"
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)


def build_dpo(job: TrainJob, model, tokenizer, dataset):
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(**job.trainer_args(), max_length=job.settings.max_length, **job.options)
    # ref_model=None: TRL loads the reference from the policy's own path (this round's start),
    # or, with a LoRA adapter, disables the adapter to get it back.
    return DPOTrainer(model=model, args=args, train_dataset=dataset.remove_columns("prompt_id"),
                      processing_class=tokenizer)


def build_grpo(job: TrainJob, model, tokenizer, dataset):
    from trl import GRPOConfig, GRPOTrainer

    from policies.judges import build_rewards
    from rewards import as_trl
    from rewards.registry import RewardSpec

    specs = [RewardSpec(**spec) for spec in job.options["rewards"]]
    funcs, weights = as_trl(build_rewards(specs))  # TRL sums them: gates do not reject here
    args = GRPOConfig(**job.trainer_args(), **job.options["trl"], reward_weights=weights, shuffle_dataset=True)
    tokenizer.padding_side = "left"
    return GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=dataset, processing_class=tokenizer)


TRAINERS: dict[str, Callable] = {"sft": build_sft, "dpo": build_dpo, "grpo": build_grpo}
