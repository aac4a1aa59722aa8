"""Two real `evalgate serve` processes (two ports) sharing one Redis hold a token, and a guessing client
address, to one limit between them: a burst sent to both admits about ``burst`` requests, not twice as
many, and nothing answers 5xx. ``evalgate serve --workers 2`` does the same for a dashboard session,
whose secret both workers read from the home."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.deps import COOKIE
from evalgate.core.settings import Settings
from tests.api.service import Service, wait_until_healthy
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.postgres
BURST = 12
RATE = 0.2
"""Requests a second once the burst is spent: a burst sent within seconds gains at most one or two."""
FAILURES_PER_MINUTE = 6


@pytest.fixture
def two_apis(settings: Settings, tmp_path: Path) -> Iterator[tuple[Service, list[str], RedisServer]]:
    """Two serve processes on one database and one private Redis; their URLs."""
    with RedisServer.started(tmp_path / "redis") as redis_server:
        service = Service(settings, tmp_path)
        service.env.update({"EVALGATE_REDIS_URL": redis_server.url, "EVALGATE_RATE_LIMIT_BURST": str(BURST),
                            "EVALGATE_RATE_LIMIT_PER_SECOND": str(RATE),
                            "EVALGATE_AUTH_FAILURES_PER_MINUTE": str(FAILURES_PER_MINUTE)})  # fmt: skip
        try:
            started = [service.serve(f"api-{i}") for i in range(2)]
            for i, (process, url) in enumerate(started):
                wait_until_healthy(url, process, tmp_path / f"api-{i}.log")
            yield service, [url for _, url in started], redis_server
        finally:
            service.stop()


def burst(urls: list[str], requests: int, headers: dict[str, str]) -> tuple[Counter[int], float]:
    """``requests`` GET /jobs sent in turn to each URL; the statuses counted, and the seconds it took."""
    clients = [httpx.Client(base_url=url, headers=headers, timeout=30) for url in urls]
    started = time.monotonic()
    try:
        statuses = Counter(clients[i % len(clients)].get("/jobs").status_code for i in range(requests))
    finally:
        for client in clients:
            client.close()
    return statuses, time.monotonic() - started


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_api_processes_hold_one_token_and_one_address_to_one_limit(
    two_apis: tuple[Service, list[str], RedisServer],
) -> None:
    service, urls, redis_server = two_apis
    token = service.cli("tokens", "create", "shared", "--scope", "read")

    statuses, seconds = burst(urls, 4 * BURST, {"Authorization": f"Bearer {token}"})
    guesses, _ = burst(urls, 4 * FAILURES_PER_MINUTE, {"Authorization": "Bearer eg_guess"})

    refilled = int(RATE * seconds) + 1
    assert set(statuses) == {200, 429} and BURST <= statuses[200] <= BURST + refilled, (statuses, seconds)
    assert set(guesses) == {401, 429} and FAILURES_PER_MINUTE <= guesses[401] <= FAILURES_PER_MINUTE + 2
    assert redis_server.client().keys("evalgate:ratelimit:*")  # the buckets live in Redis


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_serve_with_two_workers_shares_the_limit_and_the_session_secret(
    settings: Settings, tmp_path: Path
) -> None:
    with RedisServer.started(tmp_path / "redis") as redis_server:
        service = Service(settings, tmp_path)
        service.env.update({"EVALGATE_REDIS_URL": redis_server.url, "EVALGATE_RATE_LIMIT_BURST": str(BURST),
                            "EVALGATE_RATE_LIMIT_PER_SECOND": str(RATE)})  # fmt: skip
        try:
            process, url = service.serve("api", "--workers", "2")
            wait_until_healthy(url, process, tmp_path / "api.log")
            token = service.cli("tokens", "create", "browser", "--scope", "read")
            login = httpx.post(f"{url}/login", data={"token": token}, timeout=30)
            cookie = login.cookies[COOKIE]
            session = {"Cookie": f"{COOKIE}={cookie}", "Accept": "text/html"}  # a new connection per page
            pages = [httpx.get(f"{url}/", headers=session, timeout=30).status_code for _ in range(BURST + 8)]
        finally:
            service.stop()

    assert login.status_code == 303
    assert set(pages) == {200, 429} and BURST - 1 <= pages.count(200) <= BURST + 1, pages  # login took one
    assert pages[: BURST - 1] == [200] * (BURST - 1)  # whichever worker accepts: one generated secret
