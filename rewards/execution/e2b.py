"""Run untrusted Python programs in e2b cloud sandboxes (https://e2b.dev).

Each e2b sandbox is a small VM. Starting one takes about a second, so the executor keeps
a pool (one per concurrently running call) and runs every program as a fresh `python3`
process inside a reused VM, in its own directory that is deleted afterwards. The process
starts with the same boot code as the local sandbox (`_boot.py`), given the path of a spec
file that it deletes once read, so tests run under a harness reach the VM without a file
the program could read. Limits are applied with `ulimit` and the boot code's rlimits
(address space, file size, processes) and `timeout -s KILL`. A VM that fails (expired lifetime, lost connection) is dropped and the
run is retried once on a new one.

The `e2b-code-interpreter` package is imported only when the first VM is created, so
configs can be validated without it. `sandbox_factory` replaces VM creation, for tests
that fake the remote service: it must return an object with `files.write(path, text)`,
`commands.run(cmd, timeout=...)` (returning, or raising on a non-zero exit, an object
with `exit_code`, `stdout`, `stderr`) and `kill()`, as e2b's `Sandbox` does.

What it does NOT protect against: whatever e2b does not (their VM isolation is the
boundary); programs of the same reward share a VM over time, so one program may leave
processes or files that a later one sees (its own directory is removed, and the kill at
the limit takes its process tree); network access from the VM is e2b's default (open).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shlex
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rewards.execution.base import ExecutionResult, Harness, Limits, signal_error, with_timeout

_BOOT_SOURCE = (Path(__file__).with_name("_boot.py")).read_text(encoding="utf-8")

# Seconds the client waits beyond the program's own limit before giving up on the VM.
_CONNECTION_SLACK_S = 30.0


class E2BExecutor:
    """Run programs in a pool of e2b sandboxes.

    The API key comes from `api_key` or the `E2B_API_KEY` environment variable; without
    one, or without the package (unless `sandbox_factory` is given), construction raises
    `ValueError`, so a config fails when it is checked rather than mid-run. Nothing
    remote starts until the first `run`; `close()` kills the VMs.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        api_key: str | None = None,
        template: str | None = None,
        sandbox_factory: Callable[[], Any] | None = None,
        python: str = "python3",
        workdir: str = "/tmp/selfloop",
        lifetime_s: int = 3600,
    ):
        self.limits = limits or Limits()
        self._api_key = api_key or os.environ.get("E2B_API_KEY", "")
        if not self._api_key:
            raise ValueError(
                "backend 'e2b' needs the E2B_API_KEY environment variable (an API key from "
                "https://e2b.dev/dashboard), or use backend 'local'"
            )
        if sandbox_factory is None and importlib.util.find_spec("e2b_code_interpreter") is None:
            raise ValueError("backend 'e2b' needs the e2b-code-interpreter package: pip install e2b-code-interpreter")
        self.template = template
        self.python = python
        self.workdir = workdir.rstrip("/") or "/tmp"
        self.lifetime_s = lifetime_s
        self._sandbox_factory = sandbox_factory or self._create_sandbox
        self.isolation = "e2b"
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    def run(
        self, program: str, stdin: str = "", harness: Harness | None = None, timeout_s: float | None = None,
        prelude: str = "",
    ) -> ExecutionResult:
        """Run `program` with `stdin` (or under `harness`) in a VM from the pool, `timeout_s`
        replacing the wall-clock limit; a failing VM is replaced once."""
        limits = with_timeout(self.limits, timeout_s)
        error = ""
        for _attempt in range(2):
            try:
                sandbox = self._acquire()
            except Exception as exc:  # the service, not the program: report, never raise
                return ExecutionResult(None, error=f"sandbox: could not create an e2b sandbox: {_describe(exc)}")
            start = time.monotonic()
            try:
                result = self._run_in(sandbox, program, stdin, harness, limits, prelude)
            except Exception as exc:
                _kill(sandbox)  # it may still be running the program, or be gone
                duration = time.monotonic() - start
                if duration >= limits.timeout_s:  # the connection outlived the program's limit
                    return ExecutionResult(None, timed_out=True, error=_timeout_error(limits), duration_s=duration)
                error = f"sandbox: e2b failed: {_describe(exc)}"
                continue
            with self._lock:
                self._idle.append(sandbox)
            return result
        return ExecutionResult(None, error=error)

    def close(self) -> None:
        """Kill the pooled VMs (best effort); later runs create new ones."""
        with self._lock:
            idle, self._idle = self._idle, []
        for sandbox in idle:
            _kill(sandbox)

    def command(self, directory: str, limits: Limits | None = None) -> str:
        """The shell command that runs the boot code on `directory`/spec.json under the limits."""
        limits = limits or self.limits
        quoted = shlex.quote(directory)
        # `ulimit` may be refused (a lower hard limit); then the VM boundary still holds.
        ulimits = (
            f"ulimit -v {limits.memory_mb * 1024} 2>/dev/null; ulimit -f {limits.max_file_mb * 1024} 2>/dev/null; "
            f"ulimit -u {limits.max_processes + 4} 2>/dev/null; "
        )
        python = f"{shlex.quote(self.python)} -I -B -X int_max_str_digits=0 -c {shlex.quote(_BOOT_SOURCE)} spec.json"
        run = f"timeout -s KILL {limits.timeout_s:g} {python} < stdin.txt"
        return f"cd {quoted} && {{ {ulimits}{run}; }}; code=$?; cd / && rm -rf {quoted}; exit $code"

    def _run_in(self, sandbox: Any, program: str, stdin: str, harness: Harness | None, limits: Limits,
                prelude: str = "") -> ExecutionResult:
        directory = f"{self.workdir}/{uuid.uuid4().hex}"
        spec = {
            "program": program,
            "prelude": prelude,
            "harness": harness.spec() if harness else None,
            "uid": None,
            "limits": {"cpu_s": max(1, math.ceil(limits.timeout_s)), "memory_mb": limits.memory_mb,
                       "max_file_mb": limits.max_file_mb, "max_processes": limits.max_processes + 4,
                       "max_output_bytes": limits.max_output_bytes},
        }
        sandbox.files.write(f"{directory}/spec.json", json.dumps(spec))
        sandbox.files.write(f"{directory}/stdin.txt", stdin)
        start = time.monotonic()
        try:
            done = sandbox.commands.run(self.command(directory, limits), timeout=limits.timeout_s + _CONNECTION_SLACK_S)
        except Exception as exc:
            if getattr(exc, "exit_code", None) is None:
                raise  # no exit status: the service failed, not the program
            done = exc  # e2b raises CommandExitException (a CommandResult) on a non-zero exit
        duration = time.monotonic() - start
        code = done.exit_code
        # 137 = killed by SIGKILL: by `timeout` when the limit has passed, else by a limit.
        timed_out = code in (124, 137) and duration >= limits.timeout_s
        stdout, out_cut = _cut(done.stdout, self.limits.max_output_bytes)
        stderr, _ = _cut(done.stderr, self.limits.max_stderr_bytes)
        return ExecutionResult(
            exit_code=None if timed_out else code,
            stdout=stdout,
            stderr=stderr,
            timed_out=timed_out,
            error=_timeout_error(limits) if timed_out else signal_error(code),
            duration_s=duration,
            truncated=out_cut,
        )

    def _acquire(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._sandbox_factory()

    def _create_sandbox(self) -> Any:
        from e2b_code_interpreter import Sandbox  # optional dependency, imported on first use

        return Sandbox.create(template=self.template, timeout=self.lifetime_s, api_key=self._api_key)


def _timeout_error(limits: Limits) -> str:
    return f"timeout after {limits.timeout_s:g}s"


def _cut(text: Any, limit: int) -> tuple[str, bool]:
    """`text` as a string of at most `limit` UTF-8 bytes, and whether it was cut."""
    text = "" if text is None else str(text)
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text, False
    return data[:limit].decode("utf-8", errors="ignore"), True


def _kill(sandbox: Any) -> None:
    try:
        sandbox.kill()
    except Exception:
        pass  # already gone or unreachable; e2b ends it at its lifetime anyway


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"
