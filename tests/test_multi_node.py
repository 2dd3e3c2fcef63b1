"""A multi-node run on one machine: `loop run` (rank 0: the controller) and `loop worker --rank 1`
(the other "machine") on 127.0.0.1, one shared run dir. Every training job (seed SFT, the round's
update, the control) is one 2-machine process group; only rank 0 writes the run."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import yaml

from conftest import launch, read_state, write_config
from loop.cli import main
from policies.launch import _free_port


@pytest.mark.slow
def test_loop_run_and_a_worker_train_every_job_together(tmp_path):
    config = write_config(tmp_path, rounds=1, update__nodes={"count": 2, "main_address": "127.0.0.1",
                                                             "main_port": _free_port()})
    run_dir = tmp_path / "runs" / "tiny"
    rank0 = launch(config)
    # Started at once with rank 0, as a cluster launcher would: it waits for the run dir.
    worker = subprocess.run([sys.executable, "-m", "loop", "worker", str(run_dir), "--rank", "1", "--wait", "300"],
                            capture_output=True, text=True, timeout=900)
    assert rank0.wait(timeout=900) == 0, rank0.stderr.read()[-2000:]
    assert worker.returncode == 0, worker.stderr[-2000:]
    joined = [line for line in worker.stdout.splitlines() if "job.json" in line]
    assert len(joined) == 3, worker.stdout  # seed SFT, round 1's update, round 1's control
    assert read_state(run_dir)["done"]


def test_a_worker_is_never_rank_0(tmp_path, capsys):
    assert main(["worker", str(tmp_path / "runs" / "x"), "--rank", "0"]) == 2
    assert "rank 0 runs the controller" in capsys.readouterr().err


def test_a_worker_refuses_a_path_that_is_no_run_at_once(tmp_path, capsys):
    assert main(["worker", str(tmp_path / "no_such_run"), "--rank", "1"]) == 2
    assert "is not a run directory (no state.json)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_worker_told_to_wait_refuses_when_no_run_appears_in_time(tmp_path, capsys):
    start = time.monotonic()
    assert main(["worker", str(tmp_path / "no_such_run"), "--rank", "1", "--wait", "1.5"]) == 2
    assert time.monotonic() - start >= 1.5
    assert "is not a run directory after 1.5 s (no state.json)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("nodes,expect", [(None, "single-machine run (no update.nodes)"),
                                          ({"count": 2, "main_address": "127.0.0.1"}, "ranks run 1 .. 1")])
def test_a_worker_refuses_a_run_it_cannot_join(tmp_path, capsys, nodes, expect):
    from loop.config import to_dict, validate

    config = write_config(tmp_path, rounds=1, update__nodes=nodes)
    run_dir = tmp_path / "runs" / "tiny"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(validate(yaml.safe_load(config.read_text())))))
    (run_dir / "state.json").write_text("{}")
    assert main(["worker", str(run_dir), "--rank", "1" if nodes is None else "2"]) == 2
    assert expect in capsys.readouterr().err
