"""Experiment tracking: one W&B run per loop run, step = round; or a do-nothing stand-in.

Only the controller logs. Offline (files under the run dir, `wandb sync` later) when no
`WANDB_API_KEY` is set; a resumed loop continues the same W&B run (its id lives in state.json).
"""

from __future__ import annotations

import math
import os
import uuid
from pathlib import Path
from typing import Protocol

from loop.config import TrackingConfig


class Tracker(Protocol):
    run_id: str | None

    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def log_rollouts(self, rows: list[dict], step: int) -> None: ...

    def alert(self, title: str, text: str) -> None: ...

    def finish(self) -> None: ...


class NullTracker:
    run_id = None

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_rollouts(self, rows: list[dict], step: int) -> None:
        pass

    def alert(self, title: str, text: str) -> None:
        pass

    def finish(self) -> None:
        pass


class WandbTracker:
    def __init__(self, cfg: TrackingConfig, name: str, run_dir: Path, flat_config: dict, run_id: str | None):
        import wandb

        self._wandb = wandb
        mode = cfg.mode
        if mode == "auto":
            mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
        self.run = wandb.init(
            project=cfg.project, name=name, group=cfg.group, tags=cfg.tags, config=flat_config,
            dir=str(run_dir), id=run_id or uuid.uuid4().hex[:12], resume="allow", mode=mode,
            settings=wandb.Settings(console="off", quiet=True),
        )
        self.run_id = self.run.id

    def log(self, metrics: dict[str, float], step: int) -> None:
        clean = {k: v for k, v in metrics.items() if not (isinstance(v, float) and math.isnan(v))}
        self.run.log(clean, step=step)

    def log_rollouts(self, rows: list[dict], step: int) -> None:
        if rows:
            columns = list(rows[0])
            table = self._wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])
            self.run.log({"rollouts/samples": table}, step=step)

    def alert(self, title: str, text: str) -> None:
        """A W&B alert (email/Slack per the user's W&B settings; recorded only when offline)."""
        self.run.alert(title=title, text=text, level=self._wandb.AlertLevel.WARN)

    def finish(self) -> None:
        self.run.finish()


def make_tracker(cfg: TrackingConfig, name: str, run_dir: Path, flat_config: dict,
                 run_id: str | None) -> Tracker:
    if not cfg.wandb:
        return NullTracker()
    return WandbTracker(cfg, name, run_dir, flat_config, run_id)
