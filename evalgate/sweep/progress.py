"""Rich progress bars for training: one bar per candidate with rate, step, loss, tokens/s and ETA."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments


def training_progress(console: Console | None = None, enabled: bool = True) -> Progress:
    """A progress display with the columns a training run needs."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[tps]} tok/s"),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    )


class ProgressCallback(TrainerCallback):
    """Moves one progress task along with the Trainer's steps and logged losses."""

    def __init__(self, progress: Progress, description: str, tokens: Any):
        self.progress = progress
        self.description = description
        self.tokens = tokens  # object with a ``tokens`` counter (the curve callback)
        self.task: Any = None
        self.started = time.perf_counter()

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.started = time.perf_counter()
        self.task = self.progress.add_task(
            self.description, total=state.max_steps, completed=state.global_step, loss="-", tps="-"
        )

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        loss = (logs or {}).get("loss")
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        shown_loss = f"{loss:.3f}" if loss is not None else self.progress.tasks[self.task].fields["loss"]
        tokens_per_second = f"{self.tokens.tokens / elapsed:.0f}"
        self.progress.update(self.task, completed=state.global_step, loss=shown_loss, tps=tokens_per_second)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.progress.update(self.task, completed=state.global_step)
