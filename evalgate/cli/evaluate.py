"""``evalgate evaluate``: score the base model and a sweep's candidates on the pinned dataset version.

evalgate evaluate --sweep 3                       # base + every trained candidate of sweep 3
evalgate evaluate --dataset suite@v1              # the base model alone (--base-model to choose it)
evalgate evaluate --sweep 3 --output-path out     # and each run as lm-eval output in out/<model>/
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from evalgate.cli.common import ready_settings
from evalgate.cli.json_output import EvaluationJson, JsonOption, emit, evaluation_run, stdout_to_stderr
from evalgate.core.settings import Settings
from evalgate.evaluation.options import EvaluationOptions
from evalgate.evaluation.progress import task_bars
from evalgate.modeling.refs import EMBEDDED_DEFAULT_MODEL

if TYPE_CHECKING:
    from evalgate.evaluation.run import RunResult

console = Console()
notes = Console(stderr=True)
"""Where side notes go (stdout may be JSON)."""
DEFAULTS = EvaluationOptions()
"""The options' defaults, shown as the flags' defaults (written once, in ``EvaluationOptions``)."""


def evaluate(
    sweep: Annotated[
        int | None, typer.Option(help="Evaluate the base model and this sweep's candidates.")
    ] = None,
    dataset: Annotated[str | None, typer.Option(help="NAME@vN: evaluate the base model alone.")] = None,
    evaluators: Annotated[
        list[str] | None, typer.Option("--evaluator", "-e", help="Evaluator name (repeatable); default all.")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Answer budget in tokens.")] = DEFAULTS.max_new_tokens,
    cohort_max_new_tokens: Annotated[
        list[str] | None,
        typer.Option(
            "--cohort-max-new-tokens", metavar="COHORT=N", help="Answer budget of one cohort (repeatable)."
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Rows per generation batch.")] = DEFAULTS.batch_size,
    base_model: Annotated[
        str, typer.Option(help="Base model with --dataset (default: the embedded SmolLM2).")
    ] = EMBEDDED_DEFAULT_MODEL,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = DEFAULTS.device,
    precision: Annotated[str, typer.Option(help="auto, fp32, bf16 or fp16.")] = DEFAULTS.precision,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap intervals.")] = DEFAULTS.seed,
    mixed_adapters: Annotated[
        bool, typer.Option(help="Answer with every model in one batched pass (else one pass per model).")
    ] = DEFAULTS.mixed_adapters,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    output_path: Annotated[
        Path | None,
        typer.Option(help="Also write each run as lm-eval output (results + samples) in DIR/<model>."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Generate (cached) answers, score every eval row, and print means, intervals and deltas vs base."""
    from evalgate.evaluation.run import evaluate_model, evaluate_sweep

    if (sweep is None) == (dataset is None):
        raise typer.BadParameter("give exactly one of --sweep and --dataset")
    options = EvaluationOptions.from_dict(
        {
            "evaluators": evaluators or None,
            "max_new_tokens": max_new_tokens,
            "cohort_max_new_tokens": _budgets(cohort_max_new_tokens or []),
            "batch_size": batch_size,
            "device": device,
            "precision": precision,
            "seed": seed,
            "mixed_adapters": mixed_adapters,
        }
    )
    settings = ready_settings()
    with stdout_to_stderr(as_json), task_bars(console, progress) as bars:
        if sweep is not None:
            results = evaluate_sweep(sweep, settings, options, progress=bars)
        else:
            assert dataset is not None
            results = [evaluate_model(base_model, dataset, settings, options, progress=bars)]
    if output_path is not None:
        _write_lm_eval_output(results, output_path, settings)
    if as_json:
        emit(EvaluationJson(runs=[evaluation_run(result) for result in results]))
        return
    for result in results:
        cached = result.summary.get("rows", 0) - result.generated_rows
        console.print(
            f"\n[bold]{result.label}[/] (run {result.run_id}; {result.generated_rows} answers generated, "
            f"{cached} cached)"
        )
        console.print(run_table(result.summary))


def _write_lm_eval_output(results: list[RunResult], folder: Path, settings: Settings) -> None:
    """Each run as lm-eval output in ``folder/base`` or ``folder/candidate_<id>``, one date for all."""
    from evalgate.data.store import DatasetStore
    from evalgate.evaluation.lm_eval_export import output_date, write_lm_eval_output

    store, date = DatasetStore.from_settings(settings), output_date()
    for result in results:
        name = "base" if result.candidate_id is None else f"candidate_{result.candidate_id}"
        written = write_lm_eval_output(store, result.run_id, folder / name, date)
        notes.print(f"{result.label}: lm-eval output {written[0]} and {len(written) - 1} samples files")


def _budgets(items: list[str]) -> dict[str, int]:
    """``["ood=24", "safety=16"]`` -> ``{"ood": 24, "safety": 16}``."""
    budgets = {}
    for item in items:
        cohort, _, number = item.partition("=")
        if not cohort or not number.strip().isdigit():
            raise typer.BadParameter(f"{item!r}: expected COHORT=N", param_hint="--cohort-max-new-tokens")
        budgets[cohort] = int(number)
    return budgets


def run_table(summary: dict[str, Any]) -> Table:
    """Evaluator x cohort: n, mean [95% interval], fail rate, and the paired delta vs base when present."""
    deltas = summary.get("deltas", {})
    table = Table(show_header=True, header_style="bold")
    for column in ("evaluator", "cohort", "n", "mean [95% CI]", "fail rate"):
        table.add_column(column, justify="left" if column in ("evaluator", "cohort") else "right")
    if deltas:
        table.add_column("delta vs base [95% CI]", justify="right")
    for evaluator, cohorts in summary.get("aggregates", {}).items():
        direction = (
            "↑" if summary.get("evaluators", {}).get(evaluator, {}).get("higher_is_better", True) else "↓"
        )
        for cohort, entry in cohorts.items():
            cells = [
                f"{evaluator} {direction}",
                cohort,
                str(entry["n"]),
                _interval(entry.get("mean"), entry.get("ci_low"), entry.get("ci_high")),
                "-" if entry.get("fail_rate") is None else f"{entry['fail_rate']:.0%}",
            ]
            if deltas:
                delta = deltas.get(evaluator, {}).get(cohort)
                cells.append(
                    _interval(delta["mean"], delta["ci_low"], delta["ci_high"], signed=True) if delta else "-"
                )
            table.add_row(*cells)
    return table


def _interval(mean: float | None, low: float | None, high: float | None, signed: bool = False) -> str:
    if mean is None or low is None or high is None:
        return "-"
    sign = "+" if signed else ""
    return f"{mean:{sign}.3f} [{low:{sign}.3f}, {high:{sign}.3f}]"
