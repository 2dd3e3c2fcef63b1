"""A multi-node run on one machine: `loop run` (rank 0: the controller) and `loop worker --rank 1`
(the other "machine") on 127.0.0.1, one shared run dir. Every training job (seed SFT, the round's
update, the control) is one 2-machine process group; only rank 0 writes the run."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import launch, read_state, write_config
from loop.cli import main
from policies.launch import _free_port


@pytest.mark.slow
def test_loop_run_and_a_worker_train_every_job_together(tmp_path):
    config = write_config(tmp_path, rounds=1, update__nodes={"count": 2, "main_address": "127.0.0.1",
                                                             "main_port": _free_port()})
    run_dir = tmp_path / "runs" / "tiny"
    rank0 = launch(config)
    worker = subprocess.run([sys.executable, "-m", "loop", "worker", str(run_dir), "--rank", "1"],
                            capture_output=True, text=True, timeout=900)
    assert rank0.wait(timeout=900) == 0, rank0.stderr.read()[-2000:]
    assert worker.returncode == 0, worker.stderr[-2000:]
    joined = [line for line in worker.stdout.splitlines() if "job.json" in line]
    assert len(joined) == 3, worker.stdout  # seed SFT, round 1's update, round 1's control
    assert read_state(run_dir)["done"]


def test_a_worker_is_never_rank_0(tmp_path, capsys):
    assert main(["worker", str(tmp_path / "runs" / "x"), "--rank", "0"]) == 2
    assert "rank 0 runs the controller" in capsys.readouterr().err
