"""Dashboard sessions: the cookie holds a signed, expiring session naming the token's id, never the token.

Altered, foreign-signed and expired cookies are refused (and cleared); revoking the token ends its
sessions at their next request (no cache to wait out); the signing secret comes from the setting or is
generated once under the home, private to its owner, and shared by every app on that home.
"""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import time

import pytest
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer
from pydantic import SecretStr

from api.deps import COOKIE, LEGACY_COOKIE, TOKEN_CACHE_SECONDS
from api.main import create_app
from api.sessions import SALT, SECRET_FILE, SESSION_SECONDS
from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.service.api_tokens import hash_token, list_tokens, revoke_token

HTML = {"Accept": "text/html"}


def log_in(api: TestClient, token: str) -> str:
    """Log in with ``token``; the session cookie's value (the client keeps it too)."""
    api.cookies.clear()
    answer = api.post("/login", data={"token": token, "next": "/"}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return answer.cookies[COOKIE]


def home(api: TestClient, cookie: str | None = None) -> int:
    """The status of ``GET /`` as a browser asks for it, with ``cookie`` as the session if given."""
    api.cookies.clear()
    if cookie is not None:
        api.cookies.set(COOKIE, cookie)
    return api.get("/", headers=HTML, follow_redirects=False).status_code


def payload(cookie: str) -> dict[str, object]:
    """The signed (not encrypted) JSON inside a session cookie."""
    data = cookie.split(".")[0]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
    return decoded


def signed(secret: str, body: dict[str, object], issued: float | None = None) -> str:
    """A cookie signed as the app signs them, with ``secret``, issued at ``issued`` (default now)."""
    serializer = URLSafeTimedSerializer(secret, salt=SALT, signer_kwargs={"digest_method": hashlib.sha256})
    signer = serializer.make_signer()
    if issued is not None:
        signer.get_timestamp = lambda: int(issued)  # type: ignore[method-assign]
    return signer.sign(serializer.dump_payload(body)).decode()


def test_the_cookie_names_the_tokens_id_never_the_token(
    api: TestClient, tokens: dict[str, str], store: DatasetStore
) -> None:
    cookie = log_in(api, tokens["read"])
    read_id = next(info.id for info in list_tokens(store.sessions) if info.name == "read-token")

    secret = tokens["read"].removeprefix("eg_")
    assert secret not in cookie and hash_token(tokens["read"]) not in cookie
    assert payload(cookie)["tid"] == read_id and len(str(payload(cookie)["sid"])) >= 16
    assert home(api, cookie) == 200
    assert log_in(api, tokens["read"]) != cookie  # every login is a new session


def test_altered_and_foreign_cookies_are_refused_and_cleared(
    api: TestClient, tokens: dict[str, str], store: DatasetStore, settings: Settings
) -> None:
    cookie = log_in(api, tokens["read"])
    admin_id = next(info.id for info in list_tokens(store.sessions) if info.name == "admin-token")
    body, signature = cookie.rsplit(".", 1)
    flipped = body + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    other_payload = signed("x" * 48, {"sid": "s" * 22, "tid": admin_id}).split(".")[0]
    forged = [
        flipped,  # signature altered
        other_payload + cookie[cookie.index(".") :],  # another token's id under this cookie's signature
        signed("another secret, long enough to be one", {"sid": "s" * 22, "tid": admin_id}),
        tokens["read"],  # the raw token, as the old cookie held it
        "",
        "not a cookie",
    ]
    secret = (settings.home / SECRET_FILE).read_text().strip()
    assert home(api, signed(secret, {"sid": "s" * 22, "tid": admin_id})) == 200  # the genuine signer

    for value in forged:
        api.cookies.clear()
        api.cookies.set(COOKIE, value)
        answer = api.get("/", headers=HTML, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/login?next=%2F", value
        if value:
            assert answer.headers["set-cookie"].lower().startswith(f'{COOKIE}=""; '), value
            assert "max-age=0" in answer.headers["set-cookie"].lower()


def test_an_expired_session_is_refused(api: TestClient, tokens: dict[str, str], settings: Settings) -> None:
    cookie = log_in(api, tokens["read"])
    secret = (settings.home / SECRET_FILE).read_text().strip()
    body = payload(cookie)
    now = time.time()

    assert home(api, signed(secret, body, issued=now - SESSION_SECONDS + 60)) == 200
    assert home(api, signed(secret, body, issued=now - SESSION_SECONDS - 5)) == 303


def test_revoking_the_token_ends_its_sessions_at_the_next_request(
    api: TestClient, tokens: dict[str, str], store: DatasetStore
) -> None:
    first, second = log_in(api, tokens["read"]), log_in(api, tokens["read"])
    other = log_in(api, tokens["write"])
    assert TOKEN_CACHE_SECONDS > 1  # the bearer cache would keep a revoked token for seconds; sessions do not
    assert home(api, first) == home(api, second) == 200

    revoke_token(store.sessions, "read-token")

    assert home(api, first) == 303 and home(api, second) == 303
    assert home(api, other) == 200


def test_logout_clears_the_session_and_the_old_token_cookie(api: TestClient, tokens: dict[str, str]) -> None:
    log_in(api, tokens["read"])
    api.cookies.set(LEGACY_COOKIE, tokens["read"])

    out = api.post("/logout", follow_redirects=False)

    cleared = out.headers.get_list("set-cookie")
    assert out.status_code == 303 and len(cleared) == 2
    assert {value.split("=")[0] for value in cleared} == {COOKIE, LEGACY_COOKIE}
    assert all("max-age=0" in value.lower() for value in cleared)
    assert COOKIE not in api.cookies and home(api) == 303


def test_the_old_token_cookie_no_longer_opens_pages(api: TestClient, tokens: dict[str, str]) -> None:
    api.cookies.set(LEGACY_COOKIE, tokens["admin"])

    answer = api.get("/", headers=HTML, follow_redirects=False)

    assert answer.status_code == 303 and answer.headers["set-cookie"].startswith(f'{LEGACY_COOKIE}=""')


def test_the_cookie_is_secure_over_https(settings: Settings, tokens: dict[str, str]) -> None:
    with TestClient(create_app(settings), base_url="https://dashboard.example") as client:
        answer = client.post("/login", data={"token": tokens["read"]}, follow_redirects=False)
        out = client.post("/logout", follow_redirects=False)

    attributes = [part.strip().lower() for part in answer.headers["set-cookie"].split(";")]
    assert "secure" in attributes and "httponly" in attributes and "samesite=lax" in attributes
    assert "secure" in [part.strip().lower() for part in out.headers["set-cookie"].split(";")]


def test_the_secret_is_generated_once_private_and_shared_by_apps_on_one_home(
    settings: Settings, tokens: dict[str, str]
) -> None:
    path = settings.home / SECRET_FILE
    first, second = TestClient(create_app(settings)), TestClient(create_app(settings))
    assert not path.exists()  # made on first use, not at start

    cookie = log_in(first, tokens["read"])

    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_text().strip()) >= 32
    assert home(second, cookie) == 200  # another process on the same home reads the same secret
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(f".{SECRET_FILE}")] == []


def test_a_configured_secret_is_used_and_changing_it_ends_every_session(
    settings: Settings, tokens: dict[str, str]
) -> None:
    configured = settings.model_copy(update={"session_secret": SecretStr("s1" * 20)})
    rotated = settings.model_copy(update={"session_secret": SecretStr("s2" * 20)})
    api = TestClient(create_app(configured))

    cookie = log_in(api, tokens["read"])

    assert not (settings.home / SECRET_FILE).exists()
    assert home(api, cookie) == 200 and home(api, signed("s1" * 20, payload(cookie))) == 200
    assert home(TestClient(create_app(rotated)), cookie) == 303


@pytest.mark.parametrize(
    "bad", [{"sid": "s" * 22, "tid": "1"}, {"sid": 1, "tid": 1}, ["s", 1], {"tid": True}]
)
def test_a_well_signed_cookie_of_the_wrong_shape_is_refused(
    api: TestClient, tokens: dict[str, str], settings: Settings, bad: object
) -> None:
    log_in(api, tokens["read"])
    secret = (settings.home / SECRET_FILE).read_text().strip()

    assert home(api, signed(secret, bad)) == 303  # type: ignore[arg-type]
