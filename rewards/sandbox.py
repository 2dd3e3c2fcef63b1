"""Run a function in a killable worker process, with a hard wall-clock limit per call.

Verifiers such as sympy can spend minutes inside one C-level operation (`9**9**9**9`),
where neither threads nor `signal.alarm` can stop them. `Sandbox` keeps one long-lived
worker process, sends it calls over a pipe (in batches), and waits at most `timeout_s` for
each answer; on timeout it kills the worker and starts a fresh one for the next call.
`rewards.sandbox_pool.SandboxPool` runs several such workers, one per core by default.

The worker is a plain `python -c` subprocess, not a `multiprocessing` child: it imports
only `rewards` and the target's module, so it never re-runs the user's `__main__`
(spawn/forkserver do) and never forks a process holding torch or CUDA threads (fork
does). Arguments and results travel as JSON lines, so they must be JSON-serializable.

What it does NOT protect against: malicious code. The worker runs as the same user with
the same filesystem and network access; callers must not hand it untrusted code to run
(`rewards/symbolic.py` lets only allowlisted arithmetic reach sympy's eval-based parser).
Memory is capped with RLIMIT_AS where the platform allows, CPU time only by the
wall-clock kill. POSIX only (it waits on the pipe with `select`).
"""

from __future__ import annotations

import importlib
import json
import os
import select
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Runs in the worker. `-c` puts the working directory first on sys.path, where a file
# such as rewards/math.py could shadow the standard library; the project root replaces it.
_BOOT = (
    "import sys; sys.path[0] = sys.argv[1]; "
    "from rewards.sandbox import serve; serve(sys.argv[2], int(sys.argv[3]))"
)
_PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)


@dataclass(frozen=True)
class SandboxResult:
    """What one call produced: the return value, or why there is none.

    `error` is set when the call raised, the worker died, or (with `worker_failed`) the
    worker could not start at all; `timed_out` when the call was killed at the limit.
    """

    value: Any = None
    error: str = ""
    timed_out: bool = False
    worker_failed: bool = False


class Sandbox:
    """A lazily started worker that runs `target` ("package.module:function").

    >>> with Sandbox("operator:add", timeout_s=5.0) as sandbox:
    ...     sandbox.call(2, 3).value
    5
    """

    def __init__(
        self,
        target: str,
        timeout_s: float,
        memory_limit_mb: int = 2048,
        startup_timeout_s: float = 60.0,
    ):
        self.target = target
        self.timeout_s = timeout_s
        self.memory_limit_mb = memory_limit_mb  # 0: no cap
        self.startup_timeout_s = startup_timeout_s
        self._reset()

    def call(self, *args: Any) -> SandboxResult:
        """Run `target(*args)` in the worker, waiting at most `timeout_s` seconds."""
        return self.call_many([args])[0]

    def call_many(self, calls: list[tuple]) -> list[SandboxResult]:
        """Run `target(*args)` for each argument tuple, in order, one result per call.

        Calls are pipelined (written in batches, answered line by line), so the worker
        never waits on the parent between calls; each call still gets `timeout_s` seconds,
        counted from the previous answer. A call that times out or kills the worker costs
        only itself: a fresh worker takes the calls after it.
        """
        results: list[SandboxResult] = []
        with self._lock:
            while len(results) < len(calls):
                results += self._run_batch(_next_batch(calls, len(results)))
        return results

    def kill(self) -> None:
        """Kill the worker now, even in the middle of a call (which then fails): for shutting
        down without waiting on a call in flight, as `close` does."""
        process = self._process
        if process is not None:
            _kill(process)

    def close(self) -> None:
        """Kill the worker, if one is running. The sandbox can still be used afterwards."""
        with self._lock:
            self._stop()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __getstate__(self) -> dict:
        # A process and its pipes cannot travel; the copy starts its own worker lazily.
        return {name: getattr(self, name) for name in _CONFIG_FIELDS}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._finalizer: weakref.finalize | None = None
        self._buffer = b""
        self._owner_pid = 0  # the process that started the worker

    def _run_batch(self, batch: list[bytes]) -> list[SandboxResult]:
        """Results for a prefix of `batch`: all of it, or up to the call that failed."""
        error = self._ensure_worker()
        if error:
            return [SandboxResult(error=error, worker_failed=True)] * len(batch)
        results = []
        try:
            self._process.stdin.write(b"".join(batch))
            self._process.stdin.flush()
            for _ in batch:
                line = self._read_line(self.timeout_s)
                if line is None:
                    self._stop()
                    return results + [SandboxResult(error=f"timeout after {self.timeout_s:g}s", timed_out=True)]
                results.append(_parse_reply(line))
                if results[-1].error.startswith("unreadable reply"):
                    self._stop()  # out of step with the protocol; a fresh worker is safer
                    return results
        except (OSError, EOFError):
            code = self._stop()
            results.append(SandboxResult(error=f"worker exited unexpectedly (exit code {code})"))
        return results

    def _ensure_worker(self) -> str:
        """Have a live worker of this process's own; return an error message or ""."""
        if self._process is not None and self._owner_pid != os.getpid():
            # This is a forked copy: the worker and its pipes belong to the parent.
            self._finalizer.detach()
            self._process, self._finalizer, self._buffer = None, None, b""
        if self._process is not None and self._process.poll() is not None:
            # It died while idle (e.g. Linux's parent-death signal fires when the
            # *thread* that started it exits); that is no fault of this call.
            self._stop()
        if self._process is None:
            return self._start()
        return ""

    @property
    def running(self) -> bool:
        """Whether a worker process is up."""
        return self._process is not None

    def _start(self) -> str:
        """Start the worker and wait for its ready line; return an error message or ""."""
        command = [sys.executable, "-c", _BOOT, _PROJECT_ROOT, self.target, str(self.memory_limit_mb)]
        try:
            # Its own session: a terminal's Ctrl-C interrupts the parent, not a check in
            # flight, and with Linux's autogroup scheduling (on by default) each worker is
            # scheduled as its own group, so N workers get N shares of a busy machine.
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            return f"could not start worker: {exc}"
        self._owner_pid = os.getpid()
        # Kills the worker when this sandbox is garbage-collected or the interpreter exits.
        self._finalizer = weakref.finalize(self, _kill, self._process)
        try:
            ready = json.loads(self._read_line(self.startup_timeout_s) or "{}")
        except (OSError, EOFError, ValueError):
            ready = {}
        if not ready.get("ready"):
            code = self._stop()
            detail = ready.get("error") or f"no ready signal (exit code {code})"
            return f"worker for {self.target} failed to start: {detail}"
        return ""

    def _stop(self) -> int | None:
        """Kill the worker and forget it; return its exit code."""
        process, self._process = self._process, None
        self._buffer = b""
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None
        return process.returncode if process is not None else None

    def _read_line(self, timeout_s: float) -> bytes | None:
        """Next line from the worker, or None if none arrives within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        stdout = self._process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([stdout], [], [], remaining)[0]:
                return None
            chunk = os.read(stdout, 1 << 16)
            if not chunk:
                raise EOFError("worker closed its output")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line


_CONFIG_FIELDS = ("target", "timeout_s", "memory_limit_mb", "startup_timeout_s")
# Calls written to a worker at once: well under a pipe's 64 KiB, so writing a batch never
# blocks on a worker that is busy (or hung) with an earlier call.
_BATCH_BYTES = 16 * 1024


def _next_batch(calls: list[tuple], start: int) -> list[bytes]:
    """Encoded calls from `start` on, up to `_BATCH_BYTES` (always at least one)."""
    batch, size = [], 0
    for args in calls[start:]:
        line = json.dumps(args).encode() + b"\n"
        if batch and size + len(line) > _BATCH_BYTES:
            break
        batch.append(line)
        size += len(line)
    return batch


def _parse_reply(line: bytes) -> SandboxResult:
    try:
        reply = json.loads(line)
    except ValueError:
        return SandboxResult(error=f"unreadable reply from worker: {line[:100]!r}")
    return SandboxResult(value=reply.get("value"), error=reply.get("error", ""))


def _kill(process: subprocess.Popen) -> None:
    """Kill and reap a worker; safe to call on one that has already exited."""
    if process.poll() is None:
        process.kill()
    process.wait()
    for pipe in (process.stdin, process.stdout):
        try:
            pipe.close()
        except OSError:
            pass  # the worker is gone; a failed flush of its stdin changes nothing


def serve(target: str, memory_limit_mb: int) -> None:
    """Worker main loop: read JSON argument lists, answer `{"value": ...}` or `{"error": ...}`."""
    _die_with_parent()
    _limit_memory(memory_limit_mb)
    # Keep the real stdout for replies and point fd 1 at stderr, so a library that
    # prints cannot corrupt the protocol.
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    try:
        module_name, _, function_name = target.partition(":")
        function = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:
        _reply(replies, {"ready": False, "error": f"cannot import {target}: {exc!r}"})
        return
    _reply(replies, {"ready": True})
    for line in sys.stdin.buffer:  # ends when the parent closes the pipe or dies
        try:
            reply = {"value": function(*json.loads(line))}
        except Exception as exc:
            # str() of a sympy error can embed a huge expression; keep the reply small.
            reply = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        _reply(replies, reply)


def _reply(replies, message: dict) -> None:
    replies.write(json.dumps(message) + "\n")
    replies.flush()


def _limit_memory(memory_limit_mb: int) -> None:
    """Cap the worker's address space so a runaway expansion fails with MemoryError."""
    if memory_limit_mb <= 0:
        return
    try:
        import resource

        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass  # not POSIX, or a stricter hard limit is already in place


def _die_with_parent() -> None:
    """On Linux, have the kernel kill the worker if the parent dies (even by SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # no usable libc; the worker still exits when its stdin closes
