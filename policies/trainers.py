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


def build_gkd(job: TrainJob, model, tokenizer, dataset):
    """On-policy distillation (TRL's experimental `GKDTrainer`) on prompt/completion pairs.

    Examples are tokenized here (prompt, then completion + EOS, with a completion mask), which
    TRL's collator takes as is: no chat template is needed, so plain-text prompts work."""
    import warnings

    with warnings.catch_warnings():  # "trl.experimental APIs may change": pinned by our tests
        warnings.simplefilter("ignore")
        from trl.experimental.gkd import GKDConfig, GKDTrainer

    options = dict(job.options)
    teacher = options.pop("teacher")
    args = GKDConfig(**job.trainer_args(), max_length=job.settings.max_length, **options,
                     teacher_model_init_kwargs={"dtype": job.dtype})  # TRL resolves the name
    tokenizer.padding_side = "left"  # the student generates on-policy completions from these prompts

    def tokenize(row: dict) -> dict:
        prompt = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
        completion = tokenizer(row["completion"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        return {"input_ids": prompt + completion, "completion_mask": [0] * len(prompt) + [1] * len(completion)}

    dataset = dataset.map(tokenize, remove_columns=["prompt_id"])
    return GKDTrainer(model=model, teacher_model=teacher, args=args, train_dataset=dataset, processing_class=tokenizer)


TRAINERS: dict[str, Callable] = {"sft": build_sft, "dpo": build_dpo, "grpo": build_grpo, "gkd": build_gkd}
