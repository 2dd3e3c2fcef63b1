"""Progress bars per phase (rich), and the Trainer callback that drives one during training."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from transformers import TrainerCallback


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
