"""evalgate.db.session on a real PostgreSQL: pings only idle connections, replaces dead ones, and reads
in autocommit."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from evalgate.db import session as db_session
from evalgate.db.models import Candidate
from evalgate.db.session import make_engine, read_scope, session_scope

pytestmark = pytest.mark.postgres


def backend_pid(engine: Any) -> int:
    """The PostgreSQL backend serving the connection the pool hands out next."""
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def count_pings(engine: Any, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one at each ping the engine's dialect sends."""
    pings: list[int] = []
    real_ping = engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(1)
        return bool(real_ping(dbapi_connection))

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return pings


def test_a_busy_connection_is_not_pinged_an_idle_one_is(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(postgres_url)
    pings = count_pings(engine, monkeypatch)
    first = backend_pid(engine)  # a new connection: nothing to ping
    assert backend_pid(engine) == first and pings == []  # handed back and out again at once
    monkeypatch.setattr(db_session, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert backend_pid(engine) == first and len(pings) == 1  # "idle" now: pinged, alive, kept
    engine.dispose()


def test_an_idle_connection_whose_server_side_died_is_replaced_before_use(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(postgres_url)
    dead = backend_pid(engine)
    admin = make_engine(postgres_url)
    with admin.connect() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dead}).scalar_one()
    admin.dispose()
    monkeypatch.setattr(db_session, "PING_AFTER_IDLE_SECONDS", 0.0)
    replacement = backend_pid(engine)  # the ping fails, the pool opens a new connection: no error
    assert replacement != dead
    engine.dispose()


def test_reads_run_in_autocommit_and_the_pool_gets_its_connection_back_transactional(
    postgres_url: str,
) -> None:
    engine = make_engine(postgres_url, pool_size=1, max_overflow=0)
    sessions = sessionmaker(engine, expire_on_commit=False)
    with read_scope(sessions) as session:
        session.execute(text("SELECT 1"))
        raw = session.connection().connection.dbapi_connection
        assert raw is not None and raw.autocommit is True
        # no transaction is open on the server for this backend
        assert session.execute(text("SELECT txid_current_if_assigned()")).scalar_one() is None
    with session_scope(sessions) as session:
        raw = session.connection().connection.dbapi_connection
        assert raw is not None and raw.autocommit is False  # the same pooled connection, reset
        session.add(Candidate(name="written", base_model="m"))
        session.flush()
        written = session.execute(text("SELECT txid_current_if_assigned()")).scalar_one()
        assert written is not None
        session.rollback()
    engine.dispose()
