"""Engines and sessions for SQLite (embedded default) and PostgreSQL (production).

A PostgreSQL engine pings a pooled connection that has been idle for more than
``PING_AFTER_IDLE_SECONDS`` before handing it out, and replaces it if the ping fails, so after a server
restart the dead connections are replaced and the service recovers by itself. A busy connection is
handed out without a ping (it saves a round trip per request); if the server went away meanwhile, the
statement fails as a disconnect, SQLAlchemy discards every connection made before it, and the next
checkout opens a new one. A new connection gives up after ``POSTGRES_CONNECT_TIMEOUT_SECONDS`` (unless
the URL sets ``connect_timeout``) so a request to a server that does not answer fails fast instead of
hanging, and TCP keepalives and a user timeout (``POSTGRES_CONNECTION_LIVENESS``) bound how long a
connection to a server that vanished silently can hold a request. The pool keeps
``POSTGRES_POOL_SIZE`` connections open (``POSTGRES_MAX_OVERFLOW`` more under a burst, as many as the
API's worker threads can use at once), so a busy server does not open and close a connection per
request (SQLAlchemy's default keeps 5 and closes the rest on return: at 8 concurrent requests most
paid for a new connection).

``read_scope`` is ``session_scope`` for reads only: its connection runs in autocommit, so the reads
cost no BEGIN and COMMIT round trips (each statement sees the data committed before it, as in a
READ COMMITTED transaction).

``joined_transaction`` makes every ``session_scope`` and ``read_scope`` opened within it (in this
context, and in the threads and tasks started from it) join one transaction on one connection: a
session's commit only releases its savepoint, and nothing is committed until the connection's owner
commits. The API runs a POST sent with an ``Idempotency-Key`` this way, so that the route's writes and
the answer kept for the key commit together (``api/idempotency.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from evalgate.core.settings import get_settings

SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5
POSTGRES_CONNECTION_LIVENESS = {
    "connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS,
    "tcp_user_timeout": 30_000,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
"""libpq settings (each overridden by the URL's own): give up connecting after 5 s; fail a statement
whose data the server has not acknowledged for 30 s (a server that vanished without closing the
connection) instead of waiting for the kernel's retransmissions (about 15 minutes); and probe an idle
connection after 30 s, every 10 s, dropping it after 3 unanswered probes."""
POSTGRES_POOL_SIZE = 10
"""Connections kept open between requests (a gate API worker serving 8 clients at once needs 8)."""
POSTGRES_MAX_OVERFLOW = 30
"""More connections opened under a burst and closed when handed back: with the pool, the 40 threads of
an API process's thread pool each find one, without holding 40 open on an idle server (PostgreSQL's
default limit is 100 in all)."""
PING_AFTER_IDLE_SECONDS = 1.0
"""A pooled connection idle for longer than this is pinged before use; a busier one is not."""
_JOINED: ContextVar[Connection | None] = ContextVar("evalgate_joined_transaction", default=None)
"""The connection whose transaction ``joined_transaction`` makes sessions join, if any."""


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
    if parsed.get_backend_name() == "postgresql":
        connect_args.update({k: v for k, v in POSTGRES_CONNECTION_LIVENESS.items() if k not in parsed.query})
    connect_args.update(engine_options.pop("connect_args", {}))
    if "poolclass" not in engine_options:
        engine_options = {"pool_size": POSTGRES_POOL_SIZE, "max_overflow": POSTGRES_MAX_OVERFLOW,
                          **engine_options}  # fmt: skip
    engine = create_engine(url, connect_args=connect_args, **engine_options)
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """Ping a pooled connection idle for over ``PING_AFTER_IDLE_SECONDS`` when it is checked out; a
    failed ping makes the pool discard it and try another (SQLAlchemy's ``DisconnectionError``)."""

    @event.listens_for(engine, "checkin")
    def remember(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.DisconnectionError(f"pooled connection failed its ping: {error}") from error


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """One shared engine per URL in this process."""
    return make_engine(url)


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    """A session factory bound to ``url`` (default: the settings' database)."""
    engine = engine_for(url or get_settings().resolved_database_url)
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def joined_transaction(connection: Connection) -> Iterator[None]:
    """Within this block, sessions of ``connection``'s engine join its transaction (module docstring)."""
    token = _JOINED.set(connection)
    try:
        yield
    finally:
        _JOINED.reset(token)


def _joined(factory: sessionmaker[Session]) -> Connection | None:
    """The connection of the ``joined_transaction`` that ``factory``'s sessions join, if any."""
    connection = _JOINED.get()
    return connection if connection is not None and factory.kw.get("bind") is connection.engine else None


def _open(factory: sessionmaker[Session]) -> Session:
    """A new session of ``factory``; inside a ``joined_transaction``, one in a savepoint of its own."""
    connection = _joined(factory)
    if connection is None:
        return factory()
    return factory(bind=connection, join_transaction_mode="create_savepoint")


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    session = _open(factory)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def read_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for reads only, on a connection in autocommit (no BEGIN or COMMIT sent)."""
    session = _open(factory)
    try:
        if _joined(factory) is None:
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session
    finally:
        session.close()
