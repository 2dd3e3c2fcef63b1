"""The reward and filter phases of one finished round, timed side by side in one process.

Three comparisons, alternated repeat by repeat so both sides see the same machine:

1. **A repeated sample judged once.** `score_shards` over the round's shards with the run's
   rewards as they are, and with the same reward objects hidden behind a wrapper that does not
   pass on `sample_columns` (every sample judged, as before the rewards declared it).
2. **The reward phase shared with the background worker**, as the controller runs it when
   generation leaves cores free (`BackgroundScorer.finish`: the worker measures the rollouts'
   diversity, then scores from the last shard back while the loop scores from the first),
   against scoring in process with the worker only measuring the diversity, as it runs with
   torch threads on every core; each followed by the filter phase, which waits for that
   diversity. Measured at 2 threads, sharing was the slower (bench/README.md), so the
   controller does not share there.
3. **Symbolic checks overlapped**: the reward phase in process, each batch started before the
   previous one is finished (`rewards.compose.start_scoring`), so the math reward's workers
   check while this process judges the next batches; against the same rewards behind a
   wrapper without `start_verdicts`, each batch's checks waited for. Each followed by the
   filter phase. The math reward's cache is put back before each side as the run had it
   after the earlier rounds, so both sides check what the run checked.

    python bench/reward_phase.py runs/demo 5                  # a shipped demo's round 5
    python bench/reward_phase.py runs/bench_demo 3 --repeats 8

Prints each repeat and the medians (the first repeat, which starts the math reward's
symbolic workers, left out). Results are identical on both sides: the bench checks the
scored tables' equality on the first repeat.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class EverySample:
    """A reward as it was before it declared `sample_columns`: the same object, every sample judged."""

    def __init__(self, fn):
        self.fn, self.cost, self.__name__ = fn, getattr(fn, "cost", 1), getattr(fn, "__name__", "reward")
        if hasattr(fn, "start_verdicts"):  # (only the sharing of verdicts is compared here)
            self.start_verdicts = fn.start_verdicts

    def verdicts(self, prompts, completions, **columns):
        return self.fn.verdicts(prompts, completions, **columns)


class Waited:
    """A reward as it was before `start_verdicts`: the same object, each batch's checks waited for."""

    def __init__(self, fn):
        self.fn, self.cost, self.__name__ = fn, getattr(fn, "cost", 1), getattr(fn, "__name__", "reward")
        self.sample_columns = getattr(fn, "sample_columns", None)

    def verdicts(self, prompts, completions, **columns):
        return self.fn.verdicts(prompts, completions, **columns)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("round", type=int, help="a finished round >= 1 of that run")
    p.add_argument("--repeats", type=int, default=6)
    args = p.parse_args()

    import pyarrow.parquet as pq

    from bench.run_copy import loop_on_copy
    from loop.scoring import score_shards
    from rewards import WeightedReward

    loop, scorer = loop_on_copy(args.run_dir, "reward_phase_", attach_scorer=True)
    work, cfg = loop.run.path, loop.cfg
    r = args.round
    loop._generated = r  # its shards are there: the reward phase does not pick the prompts again
    shards = loop._shard_paths(r)
    every = [WeightedReward(w.name, EverySample(w.fn), w.weight, w.gate) for w in loop.rewards]
    overlapped = loop.rewards
    waited = [WeightedReward(w.name, Waited(w.fn), w.weight, w.gate) for w in loop.rewards]
    caches = [w.fn for w in loop.rewards if hasattr(w.fn, "_cache")]  # the math reward's symbolic checks
    for earlier in range(1, r):  # remembered as the run remembered them when it reached round r
        score_shards(loop._shard_paths(earlier), work / "earlier.parquet", loop.rewards)
    remembered = [dict(fn._cache) for fn in caches]
    time.sleep(10)  # the worker boots
    print(f"{args.run_dir} round {r}: {len(shards)} shards, {sum(pq.ParquetFile(s).metadata.num_rows for s in shards)} rows; "
          f"reward phase at {cfg.threads.apply('reward', loop.state.threads)} thread(s)")

    def once_vs_every(i: int) -> tuple[float, float]:
        times = []
        for rewards, out in ((loop.rewards, "once.parquet"), (every, "every.parquet")):
            start = time.perf_counter()
            score_shards(shards, work / out, rewards)
            times.append(time.perf_counter() - start)
        if i == 0 and not pq.read_table(work / "once.parquet").equals(pq.read_table(work / "every.parquet")):
            sys.exit("the scored tables differ")
        return times[0], times[1]

    def shared() -> None:
        scorer.measure_rollouts(r, shards, cfg.threads.count("filter", loop.state.threads))
        scorer.finish(shards, loop._scored_path(r), loop.rewards, preview_rows=cfg.tracking.table_rows)

    def in_process() -> None:
        scorer.measure_rollouts(r, shards, cfg.threads.count("filter", loop.state.threads))
        score_shards(shards, loop._scored_path(r), loop.rewards, preview_rows=cfg.tracking.table_rows)

    def phases(reward_phase) -> tuple[float, float]:
        loop.monitor._near_dup_index(r)  # the earlier rounds' index, as the run's filter found it
        loop.monitor._index_next_round = r
        start = time.perf_counter()
        reward_phase()
        middle = time.perf_counter()
        loop._filter(r)
        return middle - start, time.perf_counter() - middle

    def as_remembered(rewards) -> None:
        loop.rewards = rewards
        for fn, pairs in zip(caches, remembered):
            fn._cache = type(fn._cache)(pairs)

    rows: dict[str, list[tuple[float, float]]] = {"once": [], "shared": [], "in process": [],
                                                  "overlapped": [], "waited": []}
    for i in range(args.repeats):
        once, every_time = once_vs_every(i)
        rows["once"].append((once, every_time))
        print(f"repeat {i}: scoring {once:.3f} s judged once vs {every_time:.3f} s every sample", flush=True)
        if scorer is None:
            continue
        sides = [("shared", shared, overlapped), ("in process", in_process, overlapped),
                 ("overlapped", in_process, overlapped), ("waited", in_process, waited)]
        if i % 2:  # each of the two goes first every other repeat
            sides[2:] = sides[:1:-1]
        for name, reward_phase, rewards in sides:
            if name in ("overlapped", "waited"):
                as_remembered(rewards)
            reward_s, filter_s = phases(reward_phase)
            rows[name].append((reward_s, filter_s))
            print(f"          {name:>10}: reward {reward_s:.3f} s, filter {filter_s:.3f} s, "
                  f"together {reward_s + filter_s:.3f} s", flush=True)
        loop.rewards = overlapped
    if scorer is not None:
        scorer.close()

    def median(values) -> float:
        return statistics.median(values[1:] if len(values) > 1 else values)

    once = rows["once"]
    print(f"scoring, median: judged once {median([a for a, _ in once]):.3f} s, every sample "
          f"{median([b for _, b in once]):.3f} s = {median([b for _, b in once]) / median([a for a, _ in once]):.2f}x")
    for name in ("shared", "in process", "overlapped", "waited"):
        if rows[name]:
            print(f"{name:>10}, median: reward {median([a for a, _ in rows[name]]):.3f} s, filter "
                  f"{median([b for _, b in rows[name]]):.3f} s, together {median([a + b for a, b in rows[name]]):.3f} s")
    shutil.rmtree(work.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
