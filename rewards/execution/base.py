"""What every executor takes and returns: resource limits in, an `ExecutionResult` out.

Executors run one Python program (source text plus optional stdin) somewhere isolated and
report what happened. They know nothing of tests or scores; `rewards/code.py` turns their
results into verdicts. Keeping the interface this small is what lets a local bubblewrap
sandbox and a remote e2b sandbox be swapped by one config value.
"""

from __future__ import annotations

import secrets
import signal
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

HARNESS_SOURCE = Path(__file__).with_name("harness.py").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Limits:
    """Resource limits for one execution.

    `timeout_s` is wall-clock seconds from start to kill (CPU time is capped a little
    above it, so a process that escapes the wall-clock kill still stops). `memory_mb` caps
    each process's address space, so a program with `max_processes` processes can use up
    to that many times as much. `max_file_mb` caps any one written file, `tmp_mb` the
    whole writable scratch space where the executor provides one. Output beyond
    `max_output_bytes` (stdout) or `max_stderr_bytes` is read and thrown away, so a
    program printing gigabytes neither blocks nor fills memory; stdout's cap is large
    enough for the expected outputs of contest problems (a million numbers), and it
    bounds the test reports of a harness run too.
    """

    timeout_s: float = 5.0
    memory_mb: int = 1024
    max_processes: int = 32
    max_file_mb: int = 16
    tmp_mb: int = 64
    max_output_bytes: int = 16 << 20
    max_stderr_bytes: int = 64 << 10

    def __post_init__(self) -> None:
        if isinstance(self.timeout_s, bool) or not isinstance(self.timeout_s, (int, float)) or not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be a positive number of seconds, got {self.timeout_s}")
        for name in ("memory_mb", "max_processes", "max_file_mb", "tmp_mb", "max_output_bytes", "max_stderr_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.memory_mb < 64:
            raise ValueError(f"memory_mb must be at least 64 (a Python interpreter needs ~20 MB), got {self.memory_mb}")


@dataclass(frozen=True)
class ExecutionResult:
    """What one run of a program produced.

    `exit_code` is the program's exit status (None when it never started or was killed at
    the wall-clock limit); `stdout` and `stderr` are decoded text, cut at the limits, with
    `truncated` set when stdout was cut (stderr, there to explain failures, is cut
    silently). `timed_out` marks a kill at `timeout_s`; `error` says why the program did
    not run normally when the exit code alone does not (e.g. "CPU time limit exceeded",
    "sandbox: could not start bwrap: ...").
    """

    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    error: str = ""
    duration_s: float = 0.0
    truncated: bool = False

    @property
    def ok(self) -> bool:
        """True when the program ran to the end and exited with status 0."""
        return self.exit_code == 0 and not self.timed_out and not self.error


@dataclass(frozen=True)
class Harness:
    """Tests for `harness.py` to run after the program, inside the sandbox.

    `tests` are code strings (a test passes when it runs without raising) or function
    calls `{"call": name, "args": [...]}` (the return value is reported); `setup` is
    code run in the program's namespace after it (test imports, setup code), and
    `definitions` code run in the tests' own namespace (HumanEval's `check`), neither
    counted as tests. With `timeout_s`, the program's top-level code and each test may
    take that many seconds (wall clock) each: past it, the harness's timer ends the process
    with SIGALRM (`signal_error` reads "killed by SIGALRM"). Results come back on stdout as lines
    `nonce index verdict [detail]` (see `harness.py`); the tests and the nonce reach the
    sandbox by the boot spec only, never by a file the program can read.
    """

    tests: tuple
    setup: tuple = ()
    definitions: tuple = ()
    timeout_s: float | None = None
    nonce: str = field(default_factory=lambda: secrets.token_hex(16))

    def spec(self) -> dict:
        return {"source": HARNESS_SOURCE, "setup": list(self.setup), "definitions": list(self.definitions),
                "tests": list(self.tests), "nonce": self.nonce, "timeout_s": self.timeout_s}


def with_timeout(limits: Limits, timeout_s: float | None) -> Limits:
    """`limits` with another wall-clock limit (a problem's own time limit), if one is given."""
    return limits if timeout_s is None else replace(limits, timeout_s=timeout_s)


def signal_error(code: int | None) -> str:
    """Describe a death by signal from an exit status: -N (a plain child) or 128+N (bwrap,
    a shell); "" for any other status."""
    if code is None or not (code < 0 or 128 < code < 128 + 65):
        return ""
    number = -code if code < 0 else code - 128
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    known = {"SIGXCPU": "CPU time limit exceeded", "SIGXFSZ": "file size limit exceeded"}
    return known.get(name, f"killed by {name}")


class Executor(Protocol):
    """Runs programs in isolation; safe to call from several threads at once."""

    limits: Limits

    def run(
        self, program: str, stdin: str = "", harness: Harness | None = None, timeout_s: float | None = None,
        prelude: str = "",
    ) -> ExecutionResult:
        """Run `program` (Python source) with `stdin`, or under `harness` with its tests;
        `timeout_s` replaces the wall-clock limit for this run; `prelude` (trusted code)
        runs first in the program's namespace. Never raises for the program's faults."""
        ...

    def close(self) -> None:
        """Release what the executor holds (remote sandboxes, ...); it stays usable."""
        ...
