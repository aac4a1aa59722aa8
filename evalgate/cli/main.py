"""The ``evalgate`` command line.

    evalgate demo                      # the main job: suite, 4-rate sweep, evaluation, gate, report
    evalgate ci CONFIG.yaml            # the weekly retrain job (exit 0 pass, 1 all blocked, 2 error)
    evalgate datasets add NAME FILE... # a new dataset version
    evalgate sweep CONFIG.yaml         # one LoRA candidate per learning rate
    evalgate lr-find CONFIG.yaml       # propose a rate grid
    evalgate evaluate --sweep ID       # answers + per-row scores of the base model and each candidate
    evalgate gate --sweep ID --policy P.yaml   # decide each candidate, recommend one
    evalgate score -e NAME --input rows.jsonl --output scored.jsonl   # score your own rows
    evalgate serve [--with-worker]     # the REST API (and, embedded, one job worker)
    evalgate worker                    # run queued sweeps and evaluations
    evalgate tokens create NAME --scope write   # an API token (shown once)
    evalgate jobs show ID --json       # a background job's status (--json on every read command)
    evalgate db upgrade                # migrate the configured database

Errors a user can fix (bad input, unknown dataset, tampered file, unmigrated database) print one
clear line and exit with code 2.
"""

from __future__ import annotations

import evalgate.core.quiet  # noqa: F401  (before the HF imports: silences their tqdm bars)

# isort: split

import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from evalgate.ci.config import CiConfig
from evalgate.cli import ci as cli_ci
from evalgate.cli import evaluate as cli_evaluate
from evalgate.cli import gate as cli_gate
from evalgate.cli import jobs as cli_jobs
from evalgate.cli import score as cli_score
from evalgate.cli import service as cli_service
from evalgate.cli import sweep as cli_sweep
from evalgate.cli.common import EXIT_USER_ERROR, USER_ERRORS, ready_settings
from evalgate.cli.datasets import app as datasets_app
from evalgate.cli.datasets import counts_table
from evalgate.cli.imports import app as imports_app
from evalgate.core.paths import BUNDLED_SUITE_DIR, BUNDLED_SUITE_NAME, MAIN_JOB_CONFIG
from evalgate.core.settings import get_settings
from evalgate.data.store import DatasetStore
from evalgate.db.migrate import (
    current_revision,
    head_revision,
    upgrade,
)
from evalgate.sweep.config import SweepConfig

typer_app = typer.Typer(
    help="evalgate: sweep LoRA learning rates, evaluate, gate regressions.", no_args_is_help=True
)
typer_app.add_typer(datasets_app, name="datasets")
typer_app.command("sweep")(cli_sweep.sweep)
typer_app.command("evaluate")(cli_evaluate.evaluate)
typer_app.command("score")(cli_score.score)
typer_app.command("gate")(cli_gate.gate)
typer_app.command("ci")(cli_ci.ci)
typer_app.command("lr-find")(cli_sweep.lr_find)
typer_app.command("serve")(cli_service.serve)
typer_app.command("worker")(cli_service.worker)
typer_app.add_typer(cli_service.tokens_app, name="tokens")
typer_app.add_typer(imports_app, name="import")
typer_app.add_typer(cli_jobs.app, name="jobs")
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
typer_app.add_typer(db_app, name="db")
console = Console()
errors = Console(stderr=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the Alembic migrations to the configured database."""
    url = get_settings().resolved_database_url
    upgrade(url, revision)
    console.print(f"database at {revision}")


@db_app.command("current")
def db_current() -> None:
    """Print the configured database's migration revision and the newest one; exit 1 when behind."""
    settings = get_settings()
    url = settings.resolved_database_url
    current, head = current_revision(url), head_revision(url)
    console.print(f"database {settings.display_database_url}\nrevision {current}\nhead     {head}")
    if current != head:
        errors.print("the database is not at head: run evalgate db upgrade")
        raise typer.Exit(1)


@typer_app.command()
def demo(
    config_path: Annotated[
        Path, typer.Option("--config", help="CI job YAML of the main job.")
    ] = MAIN_JOB_CONFIG,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """The main job on the embedded default: import the bundled suite, sweep 4 learning rates, evaluate
    the base model and each candidate, gate them, recommend one, and write the report."""
    settings = ready_settings()
    console.print(f"evalgate home: {settings.home}\ndatabase: {settings.display_database_url}")
    files = sorted(str(path) for path in BUNDLED_SUITE_DIR.glob("*.jsonl"))
    result = DatasetStore.from_settings(settings).add(
        BUNDLED_SUITE_NAME,
        files,
        description="bundled JSON-extraction target task, out-of-domain and safety cohorts",
    )
    label = result.version.label
    state = "imported" if result.created else "already stored as"
    console.print(f"bundled suite {state} [bold]{label}[/] (sha256 {result.version.content_hash[:16]})")
    console.print(counts_table(result.version))
    config = CiConfig.from_yaml(config_path)
    if config.sweep is None:
        raise ValueError(f"{config_path}: the main job needs a sweep")
    sweep = replace(config.sweep, dataset=label)
    config = replace(config, dataset=label, sweep=sweep)
    console.print(f"sweep {sweep.name!r}: {sweep.base_model}, {_trials_text(sweep)}")
    folder = settings.home / "reports" / sweep.name
    job = cli_sweep.resumable(lambda: cli_ci.run_job(config, folder, progress=progress))
    console.print(
        f"report: {folder / 'report.html'}\n"
        "dashboard: evalgate serve, then open http://127.0.0.1:8000/ and log in with a token from "
        "`evalgate tokens create me --scope read`"
    )
    if job.exit_code == EXIT_USER_ERROR:
        raise typer.Exit(EXIT_USER_ERROR)


def _trials_text(sweep: SweepConfig) -> str:
    """What the sweep trains: its rates, or its search's sampler and trial budget."""
    if sweep.search is None:
        return "rates " + ", ".join(f"{rate:g}" for rate in sweep.learning_rates)
    budget = f"{sweep.search.trials} " if sweep.search.trials else ""
    halving = ", successive halving" if sweep.halving else ""
    return f"a {sweep.search.sampler} search of {budget}trials{halving}"


def _run_guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    def main(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as error:
            errors.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
            sys.exit(EXIT_USER_ERROR)

    return main


app = _run_guarded(typer_app)
