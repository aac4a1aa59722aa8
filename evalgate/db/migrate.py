"""Run the Alembic migrations in ``migrations/`` from Python (``evalgate db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from evalgate.core.paths import MIGRATIONS_DIR
from evalgate.db.session import engine_for


class SchemaNotReadyError(RuntimeError):
    """The database is not at the latest migration."""


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at this repository's migrations and at ``url``."""
    if not MIGRATIONS_DIR.is_dir():
        raise RuntimeError(
            f"migrations folder not found at {MIGRATIONS_DIR}: install evalgate from its source "
            "checkout (pip install -e .) so the migrations travel with it"
        )
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` up to ``revision`` (creates it from empty)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at (None when empty)."""
    with engine_for(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(url: str) -> str | None:
    """The newest revision in ``migrations/``."""
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def ensure_schema(url: str) -> None:
    """Make sure the database is at head: SQLite (embedded) is upgraded in place; others must be
    upgraded explicitly with ``evalgate db upgrade``, so production schema changes stay deliberate."""
    head = head_revision(url)
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        if current_revision(url) != head:
            upgrade(url)
        return
    current = current_revision(url)
    if current != head:
        raise SchemaNotReadyError(
            f"database schema is at {current or 'empty'}, not {head}: run `evalgate db upgrade`"
        )
