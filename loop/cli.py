"""The `loop` command: run, resume and inspect self-improvement runs.

    loop run [CONFIG] [--set rollout.n=8 ...]     start (default config: configs/demo.yaml)
    loop resume runs/NAME [--set ...] [--force]   continue from the last completed phase
    loop status runs/NAME                         where a run stands
    loop compare runs/A runs/B ... [--out F]      runs side by side per round, and a PNG plot
    loop rescore runs/NAME --rewards R.yaml --as NEW   re-score stored rollouts under other rewards

Bad input is one line naming the problem and exit code 2, with nothing written.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml
from rich.console import Console

from policies.atomic import write_yaml
from loop.config import ConfigError, LoopConfig, apply_overrides, diff, flatten, load_config, to_dict, validate
from loop.rundir import RunDir, RunLocked
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
    rescore = sub.add_parser("rescore", help="re-score a run's rollouts under other rewards (no generation, no training)")
    rescore.add_argument("run_dir")
    rescore.add_argument("--rewards", required=True, help="YAML with `rewards:` (and optionally `update:`)")
    rescore.add_argument("--as", dest="name", required=True, help="name of the sibling run dir to write")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    console = Console(highlight=False)
    try:
        if args.command == "status":
            return status(RunDir(args.run_dir), console)
        if args.command == "compare":
            return compare(args.run_dirs, Path(args.out), console)
        if args.command == "rescore":
            from loop.rescore import rescore, rescore_config

            target = rescore(RunDir(args.run_dir), rescore_config(RunDir(args.run_dir), args.rewards, args.name), console)
            console.print(f"rescored run: {target.path}  (compare: loop compare {args.run_dir} {target.path})")
            return 0
        cfg, run = _prepare(args, console)
    except (ConfigError, RunLocked) as err:
        console.print(f"[red]error:[/red] {err}", soft_wrap=True)
        return 2
    return execute(cfg, run, console)


def _prepare(args, console: Console) -> tuple[LoopConfig, RunDir]:
    """Validate everything (config, data, run dir) before a single file is written."""
    if args.command == "run":
        cfg = load_config(args.config, args.overrides)
        run, force = RunDir(cfg.run_dir), False
    else:
        run = RunDir(args.run_dir)
        if not run.config_file.exists():
            raise ConfigError(f"{args.run_dir} is not a run directory (no config.yaml); start one with `loop run`")
        cfg = validate(apply_overrides(yaml.safe_load(run.config_file.read_text()), args.overrides))
        force = args.force
    if run.exists():
        _check_same_config(run, cfg, force, console, resuming=args.command == "resume")
    _preflight_data(cfg)
    run.lock()
    write_yaml(run.config_file, to_dict(cfg))
    return cfg, run


def _check_same_config(run: RunDir, cfg: LoopConfig, force: bool, console: Console, resuming: bool) -> None:
    changes = diff(yaml.safe_load(run.config_file.read_text()), to_dict(cfg))
    if changes and not force:
        how = "pass --force to accept the change" if resuming else \
            f"resume it with `loop resume {run.path}`, or pick another name with --set name=..."
        raise ConfigError(f"{run.path} was made by another config ({'; '.join(changes)}); {how}")
    if changes:
        console.print("[yellow]config changed (--force):[/yellow] " + "; ".join(changes))
    console.print(f"continuing {run.path} from round {run.load_state().round}")


def _preflight_data(cfg: LoopConfig) -> None:
    """Load user data once so a missing column fails now, not in round 1. Built-in tasks can't fail so."""
    if cfg.data.task is None:
        from loop.data import load_task_data

        load_task_data(cfg.data, cfg.seed, Path(os.devnull))


def execute(cfg: LoopConfig, run: RunDir, console: Console) -> int:
    from loop.controller import Loop
    from loop.report import closing_lines, plot_accuracy
    from loop.tracking import make_tracker

    _quiet_libraries()
    state = run.load_state()
    tracker = make_tracker(cfg.tracking, cfg.name, run.path, flatten(to_dict(cfg)), state.wandb_id)
    if tracker.run_id and tracker.run_id != state.wandb_id:
        state.wandb_id = tracker.run_id
        run.save_state(state)
    console.print(f"[bold]selfloop[/bold] {cfg.name}: {cfg.rounds} rounds of {cfg.update.algorithm} -> {run.path}")
    try:
        Loop(cfg, run, tracker, console).run_all()
    finally:
        tracker.finish()
        run.unlock()
    rows = run.read_metrics()
    plot = plot_accuracy(rows, run.path / "accuracy.png", cfg.name)
    for line in closing_lines(rows):
        console.print(line)
    console.print(f"metrics: {run.metrics_file}  plot: {plot}")
    return 0


def status(run: RunDir, console: Console) -> int:
    if not run.exists():
        console.print(f"{run.path}: no run here yet (no state.json)")
        return 2
    s = run.load_state()
    where = "finished" if s.done else f"round {s.round}, last completed phase: {s.phase or '(none)'}"
    console.print(f"{run.path}: {where}; generator {s.generator_id}")
    try:
        run.lock()
        run.unlock()
        console.print("not running (resume with `loop resume " + str(run.path) + "`)" if not s.done else "")
    except RunLocked as err:
        console.print(str(err))
    for row in run.read_metrics():
        console.print(f"  round {row['round']}: pass@1 {row.get('eval/pass@1', float('nan')):.3f}"
                      f"  accept {row.get(ACCEPT_RATE, float('nan')):.2f}")
    return 0


def compare(run_dirs: list[str], out: Path, console: Console) -> int:
    from loop.compare import comparison_table, load_runs, plot_runs

    runs = load_runs(run_dirs)
    wide = Console(highlight=False, width=max(console.width, 150))  # twelve columns: never squeeze them
    wide.print(comparison_table(runs))
    console.print(f"plot: {plot_runs(runs, out)}")
    return 0


def _quiet_libraries() -> None:
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


if __name__ == "__main__":
    sys.exit(main())
