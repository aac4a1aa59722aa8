"""The client's waits before a retry, against a real local HTTP server: ``Retry-After`` in both forms
of RFC 9110, bounded by ``max_wait``; and full-jitter back-off that spreads clients failing together."""

from __future__ import annotations

import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, formatdate

import httpx
import pytest

from evalgate.client import ApiError, Client, retry_after
from tests.support.http_stub import Answer, Seen, StubServer

OK = Answer(200, body=b'{"status": "ok"}')
SLACK = 0.75
"""Scheduling slack on a loaded 2-core machine, added to the longest wait a test allows."""


def unavailable_once(headers: dict[str, str], date: bool = True) -> StubServer:
    """A server answering each path's first request 503 with ``headers``, every later one 200."""
    return StubServer(lambda seen: Answer(503, headers, date=date) if seen.nth == 1 else OK)


def first_gap(server: StubServer, path: str) -> float:
    """Seconds between the first two requests to ``path``."""
    first, second = server.arrivals(path)[:2]
    return second - first


def test_a_delta_seconds_retry_after_is_waited_out() -> None:
    with unavailable_once({"Retry-After": "1"}) as server, Client(server.url, "eg_x", backoff=0.1) as client:
        assert client.health() == {"status": "ok"}

    assert 1.0 <= first_gap(server, "/healthz") <= 1.1 + SLACK


def test_an_http_date_retry_after_is_counted_from_the_servers_own_date() -> None:
    skewed = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)  # a server clock an hour behind
    headers = {"Date": format_datetime(skewed, usegmt=True),
               "Retry-After": format_datetime(skewed + timedelta(seconds=2), usegmt=True)}  # fmt: skip
    with (
        unavailable_once(headers, date=False) as server,
        Client(server.url, "eg_x", backoff=0.1, max_wait=30) as client,
    ):
        client.health()

    assert 2.0 <= first_gap(server, "/healthz") <= 2.1 + SLACK


def test_an_http_date_retry_after_without_a_date_header_is_counted_from_the_clients_clock() -> None:
    headers = {"Retry-After": formatdate(time.time() + 2, usegmt=True)}  # whole seconds: 1 to 2 s from now
    with (
        unavailable_once(headers, date=False) as server,
        Client(server.url, "eg_x", backoff=0.1) as client,
    ):
        client.health()

    assert 0.9 <= first_gap(server, "/healthz") <= 2.1 + SLACK


def test_retry_after_is_bounded_by_the_maximum_wait() -> None:
    with (
        unavailable_once({"Retry-After": "3600"}) as server,
        Client(server.url, "eg_x", max_wait=0.3) as client,
    ):
        client.health()

    assert first_gap(server, "/healthz") <= 0.3 + SLACK


def test_a_429_is_retried_for_a_post_too() -> None:
    def answer(seen: Seen) -> Answer:
        return Answer(429, {"Retry-After": "0"}) if seen.nth <= 2 else Answer(201, body=b'{"id": 1}')

    with StubServer(answer) as server, Client(server.url, "eg_x", backoff=0.05) as client:
        assert client.submit_sweep({"name": "s"}) == {"id": 1}

    assert [seen.method for seen in server.seen] == ["POST"] * 3


def test_the_last_503_is_raised_once_the_retries_are_spent() -> None:
    with (
        StubServer(lambda _: Answer(503, {"Retry-After": "0"})) as server,
        Client(server.url, "eg_x", retries=2, backoff=0.01) as client,
        pytest.raises(ApiError) as raised,
    ):
        client.health()

    assert raised.value.status == 503 and len(server.seen) == 3


def test_the_first_retries_of_20_clients_failing_together_are_spread() -> None:
    backoff, clients = 0.5, 20
    waits: dict[int, list[float]] = {i: [] for i in range(clients)}

    def call(i: int, url: str) -> None:
        def sleep(seconds: float) -> None:
            waits[i].append(seconds)
            time.sleep(seconds)

        with Client(url, "eg_x", backoff=backoff, sleep=sleep) as client:
            client.job(i)

    with unavailable_once({}) as server:  # 503 without Retry-After: the client's own back-off
        threads = [threading.Thread(target=call, args=(i, server.url)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

    first = [waits[i][0] for i in range(clients)]
    gaps = [first_gap(server, f"/jobs/{i}") for i in range(clients)]
    assert all(len(waits[i]) == 1 for i in range(clients)), waits
    assert all(0 <= wait <= backoff for wait in first), first
    assert len({round(wait, 3) for wait in first}) >= clients - 2, first  # drawn, not one fixed delay
    assert max(first) - min(first) >= backoff / 4 and statistics.pstdev(first) >= backoff / 12, first
    assert all(gap >= wait for gap, wait in zip(gaps, first, strict=True)), (gaps, first)


def test_full_jitter_windows_double_and_stop_at_the_maximum_wait() -> None:
    waits: list[float] = []
    unavailable = httpx.MockTransport(lambda request: httpx.Response(503))
    client = Client("http://gate", "eg_x", retries=8, backoff=0.5, max_wait=4.0,
                    transport=unavailable, sleep=waits.append)  # fmt: skip
    with client, pytest.raises(ApiError):
        client.health()

    windows = [min(4.0, 0.5 * 2**n) for n in range(8)]
    assert len(waits) == 8 and all(0 <= wait <= window for wait, window in zip(waits, windows, strict=True))


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "120"}, 120.0),
        ({"Retry-After": " 1.5 "}, 1.5),
        ({"Retry-After": "Sun, 06 Nov 1994 08:49:37 GMT", "Date": "Sun, 06 Nov 1994 08:49:07 GMT"}, 30.0),
        ({"Retry-After": "Sunday, 06-Nov-94 08:49:37 GMT", "Date": "Sun, 06 Nov 1994 08:49:30 GMT"}, 7.0),
        ({"Retry-After": "Sun Nov  6 08:49:37 1994", "Date": "Sun, 06 Nov 1994 08:49:36 GMT"}, 1.0),
        ({"Retry-After": "Sun, 06 Nov 1994 08:49:37 GMT", "Date": "Sun, 06 Nov 1994 09:00:00 GMT"}, 0.0),
        ({"Retry-After": "-5"}, None),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_delta_seconds_and_http_dates(
    headers: dict[str, str], expected: float | None
) -> None:
    assert retry_after(httpx.Response(503, headers=headers)) == expected


def test_an_http_date_retry_after_without_date_counts_from_now() -> None:
    now = datetime(1994, 11, 6, 8, 49, 0, tzinfo=UTC)
    response = httpx.Response(503, headers={"Retry-After": "Sun, 06 Nov 1994 08:49:37 GMT"})

    assert retry_after(response, now=now) == 37.0
