"""Supervised fine-tuning on prompt/completion pairs with TRL's `SFTTrainer`.

One `SFTJob` describes one training run completely (it is also what a worker process reads
from JSON), so the same job runs in the controller's process or as an `accelerate` process
group: `python -m policies.sft JOB.json` is the worker entry point.

The loss is on the completion only (TRL's default for prompt/completion data). Trainer
checkpoints land in `output_dir`; a killed job resumes from the last *complete* one (the
Trainer writes `trainer_state.json` last), and the final policy is saved atomically.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from loop.atomic import write_json


@dataclass
class SFTJob:
    model_path: str
    dataset_path: str  # Parquet with `prompt` and `completion` columns
    output_dir: str  # Trainer checkpoints and result.json
    final_dir: str  # the trained policy, loadable with from_pretrained
    learning_rate: float = 1e-4
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 16
    grad_accum: int = 1
    warmup_steps: int = 0
    lr_scheduler: str = "constant"
    weight_decay: float = 0.0
    max_length: int = 512
    save_steps: int = 25
    seed: int = 0
    dtype: str = "float32"

    def to_json(self, path: Path) -> None:
        write_json(path, asdict(self))

    @classmethod
    def from_json(cls, path: str | Path) -> "SFTJob":
        return cls(**json.loads(Path(path).read_text()))


@dataclass
class SFTResult:
    steps: int
    train_loss: float
    examples: int


def last_complete_checkpoint(output_dir: Path) -> Path | None:
    """The newest `checkpoint-N` whose trainer_state.json parses; partial ones are removed."""
    found = sorted(Path(output_dir).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    for ckpt in reversed(found):
        try:
            json.loads((ckpt / "trainer_state.json").read_text())
            return ckpt
        except (OSError, ValueError):
            shutil.rmtree(ckpt, ignore_errors=True)
    return None


def _trainer(job: SFTJob):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from policies.loading import load_tokenizer

    args = SFTConfig(
        output_dir=job.output_dir, per_device_train_batch_size=job.batch_size,
        gradient_accumulation_steps=job.grad_accum, learning_rate=job.learning_rate,
        num_train_epochs=job.epochs, max_steps=job.max_steps, warmup_steps=job.warmup_steps,
        lr_scheduler_type=job.lr_scheduler, weight_decay=job.weight_decay, max_length=job.max_length,
        save_strategy="steps", save_steps=job.save_steps, save_total_limit=2, seed=job.seed, logging_steps=1,
        activation_checkpointing=False, report_to="none", disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(), bf16=job.dtype == "bfloat16", dataloader_pin_memory=False,
    )
    tokenizer = load_tokenizer(job.model_path)
    tokenizer.padding_side = "right"
    dtype = "auto" if job.dtype == "auto" else getattr(torch, job.dtype)
    model = AutoModelForCausalLM.from_pretrained(job.model_path, dtype=dtype)
    dataset = Dataset.from_parquet(job.dataset_path)
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer), len(dataset)


def run_sft(job: SFTJob, callbacks: tuple = ()) -> SFTResult:
    """Train (resuming from the last complete Trainer checkpoint) and save the final policy."""
    from transformers import PrinterCallback

    from policies.checkpoint import save_policy

    trainer, examples = _trainer(job)
    trainer.remove_callback(PrinterCallback)  # the controller reports; no per-step log dicts
    for callback in callbacks:
        trainer.add_callback(callback)
    resume = last_complete_checkpoint(Path(job.output_dir))
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    # The mean of every step's logged loss: unlike `training_loss`, it survives a resume (the
    # log history is restored from the checkpoint) and equals an uninterrupted run's.
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    result = SFTResult(steps=trainer.state.global_step, train_loss=sum(losses) / max(len(losses), 1),
                       examples=examples)
    if trainer.accelerator.is_main_process:
        save_policy(trainer.accelerator.unwrap_model(trainer.model), trainer.processing_class, Path(job.final_dir))
        write_json(Path(job.output_dir) / "result.json", asdict(result))
    trainer.accelerator.wait_for_everyone()
    return result


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit("usage: python -m policies.sft JOB.json")
    run_sft(SFTJob.from_json(argv[0]))


if __name__ == "__main__":
    main()
