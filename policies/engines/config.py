"""The `rollout` section: which engine samples the round's rollouts, and how."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rewards.section import Section


class RolloutConfig(Section):
    engine: Literal["hf"] = Field("hf", description="Rollout engine (see policies/engines/__init__.py).")
    n: int = Field(4, ge=1, description="Samples per prompt.")
    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(64, ge=1)
    stop: list[str] = []
    batch_size: int = Field(256, ge=1, description="Sequences per generate call.")
    prompts_per_shard: int = Field(64, ge=1, description="Generation resumes at shard granularity.")
