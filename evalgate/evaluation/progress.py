"""Progress bars of an evaluation: one task per step (generation, scoring of each model)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def task_bars(console: Console, enabled: bool) -> Progress:
    """Progress bars for generation and scoring tasks: description, bar, n/total, elapsed time."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not enabled,
    )
