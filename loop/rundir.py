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
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from loop.config import ConfigError, read_yaml_file
from policies.atomic import read_json, write_json, write_text


class RunLocked(RuntimeError):
    pass


def check_can_create(path: Path) -> None:
    """Raise ConfigError unless `path` is, or can become, a directory we may write. Leaves no trace:
    the probe is a temporary directory made and removed in the nearest existing ancestor."""
    probe = Path(path).absolute()
    if probe.exists() and not probe.is_dir():  # the run's own name is taken by a file
        raise ConfigError(f"name: {str(path)!r} is a file, not a run directory; pick another run name "
                          "(--set name=...) or move the file")
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
    config_hash: str | None = None  # of the resolved config: an edited config.yaml is refused
    threads: dict[str, int] = field(default_factory=dict)  # phase kind -> what `threads: auto` chose


# What each state.json key must hold (JSON types); checked on load so a damaged file is one clear line.
_STATE_TYPES = {"round": int, "phase": (str, type(None)), "generator": (str, type(None)),
                "generator_id": (str, type(None)), "policies": dict, "controls": dict, "done": bool,
                "wandb_id": (str, type(None)), "history": list, "config_hash": (str, type(None)),
                "threads": dict}
# In state.json a path inside the run dir is stored as "./<relative>", so a copied or moved run
# dir (or a resume from another working directory) finds its own checkpoints.
_IN_RUN = "./"


class RunDirError(ConfigError):
    """A damaged or edited run dir: the message names the file and the fix."""


def config_hash(resolved: dict) -> str:
    return hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest()[:16]


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

    # --- config -------------------------------------------------------------------------
    def read_config(self) -> dict:
        """The run's saved config.yaml as a mapping; a missing, empty or damaged one is a RunDirError."""
        if not self.config_file.is_file():
            raise RunDirError(f"{self.path} is not a run directory (no config.yaml); start one with `loop run`")
        try:
            raw = read_yaml_file(self.config_file)
        except ConfigError as err:
            raise RunDirError(f"{err}; restore {self.config_file} (e.g. from a copy of the run dir)") from None
        if not isinstance(raw, dict):
            what = "empty" if raw is None else f"a YAML {type(raw).__name__}, not a mapping of sections"
            raise RunDirError(f"{self.config_file} is damaged ({what}); restore it (e.g. from a copy of the run "
                              "dir), or start over under another name")
        return raw

    # --- state --------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.state_file.exists()

    def load_state(self) -> RunState:
        if not self.exists():
            return RunState()
        fix = "restore it, or start over under another name (--set name=...)"
        try:
            raw = read_json(self.state_file)
        except (OSError, UnicodeDecodeError, ValueError) as err:
            reason = " ".join(str(err).split())[:100]
            raise RunDirError(f"{self.state_file} is damaged (not JSON: {reason}); {fix}") from None
        if not isinstance(raw, dict):
            raise RunDirError(f"{self.state_file} is damaged (a JSON {type(raw).__name__}, not an object); {fix}")
        for key, value in raw.items():
            expected = _STATE_TYPES.get(key)
            if expected is None or not isinstance(value, expected) or (key == "round" and isinstance(value, bool)):
                raise RunDirError(f"{self.state_file} is damaged (key {key!r} holds {value!r}); {fix}")
        state = RunState(**raw)
        state.generator = self._from_stored(state.generator)
        state.policies = {r: self._from_stored(p) for r, p in state.policies.items()}
        state.controls = {r: self._from_stored(p) for r, p in state.controls.items()}
        return state

    def save_state(self, state: RunState) -> None:
        stored = asdict(state)
        stored["generator"] = self._to_stored(state.generator)
        stored["policies"] = {r: self._to_stored(p) for r, p in state.policies.items()}
        stored["controls"] = {r: self._to_stored(p) for r, p in state.controls.items()}
        write_json(self.state_file, stored)

    def _to_stored(self, value: str | None) -> str | None:
        """A path inside the run dir -> "./relative"; another existing path -> absolute; a hub id as is."""
        if value is None:
            return None
        absolute, root = Path(os.path.abspath(value)), Path(os.path.abspath(self.path))
        if absolute.is_relative_to(root):
            return _IN_RUN + str(absolute.relative_to(root))
        return str(absolute) if os.path.exists(value) else value

    def _from_stored(self, value: str | None) -> str | None:
        return str(self.path / value[len(_IN_RUN):]) if value and value.startswith(_IN_RUN) else value

    def missing_checkpoints(self, state: RunState) -> list[str]:
        """Policies the state names inside this run dir that are not there (deleted or never copied)."""
        named = [state.generator, *state.policies.values(), *state.controls.values()]
        root = Path(os.path.abspath(self.path))
        return sorted({p for p in named if p and Path(os.path.abspath(p)).is_relative_to(root) and not Path(p).exists()})

    # --- metrics ------------------------------------------------------------------------
    def save_phase_metrics(self, r: int, phase: str, metrics: dict) -> None:
        write_json(self.phase_metrics_file(r, phase), metrics)

    def round_metrics(self, r: int) -> dict:
        """All phase metrics of round `r`, merged, with `round` first."""
        merged: dict = {"round": r}
        for f in sorted((self.round_dir(r) / "metrics").glob("*.json")):
            try:
                merged.update(read_json(f))
            except (OSError, UnicodeDecodeError, ValueError):
                raise RunDirError(f"{f} is damaged (not JSON); restore it, or start over under another name") from None
        return merged

    def round_record(self, r: int) -> dict:
        """Round `r`'s line of metrics.jsonl: its phase metrics and the round's total time."""
        record = self.round_metrics(r)
        record["time/round_s"] = sum(v for k, v in record.items() if k.startswith("time/") and k.endswith("_s"))
        return record

    def rebuild_metrics(self, finished_rounds: int) -> bool:
        """Rewrite metrics.jsonl from the per-phase files when it is missing, unreadable or short
        of finished rounds (it is derived data). Returns whether it was rebuilt."""
        try:
            if len(self.read_metrics()) >= finished_rounds:
                return False
        except RunDirError:
            pass
        rows = [self.round_record(r) for r in range(finished_rounds)]
        write_text(self.metrics_file, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
        return True

    def append_round_metrics(self, record: dict) -> None:
        """Rewrite metrics.jsonl with `record` replacing any earlier line of the same round."""
        rows = [row for row in self.read_metrics() if row["round"] != record["round"]]
        rows.append(record)
        rows.sort(key=lambda row: row["round"])
        write_text(self.metrics_file, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))

    def read_metrics(self) -> list[dict]:
        if not self.metrics_file.exists():
            return []
        try:
            data = self.metrics_file.read_bytes()
        except OSError as err:
            raise RunDirError(f"{self.metrics_file} cannot be read ({err.strerror}); delete it: "
                              "`loop resume` rebuilds it from round_*/metrics/") from None
        rows = []
        for number, line in enumerate(data.decode(errors="replace").splitlines(), 1):
            try:
                row = json.loads(line) if line.strip() else None
            except ValueError:
                row = "garbage"
            if row is not None and not (isinstance(row, dict) and isinstance(row.get("round"), int)):
                raise RunDirError(f"{self.metrics_file}:{number} is not a metrics record; delete the file: "
                                  "`loop resume` rebuilds it from round_*/metrics/")
            if row is not None:
                rows.append(row)
        return rows

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
