"""Progress bars per phase (rich), the Trainer callback that drives one during training, and
the one line printed per round."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from transformers import TrainerCallback

from policies.updates.build import ACCEPT_RATE


@contextmanager
def phase_bar(console: Console, label: str, total: float | None = None) -> Iterator["Bar"]:
    columns = (TextColumn(f"  {label:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        yield Bar(progress, progress.add_task(label, total=total))


class Bar:
    def __init__(self, progress: Progress, task_id):
        self.progress, self.task_id = progress, task_id

    def advance(self, n: float = 1) -> None:
        self.progress.advance(self.task_id, n)

    def set_total(self, total: float) -> None:
        self.progress.update(self.task_id, total=total)


class BarCallback(TrainerCallback):
    """Advances a `Bar` once per optimizer step."""

    def __init__(self, bar: Bar):
        self.bar = bar

    def on_train_begin(self, args, state, control, **kwargs):
        self.bar.set_total(state.max_steps)
        self.bar.advance(state.global_step)

    def on_step_end(self, args, state, control, **kwargs):
        self.bar.advance(1)


Advance = Callable[[int], None]


def summary_line(record: dict, history: list[dict]) -> str:
    """One line per round: accuracy (and change since round 0), what the filter kept, time."""
    r = record["round"]
    first = history[0] if history else record
    acc = record.get("eval/pass@1", float("nan"))
    parts = [f"[bold]round {r}[/bold]", f"pass@1 {acc:.3f} ({acc - first.get('eval/pass@1', acc):+.3f})"]
    for key in sorted(k for k in record if k.startswith(("eval/pass@", "eval/maj@")) and k != "eval/pass@1"):
        parts.append(f"{key.removeprefix('eval/')} {record[key]:.3f}")
    if "control/pass@1" in record:
        parts.append(f"control {record['control/pass@1']:.3f}")
    if ACCEPT_RATE in record:
        parts.append(f"accept {record[ACCEPT_RATE]:.2f}")
    if "train/examples" in record:
        parts.append(f"kept {int(record['train/examples'])}")
    if "train/steps" in record:
        parts.append(f"steps {int(record['train/steps'])}")
    parts.append(f"{record.get('time/round_s', 0):.1f}s")
    return " | ".join(parts)
