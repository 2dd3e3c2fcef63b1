"""Several `Sandbox` workers for the same target, fed from threads, one per core by default."""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from rewards.sandbox import Sandbox, SandboxResult

# Calls per chunk a pool thread claims at a time.
_MAX_CHUNK = 16
# A start costs a worker's imports (about a second for sympy), a call milliseconds.
_CALLS_PER_START = 8


class SandboxPool:
    """`workers` sandboxes for the same target, fed in chunks from threads.

    The parent's threads only wait on pipes, so N workers use N cores. Workers start on
    first use, one for every 8 calls a `map` has (up to N): a few calls are answered by one
    worker sooner than a second one starts. `submit` runs a `map` in the background, so the
    caller's own work goes on while the workers check (the math reward's symbolic checks of one
    batch of rollouts, while the next batch is judged in process).

    >>> with SandboxPool("operator:add", timeout_s=5.0, workers=2) as pool:
    ...     [result.value for result in pool.map([(1, 2), (3, 4), (5, 6)])]
    [3, 7, 11]
    """

    def __init__(self, target: str, timeout_s: float, workers: int, **sandbox_options: Any):
        if not (isinstance(workers, int) and workers >= 1):
            raise ValueError(f"workers must be a positive number of processes, got {workers!r}")
        self.workers = workers
        self._sandboxes = [Sandbox(target, timeout_s, **sandbox_options) for _ in range(workers)]
        self._reset()

    def __getstate__(self) -> dict:
        return {"workers": self.workers, "_sandboxes": self._sandboxes}  # threads cannot travel

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._reset()

    def _reset(self) -> None:
        self._threads: ThreadPoolExecutor | None = None  # one per worker, waiting on its pipe
        self._dispatch: ThreadPoolExecutor | None = None  # runs submitted maps, one at a time
        self._threads_pid = 0
        self._mapping = threading.Lock()  # one map at a time feeds the workers

    def submit(self, calls: list[tuple]) -> Future:
        """`map(calls)` in the background; maps run one after another, in the order submitted."""
        self._executor()
        return self._dispatch.submit(self.map, calls)

    def map(self, calls: list[tuple]) -> list[SandboxResult]:
        """`target(*args)` for each argument tuple, in order (see `Sandbox.call_many`)."""
        if not calls:
            return []
        executor = self._executor()
        with self._mapping:
            return self._spread(calls, executor)

    def _spread(self, calls: list[tuple], executor: ThreadPoolExecutor) -> list[SandboxResult]:
        # Several chunks per worker, so one slow chunk does not leave the others idle.
        size = max(1, min(_MAX_CHUNK, -(-len(calls) // (8 * self.workers))))
        starts = iter(range(0, len(calls), size))
        claim = threading.Lock()
        results: list[SandboxResult | None] = [None] * len(calls)

        def drain(sandbox: Sandbox) -> None:
            while True:
                with claim:
                    start = next(starts, None)
                if start is None:
                    return
                results[start : start + size] = sandbox.call_many(calls[start : start + size])

        # A worker starts for each _CALLS_PER_START calls, and those already up go first.
        wanted = max(self.running, -(-len(calls) // _CALLS_PER_START))
        used = sorted(self._sandboxes, key=lambda sandbox: not sandbox.running)[: min(wanted, -(-len(calls) // size))]
        for done in [executor.submit(drain, sandbox) for sandbox in used]:
            done.result()
        return results

    def _executor(self) -> ThreadPoolExecutor:
        # Long-lived threads: Linux's parent-death signal kills a worker when the *thread*
        # that started it exits, so short-lived threads would restart workers every call.
        if self._threads is None or self._threads_pid != os.getpid():  # none yet, or forked
            self._threads = ThreadPoolExecutor(self.workers, thread_name_prefix="sandbox")
            self._dispatch = ThreadPoolExecutor(1, thread_name_prefix="sandbox-map")
            self._mapping = threading.Lock()  # a forked copy may hold the parent's, taken
            self._threads_pid = os.getpid()
        return self._threads

    @property
    def running(self) -> int:
        """How many worker processes are up."""
        return sum(sandbox.running for sandbox in self._sandboxes)

    def close(self) -> None:
        """Kill every worker; the pool can still be used afterwards."""
        for sandbox in self._sandboxes:
            sandbox.close()
        if self._threads is not None and self._threads_pid == os.getpid():
            self._threads.shutdown(wait=False)
            self._dispatch.shutdown(wait=False, cancel_futures=True)
        self._threads = self._dispatch = None

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
