"""Does the background worker (`loop/scorer.py`) scoring shards beside generation slow generation?

Generates one round of a finished run again, alternately without and with the worker scoring
each shard as it is written, in one process (so both sides see the same machine), with the
thread count the run chose for generation. Prints each repeat and the means; the second
figure of a "with" line is the reward phase's remaining `finish` (merging the parts).

    python bench/background_scoring.py runs/bench_demo 4      # its generation at 1 thread
    python bench/background_scoring.py runs/demo 4 --repeats 6  # a shipped demo's: threads auto

Measured (bench/README.md): at 1 thread no cost (the second core is free); with torch threads
on both cores +0.62 s a round, about what it saves the reward phase; which is why the loop lets
it score beside generation only when generation leaves cores free.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("round", type=int, help="a round >= 1 of that run, generated again from round-1's checkpoint")
    p.add_argument("--repeats", type=int, default=4)
    args = p.parse_args()

    from bench.run_copy import loop_on_copy

    loop, scorer = loop_on_copy(args.run_dir, "background_scoring_", attach_scorer=False,
                                generator=f"round_{args.round - 1:03d}/checkpoint")
    work = loop.run.path
    if scorer is None:
        shutil.rmtree(work.parent, ignore_errors=True)
        sys.exit(f"{args.run_dir}: its rewards are scored in process (no background worker to measure)")
    threads = loop.cfg.threads.apply("generate", loop.state.threads)
    round_dir = work / f"round_{args.round:03d}"
    times: dict[bool, list[float]] = {False: [], True: []}
    try:
        for repeat in range(args.repeats):
            for with_worker in (False, True):
                shutil.rmtree(round_dir / "rollouts", ignore_errors=True)
                # Whatever the loop would choose at this thread count: here both sides are measured.
                loop.scorer = scorer if with_worker else None
                loop._scores_beside_generation = lambda on=with_worker: on
                start = time.perf_counter()
                loop._generate(args.round)
                times[with_worker].append(time.perf_counter() - start)
                start = time.perf_counter()
                if with_worker:
                    shards = sorted((round_dir / "rollouts").glob("shard_*.parquet"))
                    scorer.finish(shards, work / "scored.parquet", loop.rewards, preview_rows=0)
                print(f"repeat {repeat} {'with' if with_worker else 'without'} the worker: generate "
                      f"{times[with_worker][-1]:.2f} s, finish {time.perf_counter() - start:.3f} s", flush=True)
    finally:
        scorer.close()
        shutil.rmtree(work.parent, ignore_errors=True)
    alone, beside = statistics.mean(times[False]), statistics.mean(times[True])
    print(f"generation at {threads} thread(s): {alone:.2f} s alone, {beside:.2f} s with the worker scoring "
          f"({beside - alone:+.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
