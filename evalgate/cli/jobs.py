"""``evalgate jobs ...``: the background jobs (sweeps, evaluations) queued in the configured database.

evalgate jobs list --status running     # newest first
evalgate jobs show 12 --json            # status, attempts, progress, log tail, result or error
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from evalgate.cli.common import ready_settings
from evalgate.cli.json_output import JobJson, JobList, JsonOption, emit
from evalgate.db.models import JOB_STATUSES

if TYPE_CHECKING:
    from evalgate.db.models import Job

app = typer.Typer(help="Background jobs (sweeps, evaluations) run by the workers.", no_args_is_help=True)
console = Console()
LOG_LINES = 20
"""Lines of a job's log tail that ``jobs show`` prints (``--json`` carries all of it)."""


MAX_ID = 2**31 - 1
"""Largest id the database holds (32-bit INTEGER on PostgreSQL)."""


class JobNotFoundError(ValueError):
    """No job has the id asked for."""


@app.command("show")
def show(
    job_id: Annotated[int, typer.Argument(min=1, max=MAX_ID, help="The job's id (as the API's /jobs/{id}).")],
    as_json: JsonOption = False,
) -> None:
    """A job's status, attempts, progress, the tail of its log, and its result or error."""
    found = next(iter(read_jobs(job_id=job_id)), None)
    if found is None:
        raise JobNotFoundError(f"job {job_id} not found")
    if as_json:
        emit(found)
        return
    print_job(found)


def print_job(job: JobJson) -> None:
    """A job for a person: state, attempts, times, progress, result or error, and its last log lines."""
    worker = f", worker {job.locked_by}" if job.locked_by else ""
    console.print(f"[bold]job {job.id}[/] {escape(job.kind)}: {escape(job.status)}", highlight=False)
    console.print(
        f"attempt {job.attempts} of {job.max_attempts}, created {job.created_at:%F %T}, "
        f"updated {job.updated_at:%F %T}{worker}",
        highlight=False,
        markup=False,
    )
    for label, value in (("progress", job.progress), ("result", job.result), ("error", job.error)):
        if value:
            console.print(f"{label}: {value}", highlight=False, markup=False, soft_wrap=True)
    tail = job.log_tail.splitlines()[-LOG_LINES:]
    if tail:
        console.print("log:\n" + "\n".join(f"  {line}" for line in tail), highlight=False, markup=False)


@app.command("list")
def list_jobs(
    status: Annotated[
        str | None, typer.Option(help=f"Only jobs of this status: {', '.join(JOB_STATUSES)}.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="At most this many, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """Jobs, newest first."""
    if status is not None and status not in JOB_STATUSES:
        raise typer.BadParameter(f"one of {', '.join(JOB_STATUSES)}, got {status!r}", param_hint="--status")
    jobs = read_jobs(status=status, limit=limit)
    if as_json:
        emit(JobList(jobs=jobs))
        return
    table = Table("id", "kind", "status", "attempts", "updated", "error")
    for job in jobs:
        table.add_row(
            str(job.id),
            job.kind,
            job.status,
            f"{job.attempts}/{job.max_attempts}",
            f"{job.updated_at:%F %T}",
            (job.error or "").splitlines()[0] if job.error else "",
        )
    console.print(table)


def read_jobs(*, job_id: int | None = None, status: str | None = None, limit: int = 50) -> list[JobJson]:
    """Jobs from the configured database, newest first: the one with ``job_id``, or those of
    ``status`` (every status when None)."""
    from sqlalchemy import select

    from evalgate.db.models import Job
    from evalgate.db.session import session_factory, session_scope

    query = select(Job).order_by(Job.id.desc()).limit(limit)
    if job_id is not None:
        query = query.where(Job.id == job_id)
    if status is not None:
        query = query.where(Job.status == status)
    with session_scope(session_factory(ready_settings().resolved_database_url)) as session:
        return [JobJson.model_validate(_fields(job)) for job in session.scalars(query)]


def _fields(job: Job) -> dict[str, Any]:
    """The job row's columns that ``JobJson`` declares."""
    return {name: getattr(job, name) for name in JobJson.model_fields}
