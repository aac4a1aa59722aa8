"""Every route the app serves is in the scope table, and enforces that scope over HTTP.

The table is ``tests/reliability/routes.py``; a route added without an entry there fails here. For
each route: no token is refused (401, or a redirect to /login for dashboard pages), a token one scope
too low gets 403, the dashboard's session cookie opens pages but no JSON route (nor does a cookie
holding a raw token), and the right scope is admitted
(any answer but 401/403/redirect-to-login; a dummy id's 404 or an empty body's 422 count as admitted).
"""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from api.deps import COOKIE
from tests.api.conftest import api, bearer, tokens  # noqa: F401  (fixtures shared with tests/api)
from tests.reliability.routes import ADMIN, BELOW, LOGIN, PUBLIC, READ, SCOPES, VIEWER, WRITE, Route, routes

pytestmark = pytest.mark.reliability
HTML = {"Accept": "text/html"}


def _call(client: TestClient, route: Route, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {} if route.method in ("POST", "PUT", "PATCH") else None
    return client.request(route.method, route.url, headers=headers or {}, json=body, follow_redirects=False)


def _to_login(response: httpx.Response) -> bool:
    return response.status_code == 303 and response.headers["location"].startswith("/login?next=")


def _admitted(response: httpx.Response) -> bool:
    return response.status_code not in (401, 403) and response.status_code < 500 and not _to_login(response)


def _cookie(value: str, name: str = COOKIE) -> dict[str, str]:
    return {"Cookie": f"{name}={value}"}


def _session(client: TestClient, token: str) -> dict[str, str]:
    """The Cookie header of a dashboard session of ``token`` (the client's own jar is left empty)."""
    answer = client.post("/login", data={"token": token}, follow_redirects=False)
    client.cookies.clear()
    return _cookie(answer.cookies[COOKIE])


def test_every_route_is_in_the_scope_table(api: TestClient) -> None:  # noqa: F811
    served = {route.key for route in routes(api.app)}  # type: ignore[arg-type]

    assert served - SCOPES.keys() == set(), "routes without an expected scope: add them to routes.py"
    assert SCOPES.keys() - served == set(), "the table lists routes the app no longer serves"
    assert len(served) >= 38


def test_token_routes_refuse_no_token_a_lower_scope_and_the_cookie(
    api: TestClient,  # noqa: F811
    tokens: dict[str, str],  # noqa: F811
) -> None:
    checked = 0
    session = _session(api, tokens[ADMIN])
    for route in routes(api.app):  # type: ignore[arg-type]
        scope = SCOPES[route.key]
        if scope not in (READ, WRITE, ADMIN):
            continue
        missing = _call(api, route)
        cookie_only = _call(api, route, session)
        raw_token_cookie = _call(api, route, _cookie(tokens[ADMIN], "evalgate_token"))
        right = _call(api, route, bearer(tokens[scope]))
        assert missing.status_code == 401, (route, missing.status_code)
        assert cookie_only.status_code == 401, (route, "JSON routes must ignore the dashboard cookie")
        assert raw_token_cookie.status_code == 401, route
        assert _admitted(right), (route, right.status_code, right.text[:200])
        lower = BELOW[scope]
        if lower is not None:
            too_low = _call(api, route, bearer(tokens[lower]))
            assert too_low.status_code == 403 and f"needs {scope}" in too_low.json()["detail"], route
        checked += 1
    assert checked == sum(scope in (READ, WRITE, ADMIN) for scope in SCOPES.values())


def test_dashboard_pages_redirect_without_a_token_and_open_with_a_read_cookie(
    api: TestClient,  # noqa: F811
    tokens: dict[str, str],  # noqa: F811
) -> None:
    pages = [route for route in routes(api.app) if SCOPES[route.key] == VIEWER]  # type: ignore[arg-type]
    assert len(pages) == 4
    session = _session(api, tokens[READ])
    for route in pages:
        anonymous = _call(api, route, HTML)
        unknown_cookie = _call(api, route, {**HTML, **_cookie("eg_unknown")})
        raw_token_cookie = _call(api, route, {**HTML, **_cookie(tokens[READ], "evalgate_token")})
        unknown_bearer = _call(api, route, {**HTML, **bearer("eg_unknown")})
        by_cookie = _call(api, route, {**HTML, **session})
        by_bearer = _call(api, route, {**HTML, **bearer(tokens[READ])})
        assert _to_login(anonymous) and _to_login(unknown_cookie) and _to_login(raw_token_cookie), route
        assert unknown_bearer.status_code == 401, route
        assert _admitted(by_cookie) and _admitted(by_bearer), (route, by_cookie.status_code)


def test_public_routes_answer_without_a_token_and_login_checks_the_one_it_is_given(
    api: TestClient,  # noqa: F811
    tokens: dict[str, str],  # noqa: F811
) -> None:
    for route in routes(api.app):  # type: ignore[arg-type]
        if SCOPES[route.key] == PUBLIC:
            assert _admitted(_call(api, route)), route
    login = next(route for route in routes(api.app) if SCOPES[route.key] == LOGIN)  # type: ignore[arg-type]

    refused = api.post(login.url, data={"token": "eg_unknown"}, follow_redirects=False)
    accepted = api.post(login.url, data={"token": tokens[READ]}, follow_redirects=False)

    assert refused.status_code == 401 and COOKIE not in refused.headers.get("set-cookie", "")
    assert accepted.status_code == 303 and f"{COOKIE}=" in accepted.headers["set-cookie"]
