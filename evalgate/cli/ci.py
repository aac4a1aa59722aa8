"""``evalgate ci``: the weekly retrain job: train (or register), evaluate, gate, recommend, report.

    evalgate ci examples/ci.yaml                                    # in-process, on EVALGATE_DATABASE_URL
    evalgate ci examples/ci.yaml --server http://evalgate:8000 --token "$EVALGATE_TOKEN"

The config format is in ``evalgate/ci/config.py`` (example: ``examples/ci.yaml``); the outputs
(``junit.xml``, ``summary.md``, ``report.html``, ``result.json``) in ``evalgate/ci/outputs.py``.

Exit codes: 0 a candidate passed the gate and is recommended (and promoted with ``promote: true``);
1 every candidate is blocked, or none trained; 2 an error (bad config, unknown dataset, unreachable
server, failed job, incomparable runs...), printed as one line naming what was wrong.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from evalgate.ci.config import DEFAULT_JOB_TIMEOUT, DEFAULT_OUTPUTS, CiConfig
from evalgate.cli.common import USER_ERRORS, ready_settings
from evalgate.cli.sweep import resumable
from evalgate.core.timings import TIMINGS, format_timings, stage

if TYPE_CHECKING:
    from evalgate.ci.result import CiResult
    from evalgate.client import Client
    from evalgate.report.model import Counts, FailRates


console = Console()
errors = Console(stderr=True)
SERVER_RETRIES = 5
"""Retries of a request the server did not answer (exponential back-off from 0.5 s: about 15 s)."""


def ci(
    config_path: Annotated[Path, typer.Argument(help="CI job YAML (see examples/ci.yaml).")],
    server: Annotated[
        str | None, typer.Option(help="URL of an evalgate server; default: run in this process.")
    ] = None,
    token: Annotated[
        str | None, typer.Option(envvar="EVALGATE_TOKEN", help="API token (write scope) with --server.")
    ] = None,
    outputs: Annotated[
        Path | None,
        typer.Option(help="Outputs folder (default: the config's; ci-report when the config is unreadable)."),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1, help="With --server: seconds to wait for each job.")
    ] = DEFAULT_JOB_TIMEOUT,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Weekly retrain job: run or resume the sweep (or register adapters), evaluate on the pinned dataset,
    decide each candidate against the current baseline, recommend one, optionally promote it, and write
    junit.xml, summary.md, report.html and result.json.

    Exit codes:

    0: a candidate passed the gate and is recommended (and promoted with promote: true).

    1: every candidate is blocked, or none trained.

    2: an error (bad config, unknown dataset, unreachable server, failed job...), printed as one line.
    """
    from evalgate.ci.outputs import write_error_outputs
    from evalgate.ci.result import EXIT_ERROR

    title, folder = str(config_path), outputs or DEFAULT_OUTPUTS  # until the config is read
    try:
        config = CiConfig.from_yaml(config_path)
        title, folder = config.title, outputs or config.outputs
        result = resumable(
            lambda: run_job(config, folder, server=server, token=token, timeout=timeout, progress=progress)
        )
    except typer.Exit:
        raise
    except Exception as error:  # every failure is exit code 2 with one line (1 means "all blocked")
        message = " ".join(line.strip() for line in _describe(error, server).splitlines() if line.strip())
        if not _expected(error):
            errors.print(traceback.format_exc(), highlight=False, markup=False)
        errors.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        try:
            write_error_outputs(folder, title, message)
        except OSError as unwritable:
            errors.print(f"warning: no outputs written to {folder}: {unwritable}", highlight=False)
        raise typer.Exit(EXIT_ERROR) from None
    raise typer.Exit(result.exit_code)


def run_job(
    config: CiConfig,
    folder: Path,
    *,
    server: str | None = None,
    token: str | None = None,
    timeout: float = DEFAULT_JOB_TIMEOUT,
    progress: bool = True,
) -> CiResult:
    """Run the job, write its outputs into ``folder``, print the per-candidate table and the verdict."""
    from evalgate.ci.outputs import clear_outputs, write_outputs
    from evalgate.cli.ci_table import print_result

    TIMINGS.reset()
    clear_outputs(folder)
    result, note = _run(config, folder, server, token, timeout, progress)
    with stage("outputs"):
        write_outputs(result, folder, report_note=note)
    print_result(console, result)
    chosen = result.recommended
    console.print(
        f"recommended: [bold]{escape(chosen.label)}[/]" if chosen else "no candidate passed the gate"
    )
    if result.promoted is not None:
        console.print(f"promoted {escape(chosen.label) if chosen else '-'} as the baseline of {config.model}")
    console.print(f"outputs in {folder}/ (exit code {result.exit_code})")
    console.print("time by stage (wall clock, this process):", highlight=False)
    console.print("\n".join(format_timings(TIMINGS.snapshot())), highlight=False, markup=False)
    return result


def _run(
    config: CiConfig, folder: Path, server: str | None, token: str | None, timeout: float, progress: bool
) -> tuple[CiResult, str]:
    """The result, after writing report.html when the sweep's database is at hand; and the report note."""
    if server is None:
        from evalgate.ci.local import run_standalone

        settings = ready_settings()
        result = run_standalone(config, settings, console=console, progress=progress)
        url = settings.resolved_database_url
        result = replace(result, fail_rates=_fail_rates(result, lambda run_ids: _stored_counts(url, run_ids)))
    else:
        from evalgate.ci.rest import run_server
        from evalgate.client import Client
        from evalgate.core.settings import Settings

        if not token:
            raise ValueError("--server needs a token: give --token or set EVALGATE_TOKEN")
        with Client(server, token, retries=SERVER_RETRIES) as client:
            result = run_server(config, client, console=console, timeout=timeout)
            result = replace(result, fail_rates=_fail_rates(result, lambda ids: _served_counts(client, ids)))
        url = Settings().resolved_database_url  # not get_settings(): nothing is created here
    with stage("report"):
        return result, _write_report(result, folder, url)


def _fail_rates(result: CiResult, counts: Callable[[list[int]], dict[int, Counts]]) -> FailRates | None:
    """``fail_rates_for``; None, with a warning, when the counts cannot be read (the verdicts stand)."""
    from evalgate.ci.result import fail_rates_for

    try:
        return fail_rates_for(result, counts)
    except Exception as error:  # a summary table is not worth failing the job for
        errors.print(f"warning: no eval-fail rates: {type(error).__name__}: {error}", highlight=False)
        return None


def _stored_counts(database_url: str, run_ids: list[int]) -> dict[int, Counts]:
    """Fail counts from the per-row verdicts in the database."""
    from evalgate.db.session import session_factory, session_scope
    from evalgate.report.fail_rates import run_fail_counts

    with session_scope(session_factory(database_url)) as session:
        return run_fail_counts(session, run_ids)


def _served_counts(client: Client, run_ids: list[int]) -> dict[int, Counts]:
    """Fail counts from the runs' summaries, read through the server's API."""
    from evalgate.report.fail_rates import summary_fail_counts

    found = {}
    for run_id in dict.fromkeys(run_ids):
        response = client.http.get(f"/evaluations/{run_id}")
        response.raise_for_status()
        found[run_id] = summary_fail_counts(response.json().get("summary") or {})
    return found


def _write_report(result: CiResult, folder: Path, database_url: str) -> str:
    """Render report.html from the sweep's database when this process can read it; the summary's note."""
    from evalgate.ci.rest import local_sweep_database

    if result.sweep_id is None:
        return "no report.html: it reports sweeps, and this run evaluated registered candidates"
    name = result.config.sweep.name if result.config.sweep else ""
    sessions = local_sweep_database(database_url, result.sweep_id, name, result.dataset_hash)
    if sessions is None:
        return f"the HTML report is served by the dashboard at {result.server}/sweeps/{result.sweep_id}"
    from evalgate.report.sweep import render_sweep_report

    try:
        html = render_sweep_report(sessions, result.sweep_id, title=f"evalgate ci: {result.config.title}")
    except Exception as error:  # the verdicts stand without the report
        errors.print(f"warning: report.html not written: {type(error).__name__}: {error}", highlight=False)
        return f"report.html could not be rendered ({type(error).__name__}: {error})"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.html").write_text(html, encoding="utf-8")
    return f"`report.html` in the outputs folder (sweep {result.sweep_id})"


def _expected(error: Exception) -> bool:
    """Errors a user can act on from their message alone (no traceback needed)."""
    import httpx

    from evalgate.client import ApiError, JobFailed

    known = (*USER_ERRORS, ApiError, JobFailed, TimeoutError, httpx.HTTPError, LookupError, OSError)
    return isinstance(error, known)


def _describe(error: Exception, server: str | None) -> str:
    """One line naming what was wrong."""
    import httpx

    if isinstance(error, httpx.TransportError):
        return f"cannot reach the evalgate server at {server}: {type(error).__name__}: {error}"
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    return str(error) if _expected(error) else f"{type(error).__name__}: {error}"
