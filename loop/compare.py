"""`loop compare runs/a runs/b ...`: finished (or running) runs side by side, per round.

Reads only each run's `metrics.jsonl`, so it works on runs from any algorithm or machine, and
on a run still in progress (its rounds so far).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from loop.config import ConfigError
from loop.report import save_figure
from loop.rundir import RunDir
from policies.schema import ACCEPT_RATE

PHASES = ("generate", "reward", "filter", "train", "evaluate")


@dataclass
class RunMetrics:
    name: str
    rows: list[dict]


def load_runs(paths: list[str]) -> list[RunMetrics]:
    """Each run's rows of metrics.jsonl; a missing or damaged file is one RunDirError naming it."""
    runs = []
    for path in paths:
        run = RunDir(path)
        if not run.metrics_file.is_file():
            raise ConfigError(f"{path} has no metrics.jsonl: not a run directory, or no round finished yet")
        runs.append(RunMetrics(Path(path).name, run.read_metrics()))
    return runs


def check_output(path: Path, option: str, kind: str) -> None:
    """`path` can be written as a `kind` ("file" or "directory") without replacing the other
    kind; raises ConfigError before anything is written. Missing parents are fine (made later)."""
    target = Path(path)
    if target.exists() and target.is_dir() != (kind == "directory"):
        raise ConfigError(f"{option} {str(path)!r} is a {'directory' if target.is_dir() else 'file'}; "
                          f"give a {kind} path")
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{option} {str(path)!r}: {str(parent)!r} is a file, so it cannot be made; give another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {str(path)!r}: cannot write in {str(parent)!r}; give a writable path")


def comparison_table(runs: list[RunMetrics]) -> Table:
    """One row per (round, run): accuracy, what the filter kept, and seconds per phase."""
    maj_key = _first_key(runs, "eval/maj@")
    rescored = _first_key(runs, "rescore/kappa") is not None  # `loop rescore` runs: agreement with their source
    table = Table(title="held-out accuracy per round", show_lines=False)
    agreement_columns = ["agree", "kappa"] if rescored else []
    for column in ["round", "run", "pass@1", maj_key.removeprefix("eval/") if maj_key else "maj@k",
                   "accept", "examples", *agreement_columns, *[f"{p} s" for p in PHASES], "round s"]:
        table.add_column(column, justify="left" if column == "run" else "right")
    rounds = sorted({row["round"] for run in runs for row in run.rows})
    for r in rounds:
        for run in runs:
            row = next((x for x in run.rows if x["round"] == r), None)
            if row is None:
                continue
            table.add_row(str(r), run.name, _fmt(row.get("eval/pass@1"), ".3f"),
                          _fmt(row.get(maj_key) if maj_key else None, ".3f"),
                          _fmt(_accept(row), ".2f"), _fmt(row.get("train/examples"), ".0f"),
                          *[_fmt(row.get(f"rescore/{k}"), ".2f") for k in ("agreement", "kappa") if rescored],
                          *[_fmt(row.get(f"time/{p}_s"), ".1f") for p in PHASES], _fmt(row.get("time/round_s"), ".1f"))
        table.add_section()
    return table


def plot_runs(runs: list[RunMetrics], out: Path) -> Path:
    """Held-out greedy pass@1 per round, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4))
    for run in runs:
        points = [(row["round"], row["eval/pass@1"]) for row in run.rows if "eval/pass@1" in row]
        if points:  # a rescored run has no evaluation of its own
            ax.plot(*zip(*points), marker="o", label=run.name)
    ax.set(xlabel="round", ylabel="held-out greedy pass@1", ylim=(0, 1), title="loop compare")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return save_figure(fig, ax, out)


def _accept(row: dict) -> float | None:
    """Share of the round's samples the update used: every algorithm logs `filter/stack/accept_rate`."""
    return row.get(ACCEPT_RATE)


def _first_key(runs: list[RunMetrics], prefix: str) -> str | None:
    return next((k for run in runs for row in run.rows for k in sorted(row) if k.startswith(prefix)), None)


def _fmt(value, spec: str) -> str:
    return "-" if value is None or value != value else format(value, spec)  # None or NaN
