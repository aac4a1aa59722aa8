"""Engines and sessions for SQLite (embedded default) and PostgreSQL (production).

PostgreSQL engines ping a pooled connection before handing it out (``pool_pre_ping``), so after a
server restart the dead connections are replaced and the service recovers by itself; a new connection
gives up after ``POSTGRES_CONNECT_TIMEOUT_SECONDS`` (unless the URL sets ``connect_timeout``) so a
request to a server that does not answer fails fast instead of hanging.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from evalgate.core.settings import get_settings

SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    """Foreign keys on, WAL for concurrent readers, wait instead of failing on a locked file."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def make_engine(url: str, **engine_options: Any) -> Engine:
    """An engine for ``url``; SQLite connections get the pragmas of ``_tune_sqlite``."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False}, **engine_options)
        event.listen(engine, "connect", _tune_sqlite)
        return engine
    connect_args: dict[str, Any] = {}
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_SECONDS
    connect_args.update(engine_options.pop("connect_args", {}))
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **engine_options)


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """One shared engine per URL in this process."""
    return make_engine(url)


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    """A session factory bound to ``url`` (default: the settings' database)."""
    engine = engine_for(url or get_settings().resolved_database_url)
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
