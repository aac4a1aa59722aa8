"""The dashboard home and ``/healthz`` while the real PostgreSQL is stopped: 503, then 200 again.

A real `evalgate serve` runs on the session's private cluster, with a gated weekly sweep in its
database. A browser logs in (the session cookie) before the outage. With the cluster stopped, ``GET /``
(whose page reads every sweep, candidate and decision, after the session's token is looked up) and
``/healthz`` must answer 503 with ``Retry-After`` and the service's error body: at once, and again
after the login's token would have left the API's verification cache. Once the cluster is back, the
same process serves both with 200 again.
The cluster is started again whatever happens.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from api.deps import COOKIE, TOKEN_CACHE_SECONDS
from api.errors import DATABASE_RETRY_AFTER_SECONDS
from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.session import engine_for
from tests.reliability.load import injected_fault
from tests.reliability.postgres_cluster import PostgresCluster
from tests.reliability.served import ServedApi
from tests.support.sweep_data import seed_weekly_sweep

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]

HANG_LIMIT_SECONDS = 30.0
"""An answer slower than this while the database is down counts as a hang: generous for a loaded 2-core
machine (a refused connection fails at once; a hung one would wait forever)."""
RECOVERY_SECONDS = 30.0
UNAVAILABLE = {
    "type": "/problems/database-unavailable",
    "title": "Database unavailable",
    "status": 503,
    "detail": f"database unavailable; retry in {DATABASE_RETRY_AFTER_SECONDS} s",
    "instance": "/",
}
ONE_REQUEST = {"Connection": "close"}
"""A connection per request: a 500 (after which the server drops its connection) is then reported as
the 500 it is, not as a reset of the request after it."""


def answers(browser: httpx.Client) -> dict[str, httpx.Response]:
    """The dashboard home (as a browser asks for it, with the cookie) and the health check."""
    return {
        "GET /": browser.get("/", headers={"Accept": "text/html"}),
        "GET /healthz": browser.get("/healthz"),
    }


def unavailable(response: httpx.Response) -> bool:
    """503 with ``Retry-After`` and the service's body (``/healthz``: its own, database ``down``)."""
    json_types = ("application/json", "application/problem+json")
    body = response.json() if response.headers.get("content-type", "").startswith(json_types) else {}
    expected = body.get("database") == "down" if response.url.path == "/healthz" else body == UNAVAILABLE
    return (
        response.status_code == 503
        and response.headers.get("Retry-After") == str(DATABASE_RETRY_AFTER_SECONDS)
        and expected
        and response.elapsed.total_seconds() < HANG_LIMIT_SECONDS
    )


def wait_until_served(browser: httpx.Client) -> dict[str, httpx.Response]:
    """Both answers once both are 200; ``TimeoutError`` after ``RECOVERY_SECONDS``."""
    started = time.monotonic()
    while time.monotonic() - started < RECOVERY_SECONDS:
        found = answers(browser)
        if all(response.status_code == 200 for response in found.values()):
            return found
        time.sleep(0.5)
    raise TimeoutError(f"not served again within {RECOVERY_SECONDS:.0f} s of PostgreSQL's return: {found}")


def test_dashboard_home_and_healthz_answer_503_while_postgres_is_stopped_then_200(
    serve: Callable[..., ServedApi], private_postgres: PostgresCluster, tmp_path: Path
) -> None:
    api = serve(1)
    store = DatasetStore.from_settings(Settings(home=tmp_path / "home", database_url=api.database_url))
    sweep = seed_weekly_sweep(store, tmp_path)
    engine_for(api.database_url).dispose()
    link = f'href="/sweeps/{sweep.sweep_id}"'

    with (
        injected_fault("postgres stopped under the dashboard") as report,
        httpx.Client(base_url=api.url, timeout=HANG_LIMIT_SECONDS, headers=ONE_REQUEST) as browser,
    ):
        login = browser.post("/login", data={"token": api.plan.tokens[0], "next": "/"})
        before = answers(browser)
        private_postgres.stop("fast")
        try:
            cached = answers(browser)
            time.sleep(TOKEN_CACHE_SECONDS + 1.0)
            expired = answers(browser)
        finally:
            private_postgres.start()
        after = wait_until_served(browser)
        during = {f"{route} (token {state})": response
                  for state, found in (("cached", cached), ("expired", expired))
                  for route, response in found.items()}  # fmt: skip
        report(all(unavailable(response) for response in during.values()) and link in after["GET /"].text)

    assert login.status_code == 303 and COOKIE in browser.cookies, login.text
    assert before["GET /"].status_code == 200 and link in before["GET /"].text, before["GET /"].text[:300]
    assert before["GET /healthz"].status_code == 200
    for name, response in during.items():
        assert unavailable(response), (
            name,
            response.status_code,
            dict(response.headers),
            response.text[:300],
        )
    assert link in after["GET /"].text and after["GET /healthz"].json()["database"] == "up"
    assert api.starts == 1 and api.process is not None and api.process.poll() is None, "the API was restarted"
