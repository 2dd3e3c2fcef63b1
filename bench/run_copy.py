"""A `Loop` over a temporary copy of a finished run, for the benches that replay one of its phases."""

from __future__ import annotations

import gc
import shutil
import tempfile
from pathlib import Path


def loop_on_copy(run_dir: Path, prefix: str, attach_scorer: bool, generator: str | None = None):
    """(the `Loop`, the copy's `BackgroundScorer` or None where its rewards are scored in process).

    The copy (W&B off) lies in a fresh temp dir, `loop.run.path.parent`, for the caller to
    delete. The task data is loaded and the engine started, from `generator` (a checkpoint
    inside the copy, relative to it) if given; then what is alive is frozen out of the
    collector's sight, as `loop run` does. `attach_scorer` hands the scorer to the loop.
    """
    from rich.console import Console

    from loop.config import load_config
    from loop.controller import Loop
    from loop.data import load_task_data
    from loop.rundir import RunDir
    from loop.scorer import BackgroundScorer
    from loop.tracking import NullTracker

    work = Path(tempfile.mkdtemp(prefix=prefix)) / "run"
    shutil.copytree(run_dir, work)
    cfg = load_config(str(work / "config.yaml"), ["tracking.wandb=false"])
    scorer = BackgroundScorer.for_run(cfg, work, print)
    loop = Loop(cfg, RunDir(work), NullTracker(), Console(), scorer if attach_scorer else None)
    loop.data = load_task_data(cfg.data, cfg.seed, loop.run.data_dir)
    if generator is not None:
        loop.state.generator = str(work / generator)
    loop._start_engine()
    gc.collect()
    gc.freeze()
    return loop, scorer
