"""Every route but the health and operations checks needs a token; scopes are enforced; tokens are
stored hashed."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api import deps
from evalgate.data.store import DatasetStore
from evalgate.db.models import ApiToken
from evalgate.db.session import session_scope
from evalgate.service.api_tokens import TokenError, create_token, hash_token, revoke_token
from tests.api.conftest import bearer

PUBLIC = {"/healthz", "/livez", "/readyz", "/problems/{slug}"}
"""Documented operations that need no token (``/metrics`` does, from a client that is not local)."""


def _routes(api: TestClient) -> list[tuple[str, str]]:
    """(method, path) of every documented operation but the public ones, path parameters filled with 1."""
    paths = api.get("/openapi.json").json()["paths"]
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "1", path))
        for path, operations in paths.items()
        if path not in PUBLIC
        for method in operations
    ]


def test_every_route_except_health_refuses_a_missing_or_unknown_token(
    api: TestClient, tokens: dict[str, str]
) -> None:
    routes = _routes(api)
    assert len(routes) >= 15
    for method, path in routes:
        missing = api.request(method, path)
        wrong = api.request(method, path, headers=bearer("eg_not-a-token"))
        assert missing.status_code == 401, (method, path)
        assert missing.headers["WWW-Authenticate"] == "Bearer"
        assert wrong.status_code == 401, (method, path)
    assert [api.get(path).status_code for path in ("/healthz", "/livez", "/readyz")] == [200, 200, 200]


def test_scopes_are_enforced(api: TestClient, tokens: dict[str, str]) -> None:
    body = {"candidate_id": 1, "policy": {}}

    read_on_write = api.post("/gate/decide", json=body, headers=bearer(tokens["read"]))
    write_on_admin = api.get("/tokens", headers=bearer(tokens["write"]))
    admin_on_read = api.get("/jobs", headers=bearer(tokens["admin"]))

    assert read_on_write.status_code == 403 and "needs write" in read_on_write.json()["detail"]
    assert write_on_admin.status_code == 403
    assert admin_on_read.status_code == 200


def test_tokens_are_stored_as_sha256_only(store: DatasetStore) -> None:
    token = create_token(store.sessions, "pipeline", "write")

    with session_scope(store.sessions) as session:
        row = session.scalars(select(ApiToken)).one()
    assert row.token_hash == hash_token(token) and token not in str(row.__dict__)
    with pytest.raises(TokenError, match="already exists"):
        create_token(store.sessions, "pipeline", "read")
    with pytest.raises(TokenError, match="scope must be one of"):
        create_token(store.sessions, "other", "root")


def test_a_revoked_token_stops_working(
    api: TestClient, store: DatasetStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(deps, "TOKEN_CACHE_SECONDS", 0.0)
    token = create_token(store.sessions, "leaked", "read")
    assert api.get("/jobs", headers=bearer(token)).status_code == 200

    revoke_token(store.sessions, "leaked")

    assert api.get("/jobs", headers=bearer(token)).status_code == 401


def test_admins_manage_tokens_over_rest(api: TestClient, tokens: dict[str, str]) -> None:
    admin = bearer(tokens["admin"])

    created = api.post("/tokens", json={"name": "ci", "scope": "write"}, headers=admin).json()
    usable = api.get("/jobs", headers=bearer(created["token"]))
    listed = api.get("/tokens", headers=admin).json()
    revoked = api.delete("/tokens/ci", headers=admin)
    again = api.delete("/tokens/ci", headers=admin)

    assert usable.status_code == 200 and "ci" in [t["name"] for t in listed]
    assert created["token"] not in str(listed) and all("token" not in t for t in listed)
    assert revoked.status_code == 204 and again.status_code == 404
