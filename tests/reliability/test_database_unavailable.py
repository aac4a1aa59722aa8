"""While PostgreSQL cannot be reached every route answers 503 with Retry-After, and the API recovers
by itself when it is back; genuine SQL errors stay 500s (each kind of error is checked one by one in
``tests/api/test_database_errors.py``).

The outage is real at the network level: the app talks to PostgreSQL through a TCP relay that the test
cuts (every connection reset, the port refused) and restores, so pooled connections die as they do
when the server restarts. ``/healthz`` also answers 503 on a refused port, and on a server that accepts
but never answers once the connect timeout has run out, instead of hanging.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import exc as sa
from sqlalchemy.engine import make_url

from api import deps
from api.errors import DATABASE_RETRY_AFTER_SECONDS
from api.main import create_app
from api.routers import dashboard
from evalgate.core.settings import Settings
from evalgate.db.session import POSTGRES_CONNECT_TIMEOUT_SECONDS, engine_for
from evalgate.service.api_tokens import create_token
from tests.api.conftest import bearer
from tests.api.service import ServerPort
from tests.reliability.figures import record
from tests.reliability.relay import Relay
from tests.reliability.routes import SCOPES, VIEWER, routes

pytestmark = pytest.mark.reliability
HANG_SECONDS = 30 + POSTGRES_CONNECT_TIMEOUT_SECONDS
"""Slower than this counts as a hang: generous for a loaded 2-core machine, while a request left waiting
on a server that never answers would wait forever (libpq has no timeout of its own)."""
NO_DATABASE = {"/login", "/logout", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/livez",
               "/problems/{slug}", "/metrics"}  # fmt: skip
"""Routes that answer without the database (``/metrics`` with ``evalgate_database_up 0``)."""


@pytest.fixture
def relayed(database_url: str, tmp_path: Path) -> Iterator[tuple[Relay, Settings]]:
    """A relay in front of the test PostgreSQL database, and settings that reach it only through it."""
    url = make_url(database_url)
    relay = Relay((url.host or "127.0.0.1", url.port or 5432))
    relayed_url = url.set(port=relay.port).render_as_string(hide_password=False)
    yield relay, Settings(home=tmp_path / "home", database_url=relayed_url)
    relay.close()
    engine_for(relayed_url).dispose()


def _assert_unavailable(response: httpx.Response, where: object) -> None:
    assert response.status_code == 503, (where, response.status_code, response.text[:200])
    assert response.headers["Retry-After"] == str(DATABASE_RETRY_AFTER_SECONDS), where
    body = response.json()
    assert "database unavailable" in str(body.get("detail", body.get("status"))), where


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_every_route_answers_503_with_retry_after_while_postgres_is_cut_off(
    relayed: tuple[Relay, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deps, "TOKEN_CACHE_SECONDS", 300.0)  # the token stays verified: routes reach the DB
    relay, settings = relayed
    api = TestClient(create_app(settings), raise_server_exceptions=False)
    admin = bearer(create_token(api.app.state.evalgate.sessions, "ops", "admin"))  # type: ignore[attr-defined]
    assert api.get("/jobs", headers=admin).status_code == 200

    relay.cut()
    statuses = {}
    for route in routes(api.app):  # type: ignore[arg-type]
        accept = {"Accept": "text/html"} if SCOPES[route.key] == VIEWER else {}
        body = {} if route.method == "POST" else None
        response = api.request(route.method, route.url, headers={**admin, **accept}, json=body)
        statuses[route.key] = response.status_code
        if route.method == "GET" and route.path not in NO_DATABASE:
            _assert_unavailable(response, route)
    _assert_unavailable(api.get("/jobs", headers=bearer("eg_never-seen-before")), "token lookup")
    assert "evalgate_database_up 0.0" in api.get("/metrics", headers=admin).text

    answered = {key: status for key, status in statuses.items() if status != 503}
    needed_no_database = {key for key in answered if key[1] in NO_DATABASE}
    refused_body = {key for key, status in answered.items() if status == 422 and key[0] == "POST"}
    assert answered.keys() == needed_no_database | refused_body, answered  # no other answer, no 500


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_api_recovers_by_itself_when_postgres_returns(relayed: tuple[Relay, Settings]) -> None:
    relay, settings = relayed
    api = TestClient(create_app(settings), raise_server_exceptions=False)
    token = bearer(create_token(api.app.state.evalgate.sessions, "pipeline", "write"))  # type: ignore[attr-defined]
    before = [api.get("/candidates", headers=token).status_code for _ in range(3)]  # fills the pool

    relay.cut()
    during = [api.get("/candidates", headers=token) for _ in range(3)]
    health_during = api.get("/healthz")
    relay.restore()
    after = [api.get("/candidates", headers=token).status_code for _ in range(5)]
    health_after = api.get("/healthz")

    assert before == [200] * 3
    for response in [*during, health_during]:
        assert response.status_code == 503 and response.headers["Retry-After"], response.text
    assert health_during.json()["database"] == "down"
    assert after == [200] * 5, "the first request after the outage must already succeed"
    assert health_after.status_code == 200 and health_after.json()["database"] == "up"
    record("fault", "postgres-connection-cut", injected=1, survived=1)


def test_a_refused_database_port_gives_503_without_hanging(tmp_path: Path) -> None:
    with ServerPort() as refusing:  # held, never listening: every connection is refused
        url = f"postgresql+psycopg://evalgate:not-used@127.0.0.1:{refusing.number}/evalgate"
        api = TestClient(create_app(Settings(home=tmp_path, database_url=url)))

        started = time.monotonic()
        health = api.get("/healthz")
        jobs = api.get("/jobs", headers=bearer("eg_some-token"))
        elapsed = time.monotonic() - started
        engine_for(url).dispose()

    _assert_unavailable(jobs, "/jobs")
    assert health.status_code == 503 and health.json()["database"] == "down"
    assert elapsed < HANG_SECONDS, f"a refused connection hung for {elapsed:.1f}s"


def test_health_gives_up_on_a_silent_database_at_the_connect_timeout(tmp_path: Path) -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    url = f"postgresql+psycopg://evalgate@127.0.0.1:{silent.getsockname()[1]}/evalgate"
    api = TestClient(create_app(Settings(home=tmp_path, database_url=url)))
    try:
        started = time.monotonic()
        health = api.get("/healthz")
        elapsed = time.monotonic() - started
    finally:
        silent.close()
        engine_for(url).dispose()

    assert health.status_code == 503 and health.json()["database"] == "down"
    assert elapsed > POSTGRES_CONNECT_TIMEOUT_SECONDS - 1.5, (
        f"gave up after {elapsed:.1f}s, before the timeout"
    )
    assert elapsed < HANG_SECONDS, f"/healthz hung for {elapsed:.1f}s"


def test_sql_errors_that_retrying_cannot_fix_stay_server_errors(tmp_path: Path) -> None:
    unmigrated = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'empty.db'}")
    api = TestClient(create_app(unmigrated), raise_server_exceptions=False)

    answer = api.get("/jobs", headers=bearer("eg_some-token"))  # "no such table: api_token"

    assert answer.status_code == 500 and "Retry-After" not in answer.headers


def test_a_lost_connection_the_orm_reports_is_a_503_on_the_dashboard_home(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = TestClient(create_app(settings), raise_server_exceptions=False)
    token = create_token(api.app.state.evalgate.sessions, "viewer", "read")  # type: ignore[attr-defined]

    def connection_lost(*_: object) -> None:
        raise sa.PendingRollbackError("Can't reconnect until invalid transaction is rolled back.")

    monkeypatch.setattr(dashboard, "sweep_rows", connection_lost)
    home = api.get("/", headers={**bearer(token), "Accept": "text/html"})

    _assert_unavailable(home, "/")
