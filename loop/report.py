"""The end of a run: accuracy per round (loop vs control) as a PNG, and the closing numbers."""

from __future__ import annotations

import io
from pathlib import Path

from policies.atomic import write_bytes


def plot_accuracy(rows: list[dict], out: Path, title: str) -> Path:
    """Held-out greedy pass@1 per round, for the loop and (when present) the control."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    rounds = [row["round"] for row in rows]
    ax.plot(rounds, [row.get("eval/pass@1") for row in rows], marker="o", label="loop")
    if any("control/pass@1" in row for row in rows):
        ax.plot(rounds, [row.get("control/pass@1") for row in rows], marker="s", linestyle="--",
                label="control (same steps, seed set only)")
    ax.set(xlabel="round", ylabel="held-out greedy pass@1", title=title, ylim=(0, 1))
    ax.set_xticks(rounds)
    return save_figure(fig, ax, out)


def save_figure(fig, ax, out: Path) -> Path:
    """Grid, legend, and an atomic PNG write (a half-written plot never replaces a good one)."""
    import matplotlib.pyplot as plt

    ax.grid(alpha=0.3)
    ax.legend()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    write_bytes(out, buf.getvalue())
    return out


def closing_lines(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    first, last = rows[0], rows[-1]
    a0, a1 = first.get("eval/pass@1", 0.0), last.get("eval/pass@1", 0.0)
    lines = [f"held-out greedy accuracy: round 0 {a0:.1%} -> round {last['round']} {a1:.1%} "
             f"({(a1 - a0) * 100:+.1f} points)"]
    if "control/pass@1" in last:
        c = last["control/pass@1"]
        lines.append(f"control (same optimizer steps on the seed set alone): {c:.1%}; "
                     f"loop - control = {(a1 - c) * 100:+.1f} points")
    return lines
