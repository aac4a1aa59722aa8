"""``evalgate sweep`` and ``evalgate lr-find``: train LoRA candidates across learning rates (or a search
space), then write the sweep's results table, best trial and hyperparameter figure
(``evalgate.sweep.analysis``) into its folder."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from evalgate.cli.common import ready_settings
from evalgate.core.settings import Settings
from evalgate.sweep.analysis import AnalysisFiles, searched_hyperparameters, write_analysis
from evalgate.sweep.config import SweepConfig

console = Console()
errors = Console(stderr=True)
EXIT_INTERRUPTED = 130
LINE_WIDTH = 80
"""Columns a shortened line (a stopped candidate's reason) fits in."""
MIN_REASON_WIDTH = 40
"""A stopped candidate's reason goes under its name when less room than this is left beside it."""
STOPPED_PREFIX = "stopped early at "
"""How a halted reason starts (``rung N (step S): why``); left off beside the stopped status."""
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
        bool,
        typer.Option(
            "--ray", help="Run rates, or fused groups of searched trials, as Ray Tune trials (evalgate[ray])."
        ),
    ] = False,
    asha: Annotated[bool, typer.Option(help="With --ray: stop weak rates early on validation loss.")] = False,
    cpus_per_trial: Annotated[float, typer.Option(help="With --ray: CPUs per trial.")] = 1.0,
    gpus_per_trial: Annotated[float, typer.Option(help="With --ray: GPUs per trial.")] = 0.0,
    max_concurrent: Annotated[int | None, typer.Option(help="With --ray: most trials at once.")] = None,
    groups: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="With --ray: train the trials in N fused groups, one Ray trial each (searched or halved "
            "configs always run in groups; default: one per trial slot that fits).",
        ),
    ] = None,
) -> None:
    """Train one LoRA candidate per learning rate (or trial of the search space); re-running the same
    config resumes it. Then write results.csv, best.yaml and hyperparameters.png into the sweep's folder."""

    if asha and not use_ray:
        raise typer.BadParameter("--asha needs --ray")
    if groups is not None and not use_ray:
        raise typer.BadParameter("--groups needs --ray")
    config = SweepConfig.from_yaml(config_path)
    settings = ready_settings()
    if use_ray:
        from evalgate.sweep.ray_tune import run_sweep_ray

        resources = {"cpu": cpus_per_trial} | ({"gpu": gpus_per_trial} if gpus_per_trial else {})
        result = resumable(
            lambda: run_sweep_ray(
                config,
                settings,
                resources_per_trial=resources,
                asha=asha,
                max_concurrent=max_concurrent,
                groups=groups,
            )
        )
    else:
        from evalgate.sweep.run import run_sweep

        result = resumable(lambda: run_sweep(config, settings, console=console, show_progress=progress))
    state = "resumed" if result.resumed else "new"
    console.print(f"sweep {result.sweep_id} ({state}) on {result.dataset}")
    print_candidates(result.candidates)
    analysis = result.analysis
    if analysis is None:  # a Ray sweep: written here
        from evalgate.sweep.records import sweep_root

        folder = sweep_root(settings, result.sweep_id)
        analysis = write_analysis(
            result.candidates, folder, searched_hyperparameters(config), config=config.to_dict()
        )
    print_analysis(analysis)
    mirror_to_mlflow(settings, result.sweep_id)


def mirror_to_mlflow(settings: Settings, sweep_id: int) -> None:
    """With ``EVALGATE_MLFLOW_TRACKING_URI`` set, mirror the sweep into MLflow and say where; a tracking
    failure is a warning (``evalgate.tracking.target``), never the command's failure."""
    from evalgate.tracking.target import sync_if_configured

    report = sync_if_configured(settings, sweep_id=sweep_id)
    if report is not None:
        console.print(report.describe(), soft_wrap=True)


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
    """One row per candidate: name, status, diagnosis, steps, loss first -> last step, last validation
    loss; under it the training speed. Fits 80 columns (a long name wraps at its spaces)."""
    table = Table(
        "candidate", "status", "diagnosis", "steps", "loss", "val",
        box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
    )  # fmt: skip
    for candidate in candidates:
        training = candidate["training"] or {}
        losses = training.get("loss") or []
        validation = training.get("validation_loss") or []
        table.add_row(
            candidate["name"],
            candidate["status"],
            candidate["diagnosis"] or "-",
            str(training.get("steps", "-")),
            f"{_loss(losses[0])}→{_loss(losses[-1])}" if losses else "-",
            _loss(validation[-1][1]) if validation else "-",
        )
    table.caption = speed_line(candidates)
    table.caption_justify = "left"
    return table


def print_candidates(candidates: list[dict[str, Any]], out: Console = console) -> None:
    """The table, then one ``candidate_line`` each, not wrapped (a long path stays whole to copy)."""
    out.print(candidates_table(candidates))
    for candidate in candidates:
        out.print(candidate_line(candidate), soft_wrap=True, highlight=False)


def _loss(value: Any) -> str:
    """A stored loss to 3 decimals; ``nan`` where it was not a number (JSON keeps NaN as null)."""
    return f"{value:.3f}" if isinstance(value, int | float) else "nan"


def speed_line(candidates: list[dict[str, Any]]) -> str:
    """``speed: A tok/s, B s wall``; a range ``low-high`` where the candidates differ (trained one after
    the other), one value where they trained together."""
    trainings = [candidate["training"] or {} for candidate in candidates]
    return f"speed: {_span(trainings, 'tokens_per_second')} tok/s, {_span(trainings, 'wall_seconds')} s wall"


def _span(trainings: list[dict[str, Any]], key: str) -> str:
    values = sorted({float(t[key]) for t in trainings if isinstance(t.get(key), int | float)})
    if not values:
        return "-"
    return f"{values[0]:g}" if len(values) == 1 else f"{values[0]:g}-{values[-1]:g}"


def candidate_line(candidate: dict[str, Any], width: int = LINE_WIDTH) -> str:
    """``name: detail``: for a stopped candidate the rung and why halving stopped it, cut to ``width``
    characters with an ellipsis (on its own indented line when the name leaves it under
    ``MIN_REASON_WIDTH``); else its error, else its adapter folder (whole, to be copied)."""
    halted = str((candidate["training"] or {}).get("halted") or "")
    name = candidate["name"]
    if candidate["status"] == "stopped" and halted:
        reason = halted.removeprefix(STOPPED_PREFIX)  # the status column says stopped
        if width - len(name) - 2 < MIN_REASON_WIDTH:
            return f"{name}:\n  " + shorten(reason, width - 2)
        return shorten(f"{name}: {reason}", width)
    return f"{name}: {candidate['error'] or candidate['adapter_uri'] or '-'}"


def shorten(text: str, width: int) -> str:
    """``text`` when it fits ``width`` characters, else its words that fit with `` …`` after them."""
    return text if len(text) <= width else textwrap.shorten(text, width, placeholder=" …")


def print_analysis(files: AnalysisFiles) -> None:
    """The paths of the results table, the best trial's config fragment (and why it won) and the
    hyperparameter figure; says so where there is no best trial or no figure."""
    console.print(f"results: {files.results}", soft_wrap=True)
    if files.best is not None and files.chosen is not None:
        console.print(f"best: {files.best}", soft_wrap=True)
        console.print(files.chosen.reason, soft_wrap=True)
    else:
        console.print("best: none (no candidate trained to the end without diverging)")
    figure = files.figure if files.figure is not None else "none (one candidate, or no loss to plot)"
    console.print(f"figure: {figure}", soft_wrap=True)
