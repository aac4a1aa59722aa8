"""The evalgate REST API (FastAPI).

    uvicorn api.main:app --host 0.0.0.0 --port 8000

So far it serves its health; the resources (datasets, candidates, decisions) arrive as routers.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from evalgate.db.migrate import current_revision, head_revision
from evalgate.settings import Settings, get_settings


class HealthPublic(BaseModel):
    """Whether the database answers and is at the latest migration."""

    status: str
    database: str
    schema_revision: str | None
    schema_head: str | None


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for ``settings`` (default: from the environment)."""
    settings = settings or get_settings()
    app = FastAPI(title="evalgate", version="0.1.0")

    @app.get("/healthz", response_model=HealthPublic)
    def health() -> HealthPublic:
        url = settings.resolved_database_url
        head = head_revision(url)
        try:
            revision = current_revision(url)
        except SQLAlchemyError:
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
