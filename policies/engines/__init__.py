"""Rollout engines, chosen by `rollout.engine` and built here; the controller knows only the
`RolloutEngine` protocol (`policies/engines/base.py`)."""

from __future__ import annotations

from pathlib import Path

from policies.engines.base import Completion, RolloutEngine, SamplingParams
from policies.engines.config import RolloutConfig
from policies.model_config import ModelConfig


def build_engine(rollout: RolloutConfig, model: ModelConfig, checkpoint: str | Path,
                 generator_id: str) -> RolloutEngine:
    """The engine named by `rollout.engine`, serving the policy saved at `checkpoint`."""
    if rollout.engine == "hf":
        from policies.engines.hf import HFEngine  # torch and transformers load only when needed

        return HFEngine(checkpoint, generator_id, rollout.batch_size, model.dtype, tokenizer_path=model.tokenizer)
    raise ValueError(f"rollout.engine: unknown engine {rollout.engine!r}")


__all__ = ["Completion", "RolloutConfig", "RolloutEngine", "SamplingParams", "build_engine"]
