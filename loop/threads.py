"""Torch's intra-op thread count, chosen per phase of a round.

The phases want different things from the CPU cores. Training and generation are torch work
and scale with cores when the cores are free. Reward and filter are Python (and verifier
worker processes): a torch thread pool left at N threads only spin-waits against those
workers, so those phases run at one thread. "auto" is the cores this process may use
(affinity, cgroup quota, OMP_NUM_THREADS), not the cores idle at the moment: the thread count
changes float results, and the same config on the same machine must train the same model
whatever else runs beside it. On a shared machine, cap it (`OMP_NUM_THREADS`, or a number).

`threads: {train: auto, generate: auto, reward: 1}` is the default; any of them can be a fixed
number. `background` (default true) lets a worker process at idle priority score the round's
shards and measure their diversity beside the round (`loop/scorer.py`); false keeps it all in
this process. The controller calls `ThreadsConfig.apply(phase, ...)` before each phase. Two runs
compare bit for bit only if they computed with the same counts: fix the numbers for that.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from rewards.section import Section

Threads = Annotated[int, Field(ge=1)] | Literal["auto"]

# Which setting each controller phase runs under (round 0's `init` is mostly the seed SFT).
PHASE_KIND = {"init": "train", "train": "train", "control": "train",
              "generate": "generate", "evaluate": "generate", "swap": "generate",
              "reward": "reward", "filter": "reward"}


class ThreadsConfig(Section):
    """Torch intra-op threads per kind of phase: a number, or "auto" (the usable cores)."""

    train: Threads = Field("auto", description="Seed SFT, each round's update, the control.")
    generate: Threads = Field("auto", description="Rollouts and evaluation.")
    reward: Threads = Field(1, description="Reward and filter (Python and verifier workers).")
    background: bool = Field(True, description="Score shards and measure their diversity in a worker process at "
                                               "idle priority beside the round (loop/scorer.py).")

    def apply(self, phase: str, chosen: dict[str, int]) -> int:
        """Set torch's thread count for `phase`; returns it.

        "auto" is decided the first time a kind of phase runs and kept in `chosen` (the run's
        state): the thread count changes the order of float reductions, so a resumed run must
        compute with the counts the original did to end with the same numbers.
        """
        setting = self.count(phase, chosen)
        import torch  # here, not at the top: the config (and so the CLI's checks) must not load torch

        if torch.get_num_threads() != setting:
            torch.set_num_threads(setting)
        return setting

    def count(self, phase: str, chosen: dict[str, int]) -> int:
        """The thread count `phase` runs with (an "auto" decided now is kept in `chosen`)."""
        kind = PHASE_KIND[phase]
        setting = getattr(self, kind)
        if setting == "auto":
            if kind not in chosen:
                chosen[kind] = usable_cores()
            setting = chosen[kind]
        return setting


def usable_cores() -> int:
    """Cores this process's torch threads may use: `machine_cores`, narrowed by OMP_NUM_THREADS
    if set (a scheduler's or the user's cap)."""
    cores = machine_cores()
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        cores = min(cores, int(os.environ["OMP_NUM_THREADS"]))
    return cores


def machine_cores() -> int:
    """Cores this process and its children may run on: its affinity mask, narrowed by a cgroup
    CPU quota if any (containers often set a quota that torch's own default ignores)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores

