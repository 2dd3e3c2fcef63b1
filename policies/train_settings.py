"""The optimizer settings of one training run: declared once, held whole by every `TrainJob`.

`update` in the run's YAML carries these fields (see `UpdateConfig`); the seed SFT and the
control override a few (`settings.model_copy(update=...)`); `trainer_args` turns them into
the `TrainingArguments` every TRL config shares.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from rewards.section import Section

# transformers' `SchedulerType` values that run on our settings alone: the min-lr cosines and
# warmup_stable_decay need `lr_scheduler_kwargs`, reduce_lr_on_plateau and greedy an eval set.
# Named here (not imported) because transformers' module imports torch, which config checks
# must not wait for; tests/test_config.py checks each is a `SchedulerType`.
LRScheduler = Literal["constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts",
                      "polynomial", "inverse_sqrt"]


class TrainSettings(Section):
    learning_rate: float = Field(1e-4, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, description="Caps optimizer steps per round; -1 = by epochs.")
    batch_size: int = Field(16, ge=1)
    grad_accum: int = Field(1, ge=1)
    warmup_steps: int = Field(0, ge=0)
    lr_scheduler: LRScheduler = Field("constant", description="transformers' scheduler type (one that needs "
                                       "no extra arguments and no eval set).")
    weight_decay: float = Field(0.0, ge=0)
    max_length: int = Field(512, ge=8)
    save_steps: int = Field(25, ge=1, description="Trainer checkpoint interval: training resumes from the last.")

    @classmethod
    def of(cls, section: Section) -> "TrainSettings":
        """The training settings held by a larger section (the `update` config)."""
        return cls(**section.model_dump(include=set(cls.model_fields)))

    def trainer_args(self, output_dir: str, seed: int, dtype: str, use_cpu: bool) -> dict[str, Any]:
        """The `TrainingArguments` every TRL config shares."""
        return dict(
            output_dir=output_dir, per_device_train_batch_size=self.batch_size,
            gradient_accumulation_steps=self.grad_accum, learning_rate=self.learning_rate,
            num_train_epochs=self.epochs, max_steps=self.max_steps, warmup_steps=self.warmup_steps,
            lr_scheduler_type=self.lr_scheduler, weight_decay=self.weight_decay,
            save_strategy="steps", save_steps=self.save_steps, save_total_limit=2, seed=seed,
            logging_steps=1, report_to="none", disable_tqdm=True, use_cpu=use_cpu,
            bf16=dtype == "bfloat16", dataloader_pin_memory=False, activation_checkpointing=False,
        )
