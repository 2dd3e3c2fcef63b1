"""DeepSpeed ZeRO for every update algorithm: `update.deepspeed: {stage, offload_optimizer, offload_param}`.

The settings become a DeepSpeed JSON config that the job hands to TRL's `TrainingArguments`
(`deepspeed=`), so the Trainer sets DeepSpeed up through accelerate; batch size, gradient
accumulation, clipping and precision stay "auto", i.e. whatever the `update` section says.
ZeRO-3 shards the parameters themselves: the final save gathers them on every rank
(`policies/training.py`), and stage3_gather_16bit_weights_on_model_save is on for that.
On a CPU machine set `DS_ACCELERATOR=cpu` (the tests do); offloading to CPU builds DeepSpeed's
CPU Adam op on first use (minutes; set TORCH_EXTENSIONS_DIR to keep it between runs).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from rewards.section import Section


class DeepSpeedSettings(Section):
    stage: Literal[2, 3] = Field(2, description="ZeRO stage: 2 shards optimizer state and gradients, 3 also the weights.")
    offload_optimizer: Literal["none", "cpu"] = Field("none", description="Keep optimizer state in CPU memory.")
    offload_param: Literal["none", "cpu"] = Field("none", description="Keep weights in CPU memory (stage 3 only).")
    param_persistence_threshold: int | None = Field(
        None, ge=0, description="ZeRO-3: parameters smaller than this stay unsharded; null = DeepSpeed's default.")

    @model_validator(mode="after")
    def _offload_fits_stage(self) -> "DeepSpeedSettings":
        if self.offload_param == "cpu" and self.stage != 3:
            raise ValueError("offload_param needs stage: 3 (stage 2 does not shard the weights)")
        if self.param_persistence_threshold is not None and self.stage != 3:
            raise ValueError("param_persistence_threshold is a ZeRO-3 setting: use stage: 3 or drop it")
        return self

    def config(self) -> dict[str, Any]:
        """The DeepSpeed JSON config, "auto" wherever the Trainer's arguments decide."""
        zero: dict[str, Any] = {"stage": self.stage, "overlap_comm": False, "contiguous_gradients": True}
        if self.offload_optimizer == "cpu":
            zero["offload_optimizer"] = {"device": "cpu", "pin_memory": False}
        if self.stage == 3:
            zero["stage3_gather_16bit_weights_on_model_save"] = True
            if self.offload_param == "cpu":
                zero["offload_param"] = {"device": "cpu", "pin_memory": False}
            if self.param_persistence_threshold is not None:
                zero["stage3_param_persistence_threshold"] = self.param_persistence_threshold
        return {
            "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
            "train_batch_size": "auto", "gradient_clipping": "auto",
            "bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"},
            "zero_optimization": zero,
        }
