"""The run directory: where everything a run makes lives, and the state that says where it is.

    runs/<name>/
      config.yaml  state.json  metrics.jsonl  accuracy.png  .lock
      data/                      built-in task files (train/eval/seed .jsonl)
      round_000/checkpoint/      the starting policy (after the seed SFT, if any)
      round_NNN/rollouts/        generation shards (Parquet), then scored.parquet
      round_NNN/train/           the training set, Trainer checkpoints, result.json
      round_NNN/checkpoint/      the round's policy: the next round's generator
      round_NNN/metrics/         one JSON per phase; merged into metrics.jsonl

`state.json` names the last completed phase; every file is written atomically.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from policies.atomic import read_json, write_json, write_text


class RunLocked(RuntimeError):
    pass


def check_can_create(path: Path) -> None:
    """Raise ConfigError unless `path` is, or can become, a directory we may write. Leaves no trace:
    the probe is a temporary directory made and removed in the nearest existing ancestor."""
    from loop.config import ConfigError

    probe = Path(path).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"runs_dir: {str(probe)!r} is a file, so {str(path)!r} cannot be made; set runs_dir to a directory")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".selfloop-probe-", dir=probe))
    except OSError as err:
        raise ConfigError(f"runs_dir: cannot create directories in {str(probe)!r} ({err.strerror}); "
                          "set runs_dir to a writable directory") from None


@dataclass
class RunState:
    round: int = 0  # the round in progress (or last finished)
    phase: str | None = None  # last completed phase of `round`; None = nothing done yet
    generator: str | None = None  # checkpoint dir (or hub id) the rollout engine serves
    generator_id: str | None = None
    policies: dict[str, str] = field(default_factory=dict)  # round -> its policy (round 0 = start)
    controls: dict[str, str] = field(default_factory=dict)  # round -> the control's policy
    done: bool = False
    wandb_id: str | None = None
    history: list[str] = field(default_factory=list)  # "round/phase" in completion order


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_fd: int | None = None

    # --- layout -------------------------------------------------------------------------
    config_file = property(lambda self: self.path / "config.yaml")
    state_file = property(lambda self: self.path / "state.json")
    metrics_file = property(lambda self: self.path / "metrics.jsonl")
    data_dir = property(lambda self: self.path / "data")

    def round_dir(self, r: int) -> Path:
        return self.path / f"round_{r:03d}"

    def checkpoint(self, r: int) -> Path:
        return self.round_dir(r) / "checkpoint"

    def phase_metrics_file(self, r: int, phase: str) -> Path:
        return self.round_dir(r) / "metrics" / f"{phase}.json"

    # --- state --------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.state_file.exists()

    def load_state(self) -> RunState:
        return RunState(**read_json(self.state_file)) if self.exists() else RunState()

    def save_state(self, state: RunState) -> None:
        write_json(self.state_file, asdict(state))

    # --- metrics ------------------------------------------------------------------------
    def save_phase_metrics(self, r: int, phase: str, metrics: dict) -> None:
        write_json(self.phase_metrics_file(r, phase), metrics)

    def round_metrics(self, r: int) -> dict:
        """All phase metrics of round `r`, merged, with `round` first."""
        merged: dict = {"round": r}
        for f in sorted((self.round_dir(r) / "metrics").glob("*.json")):
            merged.update(read_json(f))
        return merged

    def append_round_metrics(self, record: dict) -> None:
        """Rewrite metrics.jsonl with `record` replacing any earlier line of the same round."""
        rows = [row for row in self.read_metrics() if row["round"] != record["round"]]
        rows.append(record)
        rows.sort(key=lambda row: row["round"])
        write_text(self.metrics_file, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))

    def read_metrics(self) -> list[dict]:
        if not self.metrics_file.exists():
            return []
        return [json.loads(line) for line in self.metrics_file.read_text().splitlines() if line.strip()]

    # --- single writer ------------------------------------------------------------------
    def lock(self) -> None:
        """Refuse a second process on this run dir. The OS drops the lock when we die, even by SIGKILL."""
        if self._lock_fd is not None:
            return  # already ours
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode().strip() or "?"
            os.close(fd)
            raise RunLocked(f"{self.path} is in use by another process (pid {holder}); "
                            "wait for it or stop it first") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
