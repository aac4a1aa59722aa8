"""Behind a TLS proxy: the session cookie is Secure when the proxy says the browser used HTTPS
(``X-Forwarded-Proto: https``), but only from an address uvicorn trusts (``FORWARDED_ALLOW_IPS``, as
``--forwarded-allow-ips`` sets it); from any other address the header is ignored. Real `evalgate serve`
processes, one trusting the test's address and one trusting another."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.deps import COOKIE
from evalgate.core.settings import Settings
from tests.api.service import Service, wait_until_healthy


@pytest.fixture
def service(settings: Settings, tmp_path: Path) -> Iterator[Service]:
    running = Service(settings, tmp_path)
    try:
        yield running
    finally:
        running.stop()


def served(service: Service, name: str, trusted: str) -> str:
    """A serve process trusting the proxy addresses ``trusted``; its URL."""
    service.env["FORWARDED_ALLOW_IPS"] = trusted
    process, url = service.serve(name)
    wait_until_healthy(url, process, service.logs / f"{name}.log")
    return url


def login_cookie(url: str, token: str, proto: str | None) -> list[str]:
    """The attributes of the session cookie a login sets, sent as if through a proxy saying ``proto``."""
    headers = {"X-Forwarded-Proto": proto} if proto else {}
    answer = httpx.post(f"{url}/login", data={"token": token}, headers=headers, timeout=30)
    assert answer.status_code == 303, answer.text
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    return [part.strip().lower() for part in cookie.split(";")[1:]]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_cookie_is_secure_only_when_a_trusted_proxy_says_https(service: Service) -> None:
    token = service.cli("tokens", "create", "browser", "--scope", "read")
    trusting = served(service, "trusting", "127.0.0.1")
    distrusting = served(service, "distrusting", "192.0.2.1")

    assert "secure" in login_cookie(trusting, token, "https")
    assert "secure" not in login_cookie(trusting, token, None)
    assert "secure" not in login_cookie(trusting, token, "http")
    assert "secure" not in login_cookie(distrusting, token, "https")
    assert {"httponly", "samesite=lax", "path=/"} <= set(login_cookie(distrusting, token, "https"))
