"""One decision for "the database is away": each kind of database error fed to the app's handlers and to
``/healthz``. An outage is a 503 with ``Retry-After`` and the service's problem document; a bug (an integrity
or programming error, ORM misuse, a plain ``ValueError``) stays a 500, so no retry loop hides it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg
import psycopg.errors as pg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa

import api.main
from api import errors
from api.main import create_app
from evalgate.core.settings import Settings

LOST = "consuming input failed: server closed the connection unexpectedly"
FLUSH_FAILED = "This Session's transaction has been rolled back due to a previous exception during flush."

UNAVAILABLE: dict[str, BaseException] = {
    "refused": sa.OperationalError(
        "SELECT 1", {}, psycopg.OperationalError("connection failed: Connection refused")
    ),
    "lost-mid-query": sa.OperationalError("SELECT 1", {}, psycopg.OperationalError(LOST)),
    "server-shutting-down": sa.OperationalError(
        "SELECT 1", {}, pg.AdminShutdown("terminating connection due to administrator command")
    ),
    "server-starting": sa.OperationalError(
        "SELECT 1", {}, pg.CannotConnectNow("the database system is starting up")
    ),
    "too-many-connections": sa.OperationalError(
        "SELECT 1", {}, pg.TooManyConnections("sorry, too many clients already")
    ),
    "connection-closed": sa.InterfaceError(
        "SELECT 1", {}, psycopg.InterfaceError("the connection is closed")
    ),
    "plain-driver-database-error": sa.DatabaseError(
        "SELECT 1", {}, psycopg.DatabaseError("server closed the connection unexpectedly")
    ),
    "internal-error-naming-a-reset": sa.InternalError(
        "SELECT 1", {}, psycopg.InternalError("consuming input failed: Connection reset by peer")
    ),
    "invalidated": sa.DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True),
    "pool-timeout": sa.TimeoutError("QueuePool limit of size 5 overflow 10 reached, connection timed out"),
    "disconnection": sa.DisconnectionError("connection invalidated at checkout"),
    "pending-rollback-after-invalidation": sa.PendingRollbackError(
        "Can't reconnect until invalid transaction is rolled back.", code=errors.INVALIDATED_TRANSACTION
    ),
    "pending-rollback-after-a-lost-connection": sa.PendingRollbackError(
        f"{FLUSH_FAILED} Original exception was: (psycopg.OperationalError) {LOST}", code="7s2a"
    ),
    "resource-closed-connection": sa.ResourceClosedError("This Connection is closed"),
    "sqlite-locked": sa.OperationalError("UPDATE job", {}, sqlite3.OperationalError("database is locked")),
    "raw-psycopg-operational": psycopg.OperationalError("connection failed: Connection refused"),
    "raw-psycopg-plain-database-error": psycopg.DatabaseError("server closed the connection unexpectedly"),
    "raw-sqlite-locked": sqlite3.OperationalError("database is locked"),
}
SERVER_ERRORS: dict[str, BaseException] = {
    "integrity": sa.IntegrityError(
        "INSERT", {}, pg.UniqueViolation("duplicate key value violates unique constraint")
    ),
    "programming": sa.ProgrammingError("SELEC 1", {}, pg.SyntaxError('syntax error at or near "SELEC"')),
    "undefined-table": sa.ProgrammingError(
        "SELECT 1", {}, pg.UndefinedTable('relation "job" does not exist')
    ),
    "program-limit": sa.OperationalError("SELECT 1", {}, pg.StatementTooComplex("statement is too complex")),
    "sqlite-missing-table": sa.OperationalError(
        "SELECT 1", {}, sqlite3.OperationalError("no such table: job")
    ),
    "pending-rollback-after-an-integrity-error": sa.PendingRollbackError(
        f"{FLUSH_FAILED} Original exception was: (psycopg.errors.UniqueViolation) duplicate key value",
        code="7s2a",
    ),
    "resource-closed-result": sa.ResourceClosedError("This result object does not return rows."),
    "orm-misuse": sa.InvalidRequestError("Object is already attached to session 2"),
    "no-result": sa.NoResultFound("No row was found when one was required"),
    "raw-psycopg-integrity": pg.UniqueViolation("duplicate key value violates unique constraint"),
    "raw-sqlite-syntax": sqlite3.OperationalError('near "SELEC": syntax error'),
    "plain-value-error": ValueError("a bug, not an outage"),
    "plain-runtime-error": RuntimeError("a bug, not an outage"),
}


@pytest.fixture(scope="module")
def raising() -> TestClient:
    """An app with the service's handlers whose ``GET /raise/{kind}`` raises that error."""
    app = FastAPI()
    errors.install(app)
    known = {**UNAVAILABLE, **SERVER_ERRORS}

    @app.get("/raise/{kind}")
    def raise_error(kind: str) -> None:
        raise known[kind]

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("kind", UNAVAILABLE)
def test_a_database_that_is_away_is_a_503_with_retry_after(raising: TestClient, kind: str) -> None:
    response = raising.get(f"/raise/{kind}")

    assert errors.database_unavailable(UNAVAILABLE[kind])
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == str(errors.DATABASE_RETRY_AFTER_SECONDS)
    seconds = errors.DATABASE_RETRY_AFTER_SECONDS
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "/problems/database-unavailable",
        "title": "Database unavailable",
        "status": 503,
        "detail": f"database unavailable; retry in {seconds} s",
        "instance": f"/raise/{kind}",
    }


@pytest.mark.parametrize("kind", SERVER_ERRORS)
def test_a_bug_stays_a_500_without_retry_after(raising: TestClient, kind: str) -> None:
    response = raising.get(f"/raise/{kind}")

    assert not errors.database_unavailable(SERVER_ERRORS[kind])
    assert response.status_code == 500, response.text
    assert "Retry-After" not in response.headers


@pytest.fixture
def health(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[TestClient, list[BaseException]]:
    """The real app's ``/healthz`` with the schema lookup raising the error put in the returned list."""
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'unused.db'}")
    raised: list[BaseException] = []

    def current_revision(_: str) -> str | None:
        raise raised[0]

    monkeypatch.setattr(api.main, "current_revision", current_revision)
    return TestClient(create_app(settings), raise_server_exceptions=False), raised


@pytest.mark.parametrize("kind", UNAVAILABLE)
def test_healthz_says_down_for_exactly_the_errors_the_routes_answer_503_for(
    health: tuple[TestClient, list[BaseException]], kind: str
) -> None:
    client, raised = health
    raised.append(UNAVAILABLE[kind])

    response = client.get("/healthz")

    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == str(errors.DATABASE_RETRY_AFTER_SECONDS)
    assert response.json()["database"] == "down"


@pytest.mark.parametrize("kind", ["integrity", "programming", "sqlite-missing-table", "orm-misuse"])
def test_healthz_does_not_call_a_bug_an_outage(
    health: tuple[TestClient, list[BaseException]], kind: str
) -> None:
    client, raised = health
    raised.append(SERVER_ERRORS[kind])

    response = client.get("/healthz")

    assert response.status_code == 500 and "Retry-After" not in response.headers
