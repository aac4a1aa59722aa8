"""``evalgate serve``, ``evalgate worker`` and ``evalgate tokens``: the REST service and its workers."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from evalgate.cli.common import ready_settings
from evalgate.cli.json_output import JsonOption, TokenJson, TokenList, emit
from evalgate.service.api_tokens import SCOPES, create_token, list_tokens, revoke_token

console = Console()
tokens_app = typer.Typer(help="REST API tokens (stored hashed; shown once).", no_args_is_help=True)


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(help="A unique name, e.g. the pipeline using it.")],
    scope: Annotated[
        str, typer.Option(help=f"One of {', '.join(SCOPES)} (each includes the lower).")
    ] = "read",
) -> None:
    """Create a token and print it (the only time it is shown)."""
    from evalgate.db.session import session_factory

    token = create_token(session_factory(ready_settings().resolved_database_url), name, scope)
    console.print(token, highlight=False, soft_wrap=True)


@tokens_app.command("list")
def tokens_list(as_json: JsonOption = False) -> None:
    """Every token's name, scope and state (never the secret)."""
    from evalgate.db.session import session_factory

    tokens = list_tokens(session_factory(ready_settings().resolved_database_url))
    if as_json:
        emit(TokenList(tokens=[TokenJson.model_validate(asdict(info)) for info in tokens]))
        return
    table = Table("id", "name", "scope", "created", "state")
    for info in tokens:
        state = "revoked" if info.revoked else "live"
        table.add_row(
            str(info.id), info.name, info.scope, info.created_at.isoformat(timespec="seconds"), state
        )
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(name: Annotated[str, typer.Argument(help="The token's name.")]) -> None:
    """Revoke a token."""
    from evalgate.db.session import session_factory

    revoke_token(session_factory(ready_settings().resolved_database_url), name)
    console.print(f"revoked {name}")


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="API processes (uvicorn workers).")] = 1,
    with_worker: Annotated[
        bool, typer.Option("--with-worker", help="Also run one job worker in this process.")
    ] = False,
    fd: Annotated[
        int | None,
        typer.Option(
            "--fd",
            help="Serve on this inherited, already listening socket (a file descriptor, as a supervisor "
            "or a test passes it) instead of binding --host and --port.",
        ),
    ] = None,
    log_format: Annotated[
        str, typer.Option("--log-format", help="text, or json (one object per line); both with request ids.")
    ] = "text",
) -> None:
    """Serve the REST API (OpenAPI docs at /docs)."""
    import uvicorn

    if log_format not in ("text", "json"):
        raise typer.BadParameter(f"text or json, got {log_format!r}", param_hint="--log-format")
    os.environ["EVALGATE_LOG_FORMAT"] = log_format  # read by the app in this process and in each worker
    settings = ready_settings()
    if with_worker:
        worker = _worker(settings)
        threading.Thread(target=worker.run, name="evalgate-worker", daemon=True).start()
        console.print(f"worker {worker.name} running beside the API")
    if workers > 1:
        uvicorn.run("api.main:app", host=host, port=port, fd=fd, workers=workers, log_level="warning")
        return
    uvicorn.run("api.main:create_app", factory=True, host=host, port=port, fd=fd, log_level="info")


def worker(
    once: Annotated[bool, typer.Option("--once", help="Run the queued jobs, then exit.")] = False,
    name: Annotated[str | None, typer.Option(help="Worker name (default host:pid).")] = None,
) -> None:
    """Claim and run jobs (sweeps, evaluations) until stopped; SIGTERM hands the current job back."""

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    runner = _worker(ready_settings(), name)
    runner.stop_on_signals()
    console.print(f"worker {runner.name}: waiting for jobs")
    done = runner.run(once=once)
    console.print(f"worker {runner.name}: stopped after {done} job(s)")


def _worker(settings, name: str | None = None):  # type: ignore[no-untyped-def]
    from evalgate.db.session import session_factory
    from evalgate.service.handlers import handlers
    from evalgate.service.worker import HEARTBEAT_SECONDS, Worker

    return Worker(
        session_factory(settings.resolved_database_url),
        handlers(settings),
        name=name,
        lease_seconds=settings.job_lease_seconds,
        heartbeat_seconds=settings.job_heartbeat_seconds
        or min(HEARTBEAT_SECONDS, settings.job_lease_seconds / 4),
    )
