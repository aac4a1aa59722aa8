"""The client's retries: a request that may have landed is resent only when resending is harmless."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from evalgate.client import Client

CANDIDATE = {"id": 7, "name": "run-1"}


def flaky(
    error: type[httpx.TransportError], failures: int
) -> tuple[Callable[[httpx.Request], httpx.Response], list[str]]:
    """A handler that raises ``error`` for the first ``failures`` requests, then answers; and its log."""
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if len(seen) <= failures:
            raise error("connection dropped", request=request)
        return httpx.Response(200, json=CANDIDATE)

    return handle, seen


def client_on(handler: Callable[[httpx.Request], httpx.Response]) -> Client:
    return Client("http://gate", "eg_x", transport=httpx.MockTransport(handler), sleep=lambda _: None)


@pytest.mark.parametrize("error", [httpx.ReadError, httpx.RemoteProtocolError, httpx.ReadTimeout])
def test_registering_and_deciding_are_resent_after_a_dropped_connection(
    error: type[httpx.TransportError],
) -> None:
    handler, seen = flaky(error, failures=2)
    with client_on(handler) as client:
        registered = client.register_candidate("run-1", base_model="m", adapter_uri="/a")
        decided = client.decide(7, {"checks": []})

    assert registered == decided == CANDIDATE
    assert seen == ["POST /candidates"] * 3 + ["POST /gate/decide"]


def test_a_post_that_is_not_idempotent_is_not_resent_after_a_dropped_connection() -> None:
    handler, seen = flaky(httpx.ReadError, failures=1)
    with client_on(handler) as client, pytest.raises(httpx.ReadError):
        client.submit_sweep({"name": "s"})

    assert seen == ["POST /sweeps"]


def test_any_request_is_resent_when_the_connection_was_refused() -> None:
    handler, seen = flaky(httpx.ConnectError, failures=2)
    with client_on(handler) as client:
        client.submit_sweep({"name": "s"})

    assert seen == ["POST /sweeps"] * 3


def test_retries_give_up_after_the_configured_count() -> None:
    handler, seen = flaky(httpx.ReadError, failures=100)
    client = Client(
        "http://gate", "eg_x", retries=3, transport=httpx.MockTransport(handler), sleep=lambda _: None
    )
    with client, pytest.raises(httpx.ReadError):
        client.decide(7, {"checks": []})

    assert len(seen) == 4
