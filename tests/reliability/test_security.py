"""Security settings of the API: per-token rate limits, a failed-authentication limit per address, CORS
closed unless origins are listed, and tokens stored as sha256 and checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from api import deps
from api.main import create_app
from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.session import session_scope
from evalgate.service.api_tokens import create_token, hash_token
from tests.api.conftest import bearer, tokens  # noqa: F401  (fixture shared with tests/api)

pytestmark = pytest.mark.reliability
SITE, OTHER = "https://ci.example.com", "https://evil.example.net"
PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}


@dataclass
class ManualClock:
    """A clock for the rate limiter that moves only when the test moves it: how full a bucket is then
    depends on the requests made, not on how fast a loaded machine makes them."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def _app(settings: Settings, **changes: object) -> TestClient:
    return TestClient(create_app(settings.model_copy(update=changes)))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_token_over_its_rate_limit_gets_429_with_retry_after(
    settings: Settings,
    tokens: dict[str, str],  # noqa: F811
) -> None:
    api = _app(settings, rate_limit_per_second=1.0, rate_limit_burst=3)
    clock = ManualClock()
    api.app.state.evalgate.limits.per_token.clock = clock  # type: ignore[attr-defined]
    reader, writer = bearer(tokens["read"]), bearer(tokens["write"])

    burst = [api.get("/jobs", headers=reader).status_code for _ in range(3)]
    over = api.get("/jobs", headers=reader)
    other_token = api.get("/jobs", headers=writer)
    clock.now += 0.5  # half a request back: not enough
    still_over = api.get("/jobs", headers=reader)
    clock.now += 0.5
    refilled = api.get("/jobs", headers=reader)

    assert burst == [200, 200, 200] and other_token.status_code == 200 and refilled.status_code == 200
    assert over.status_code == 429 and over.headers["Retry-After"] == "1"
    assert still_over.status_code == 429 and still_over.headers["Retry-After"] == "1"
    assert "1 requests/s per token (burst 3)" in over.json()["detail"]
    state = api.app.state.evalgate  # type: ignore[attr-defined]
    buckets = set(state.limits.per_token._buckets)
    ids = {str(state.verify(tokens[scope]).id) for scope in ("read", "write")}
    assert buckets == ids, "keyed by the token's id only, never its secret"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_rate_of_zero_turns_the_token_limit_off(
    settings: Settings,
    tokens: dict[str, str],  # noqa: F811
) -> None:
    api = _app(settings, rate_limit_per_second=0.0, rate_limit_burst=1)

    answers = {api.get("/jobs", headers=bearer(tokens["read"])).status_code for _ in range(30)}

    assert answers == {200}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_failed_logins_and_unknown_tokens_are_limited_per_address(
    settings: Settings,
    tokens: dict[str, str],  # noqa: F811
) -> None:
    api = _app(settings, auth_failures_per_minute=3.0)
    api.app.state.evalgate.limits.auth_failures.clock = ManualClock()  # type: ignore[attr-defined]
    reader = bearer(tokens["read"])
    assert api.get("/jobs", headers=reader).status_code == 200  # verified, so cached

    guesses = [api.post("/login", data={"token": f"eg_guess{i}"}).status_code for i in range(3)]
    blocked_login = api.post("/login", data={"token": "eg_guess3"})
    blocked_bearer = api.get("/jobs", headers=bearer("eg_guess4"))
    still_served = api.get("/jobs", headers=reader)

    assert guesses == [401, 401, 401]
    for blocked in (blocked_login, blocked_bearer):
        assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
        assert "3 failed authentications per minute per address" in blocked.json()["detail"]
    assert still_served.status_code == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cors_is_closed_by_default(settings: Settings, tokens: dict[str, str]) -> None:  # noqa: F811
    api = _app(settings)

    preflight = api.options("/gate/decide", headers={"Origin": SITE, **PREFLIGHT})
    simple = api.get("/jobs", headers={"Origin": SITE, **bearer(tokens["read"])})

    assert simple.status_code == 200
    for response in (preflight, simple):
        assert not any(name.lower().startswith("access-control-") for name in response.headers)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_cors_allows_only_the_listed_origins(
    settings: Settings,
    tokens: dict[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVALGATE_CORS_ORIGINS", f" {SITE}/ , https://other.example.org")
    listed = Settings().cors_origins
    api = _app(settings, cors_origins=listed)
    reader = bearer(tokens["read"])

    allowed_preflight = api.options("/gate/decide", headers={"Origin": SITE, **PREFLIGHT})
    allowed = api.get("/jobs", headers={"Origin": SITE, **reader})
    refused_preflight = api.options("/gate/decide", headers={"Origin": OTHER, **PREFLIGHT})
    refused = api.get("/jobs", headers={"Origin": OTHER, **reader})

    assert listed == [SITE, "https://other.example.org"]
    assert allowed_preflight.status_code == 200
    assert allowed_preflight.headers["access-control-allow-origin"] == SITE
    assert allowed.headers["access-control-allow-origin"] == SITE
    assert "access-control-allow-credentials" not in allowed.headers
    assert refused_preflight.status_code == 400
    assert "access-control-allow-origin" not in refused_preflight.headers
    assert "access-control-allow-origin" not in refused.headers


def test_tokens_are_stored_as_their_sha256_and_nothing_else(store: DatasetStore) -> None:
    secret = create_token(store.sessions, "pipeline", "write")

    with session_scope(store.sessions) as session:
        row = session.execute(text("SELECT * FROM api_token")).mappings().one()

    assert row["token_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", row["token_hash"])
    secret_part = secret.removeprefix("eg_")
    assert not any(secret_part[:16] in str(value) for value in row.values()), dict(row)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_token_digests_are_compared_with_hmac_compare_digest(
    settings: Settings,
    tokens: dict[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    api = _app(settings)
    digest = hash_token(tokens["read"]).encode()

    api.get("/jobs", headers=bearer(tokens["read"]))  # cache miss: the database row's digest
    from_database = len(compared)
    api.get("/jobs", headers=bearer(tokens["read"]))  # cache hit: the cached digest

    assert from_database >= 1 and len(compared) > from_database
    assert all(a == b == digest for a, b in compared), "only digests, never the secret, are compared"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_token_whose_digest_comparison_fails_is_refused(
    settings: Settings,
    tokens: dict[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(deps, "TOKEN_CACHE_SECONDS", 0.0)
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: False)

    answer = _app(settings).get("/jobs", headers=bearer(tokens["admin"]))

    assert answer.status_code == 401, "the constant-time comparison must decide, not the index lookup"
