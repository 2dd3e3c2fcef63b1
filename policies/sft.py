"""Supervised fine-tuning on prompt/completion pairs with TRL's `SFTTrainer`.

The loss is on the completion only (TRL's default for prompt/completion data). It trains the
seed policy, the control, and every SFT-style round (RFT, STaR, ReST, ReST-EM).
"""

from __future__ import annotations

from policies.training import TrainJob


def build_trainer(job: TrainJob, model, tokenizer, dataset):
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(**job.trainer_args(), max_length=job.max_length)
    tokenizer.padding_side = "right"
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
