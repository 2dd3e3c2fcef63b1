"""Run untrusted Python programs on this machine: in a bubblewrap sandbox, or rlimits-only.

Each execution is one fresh process tree, started by `LocalExecutor.run`, killed as a
whole at the wall-clock limit, with its output read through capped buffers. With bwrap
(see `rewards/execution/bwrap.py`) a program cannot reach the network (not even
127.0.0.1), cannot see or write the host's files outside a few read-only system
directories, cannot signal processes outside its sandbox, and is held to the `Limits`:
CPU seconds, address space, file size, process count (as an unprivileged uid), a capped
tmpfs. Where bwrap is missing or cannot create namespaces (probed once; e.g. inside an
unprivileged container) the executor falls back to plain subprocesses with the same
rlimits, warns once per process, and reports `isolation == "rlimits"`.

What it does NOT protect against:
- kernel exploits, and the kernel attack surface in general (no seccomp filter; a program
  may create nested user namespaces);
- side channels, and contention: programs share CPU, memory bandwidth and caches with
  the trainer (CPU time is capped, not scheduled);
- memory across processes: `memory_mb` is per process, so a program may use up to
  `max_processes` times as much; tmpfs space comes out of RAM (`tmp_mb` per execution);
- as root, RLIMIT_NPROC counts every process of the sandbox uid on the host, so
  concurrent sandboxes share one process budget;
- a program gaming its own tests from the inside (e.g. an object equal to everything);
- in the rlimits-only fallback: nothing beyond the rlimits. The program can use the
  network, read and write whatever the (possibly root) user can, and signal or kill
  other processes of that user; as root without a reachable interpreter for an
  unprivileged uid it stays root, so it can raise its own limits and RLIMIT_NPROC does
  not apply at all. Use the fallback only with trusted code or inside a throwaway VM.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from rewards.execution.base import ExecutionResult, Harness, Limits, signal_error, with_timeout
from rewards.execution.bwrap import SANDBOX_ENV, bwrap_command, interpreter_command, interpreter_prefixes

_BOOT_SOURCE = (Path(__file__).with_name("_boot.py")).read_text(encoding="utf-8")
# After the process exits, how long to keep reading pipes that its leftovers hold open.
_DRAIN_S = 0.2
NOBODY = 65534

_warned: set[str] = set()  # fallback warnings already given in this process
_warned_lock = threading.Lock()


class LocalExecutor:
    """Run programs on this machine, sandboxed by bubblewrap where it works.

    `use_bwrap`: None (default) uses bwrap when it is installed and works, else falls
    back with one warning; True requires it (runs fail with a "sandbox:" error without
    it); False always uses the rlimits-only fallback. `sandbox_uid` is the unprivileged
    uid programs run as when this process is root. Nothing starts until the first `run`.

    >>> result = LocalExecutor(Limits(timeout_s=5)).run("print(sum(map(int, input().split())))", stdin="2 3")
    >>> result.ok, result.stdout
    (True, '5\\n')
    """

    def __init__(self, limits: Limits | None = None, use_bwrap: bool | None = None, sandbox_uid: int = NOBODY):
        self.limits = limits or Limits()
        self.use_bwrap = use_bwrap
        self.sandbox_uid = sandbox_uid
        self.isolation: str | None = None  # "bwrap" or "rlimits", known after the first run
        self._isolation_error = ""
        self._lock = threading.Lock()

    def run(
        self, program: str, stdin: str = "", harness: Harness | None = None, timeout_s: float | None = None,
        prelude: str = "",
    ) -> ExecutionResult:
        """Run `program` with `stdin` (or under `harness`) within the limits, `timeout_s`
        replacing the wall-clock one, after `prelude`; faults of the program are results."""
        isolation = self._resolve_isolation()
        if isolation is None:
            return ExecutionResult(None, error=f"sandbox: {self._isolation_error}")
        return self._run(program, stdin, isolation, harness, with_timeout(self.limits, timeout_s), prelude)

    def close(self) -> None:
        """Nothing to release: every execution cleans up after itself."""

    def _run(
        self, program: str, stdin: str, isolation: str, harness: Harness | None = None, limits: Limits | None = None,
        prelude: str = "",
    ) -> ExecutionResult:
        as_root = os.geteuid() == 0
        limits = limits or self.limits
        spec = {"program": program, "prelude": prelude, "harness": harness.spec() if harness else None,
                "limits": _boot_limits(limits)}
        if isolation == "bwrap":
            uid = self.sandbox_uid if as_root else None
            command = bwrap_command(_bwrap_path(), limits, as_root) + interpreter_command()
            return _execute(command, {**spec, "uid": uid}, stdin, limits, cwd=None)
        uid = self.sandbox_uid if as_root and _reachable_by_others(interpreter_prefixes()) else None
        workdir = tempfile.mkdtemp(prefix="selfloop-code-")
        try:
            if uid is not None:
                os.chown(workdir, uid, uid)
            return _execute(interpreter_command(), {**spec, "uid": uid}, stdin, limits, cwd=workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _resolve_isolation(self) -> str | None:
        """Decide bwrap or rlimits once (probing bwrap with a tiny program), warn on fallback."""
        with self._lock:
            if self.isolation is not None or self._isolation_error:
                return self.isolation
            reason = "use_bwrap is false" if self.use_bwrap is False else _bwrap_problem(self)
            if not reason:
                self.isolation = "bwrap"
            elif self.use_bwrap:
                self._isolation_error = f"bwrap required (use_bwrap: true) but unusable: {reason}"
            else:
                self.isolation = "rlimits"
                _warn_fallback(reason)
            return self.isolation


def _boot_limits(limits: Limits) -> dict:
    """The limits the boot code applies inside the sandbox."""
    return {
        "cpu_s": max(1, math.ceil(limits.timeout_s)),
        "memory_mb": limits.memory_mb,
        "max_file_mb": limits.max_file_mb,
        "max_processes": limits.max_processes,
        "max_output_bytes": limits.max_output_bytes,  # the harness keeps its reports within it
    }


def _execute(command: list[str], spec: dict, stdin: str, limits: Limits, cwd: str | None) -> ExecutionResult:
    """Start the boot code under `command`, feed it the spec, collect capped output."""
    spec_fd = _data_fd(json.dumps(spec).encode())
    stdin_fd = _data_fd(stdin.encode("utf-8", errors="replace"))
    start = time.monotonic()
    try:
        process = subprocess.Popen(
            [*command, "-c", _BOOT_SOURCE, str(spec_fd)],
            stdin=stdin_fd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(spec_fd,),
            cwd=cwd or "/", env=dict(SANDBOX_ENV), start_new_session=True, umask=0o022,
        )
    except OSError as exc:
        return ExecutionResult(None, error=f"sandbox: could not start {command[0]}: {exc}")
    finally:
        os.close(spec_fd)
        os.close(stdin_fd)
    stdout, stderr, truncated, timed_out = _collect(process, start + limits.timeout_s, limits)
    duration = time.monotonic() - start
    code = None if timed_out else process.returncode
    return ExecutionResult(
        exit_code=code,
        stdout=stdout.decode("utf-8", errors="replace"),
        stderr=stderr.decode("utf-8", errors="replace"),
        timed_out=timed_out,
        error=f"timeout after {limits.timeout_s:g}s" if timed_out else signal_error(code),
        duration_s=duration,
        truncated=truncated,
    )


def _bwrap_problem(executor: LocalExecutor) -> str:
    """Why bwrap cannot be used here, or "" when a probe program ran fine inside it."""
    if _bwrap_path() is None:
        return "bwrap is not installed (apt-get install bubblewrap)"
    # A generous timeout, so a tight `timeout_s` on a busy machine is not taken for a broken sandbox.
    limits = dataclasses.replace(executor.limits, timeout_s=max(executor.limits.timeout_s, 10.0))
    probe = LocalExecutor(limits, sandbox_uid=executor.sandbox_uid)._run("print('sandbox ok')", "", "bwrap")
    if probe.stdout.strip() == "sandbox ok":
        return ""
    stderr_lines = probe.stderr.strip().splitlines()
    detail = probe.error or (stderr_lines[-1] if stderr_lines else f"exit code {probe.exit_code}")
    return f"bwrap probe failed: {detail}"


def _warn_fallback(reason: str) -> None:
    """One loud warning per process per reason: the fallback does not contain hostile code."""
    with _warned_lock:
        if reason in _warned:
            return
        _warned.add(reason)
    warnings.warn(
        f"code execution is NOT sandboxed ({reason}): programs run as plain subprocesses with "
        "rlimits only, with the network and the file system of this user. Install bubblewrap "
        "or use backend 'e2b' for untrusted code.",
        RuntimeWarning,
        stacklevel=4,
    )


def _bwrap_path() -> str | None:
    return shutil.which("bwrap")


def _collect(process: subprocess.Popen, deadline: float, limits: Limits) -> tuple[bytearray, bytearray, bool, bool]:
    """Read stdout and stderr until both close or `deadline` passes, then kill the tree.

    Returns (stdout, stderr, truncated, timed_out), `truncated` when stdout was cut.
    Bytes beyond the caps are read and dropped, so the program never blocks on a full pipe.
    """
    out_fd, err_fd = process.stdout.fileno(), process.stderr.fileno()
    buffers = {out_fd: bytearray(), err_fd: bytearray()}
    caps = {out_fd: limits.max_output_bytes, err_fd: limits.max_stderr_bytes}
    truncated = timed_out = exited = False
    with selectors.DefaultSelector() as selector:
        for fd in buffers:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            if not exited and _exited(process):
                exited = True  # leftovers of the program may still hold the pipes open
                deadline = min(deadline, time.monotonic() + _DRAIN_S)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = not exited
                break
            for key, _ in selector.select(min(remaining, 0.05)):
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    selector.unregister(key.fd)
                    continue
                room = caps[key.fd] - len(buffers[key.fd])
                buffers[key.fd] += chunk[: max(room, 0)]
                truncated = truncated or (key.fd == out_fd and len(chunk) > room)
    if not exited and not timed_out:  # it closed its output but may still be running
        timed_out = not _wait_until_exited(process, deadline)
    _kill_group(process)
    process.wait()
    process.stdout.close()
    process.stderr.close()
    return buffers[out_fd], buffers[err_fd], truncated, timed_out  # no copies: the caps can be large


def _exited(process: subprocess.Popen) -> bool:
    """Whether the process has exited, without reaping it: while it is an unreaped zombie
    its pid, and so its process group id, cannot be reused, which keeps `_kill_group` safe."""
    if not hasattr(os, "waitid"):  # macOS: reaping is the only way to ask
        return process.poll() is not None
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _wait_until_exited(process: subprocess.Popen, deadline: float) -> bool:
    while not _exited(process):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def _kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group started for one execution (bwrap then takes its whole
    pid namespace down with it; in the fallback this reaches children that kept the group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already gone


def _data_fd(data: bytes) -> int:
    """A readable file descriptor holding `data`, positioned at the start.

    An in-memory file (or an unlinked temporary file where memfd is missing) rather than a
    pipe: the child reads it at its own pace and the parent never blocks writing it.
    """
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("selfloop-code")
    else:
        with tempfile.TemporaryFile() as handle:
            fd = os.dup(handle.fileno())
    _write_all(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _reachable_by_others(prefixes: list[str]) -> bool:
    """Whether an unprivileged uid could run this interpreter: every directory on the way
    to its prefixes is searchable by others. (pyenv under a mode-0700 /root is not.)"""
    paths = [os.path.realpath(sys.executable), *prefixes]
    for path in paths:
        for directory in [*Path(path).parents, Path(path)]:
            if directory.is_dir() and not directory.stat().st_mode & stat.S_IXOTH:
                return False
    return True
