"""Easy -> hard: held-out greedy accuracy per difficulty level per round, for one or more runs
of `configs/demo_easy_to_hard.yaml` (e.g. the curriculum and its no-curriculum control).

    python bench/easy_to_hard.py runs/easy_to_hard runs/easy_to_hard_control [--seed-max 5] [--out F]

Prints one table per run (rows: rounds, columns: levels, plus the mean over the levels harder
than any seed example) and writes one panel per run to the PNG (default runs/easy_to_hard.png).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loop.report import save_figure  # noqa: E402

PREFIX = "eval/pass@1/level_"


def levels_of(rows: list[dict]) -> list[int]:
    return sorted({int(k.removeprefix(PREFIX)) for row in rows for k in row if k.startswith(PREFIX)})


def harder_mean(row: dict, levels: list[int], seed_max: int) -> float:
    """Mean accuracy over the levels harder than any seed example (each level weighs the same)."""
    values = [row[f"{PREFIX}{d:02d}"] for d in levels if d > seed_max and f"{PREFIX}{d:02d}" in row]
    return sum(values) / len(values) if values else float("nan")


def table(name: str, rows: list[dict], seed_max: int) -> str:
    levels = levels_of(rows)
    lines = [f"{name}", "round | " + " | ".join(f"L{d}" for d in levels) + f" | >L{seed_max} mean | all"]
    for row in rows:
        cells = [f"{row.get(f'{PREFIX}{d:02d}', float('nan')):.0%}" for d in levels]
        lines.append(f"{row['round']:>5} | " + " | ".join(cells) +
                     f" | {harder_mean(row, levels, seed_max):.1%} | {row.get('eval/pass@1', float('nan')):.1%}")
    return "\n".join(lines)


def plot(runs: dict[str, list[dict]], seed_max: int, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4), squeeze=False)
    for ax, (name, rows) in zip(axes[0], runs.items()):
        levels = levels_of(rows)
        for row in rows:
            ax.plot(levels, [row.get(f"{PREFIX}{d:02d}") for d in levels], marker="o", label=f"round {row['round']}")
        ax.axvline(seed_max + 0.5, color="grey", linestyle=":", label="hardest seed level")
        ax.set(xlabel="difficulty (operands)", ylabel="held-out greedy pass@1", ylim=(0, 1), title=name)
        ax.set_xticks(levels)
        if ax is not axes[0][-1]:
            ax.grid(alpha=0.3)
            ax.legend()
    return save_figure(fig, axes[0][-1], out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--seed-max", type=int, default=None,
                        help="hardest level in the seed set [the first run's data.task.seed_max_operands]")
    parser.add_argument("--out", default="runs/easy_to_hard.png")
    args = parser.parse_args()
    if args.seed_max is None:
        args.seed_max = yaml.safe_load((Path(args.runs[0]) / "config.yaml").read_text())["data"]["task"]["seed_max_operands"]
    runs = {}
    for path in args.runs:
        rows = [json.loads(line) for line in (Path(path) / "metrics.jsonl").read_text().splitlines() if line.strip()]
        runs[Path(path).name] = rows
        print(table(Path(path).name, rows, args.seed_max), end="\n\n")
    print(f"plot: {plot(runs, args.seed_max, Path(args.out))}")


if __name__ == "__main__":
    main()
