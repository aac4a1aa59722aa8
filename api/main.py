"""The evalgate REST API (FastAPI).

    uvicorn api.main:app --host 0.0.0.0 --port 8000

    evalgate serve --with-worker        # the same, plus one worker (embedded default)

One router per resource: datasets, sweeps, candidates, evaluations, gate, jobs, tokens; plus the HTML
dashboard at ``/`` (``api/routers/dashboard.py``, first: it answers browsers on ``/sweeps/{id}``) and
the operations routes ``/livez``, ``/readyz``, ``/metrics`` and ``/problems/{slug}``
(``api/routers/operations.py``). Every route but those, ``/healthz`` and ``/login`` needs a token
(``evalgate tokens create NAME --scope read|write|admin``). The OpenAPI document is at
``/openapi.json``, interactive docs at ``/docs``. Training, generation and evaluation never run inside a
request: they are jobs, run by ``evalgate worker`` processes.

Conventions: every error answer is an RFC 9457 problem document (``application/problem+json``,
``api/problems.py``); list routes take ``limit`` and ``cursor`` and announce the next page in a
``Link`` header (``api/pagination.py``); a 202 names its job in ``Location``; every answer carries
``X-Request-ID`` (the client's own, made safe, or a new one), which every log line of the request names
(``api/logs.py``, ``api/telemetry.py``).

Hardening: every token is rate-limited (``api/ratelimit.py``, 429 with ``Retry-After``); while the
database is unreachable every route answers 503 with ``Retry-After`` and the service recovers by itself
when it returns (``api/errors.py``); no CORS headers are sent unless ``EVALGATE_CORS_ORIGINS`` lists the
browser origins allowed to call the API.
"""

from __future__ import annotations

import evalgate.core.quiet  # noqa: F401  (before the HF imports: silences their tqdm bars)

# isort: split

from typing import Any

from fastapi import FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware
from pydantic import BaseModel
from starlette.status import HTTP_503_SERVICE_UNAVAILABLE
from starlette.types import ASGIApp

from api import errors, logs, problems
from api.deps import AppState
from api.idempotency import IdempotentPosts
from api.metrics import Metrics
from api.routers import candidates, dashboard, datasets, evaluations, gate, jobs, operations, sweeps, tokens
from api.telemetry import REQUEST_ID_HEADER, Telemetry
from evalgate.core.settings import Settings, get_settings
from evalgate.data.store import DatasetStore
from evalgate.db.migrate import current_revision, head_revision
from evalgate.db.session import session_factory

ROUTERS = (dashboard, datasets, sweeps, candidates, evaluations, gate, jobs, tokens, operations)
PROBLEM_SCHEMA = {"$ref": "#/components/schemas/ProblemDetail"}
FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
"""FastAPI's own 422 schemas, replaced by ``ProblemDetail`` in the OpenAPI document."""
EXPOSED_HEADERS = ["Link", "Location", "Retry-After", REQUEST_ID_HEADER]
"""Response headers a cross-site browser client may read (when CORS is on)."""


class HealthPublic(BaseModel):
    """Whether the database answers and is at the latest migration."""

    status: str
    database: str
    schema_revision: str | None
    schema_head: str | None


class EvalgateApp(FastAPI):
    """FastAPI with ``Telemetry`` outside everything (so a 500 carries the request id and is counted
    too) and an OpenAPI document whose error answers are ``application/problem+json``."""

    def build_middleware_stack(self) -> ASGIApp:
        metrics: Metrics = self.state.metrics
        access_log = self.state.evalgate.settings.log_format == "json"
        return Telemetry(super().build_middleware_stack(), metrics.http, access_log=access_log)

    def openapi(self) -> dict[str, Any]:
        schema = super().openapi()
        problem_documents(schema)
        return schema


def problem_documents(schema: dict[str, Any]) -> None:
    """Serve the error answers of ``schema`` (an OpenAPI document) as ``application/problem+json`` with
    the ``ProblemDetail`` schema, FastAPI's own 422 schema included; an error answer documented with a
    body of its own (``/healthz``'s 503) is left as it is."""
    replaced = {f"#/components/schemas/{name}" for name in ("ProblemDetail", *FASTAPI_VALIDATION_SCHEMAS)}
    for operations_of_path in schema.get("paths", {}).values():
        for operation in operations_of_path.values():
            for status, answer in operation.get("responses", {}).items():
                if not (status.isdigit() and int(status) >= 400):
                    continue
                content = answer.setdefault("content", {})
                if content.get("application/json", {}).get("schema", {}).get("$ref") in (None, *replaced):
                    content.pop("application/json", None)
                    content[problems.MEDIA_TYPE] = {"schema": PROBLEM_SCHEMA}
    components = schema.get("components", {}).get("schemas", {})
    for name in FASTAPI_VALIDATION_SCHEMAS:
        components.pop(name, None)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    if settings.log_format is not None:
        logs.configure(settings.log_format)
    app = EvalgateApp(
        title="evalgate",
        version="0.1.0",
        description="Fine-tune regression gate: datasets, sweeps, candidates, evaluations, decisions.",
    )
    sessions = session_factory(settings.resolved_database_url)
    store = DatasetStore(sessions, settings.resolved_artifact_root, settings)
    app.state.evalgate = AppState(settings=settings, sessions=sessions, store=store)
    app.state.metrics = Metrics(sessions)
    for module in ROUTERS:
        app.include_router(module.router)
    if settings.metrics_access != "off":
        app.include_router(operations.metrics_router)
    errors.install(app)
    app.add_middleware(IdempotentPosts)  # inside the body-size limit: it reads keyed bodies whole
    app.add_middleware(errors.BodySizeLimit, limit=settings.max_upload_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", REQUEST_ID_HEADER],
            expose_headers=EXPOSED_HEADERS,
            allow_credentials=False,
            max_age=600,
        )

    @app.get(
        "/healthz",
        response_model=HealthPublic,
        tags=["health"],
        responses={503: {"model": HealthPublic, "description": "the database is unreachable"}},
    )
    def health(response: Response) -> HealthPublic:
        """Up (200) or database unreachable (503 with ``Retry-After``); and the schema revision."""
        url = settings.resolved_database_url
        head = head_revision(url)
        try:
            revision = current_revision(url)
        except errors.DATABASE_ERRORS as error:
            if not errors.database_unavailable(error):
                raise  # a bug, not an outage: the 500 every route would answer
            response.status_code = HTTP_503_SERVICE_UNAVAILABLE
            response.headers["Retry-After"] = str(errors.DATABASE_RETRY_AFTER_SECONDS)
            return HealthPublic(
                status="database unavailable", database="down", schema_revision=None, schema_head=head
            )
        status = "ok" if revision == head else "schema not at head: run evalgate db upgrade"
        return HealthPublic(status=status, database="up", schema_revision=revision, schema_head=head)

    return app


def __getattr__(name: str) -> FastAPI:
    """``api.main:app`` for uvicorn, built on first access so importing this module has no side effects."""
    if name == "app":
        return create_app()
    raise AttributeError(name)
