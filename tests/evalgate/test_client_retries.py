"""The client's retries: a request that may have landed is resent, a POST under the same idempotency key
each time (so the server answers a repeat with its first answer)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from evalgate.client import ApiError, Client

CANDIDATE = {"id": 7, "name": "run-1"}


def flaky(
    error: type[httpx.TransportError], failures: int, keys: list[str | None] | None = None
) -> tuple[Callable[[httpx.Request], httpx.Response], list[str]]:
    """A handler that raises ``error`` for the first ``failures`` requests, then answers; and its log
    (with ``keys``, each request's Idempotency-Key too)."""
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if keys is not None:
            keys.append(request.headers.get("Idempotency-Key"))
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


def test_every_post_is_resent_under_one_key_per_call_after_a_dropped_connection() -> None:
    keys: list[str | None] = []
    handler, seen = flaky(httpx.ReadError, failures=1, keys=keys)
    with client_on(handler) as client:
        client.submit_sweep({"name": "s"})
        client.promote(7)
        client.job(3)

    assert seen == ["POST /sweeps"] * 2 + ["POST /gate/candidates/7/promote", "GET /jobs/3"]
    assert keys[0] == keys[1] and keys[0] is not None  # the retry carries the first try's key
    assert keys[2] not in (None, keys[0]) and keys[3] is None  # a new key per call; none on a GET


def test_a_409_for_a_key_still_in_use_is_waited_out_and_other_409s_are_errors() -> None:
    answers = iter([
        httpx.Response(409, json={"type": "/problems/idempotency-key-in-use", "detail": "running"},
                       headers={"Retry-After": "1"}),
        httpx.Response(202, json={"id": 5}),
        httpx.Response(409, json={"type": "/problems/promotion-refused", "detail": "blocked"}),
    ])  # fmt: skip
    with client_on(lambda request: next(answers)) as client:
        assert client.submit_sweep({"name": "s"}) == {"id": 5}
        with pytest.raises(ApiError) as refused:
            client.promote(7)

    assert refused.value.status == 409


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
