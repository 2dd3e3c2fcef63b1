"""Per-phase torch thread counts: fixed numbers, "auto" (the cores this process may use, whatever
else runs) decided once per kind of phase and kept in the run's state, and the caps "auto" respects."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch
from pydantic import ValidationError

from loop.rundir import RunDir, RunState
from loop.threads import ThreadsConfig, machine_cores, usable_cores


@pytest.fixture(autouse=True)
def restore_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_auto_is_decided_once_per_kind_and_reward_phases_run_at_one_thread():
    threads, chosen = ThreadsConfig(), {}
    n = threads.apply("init", chosen)
    assert 1 <= n <= usable_cores() and torch.get_num_threads() == n
    assert chosen == {"train": n}
    assert threads.apply("train", chosen) == n  # kept, not sampled again
    assert threads.apply("reward", chosen) == 1 and torch.get_num_threads() == 1
    assert threads.apply("filter", chosen) == 1
    assert set(chosen) == {"train"}  # a fixed count is not recorded
    chosen["generate"] = 7  # a resumed run computes with what the original chose
    assert threads.apply("evaluate", chosen) == 7 and torch.get_num_threads() == 7


def test_fixed_counts_are_used_and_nonsense_is_refused():
    assert ThreadsConfig(train=2).apply("control", {}) == 2
    assert torch.get_num_threads() == 2
    for bad in (0, -1, "many", 1.5):
        with pytest.raises(ValidationError, match="train"):
            ThreadsConfig(train=bad)


def test_auto_respects_omp_num_threads(monkeypatch):
    cores = machine_cores()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert usable_cores() == 1
    assert ThreadsConfig().apply("train", {}) == 1
    # It caps torch's threads, not the cores a background worker may idle on (loop/scorer.py).
    assert machine_cores() == cores >= 1


def test_auto_does_not_follow_the_load():
    """Other processes keeping every core busy change nothing: the count (and so the model a
    config trains) is the machine's, not the moment's."""
    quiet = usable_cores()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.3)
        assert ThreadsConfig().apply("generate", {}) == quiet
    finally:
        for proc in busy:
            proc.kill()
            proc.wait()


def test_the_choice_survives_in_state_json(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir(parents=True)
    run.save_state(RunState(threads={"train": 2, "generate": 1}))
    assert run.load_state().threads == {"train": 2, "generate": 1}
