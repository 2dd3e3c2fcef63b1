"""The report's figures (matplotlib, written as PNGs atomically). Each takes one or more runs'
per-round metrics, so `loop report A B` overlays runs in every plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from loop.compare import RunMetrics
from loop.monitor.funnel import stage_order
from loop.report import save_figure

_STYLES = ("-", "--", ":", "-.")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _integer_rounds(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _series(run: RunMetrics, key: str) -> tuple[list[int], list[float]]:
    points = [(row["round"], row[key]) for row in run.rows
              if isinstance(row.get(key), (int, float)) and not isinstance(row[key], bool) and math.isfinite(row[key])]
    return [p[0] for p in points], [p[1] for p in points]


def _label(run: RunMetrics, runs: Sequence[RunMetrics], what: str) -> str:
    return what if len(runs) == 1 else f"{run.name}: {what}"


def plot_lines(runs: Sequence[RunMetrics], keys: Sequence[tuple[str, str]], out: Path, title: str,
               ylabel: str, ylim: tuple[float, float] | None = None) -> Path | None:
    """One line per (run, key); runs differ by line style, keys by colour. None if no data."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = False
    for style, run in zip(_STYLES * 4, runs):
        for color, (key, what) in enumerate(keys):
            x, y = _series(run, key)
            if x:
                ax.plot(x, y, style, marker="o", color=f"C{color}", label=_label(run, runs, what))
                drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set(xlabel="round", ylabel=ylabel, title=title)
    if ylim:
        ax.set_ylim(*ylim)
    _integer_rounds(ax)
    return save_figure(fig, ax, out)


def plot_panels(runs: Sequence[RunMetrics], panels: Sequence[tuple[str, str]], sets: Sequence[str],
                out: Path, title: str) -> Path | None:
    """A grid: one panel per metric (`<set>` in the key), one line per (run, set)."""
    plt = _plt()
    cols = 3
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    drawn = False
    for ax, (pattern, what) in zip(axes.flat, panels):
        for style, run in zip(_STYLES * 4, runs):
            for color, name in enumerate(sets):
                x, y = _series(run, pattern.replace("<set>", name))
                if x:
                    ax.plot(x, y, style, marker=".", color=f"C{color}", label=_label(run, runs, name))
                    drawn = True
        ax.set_title(what, fontsize=9)
        ax.grid(alpha=0.3)
        _integer_rounds(ax)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    if not drawn:
        plt.close(fig)
        return None
    legend: dict = {}  # label -> handle, over every panel: the first may have no data (all NaN)
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=max(1, min(len(legend), 6)), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    return _save(fig, out)


def plot_funnel(runs: Sequence[RunMetrics], out: Path) -> Path | None:
    """Samples left after each filter stage in each run's last round with a funnel."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    drawn = False
    width = 0.8 / max(len(runs), 1)
    for i, run in enumerate(runs):
        last = next((row for row in reversed(run.rows) if "funnel/generated" in row), None)
        if last is None:
            continue
        keys = stage_order(last)
        xs = [j + i * width for j in range(len(keys))]
        ax.bar(xs, [last[k] for k in keys], width=width, label=f"{run.name} (round {last['round']})")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))],
                      [k.removeprefix("funnel/") for k in keys], rotation=30, ha="right")
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set(ylabel="samples left", title="filter funnel")
    return save_figure(fig, ax, out)


def plot_reliability(bins: dict[str, list[dict]], out: Path, title: str) -> Path:
    """Reliability diagram: accuracy vs mean confidence per bin, one marker series per confidence."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for color, (name, table) in enumerate(bins.items()):
        full = [b for b in table if b["count"]]
        ax.plot([b["confidence"] for b in full], [b["accuracy"] for b in full], marker="o", color=f"C{color}",
                label=f"{name} confidence")
    ax.set(xlabel="confidence", ylabel="accuracy", title=f"reliability, {title}", xlim=(0, 1), ylim=(0, 1))
    return save_figure(fig, ax, out)


def _save(fig, out: Path) -> Path:
    import io

    from policies.atomic import write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    _plt().close(fig)
    write_bytes(out, buf.getvalue())
    return out
