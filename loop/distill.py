"""Distillation from a stronger teacher: the `teacher` section, and whose samples a round keeps.

`teacher: {model: path-or-hub-id, mode: all}` has the teacher write every rollout of the
round (the student only trains on what the filter keeps, and is evaluated). `mode: mixed`
lets the student try first and hands the teacher only the prompts the student failed (no
sample at or above `update.threshold`): the teacher's samples then replace the student's for
those prompts. Either way `generator_id` names the model that wrote each sample
(`teacher:<name>` or `round_NNN`), so provenance survives into `scored.parquet`.

The teacher is any rollout engine (`engine: hf` today; the factory builds it) and sees the
same rendered prompt as the student: with chat models, pick a teacher that shares the chat
format. Its shards live in `round_NNN/teacher_rollouts/` and resume like the student's.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Literal

from datasets import Dataset, concatenate_datasets
from pydantic import Field, model_validator

from policies.engines import RolloutConfig, RolloutEngine, build_engine
from policies.model_config import ModelConfig
from policies.tables import read_parquet
from rewards import passes
from rewards.section import Section

TEACHER_DIR = "teacher_rollouts"


class TeacherConfig(Section):
    model: str = Field(description="Hub id or local path of the teacher model.")
    mode: Literal["all", "mixed"] = Field("mixed", description="all: the teacher writes every rollout; "
                                                               "mixed: only for prompts the student fails.")
    engine: str = Field("hf", description="Rollout engine that serves the teacher.")
    tokenizer: str | None = None
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    batch_size: int | None = Field(None, ge=1, description="Sequences per generate call; default rollout.batch_size.")

    @model_validator(mode="after")
    def _known_engine(self) -> "TeacherConfig":
        RolloutConfig(engine=self.engine)  # the engine names the factory knows, and their error
        ModelConfig(name=self.model, tokenizer=self.tokenizer)  # a path that does not exist fails here
        return self

    @property
    def generator_id(self) -> str:
        return f"teacher:{Path(self.model).name or self.model}"


def build_teacher(cfg: TeacherConfig, rollout: RolloutConfig) -> RolloutEngine:
    """The teacher's engine, from the same factory as the student's."""
    spec = rollout.model_copy(update={"engine": cfg.engine, "batch_size": cfg.batch_size or rollout.batch_size})
    model = ModelConfig(name=cfg.model, tokenizer=cfg.tokenizer, dtype=cfg.dtype)
    return build_engine(spec, model, cfg.model, cfg.generator_id)


def failed_prompts(scored: Dataset, threshold: float) -> list[str]:
    """Prompts none of whose samples reach `threshold` (gated or unscored samples never do)."""
    solved: dict[str, bool] = defaultdict(bool)
    for pid, reward in zip(scored["prompt_id"][:], scored["reward"][:]):
        solved[pid] |= passes(reward, threshold)
    return [pid for pid, ok in solved.items() if not ok]


def with_teacher_rollouts(student: Dataset, round_dir: Path) -> Dataset:
    """The round's rollouts: the teacher's samples replace the student's for the prompts it answered."""
    shards = sorted(str(p) for p in (round_dir / TEACHER_DIR).glob("shard_*.parquet"))
    if not shards:
        return student
    teacher = read_parquet(shards)
    answered = set(teacher["prompt_id"][:])
    kept = [i for i, pid in enumerate(student["prompt_id"][:]) if pid not in answered]
    return concatenate_datasets([student.select(kept), teacher.cast(student.features)])


def provenance_metrics(rollouts: Dataset, student_prompts: int) -> dict[str, float]:
    """How much of the round the teacher wrote."""
    ids = rollouts["generator_id"][:]
    from_teacher = [g.startswith("teacher:") for g in ids]
    teacher_prompts = {pid for pid, t in zip(rollouts["prompt_id"][:], from_teacher) if t}
    return {"distill/teacher_samples": float(sum(from_teacher)),
            "distill/teacher_share": sum(from_teacher) / max(len(ids), 1),
            "distill/teacher_prompts": float(len(teacher_prompts)),
            "distill/student_prompts": float(student_prompts)}
