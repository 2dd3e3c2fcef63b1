"""What a finished run keeps on disk: bounded, whatever the number of rounds.

Trainer checkpoints (weights *and* optimizer state, several times the model's size) exist so a
killed update can resume; once the round's `train` (or `control`) phase is recorded in
`state.json` nothing reads them again, so they are deleted then, keeping the newest
`trainer_checkpoints` of each job. Each round's final policy (and LoRA adapter) is kept unless
`policies` says to keep only the last K rounds' — round 0 (the base or seed policy, from which
`init: base` restarts) and the live generator are never deleted.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import Field

from rewards.section import Section


class StorageConfig(Section):
    trainer_checkpoints: int = Field(0, ge=0, description="Trainer checkpoints kept per job once its phase is recorded.")
    policies: int | None = Field(None, ge=1, description="Keep only the last K rounds' policies; null keeps all.")


def prune_trainer_checkpoints(job_dir: Path, keep: int) -> int:
    """Delete all but the newest `keep` `checkpoint-N` dirs anywhere under `job_dir`; bytes freed."""
    freed = 0
    parents = {ckpt.parent for ckpt in job_dir.rglob("checkpoint-*") if ckpt.is_dir()}
    for parent in parents:
        found = sorted((p for p in parent.glob("checkpoint-*") if p.is_dir()),
                       key=lambda p: int(p.name.rsplit("-", 1)[-1]))
        for ckpt in found[: max(len(found) - keep, 0)]:
            freed += dir_bytes(ckpt)
            shutil.rmtree(ckpt, ignore_errors=True)
    return freed


def prune_old_policies(round_dirs: list[Path], keep_last: int, in_use: set[Path]) -> int:
    """Delete the policy dirs of all but the last `keep_last` rounds (round 0 and `in_use` kept)."""
    freed = 0
    for round_dir in round_dirs[1:][: max(len(round_dirs) - 1 - keep_last, 0)]:
        for name in ("checkpoint", "adapter", "control/checkpoint", "control/adapter"):
            path = round_dir / name
            if path.is_dir() and path.resolve() not in in_use:
                freed += dir_bytes(path)
                shutil.rmtree(path, ignore_errors=True)
    return freed


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
