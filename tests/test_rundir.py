"""Tests for `policies/atomic.py` and `loop/rundir.py`: artifacts appear whole or not at all, state
and metrics round-trip, and one process at a time owns a run dir (even across a SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from datasets import Dataset

from policies.atomic import atomic_dir, read_json, save_parquet, write_bytes, write_json, write_text, write_yaml
from loop.rundir import RunDir, RunLocked, RunState

REPO_ROOT = Path(__file__).resolve().parents[1]

# Run in a child process: hold the lock until killed.
HOLD_LOCK = """
import sys, time
from loop.rundir import RunDir
RunDir(sys.argv[1]).lock()
print("locked", flush=True)
time.sleep(120)
"""

# Run in a child process: exit 3 (printing the message) when the run dir is locked, else 0.
TRY_LOCK = """
import sys
from loop.rundir import RunDir, RunLocked
try:
    RunDir(sys.argv[1]).lock()
except RunLocked as err:
    print(err)
    sys.exit(3)
"""


def python(script: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO_ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def entries(directory: Path) -> list[str]:
    """Everything in `directory`, hidden temp files included."""
    return sorted(p.name for p in directory.iterdir())


# --- atomic files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "write,value,read",
    [
        (write_json, {"b": [1, 2.5, None], "a": "x"}, lambda p: json.loads(p.read_text())),
        (write_yaml, {"b": [1, 2], "a": {"c": True}}, lambda p: yaml.safe_load(p.read_text())),
        (write_text, "héllo\nwörld\n", lambda p: p.read_text()),
        (write_bytes, bytes(range(256)), lambda p: p.read_bytes()),
    ],
    ids=["json", "yaml", "text", "bytes"],
)
def test_write_produces_the_complete_file_and_no_leftovers(tmp_path, write, value, read):
    path = tmp_path / "sub" / "artifact"
    write(path, value)
    write(path, value)  # overwriting is the normal case
    assert read(path) == value
    assert entries(path.parent) == ["artifact"]


def test_read_json_reads_what_write_json_wrote(tmp_path):
    write_json(tmp_path / "a.json", {"round": 3})
    assert read_json(tmp_path / "a.json") == {"round": 3}


@pytest.mark.parametrize(
    "write,bad_value",
    [
        (write_json, {"x": object()}),  # not JSON-serializable
        (write_text, "\ud800"),  # a lone surrogate cannot be encoded
        (write_bytes, "str, not bytes"),  # fails inside the temp-file write
    ],
    ids=["json", "text", "bytes"],
)
def test_failed_write_keeps_the_previous_file(tmp_path, write, bad_value):
    path = tmp_path / "state.json"
    write_text(path, "previous\n")
    with pytest.raises((TypeError, UnicodeEncodeError)):
        write(path, bad_value)
    assert path.read_text() == "previous\n"
    assert entries(tmp_path) == ["state.json"]


def test_save_parquet_round_trips_and_leaves_no_temp_file(tmp_path):
    rollouts = Dataset.from_dict({"prompt_id": ["a:0", "a:1"], "reward": [1.0, None]})
    path = tmp_path / "rollouts" / "scored.parquet"
    save_parquet(rollouts, path)
    assert Dataset.from_parquet(str(path)).to_dict() == rollouts.to_dict()
    assert entries(path.parent) == ["scored.parquet"]


def test_failed_save_parquet_keeps_the_previous_file(tmp_path):
    path = tmp_path / "scored.parquet"
    save_parquet(Dataset.from_dict({"reward": [1.0]}), path)
    with pytest.raises(AttributeError):
        save_parquet(object(), path)  # has no to_parquet: fails after the temp file exists
    assert Dataset.from_parquet(str(path))["reward"] == [1.0]
    assert entries(tmp_path) == ["scored.parquet"]


# --- atomic directories ---------------------------------------------------------------


def test_atomic_dir_appears_complete(tmp_path):
    path = tmp_path / "checkpoint"
    with atomic_dir(path) as tmp:
        assert not path.exists()  # nothing under the real name until the block finishes
        (tmp / "model.safetensors").write_text("weights")
    assert (path / "model.safetensors").read_text() == "weights"
    assert entries(tmp_path) == ["checkpoint"]


def test_atomic_dir_replaces_an_existing_directory(tmp_path):
    path = tmp_path / "checkpoint"
    path.mkdir()
    (path / "old.bin").write_text("old")
    with atomic_dir(path) as tmp:
        (tmp / "new.bin").write_text("new")
    assert entries(path) == ["new.bin"]
    assert entries(tmp_path) == ["checkpoint"]


def test_exception_in_atomic_dir_keeps_the_old_directory(tmp_path):
    path = tmp_path / "checkpoint"
    path.mkdir()
    (path / "old.bin").write_text("old")
    with pytest.raises(RuntimeError, match="crash"):
        with atomic_dir(path) as tmp:
            (tmp / "new.bin").write_text("half")
            raise RuntimeError("crash")
    assert entries(path) == ["old.bin"]
    assert (path / "old.bin").read_text() == "old"
    assert entries(tmp_path) == ["checkpoint"]


def test_exception_in_atomic_dir_creates_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "checkpoint") as tmp:
            (tmp / "part").write_text("x")
            raise RuntimeError("crash")
    assert entries(tmp_path) == []


# --- state and metrics ----------------------------------------------------------------


def test_fresh_run_dir_has_default_state(tmp_path):
    run = RunDir(tmp_path / "run")
    assert not run.exists()
    assert run.load_state() == RunState()
    assert run.read_metrics() == []


def test_state_round_trips(tmp_path):
    run = RunDir(tmp_path / "run")
    state = RunState(round=2, phase="update", generator="runs/x/round_001/checkpoint", generator_id="round_001",
                     policies={"0": "a", "1": "b"}, controls={"1": "c"}, done=False, wandb_id="abc123",
                     history=["0/seed", "1/generate", "1/score", "2/update"])
    run.save_state(state)
    assert run.exists()
    assert RunDir(tmp_path / "run").load_state() == state
    state.done = True
    run.save_state(state)
    assert run.load_state().done is True


def test_append_round_metrics_replaces_the_same_round_and_keeps_order(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    for r in (0, 2, 1):
        run.append_round_metrics({"round": r, "eval/pass@1": r / 10})
    assert [row["round"] for row in run.read_metrics()] == [0, 1, 2]

    run.append_round_metrics({"round": 1, "eval/pass@1": 0.9, "rollout/accept_rate": 0.5})  # a re-run round 1
    rows = run.read_metrics()
    assert rows == [{"round": 0, "eval/pass@1": 0.0},
                    {"round": 1, "eval/pass@1": 0.9, "rollout/accept_rate": 0.5},
                    {"round": 2, "eval/pass@1": 0.2}]
    assert len(run.metrics_file.read_text().splitlines()) == 3


def test_round_metrics_merges_the_phase_files(tmp_path):
    run = RunDir(tmp_path / "run")
    run.save_phase_metrics(1, "rollout", {"rollout/accept_rate": 0.25})
    run.save_phase_metrics(1, "eval", {"eval/pass@1": 0.5})
    run.save_phase_metrics(2, "eval", {"eval/pass@1": 0.75})
    merged = run.round_metrics(1)
    assert merged == {"round": 1, "rollout/accept_rate": 0.25, "eval/pass@1": 0.5}
    assert next(iter(merged)) == "round"


# --- single writer --------------------------------------------------------------------


def test_second_process_cannot_lock_while_the_first_holds_it(tmp_path):
    run = RunDir(tmp_path / "run")
    run.lock()
    try:
        out, _ = python(TRY_LOCK, str(run.path)).communicate(timeout=60)
        assert f"pid {os.getpid()}" in out  # the message names the holder
        with pytest.raises(RunLocked):
            RunDir(run.path).lock()  # a second handle in this process is refused too
    finally:
        run.unlock()
    attempt = python(TRY_LOCK, str(run.path))
    attempt.communicate(timeout=60)
    assert attempt.returncode == 0


def test_lock_is_released_when_the_holder_is_sigkilled(tmp_path):
    path = tmp_path / "run"
    holder = python(HOLD_LOCK, str(path))
    try:
        assert holder.stdout.readline().strip() == "locked", holder.stderr.read()
        with pytest.raises(RunLocked, match=f"pid {holder.pid}"):
            RunDir(path).lock()
        os.kill(holder.pid, signal.SIGKILL)
        assert holder.wait(timeout=60) == -signal.SIGKILL
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    run = RunDir(path)
    run.lock()
    run.unlock()
