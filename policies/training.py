"""Run one training job (SFT, DPO or GRPO, optionally through a LoRA adapter) to a saved policy.

One `TrainJob` describes a training run completely (it is also what a worker process reads from
JSON), so the same job runs in the controller's process or as an `accelerate` process group:
`python -m policies.training JOB.json` is the worker entry point. `job.algorithm` names the
TRL trainer, built by `policies/trainers.py`; everything else is shared: resume from the last
*complete* Trainer checkpoint (the Trainer writes `trainer_state.json` last), the loss and the
logged metrics read back from the log history, and an atomic save of the final policy.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from policies.atomic import write_json
from policies.train_settings import TrainSettings
from policies.trainers import TRAINERS

# Keys of the Trainer's log history that are bookkeeping, not a measurement of the update.
_NOT_METRICS = {"epoch", "step", "learning_rate", "grad_norm", "total_flos", "num_tokens"}


@dataclass
class TrainJob:
    model_path: str
    dataset_path: str  # Parquet in the trainer's format (prompt/completion, prompt/chosen/rejected, prompt)
    output_dir: str  # Trainer checkpoints and result.json
    final_dir: str  # the trained policy (LoRA merged in), loadable with from_pretrained
    settings: TrainSettings = field(default_factory=TrainSettings)
    algorithm: str = "sft"
    options: dict[str, Any] = field(default_factory=dict)  # the algorithm's own settings
    lora: dict[str, Any] | None = None  # peft LoraConfig kwargs; the adapter is saved to `adapter_dir`
    adapter_dir: str | None = None
    seed: int = 0
    dtype: str = "float32"
    tokenizer_path: str | None = None  # where the tokenizer comes from when not `model_path`
    deepspeed: dict[str, Any] | None = None  # a DeepSpeed JSON config (`DeepSpeedSettings.config()`)
    nodes: dict[str, Any] | None = None  # multi-node launch: `NodeSettings` fields (policies/launch.py)

    def to_json(self, path: Path) -> None:
        write_json(path, {**asdict(self), "settings": self.settings.model_dump()})

    @classmethod
    def from_json(cls, path: str | Path) -> "TrainJob":
        raw = json.loads(Path(path).read_text())
        return cls(**{**raw, "settings": TrainSettings(**raw["settings"])})

    def with_settings(self, **changes: Any) -> "TrainJob":
        return replace(self, settings=self.settings.model_copy(update=changes))

    def trainer_args(self) -> dict[str, Any]:
        """The `TrainingArguments` every TRL config shares."""
        args = self.settings.trainer_args(self.output_dir, self.seed, self.dtype, use_cpu=not torch.cuda.is_available())
        return {**args, "deepspeed": self.deepspeed} if self.deepspeed else args


@dataclass
class TrainResult:
    steps: int
    train_loss: float
    examples: int
    metrics: dict[str, float] = field(default_factory=dict)  # per-step means of what the trainer logged


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


def _trainer(job: TrainJob):
    from policies.tables import read_parquet
    from transformers import AutoModelForCausalLM

    from policies.loading import load_tokenizer

    if job.deepspeed and not torch.cuda.is_available():
        import deepspeed  # on CPU its default backend is oneCCL; TRL's DPO reference needs it up first

        deepspeed.init_distributed(dist_backend="gloo")
    tokenizer = load_tokenizer(job.tokenizer_path or job.model_path)
    dtype = "auto" if job.dtype == "auto" else getattr(torch, job.dtype)
    model = AutoModelForCausalLM.from_pretrained(job.model_path, dtype=dtype)
    if job.lora is not None:
        from policies.lora import add_adapter

        model = add_adapter(model, job.lora)
    dataset = read_parquet(job.dataset_path)
    return TRAINERS[job.algorithm](job, model, tokenizer, dataset), len(dataset)


def run_job(job: TrainJob, callbacks: tuple = ()) -> TrainResult:
    """Train (resuming from the last complete Trainer checkpoint) and save the final policy."""
    from transformers import PrinterCallback

    trainer, examples = _trainer(job)
    trainer.remove_callback(PrinterCallback)  # the controller reports; no per-step log dicts
    # TRL writes a Hub model card into every checkpoint and asks the loop's W&B run for its URL
    # each time (a console warning per checkpoint when offline); the loop never pushes to the Hub.
    trainer.create_model_card = lambda *args, **kwargs: None
    for callback in callbacks:
        trainer.add_callback(callback)
    resume = last_complete_checkpoint(Path(job.output_dir))
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    result = _result(trainer.state.log_history, trainer.state.global_step, examples)
    # ZeRO-3 shards the weights: every rank takes part in gathering them (a rank-0-only
    # save_pretrained would write empty tensors and still exit 0).
    gathered = trainer.accelerator.get_state_dict(trainer.model_wrapped) if job.deepspeed else None
    if trainer.accelerator.is_main_process:
        _save(trainer.accelerator.unwrap_model(trainer.model), trainer.processing_class, job, gathered)
        write_json(Path(job.output_dir) / "result.json", asdict(result))
    trainer.accelerator.wait_for_everyone()
    return result


def _result(history: list[dict], steps: int, examples: int) -> TrainResult:
    """Per-step means of the log history. Unlike `training_loss` they survive a resume (the
    history is restored from the checkpoint) and equal an uninterrupted run's."""
    logged = [h for h in history if "loss" in h]
    sums: dict[str, list[float]] = {}
    for entry in logged:
        for key, value in entry.items():
            if key not in _NOT_METRICS and isinstance(value, (int, float)) and math.isfinite(value):
                sums.setdefault(key, []).append(float(value))
    means = {key: sum(v) / len(v) for key, v in sums.items()}
    return TrainResult(steps=steps, train_loss=means.pop("loss", float("nan")), examples=examples, metrics=means)


def _save(model, tokenizer, job: TrainJob, gathered: dict | None = None) -> None:
    from policies.checkpoint import save_policy

    if gathered is not None:
        model = _with_weights(job, gathered)

    if job.lora is not None:
        from policies.lora import save_adapter_and_merge

        model = save_adapter_and_merge(model, tokenizer, Path(job.adapter_dir))
    save_policy(model, tokenizer, Path(job.final_dir))


def _with_weights(job: TrainJob, state: dict) -> torch.nn.Module:
    """A fresh CPU copy of the trained model (adapter included) holding the gathered weights.

    Runs on the main rank alone, at the end of the job: ZeRO-3's hook on model construction
    (which would wait for the other ranks) is switched off first."""
    from transformers import AutoModelForCausalLM
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()

    dtype = "auto" if job.dtype == "auto" else getattr(torch, job.dtype)
    model = AutoModelForCausalLM.from_pretrained(job.model_path, dtype=dtype)
    if job.lora is not None:
        from policies.lora import add_adapter

        model = add_adapter(model, job.lora)
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {k for k in missing if k.endswith("lm_head.weight")} if model.config.tie_word_embeddings else set()
    if unexpected or set(missing) - tied:
        raise RuntimeError(f"gathered weights do not fit the model: missing {sorted(set(missing) - tied)[:5]}, "
                           f"unexpected {unexpected[:5]}")
    return model


# The controller's pid, set for worker ranks: a rank whose controller is gone must not write.
OWNER_PID_ENV = "SELFLOOP_OWNER_PID"


def die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this process when its parent dies.

    torch elastic starts each rank in a new session, so killing the loop's process group
    misses them; without this they would go on writing checkpoints into a run dir whose lock
    is free, beside a `loop resume`. Safe to call in a `preexec_fn` (one libc call).
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _exit_if_orphaned(parent_before: int) -> None:
    """Close the race before `die_with_parent`: the parent (or the controller) may already be gone."""
    import os

    owner = os.environ.get(OWNER_PID_ENV)
    try:
        if owner:
            os.kill(int(owner), 0)
    except ProcessLookupError:
        os._exit(1)
    if os.getppid() != parent_before:
        os._exit(1)


def main(argv: list[str] | None = None) -> None:
    import os

    parent = os.getppid()
    die_with_parent()
    _exit_if_orphaned(parent)
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.exit("usage: python -m policies.training JOB.json")
    run_job(TrainJob.from_json(argv[0]))


if __name__ == "__main__":
    main()
