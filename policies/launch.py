"""Run a training job in this process or as an `accelerate` process group.

`num_processes > 1` launches `accelerate launch --num_processes N -m policies.training job.json`:
N GPUs (or N CPU processes over gloo, as in the tests) is a config change, nothing more.
One process trains in the controller's process: no interpreter start, no re-import of torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from policies.training import OWNER_PID_ENV, TrainJob, TrainResult, die_with_parent, run_job


class TrainingFailed(RuntimeError):
    pass


def accelerate_command(num_processes: int, module: str, job_file: Path, nodes: dict | None = None) -> list[str]:
    """`num_processes` per machine; `nodes` (`NodeSettings` fields, plus this machine's `rank`,
    0 when absent) spreads the group over machines."""
    machines = nodes["count"] if nodes else 1
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes * machines),
           "--num_machines", str(machines), "--mixed_precision", "no", "--dynamo_backend", "no", "--multi_gpu"]
    if nodes:
        # Every machine runs the same command with its own rank; static rendezvous at the main one.
        cmd += ["--machine_rank", str(nodes.get("rank", 0)), "--main_process_ip", nodes["main_address"],
                "--main_process_port", str(nodes["main_port"]), "--rdzv_backend", "static"]
    elif not torch.cuda.is_available():
        # torchrun-style launch of N CPU ranks; the Trainer sets up a gloo process group.
        cmd += ["--main_process_port", str(_free_port())]
    return cmd + ["-m", module, str(job_file)]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(job: TrainJob, num_processes: int = 1, callbacks: tuple = ()) -> TrainResult:
    job_file = Path(job.output_dir) / "job.json"  # also the record of what was trained from what
    job.to_json(job_file)
    if num_processes == 1 and not job.deepspeed and not job.nodes:  # DeepSpeed wants a launched process group
        return run_job(job, callbacks)
    proc = launch(job_file, num_processes, job.nodes, bool(job.deepspeed))
    if proc.returncode != 0:
        raise TrainingFailed(f"training with {num_processes} processes exited with code {proc.returncode}")
    return TrainResult(**json.loads((Path(job.output_dir) / "result.json").read_text()))


def launch(job_file: Path, num_processes: int, nodes: dict | None, deepspeed: bool) -> subprocess.CompletedProcess:
    """Launch this machine's side of a job file's process group and wait for it."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), OWNER_PID_ENV: str(os.getpid())}
    if deepspeed and not torch.cuda.is_available():
        env.setdefault("DS_ACCELERATOR", "cpu")
    # The launcher dies with us (even by SIGKILL of this process alone), and each rank with the
    # launcher (policies.training.main): no rank outlives the loop and writes beside a resume.
    return subprocess.run(accelerate_command(num_processes, "policies.training", job_file, nodes), env=env,
                          preexec_fn=die_with_parent)
