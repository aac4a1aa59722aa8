"""The evalgate REST API (FastAPI).

    uvicorn api.main:app --host 0.0.0.0 --port 8000

    evalgate serve --with-worker        # the same, plus one worker (embedded default)

One router per resource: datasets, sweeps, candidates, evaluations, gate, jobs, tokens; plus the HTML
dashboard at ``/`` (``api/routers/dashboard.py``, first: it answers browsers on ``/sweeps/{id}``). Every
route but ``/healthz`` and ``/login`` needs a token (``evalgate tokens create NAME --scope
read|write|admin``). The OpenAPI document is at ``/openapi.json``, interactive docs at ``/docs``.
Training, generation and evaluation never run inside a request: they are jobs, run by ``evalgate
worker`` processes.

Hardening: every token is rate-limited (``api/ratelimit.py``, 429 with ``Retry-After``); while the
database is unreachable every route answers 503 with ``Retry-After`` and the service recovers by itself
when it returns (``api/errors.py``); no CORS headers are sent unless ``EVALGATE_CORS_ORIGINS`` lists the
browser origins allowed to call the API.
"""

from __future__ import annotations

import evalgate.core.quiet  # noqa: F401  (before the HF imports: silences their tqdm bars)

# isort: split

from fastapi import FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware
from pydantic import BaseModel
from starlette.status import HTTP_503_SERVICE_UNAVAILABLE

from api import errors
from api.deps import AppState
from api.routers import candidates, dashboard, datasets, evaluations, gate, jobs, sweeps, tokens
from evalgate.core.settings import Settings, get_settings
from evalgate.data.store import DatasetStore
from evalgate.db.migrate import current_revision, head_revision
from evalgate.db.session import session_factory

ROUTERS = (dashboard, datasets, sweeps, candidates, evaluations, gate, jobs, tokens)


class HealthPublic(BaseModel):
    """Whether the database answers and is at the latest migration."""

    status: str
    database: str
    schema_revision: str | None
    schema_head: str | None


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    app = FastAPI(
        title="evalgate",
        version="0.1.0",
        description="Fine-tune regression gate: datasets, sweeps, candidates, evaluations, decisions.",
    )
    sessions = session_factory(settings.resolved_database_url)
    store = DatasetStore(sessions, settings.resolved_artifact_root, settings)
    app.state.evalgate = AppState(settings=settings, sessions=sessions, store=store)
    for module in ROUTERS:
        app.include_router(module.router)
    errors.install(app)
    app.add_middleware(errors.BodySizeLimit, limit=settings.max_upload_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
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
