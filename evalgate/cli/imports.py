"""``evalgate import``: evaluation results made by other tools, stored as evaluation runs.

evalgate import lm-eval out/base --model base --dataset suite@v1      # the base model's lm-eval run
evalgate import lm-eval out/cand --model 7 --dataset suite@v1         # candidate 7's, paired with it
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from evalgate.cli.common import ready_settings
from evalgate.cli.evaluate import run_table

console = Console()
app = typer.Typer(help="Import evaluation results made by other tools.", no_args_is_help=True)


@app.command("lm-eval")
def lm_eval(
    folder: Annotated[
        Path, typer.Argument(help="lm-eval's --output_path (or its model subfolder), run with --log_samples.")
    ],
    model: Annotated[str, typer.Option(help="Whose results: 'base' or a candidate id.")],
    dataset: Annotated[str, typer.Option(help="NAME@vN: the dataset version the run is filed under.")],
    baseline_run: Annotated[
        int | None,
        typer.Option(help="A candidate's base-model lm-eval import to pair with (default: the newest)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap intervals.")] = 0,
) -> None:
    """Store lm-eval's per-document scores as one finished evaluation run: cohort lmeval_<task>,
    evaluator = the metric (acc, exact_match, ...), row id <task>:<doc_id>. A candidate's run gets
    paired deltas against the base model's import, so the gate can check benchmark forgetting."""
    from evalgate.evaluation.lm_eval_import import import_lm_eval

    settings = ready_settings()
    result = import_lm_eval(
        folder, model=model, dataset=dataset, settings=settings, baseline_run_id=baseline_run, seed=seed
    )
    provenance = result.summary["lm_eval"]
    paired = result.summary.get("baseline_run_id")
    console.print(
        f"[bold]{result.label}[/] lm-eval run stored as evaluation run {result.run_id} "
        f"({len(provenance['tasks'])} tasks, {result.summary['rows']} documents, "
        f"from {provenance['results_file']})" + (f"; paired with base run {paired}" if paired else "")
    )
    console.print(run_table(result.summary))
