"""The `loop` command: run, resume and inspect self-improvement runs.

    loop run [CONFIG] [--set rollout.n=8 ...]     start (default config: configs/demo.yaml)
    loop resume runs/NAME [--set ...] [--force]   continue from the last completed phase
    loop status runs/NAME                         where a run stands
    loop compare runs/A runs/B ... [--out F]      runs side by side per round, and a PNG plot
    loop report runs/A [runs/B ...] [--out DIR]   one self-contained HTML report (plus its PNGs)
    loop rescore runs/NAME --rewards R.yaml --as NEW   re-score stored rollouts under other rewards
    loop worker runs/NAME --rank R                another machine's share of a multi-node run's updates

Bad input is one line naming the problem and exit code 2, with nothing written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from policies.atomic import write_yaml
from loop.config import ConfigError, LoopConfig, apply_overrides, diff, flatten, load_config, to_dict, validate
from loop.preflight import preflight
from loop.rundir import RunDir, RunLocked, check_can_create, config_hash
from policies.schema import ACCEPT_RATE

DEFAULT_CONFIG = "configs/demo.yaml"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="loop", description="LLM self-improvement loops.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start a run from a YAML config")
    run.add_argument("config", nargs="?", default=DEFAULT_CONFIG)
    resume = sub.add_parser("resume", help="continue a run from its last completed phase")
    resume.add_argument("run_dir")
    resume.add_argument("--force", action="store_true", help="accept a changed config (prints what changed)")
    for sp in (run, resume):
        sp.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set rollout.n=8 (repeatable)")
    status = sub.add_parser("status", help="say where a run stands")
    status.add_argument("run_dir")
    compare = sub.add_parser("compare", help="compare runs per round (table + PNG plot)")
    compare.add_argument("run_dirs", nargs="+")
    compare.add_argument("--out", default="compare.png", help="where to write the plot [compare.png]")
    report = sub.add_parser("report", help="write an HTML report of one run, or of several overlaid")
    report.add_argument("run_dirs", nargs="+")
    report.add_argument("--out", default=None, help="output directory [RUN/report for one run, else report]")
    rescore = sub.add_parser("rescore", help="re-score a run's rollouts under other rewards (no generation, no training)")
    rescore.add_argument("run_dir")
    rescore.add_argument("--rewards", required=True, help="YAML with `rewards:` (and optionally `update:`)")
    rescore.add_argument("--as", dest="name", required=True, help="name of the sibling run dir to write")
    worker = sub.add_parser("worker", help="join a multi-node run's training jobs from another machine")
    worker.add_argument("run_dir", help="the run dir rank 0 writes, on shared storage")
    worker.add_argument("--rank", type=int, required=True, help="this machine's rank (1 .. update.nodes.count - 1)")
    worker.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long for rank 0 to create the run dir (machines started at once); default: refuse")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(highlight=False)
    try:
        if args.command == "status":
            return status(RunDir(args.run_dir), console)
        if args.command == "compare":
            return compare(args.run_dirs, Path(args.out), console)
        if args.command == "report":
            return report(args.run_dirs, args.out, console)
        if args.command == "rescore":
            from loop.rescore import rescore, rescore_config

            target = rescore(RunDir(args.run_dir), rescore_config(RunDir(args.run_dir), args.rewards, args.name), console)
            console.print(f"rescored run: {target.path}  (compare: loop compare {args.run_dir} {target.path})")
            return 0
        if args.command == "worker":
            from loop.worker import work

            return work(RunDir(args.run_dir), args.rank, console, wait_s=args.wait)
        cfg, run, notes = _prepare(args)
    except (ConfigError, RunLocked) as err:
        print("error: " + " ".join(str(err).split()), file=sys.stderr)  # one line, whatever the message held
        return 2
    for note in notes:
        console.print(note, soft_wrap=True)
    return execute(cfg, run, console)


def _prepare(args) -> tuple[LoopConfig, RunDir, list[str]]:
    """Validate everything (config, data, model, run dir) before a single file is written or a
    line printed; returns the config, the locked run dir and what to say about it."""
    _quiet_libraries()
    if args.command == "run":
        cfg = load_config(args.config, args.overrides)
        run, force = RunDir(cfg.run_dir), False
    else:
        run = RunDir(args.run_dir)
        cfg = validate(apply_overrides(run.read_config(), args.overrides))
        force = args.force
    notes: list[str] = []
    if run.exists():
        run.lock()  # a running dir is refused before anything else is said
    else:
        check_can_create(run.path)
    try:
        if run.exists():
            notes = _check_same_config(run, cfg, force, resuming=args.command == "resume")
        preflight(cfg)
    except BaseException:
        run.unlock()
        raise
    run.lock()
    write_yaml(run.config_file, to_dict(cfg))
    state = run.load_state()
    state.config_hash = config_hash(to_dict(cfg))
    run.save_state(state)
    if run.rebuild_metrics(state.round):  # derived data: deleted or damaged, it is made again
        notes.insert(0, f"rebuilt {run.metrics_file} from round_*/metrics/")
    return cfg, run, notes


def _check_same_config(run: RunDir, cfg: LoopConfig, force: bool, resuming: bool) -> list[str]:
    """The existing run's config and state agree with `cfg`; its checkpoints and metrics are whole."""
    state = run.load_state()
    how = "pass --force to accept the change" if resuming else \
        f"resume it with `loop resume {run.path}`, or pick another name with --set name=..."
    changes = diff(run.read_config(), to_dict(cfg))
    if changes and not force:
        raise ConfigError(f"{run.path} was made by another config ({'; '.join(changes)}); {how}")
    saved = to_dict(validate(run.read_config()))
    edited = state.config_hash is not None and state.config_hash != config_hash(saved)
    if edited and not force:
        raise ConfigError(f"{run.config_file} was edited since the run started (its hash differs from state.json's); "
                          f"undo the edit, or {how.replace('the change', 'it')}")
    missing = run.missing_checkpoints(state)
    if missing:
        raise ConfigError(f"{missing[0]} is missing (a policy named in {run.state_file}); restore it "
                          "(e.g. copy the whole run dir again), or start over under another name")
    notes = ["[yellow]config changed (--force):[/yellow] " + "; ".join(changes)] if changes else []
    notes += ["[yellow]config.yaml was edited (--force): continuing with it[/yellow]"] if edited else []
    return notes + [f"continuing {run.path} from round {state.round}"]


def execute(cfg: LoopConfig, run: RunDir, console: Console) -> int:
    from loop.scorer import BackgroundScorer  # no torch: its worker boots while this process imports it

    scorer = BackgroundScorer.for_run(cfg, run.path, lambda line: console.print(f"[yellow]{line}[/yellow]"))
    try:
        return _run_loop(cfg, run, console, scorer)
    finally:
        if scorer is not None:
            scorer.close()


def _run_loop(cfg: LoopConfig, run: RunDir, console: Console, scorer) -> int:
    from loop.controller import Loop
    from loop.monitor.alarms import AlarmStop
    from loop.report import closing_lines, plot_accuracy
    from loop.tracking import make_tracker

    state = run.load_state()
    tracker = make_tracker(cfg.tracking, cfg.name, run.path, flatten(to_dict(cfg)), state.wandb_id)
    if tracker.run_id and tracker.run_id != state.wandb_id:
        state.wandb_id = tracker.run_id
        run.save_state(state)
    console.print(f"[bold]selfloop[/bold] {cfg.name}: {cfg.rounds} rounds of {cfg.update.algorithm} -> {run.path}")
    code = 0
    try:
        Loop(cfg, run, tracker, console, scorer).run_all()
    except AlarmStop as stop:
        console.print(f"[red]{stop}[/red]", soft_wrap=True)
        code = 3
    finally:
        tracker.finish()
        run.unlock()
    rows = run.read_metrics()
    plot = plot_accuracy(rows, run.path / "accuracy.png", cfg.name)
    for line in closing_lines(rows):
        console.print(line)
    console.print(f"metrics: {run.metrics_file}  plot: {plot}")
    return code


def status(run: RunDir, console: Console) -> int:
    if not run.exists():
        raise ConfigError(f"{run.path}: no run here yet (no state.json); start one with `loop run`")
    s, rows = run.load_state(), run.read_metrics()  # a damaged file is refused before a line is printed
    where = "finished" if s.done else f"round {s.round}, last completed phase: {s.phase or '(none)'}"
    console.print(f"{run.path}: {where}; generator {s.generator_id}")
    try:
        run.lock()
        run.unlock()
        console.print("not running (resume with `loop resume " + str(run.path) + "`)" if not s.done else "")
    except RunLocked as err:
        console.print(str(err))
    for row in rows:
        console.print(f"  round {row['round']}: pass@1 {row.get('eval/pass@1', float('nan')):.3f}"
                      f"  accept {row.get(ACCEPT_RATE, float('nan')):.2f}")
    return 0


def compare(run_dirs: list[str], out: Path, console: Console) -> int:
    from loop.compare import check_output, comparison_table, load_runs, plot_runs

    runs = load_runs(run_dirs)
    check_output(out, "--out", "file")  # refused before the table is printed
    wide = Console(highlight=False, width=max(console.width, 150))  # twelve columns: never squeeze them
    wide.print(comparison_table(runs))
    console.print(f"plot: {plot_runs(runs, out)}")
    return 0


def report(run_dirs: list[str], out: str | None, console: Console) -> int:
    from loop.report_html import build_report

    _quiet_libraries()  # reading the rollouts' Parquet would draw progress bars
    out_dir = Path(out) if out else (Path(run_dirs[0]) / "report" if len(run_dirs) == 1 else Path("report"))
    console.print(f"report: {build_report(run_dirs, out_dir)}")
    return 0


def _quiet_libraries() -> None:
    import datasets
    import transformers

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its parse errors reach us as exceptions
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


if __name__ == "__main__":
    sys.exit(main())
