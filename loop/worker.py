"""`loop worker RUN --rank R`: another machine's share of a multi-node update.

Only rank 0 runs the controller: it generates, scores, filters, writes the run dir and launches
its side of every training job. Two controllers on one run dir would generate and write
everything twice, so each other machine runs this instead: it watches the shared run dir for
training jobs (every `job.json` under `round_*/`, written by rank 0 just before it launches)
and launches the same job with its own `machine_rank`; accelerate's static rendezvous joins
the two sides. It exits when the run is done.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from loop.config import ConfigError, load_config, validate
from loop.rundir import RunDir
from policies.launch import launch
from policies.training import TrainJob

POLL_S = 1.0


def pending_jobs(run: RunDir, joined: set[tuple[Path, int]]) -> list[Path]:
    """Multi-node job files rank 0 has written, not finished and not joined yet. A job file is
    known by path and mtime: a resumed rank 0 rewrites it to retry, and the retry is joined too."""
    found = []
    for job_file in sorted(run.path.glob("round_*/**/job.json")):
        if (job_file, job_file.stat().st_mtime_ns) in joined or (job_file.parent / "result.json").exists():
            continue
        if TrainJob.from_json(job_file).nodes:
            found.append(job_file)
    return found


def work(run: RunDir, rank: int, console: Console, wait_s: float = 0.0) -> int:
    """Join every training job of `run` as machine `rank` until the run is done. With
    `wait_s`, a run dir rank 0 has not made yet is waited for that long (machines started
    at once); without it, a path that is no run is refused at once (a mistyped path would
    otherwise wait forever)."""
    if rank < 1:
        raise ConfigError(f"--rank {rank}: rank 0 runs the controller (`loop run`); a worker's rank is 1 or more")
    if not run.exists() and wait_s > 0:
        console.print(f"worker rank {rank}: waiting up to {wait_s:g} s for rank 0 to create {run.path}")
        deadline = time.monotonic() + wait_s
        while not run.exists() and time.monotonic() < deadline:
            time.sleep(POLL_S)
    if not run.exists():
        raise ConfigError(f"{run.path} is not a run directory{' after ' + format(wait_s, 'g') + ' s' if wait_s else ''} "
                          "(no state.json): start `loop run` on rank 0 first, or give the worker `--wait SECONDS`, "
                          "with the run dir on storage both machines see")
    nodes = validate(run.read_config()).update.nodes
    if nodes is None:
        raise ConfigError(f"{run.path} is a single-machine run (no update.nodes): it has no training jobs to join")
    if rank >= nodes.count:
        raise ConfigError(f"--rank {rank}: update.nodes.count is {nodes.count}; ranks run 1 .. {nodes.count - 1}")
    joined: set[tuple[Path, int]] = set()
    console.print(f"worker rank {rank}: waiting for training jobs in {run.path}")
    while not run.load_state().done:
        for job_file in pending_jobs(run, joined):
            joined.add((job_file, job_file.stat().st_mtime_ns))
            job = TrainJob.from_json(job_file)
            if rank >= job.nodes["count"]:
                raise ConfigError(f"--rank {rank}: update.nodes.count is {job.nodes['count']}; ranks run 1 .. {job.nodes['count'] - 1}")
            console.print(f"worker rank {rank}: {job_file.relative_to(run.path)}")
            processes = load_config(run.config_file).update.num_processes  # per machine, as on rank 0
            proc = launch(job_file, processes, {**job.nodes, "rank": rank}, bool(job.deepspeed))
            if proc.returncode != 0:
                console.print(f"worker rank {rank}: {job_file} exited with code {proc.returncode}; "
                              "waiting for rank 0 to retry it")
        time.sleep(POLL_S)
    console.print(f"worker rank {rank}: the run is done")
    return 0
