"""``evalgate sweep`` and ``evalgate lr-find``: train LoRA candidates across learning rates."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from evalgate.cli.common import ready_settings
from evalgate.sweep.config import SweepConfig

console = Console()
errors = Console(stderr=True)
EXIT_INTERRUPTED = 130
T = TypeVar("T")


def resumable(run: Callable[[], T]) -> T:
    """Run a sweep; on Ctrl-C say that a checkpoint was saved and exit with 130."""
    from evalgate.sweep.training.peft_trainer import TrainingInterrupted

    try:
        return run()
    except TrainingInterrupted as interrupted:
        errors.print(f"interrupted: {interrupted}; run the same command again to resume", soft_wrap=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None


def sweep(
    config_path: Annotated[Path, typer.Argument(help="Sweep YAML (see examples/sweep.yaml).")],
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    use_ray: Annotated[
        bool, typer.Option("--ray", help="Run each rate as a Ray Tune trial (evalgate[ray]).")
    ] = False,
    asha: Annotated[bool, typer.Option(help="With --ray: stop weak rates early on validation loss.")] = False,
    cpus_per_trial: Annotated[float, typer.Option(help="With --ray: CPUs per trial.")] = 1.0,
    gpus_per_trial: Annotated[float, typer.Option(help="With --ray: GPUs per trial.")] = 0.0,
    max_concurrent: Annotated[int | None, typer.Option(help="With --ray: most trials at once.")] = None,
) -> None:
    """Train one LoRA candidate per learning rate; re-running the same config resumes it."""

    if asha and not use_ray:
        raise typer.BadParameter("--asha needs --ray")
    config = SweepConfig.from_yaml(config_path)
    settings = ready_settings()
    if use_ray:
        from evalgate.sweep.ray_tune import run_sweep_ray

        resources = {"cpu": cpus_per_trial} | ({"gpu": gpus_per_trial} if gpus_per_trial else {})
        result = resumable(
            lambda: run_sweep_ray(
                config, settings, resources_per_trial=resources, asha=asha, max_concurrent=max_concurrent
            )
        )
    else:
        from evalgate.sweep.run import run_sweep

        result = resumable(lambda: run_sweep(config, settings, console=console, show_progress=progress))
    state = "resumed" if result.resumed else "new"
    console.print(f"sweep {result.sweep_id} ({state}) on {result.dataset}")
    console.print(candidates_table(result.candidates))


def lr_find(
    config_path: Annotated[Path, typer.Argument(help="Sweep YAML.")],
    plot: Annotated[Path, typer.Option(help="Where to save the loss-vs-rate PNG.")] = Path("lr_find.png"),
    steps: Annotated[int, typer.Option(min=5, help="Steps of the exponential ramp.")] = 40,
    count: Annotated[int, typer.Option(min=2, help="Rates to propose.")] = 4,
) -> None:
    """Learning-rate range test: propose a sweep grid from under-fit to the divergence edge."""
    from evalgate.data.store import DatasetStore
    from evalgate.sweep.lr_find import find_rates, save_plot
    from evalgate.sweep.run import prepare_training, train_rows

    config = SweepConfig.from_yaml(config_path)
    settings = ready_settings()
    store = DatasetStore.from_settings(settings)
    setup = prepare_training(
        config, settings.home, train_rows(store, store.get(config.dataset), config.self_replay)
    )
    test = find_rates(
        setup.base,
        setup.tokenizer,
        setup.examples,
        config,
        device=setup.device,
        dtype=setup.dtype,
        steps=steps,
        count=count,
    )
    save_plot(test, plot)
    stop = "diverged" if test.diverged else "reached the top of the ramp"
    console.print(
        f"{len(test.rates)} steps, {stop} at {test.edge:.2g}; lowest smoothed loss at {test.valley:.2g}"
    )
    console.print(f"proposed learning_rates: [{', '.join(f'{rate:g}' for rate in test.proposed)}]")
    console.print(f"plot saved to {plot}")


def candidates_table(candidates: list[dict[str, Any]]) -> Table:
    """One row per candidate: rate, status, diagnosis, steps, loss start -> end, speed; then adapters."""
    table = Table("rate", "status", "diagnosis", "steps", "loss", "tok/s", "wall s")
    folders = []
    for candidate in candidates:
        training = candidate["training"] or {}
        losses = training.get("loss") or []
        loss = f"{losses[0]:.3f} -> {losses[-1]:.3f}" if losses else "-"
        table.add_row(
            f"{candidate['rate']:g}",
            candidate["status"],
            candidate["diagnosis"] or "-",
            str(training.get("steps", "-")),
            loss,
            str(training.get("tokens_per_second", "-")),
            str(training.get("wall_seconds", "-")),
        )
        detail = candidate["error"] or candidate["adapter_uri"] or "-"
        folders.append(f"lr={candidate['rate']:g}: {detail}")
    table.caption = "\n".join(folders)
    table.caption_justify = "left"
    return table
