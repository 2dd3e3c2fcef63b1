"""Rollout engines, chosen by `rollout.engine` and built here; the controller knows only the
`RolloutEngine` protocol (`policies/engines/base.py`). Each engine's heavy imports (torch,
vLLM) happen only when it is built."""

from __future__ import annotations

from pathlib import Path

from policies.engines.base import Completion, RolloutEngine, SamplingParams
from policies.engines.config import RolloutConfig
from policies.model_config import ModelConfig


def build_engine(rollout: RolloutConfig, model: ModelConfig, checkpoint: str | Path,
                 generator_id: str, seed: int = 0) -> RolloutEngine:
    """The engine named by `rollout.engine`, serving the policy saved at `checkpoint`."""
    if rollout.engine == "hf":
        from policies.engines.hf import HFEngine

        return HFEngine(checkpoint, generator_id, rollout.batch_size, model.dtype, tokenizer_path=model.tokenizer,
                        kv_cache=rollout.kv_cache)
    if rollout.engine == "vllm_server":
        from policies.engines.vllm_server import VLLMServerEngine

        return VLLMServerEngine(rollout.servers, rollout.server, checkpoint, generator_id, model.tokenizer)
    if rollout.engine == "openai":
        from policies.engines.openai_compat import OpenAIEngine

        return OpenAIEngine(rollout.servers, rollout.server, model.tokenizer or checkpoint)
    if rollout.engine == "vllm":
        from policies.engines.vllm import VLLMEngine

        dtype = "auto" if model.dtype == "auto" else model.dtype
        return VLLMEngine(checkpoint, generator_id, rollout.vllm, dtype, model.tokenizer, seed)
    raise ValueError(f"rollout.engine: unknown engine {rollout.engine!r}")


__all__ = ["Completion", "RolloutConfig", "RolloutEngine", "SamplingParams", "build_engine"]
