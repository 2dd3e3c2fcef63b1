"""A distributed update (update.num_processes: 2, gloo on CPU) dies with the loop: SIGKILL of
the loop's process group mid-update leaves no training rank alive 2 s later (torch elastic
starts ranks in their own session; they hold PR_SET_PDEATHSIG), and the resume ends with the
metrics of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import comparable

REPO_ROOT = Path(__file__).resolve().parents[1]

CONFIG = {
    "name": "dist", "seed": 7, "rounds": 1,
    "model": {"tiny": {"arch": "qwen2", "num_layers": 1, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64}},
    "data": {"task": {"train_size": 24, "eval_size": 4, "seed_size": 4, "num_operands": 2, "max_operand": 9},
             "prompts_per_round": 8},
    "rollout": {"n": 2, "max_new_tokens": 8, "batch_size": 8, "prompts_per_shard": 4},
    "update": {"threshold": 0.0, "batch_size": 2, "seed_epochs": 0, "learning_rate": 1e-3, "save_steps": 1,
               "num_processes": 2},
    "eval": {"k": 1},
    "tracking": {"wandb": False},
}


def loop(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-m", "loop", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def ranks_of(job_file: Path) -> list[int]:
    """Pids of live processes whose command line names the job file (the training ranks)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(job_file).encode() in (proc / "cmdline").read_bytes():
                status = (proc / "status").read_text()
                if "\nState:\tZ" not in status:  # a zombie is dead, only not yet reaped
                    pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_sigkill_of_the_loop_group_mid_update_leaves_no_rank_and_resume_matches(tmp_path: Path):
    paths = {}
    for which in ("reference", "killed"):
        config = tmp_path / f"{which}.yaml"
        config.write_text(yaml.safe_dump({**CONFIG, "runs_dir": str(tmp_path / which)}))
        paths[which] = config
    reference = loop("run", str(paths["reference"]))
    assert reference.wait(timeout=900) == 0, reference.stderr.read()[-3000:]

    run = tmp_path / "killed" / "dist"
    job_file = run / "round_001" / "train" / "job.json"
    proc = loop("run", str(paths["killed"]), start_new_session=True)  # its own group, as a shell job is
    deadline = time.monotonic() + 600
    while not list((run / "round_001" / "train").glob("checkpoint-*")) or len(ranks_of(job_file)) < 2:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.05)
    assert not (run / "round_001" / "checkpoint").exists(), "killed too late: the update had finished"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(2)
    assert ranks_of(job_file) == [], "training ranks outlived the loop"

    resumed = loop("resume", str(run))
    assert resumed.wait(timeout=900) == 0, resumed.stderr.read()[-3000:]
    assert comparable(run) == comparable(tmp_path / "reference" / "dist")
