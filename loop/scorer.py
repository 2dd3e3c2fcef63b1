"""Score a round's rollout shards, and measure their diversity, beside the rest of the round.

A worker process, started first thing by `loop run` and at the lowest priority once booted
(SCHED_IDLE, its autogroup at nice 19), takes only CPU nothing else wants. When generation
leaves CPU unused (an accelerator or a server generates, or fewer torch threads than cores:
the controller decides), it scores each shard into `scored_parts/` as soon as generation writes
it, and the reward phase hands it the rest from the last shard back while this process scores
from the first straight into `scored.parquet` and copies in the worker's parts: the same file,
row for row, as scoring in process. (Beside torch threads on every core, scoring slowed
decoding by about what it saved, bench/background_scoring.py, and sharing the reward phase was
slower than scoring in process, bench/reward_phase.py: the controller scores in process there.)
Either way it measures the rollouts' diversity (`Monitor.rollout_set`, which reads only the
shards) for the filter phase, once the shards handed to it during generation are done.

A part's Parquet footer records the shard it scored (size and mtime), the rewards' specs and
the part's score totals. A part is used only if all of them still hold: a resumed run keeps
what was scored before the kill and scores the rest; a regenerated shard or rewards changed
by `--force` are scored again. Whatever the worker does not deliver (it died, it was still
booting, or the run was resumed in between) is done in process, with the same result.

Which rewards may run there (`BackgroundScorer.supports`): built-in ones without a model
(judges answer through the live policy, in this process) and without counters of their own
(`pop_metrics`, e.g. the code sandbox's: split over two processes they would be wrong). Any
other reward in the list, distillation (whose round is scored as one table of student and
teacher rows), and `threads.background: false` leave everything in process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from loop.scoring import ScoredWriter, ScoreTotals, empty_scored_schema, scored_batches
from rewards import WeightedReward
from rewards.registry import BUILTIN_REWARDS, RewardSpec
from rewards.sandbox import Sandbox

PARTS_DIR = "scored_parts"
_FOOTER_KEY = "selfloop.scored_part"
# A worker at idle priority may wait for as long as generation keeps every core busy: no
# clock can tell that from a hang, and scoring in process has none either.
_NO_LIMIT_S = 7 * 24 * 3600.0


class BackgroundScorer:
    """Scores shards handed to `submit` in a low-priority worker; `finish` makes the round's table."""

    def __init__(self, specs: list[RewardSpec], monitor: tuple | None = None, warn: Callable[[str], None] = print):
        """`monitor`: (MonitorConfig as JSON, run dir, seed) for the worker to measure diversity with."""
        self.specs = [spec.model_dump(mode="json") for spec in specs]
        self.rewards_id = hashlib.sha256(json.dumps(self.specs, sort_keys=True).encode()).hexdigest()[:16]
        self.monitor, self.warn = monitor, warn
        self._sandbox = Sandbox(f"{__name__}:work", timeout_s=_NO_LIMIT_S, memory_limit_mb=0,
                                startup_timeout_s=_NO_LIMIT_S)
        # One thread, alive for the run: it starts the worker, and Linux's parent-death signal
        # fires when the *thread* that started a process exits.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="scorer")
        self._lock = threading.Lock()
        self._claimed: set[Path] = set()
        self._futures: dict[Path, Future] = {}
        self._rollout_set: tuple[list[str], Future] | None = None
        # Boot it now (imports, the rewards, the embedding model), at normal
        # priority, while this process imports torch on one core; it drops to idle priority
        # once ready. A shard is claimed only by a worker ready to score it, and whatever it has
        # not started when a phase needs it is done in process: no phase waits on a boot.
        self._executor.submit(self._sandbox.call, "prepare", self.specs, self.rewards_id, self.monitor)

    @classmethod
    def for_run(cls, cfg, run_path: Path, warn: Callable[[str], None]) -> BackgroundScorer | None:
        """The scorer of a run (`cfg` its `LoopConfig`), or None when its rounds are scored in
        process: `threads.background: false`, distillation (the student's and the teacher's rows
        are scored as one table), or a reward that cannot run there."""
        if not cfg.threads.background or cfg.teacher is not None or not cls.supports(cfg.rewards):
            return None
        monitor = (cfg.monitor.model_dump(mode="json"), str(run_path), cfg.seed) if cfg.monitor.enabled else None
        return cls(cfg.rewards, monitor, warn)

    @staticmethod
    def supports(specs: list[RewardSpec]) -> bool:
        """Built-in rewards without a model and without counters of their own (see the module doc)."""
        classes = [BUILTIN_REWARDS.get(spec.name) for spec in specs]
        return all(c is not None and not callable(getattr(c, "pop_metrics", None))
                   and getattr(c, "needs_model", None) is None for c in classes)

    def submit(self, shard: Path) -> None:
        """Have the worker score `shard` (a complete rollout shard) unless it is scored or queued."""
        if shard in self._futures or self._fresh_totals(shard) is not None:
            return
        self._futures[shard] = self._executor.submit(self._score_in_worker, shard)

    def finish(self, shards: list[Path], out_path: Path, rewards: list[WeightedReward],
               preview_rows: int) -> tuple[list[dict], dict[str, float]]:
        """Write the scored table of `shards` to `out_path`; (preview rows, reward metrics) as
        `score_shards` returns them.

        The worker is handed what it does not have yet, from the last shard back, while this
        process goes from the first: a shard the worker has scored is copied from its part; one
        it has not taken is scored here, with `rewards` (this process's instances of the same
        specs), straight into the table; one it is scoring is waited for. The two meet once,
        so this process waits for at most the shard in the worker's hands."""
        for shard in reversed(shards):
            self.submit(shard)
        totals = ScoreTotals()
        with ScoredWriter(out_path, preview_rows=preview_rows) as out:
            for shard in shards:
                future = self._futures.pop(shard, None)
                if future is not None and self._claim(shard):  # queued, not taken by the worker
                    future.cancel()  # (nothing to wait for: a worker still booting, or busy elsewhere)
                    part_totals = None
                else:  # the worker's, when it did not fail on it, and the shard is the one it scored
                    failed = future is not None and future.result()
                    part_totals = None if failed else self._fresh_totals(shard)
                if part_totals is None:
                    for table in scored_batches([shard], rewards, totals):
                        out.write(table)
                else:
                    totals.merge(part_totals)
                    out.write(_rows_of(self.part_of(shard)))
            out.close(empty_schema=empty_scored_schema(rewards))
        for parts in {self.part_of(shard).parent for shard in shards}:
            shutil.rmtree(parts, ignore_errors=True)
        with self._lock:  # done with: shards made again under these paths are new work
            self._claimed.difference_update(shards)
        return out.preview, totals.metrics(rewards)

    def measure_rollouts(self, r: int, shards: list[Path], threads: int) -> None:
        """Have the worker measure the rollouts' diversity once it has scored them, with `threads`
        torch threads (the filter phase's, so that both places compute the same numbers)."""
        if self.monitor is not None:
            paths = [str(shard) for shard in shards]
            self._rollout_set = paths, self._executor.submit(self._sandbox.call, "rollout_set", self.monitor,
                                                             threads, r, paths)

    def rollout_set(self, shards: list[Path]) -> dict[str, float] | None:
        """What `measure_rollouts` measured for these shards; None if it was not asked or failed."""
        pending, self._rollout_set = self._rollout_set, None
        if pending is None or pending[0] != [str(shard) for shard in shards] or pending[1].cancel():
            return None  # not asked, or not even started (a worker still booting): measured here
        result = pending[1].result()
        if result.error:
            return None
        for line in result.value["warnings"]:
            self.warn(line)
        return result.value["metrics"]

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._sandbox.kill()  # a call in flight holds the sandbox: `close` would wait for it

    @staticmethod
    def part_of(shard: Path) -> Path:
        return shard.parent.parent / PARTS_DIR / shard.name

    def _claim(self, shard: Path) -> bool:
        """True for the first of the worker and this process to ask for `shard`."""
        with self._lock:
            if shard in self._claimed:
                return False
            self._claimed.add(shard)
            return True

    def _score_in_worker(self, shard: Path) -> str:
        """Runs on the executor's thread; returns why the worker did not score it ("" if it did)."""
        if not self._claim(shard):
            return ""
        result = self._sandbox.call("score", self.specs, self.rewards_id, str(shard), str(self.part_of(shard)))
        return result.error

    def _fresh_totals(self, shard: Path) -> ScoreTotals | None:
        """The totals of `shard`'s part if the part scored this very shard with these rewards."""
        try:
            footer = json.loads(pq.read_metadata(self.part_of(shard)).metadata[_FOOTER_KEY.encode()])
        except (OSError, ValueError, KeyError, TypeError):  # none yet, half written, or not ours
            return None
        if footer["rewards"] != self.rewards_id or footer["shard"] != _shard_id(shard):
            return None
        return ScoreTotals(footer["totals"])


def write_part(shard: Path, part: Path, rewards: list[WeightedReward], rewards_id: str) -> None:
    """Score one rollout shard into `part`, its totals and provenance in the footer."""
    source, totals = _shard_id(shard), ScoreTotals()
    with ScoredWriter(part) as out:
        for table in scored_batches([shard], rewards, totals):
            out.write(table)
        footer = {"shard": source, "rewards": rewards_id, "totals": totals.state()}
        out.close(empty_schema=empty_scored_schema(rewards), metadata={_FOOTER_KEY: json.dumps(footer)})


def _shard_id(shard: Path) -> list[int]:
    stat = shard.stat()  # shards are written whole and renamed into place: a new one has a new mtime
    return [stat.st_size, stat.st_mtime_ns]


def _rows_of(part: Path) -> pa.Table:
    """The part's rows, without its footer entry (the scored table's schema carries only the features)."""
    table = pq.read_table(part)
    metadata = {k: v for k, v in (table.schema.metadata or {}).items() if k != _FOOTER_KEY.encode()}
    return table.replace_schema_metadata(metadata)


# --- in the worker process ----------------------------------------------------------------
_built: dict[str, list[WeightedReward]] = {}
_monitors: dict[str, object] = {}
_warnings: list[str] = []
_lowered = False


def work(task: str, *args):
    """The worker's entry point (`Sandbox` target). `prepare` boots it at normal priority; any
    other task runs at idle priority (a worker started again after a crash begins with a shard)."""
    if task == "prepare":
        result = _prepare(*args)
        _lower_priority()
        return result
    _lower_priority()
    return {"score": _score, "rollout_set": _measure_rollout_set}[task](*args)


def _prepare(specs: list[dict], rewards_id: str, monitor: list | None) -> bool:
    _rewards(specs, rewards_id)
    if monitor is not None:
        _monitor(monitor).embedder.load()
    return True


def _lower_priority() -> None:
    """SCHED_IDLE, and nice 19 for the autogroup: with Linux's autogroups (on by default) the
    worker's session is scheduled as a group of its own, and a task's policy alone does not
    lower the group's share against the loop's. Best effort: elsewhere it runs as it is."""
    global _lowered
    if _lowered:
        return
    _lowered = True
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        pass
    try:
        Path("/proc/self/autogroup").write_text("19")
    except OSError:
        pass


def _score(specs: list[dict], rewards_id: str, shard: str, part: str) -> bool:
    write_part(Path(shard), Path(part), _rewards(specs, rewards_id), rewards_id)
    return True


def _measure_rollout_set(monitor: list, threads: int, r: int, shards: list[str]) -> dict:
    import torch

    torch.set_num_threads(threads)
    start = time.perf_counter()
    metrics = _monitor(monitor).rollout_set(r, [Path(shard) for shard in shards])
    metrics["monitor/rollouts_background_seconds"] = time.perf_counter() - start
    warnings = _warnings[:]
    _warnings.clear()
    return {"metrics": metrics, "warnings": warnings}


def _rewards(specs: list[dict], rewards_id: str) -> list[WeightedReward]:
    """Built once per spec list (their own workers, such as the math reward's, start on first use)."""
    if rewards_id not in _built:
        from policies.judges import build_rewards

        _built.clear()
        _built[rewards_id] = build_rewards([RewardSpec.model_validate(spec) for spec in specs])
    return _built[rewards_id]


def _monitor(monitor: list):
    key = json.dumps(monitor, sort_keys=True)
    if key not in _monitors:
        from loop.monitor.config import MonitorConfig
        from loop.monitor.monitor import Monitor

        cfg, run_path, seed = monitor
        _monitors.clear()
        _monitors[key] = Monitor(MonitorConfig.model_validate(cfg), Path(run_path), seed, _warnings.append)
    return _monitors[key]
