"""What every route shares: the app's settings and database sessions, and token authentication.

Clients send ``Authorization: Bearer eg_...``. A missing or unknown (or revoked) token gets 401, a
token whose scope is too low gets 403. The dashboard's HTML pages (``viewer``) also accept the signed
session in the ``evalgate_session`` cookie that ``POST /login`` sets (``api/sessions.py``: the token's
id, never its secret; HttpOnly, SameSite=Lax), for reading only: the JSON routes never look at the
cookie, so no cross-site form can write with it. A session's token is looked up on every page, so a
revoked token sends its browsers back to the login page at once.

A verified token is remembered for ``TOKEN_CACHE_SECONDS`` so a busy client costs one hash per request
instead of one query; a revocation takes effect within that time. Cache and database both find a token
by its sha256 digest and confirm it with a constant-time comparison
(``evalgate.service.api_tokens.digests_match``).
Every verified request (bearer or session) is charged to its token's rate limit, and every failed one
to its client address's (``api/ratelimit.py``; shared through Redis when ``EVALGATE_REDIS_URL`` is set):
over either, 429 with ``Retry-After``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.ratelimit import Limits
from api.sessions import DashboardSessions
from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.session import session_scope
from evalgate.service.api_tokens import TokenInfo, digests_match, grants, hash_token, lookup

TOKEN_CACHE_SECONDS = 5.0
COOKIE = "evalgate_session"
"""The dashboard's session cookie: a signed session naming the token's id, HttpOnly and SameSite=Lax."""
LEGACY_COOKIE = "evalgate_token"
"""The cookie that held the raw token before sessions: ignored, and cleared where a browser sends it."""
bearer = HTTPBearer(auto_error=False, description="An evalgate token: `evalgate tokens create NAME`.")


@dataclass
class AppState:
    """Per-app objects, built once in ``create_app``."""

    settings: Settings
    sessions: sessionmaker[Session]
    store: DatasetStore
    limits: Limits = field(init=False)
    dashboard: DashboardSessions = field(init=False)
    _tokens: dict[str, tuple[str, TokenInfo, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.limits = Limits.from_settings(self.settings)
        self.dashboard = DashboardSessions(self.settings, self.sessions)

    def cached(self, token: str) -> TokenInfo | None:
        """The token's verification if it is still fresh in the cache, else None (no database access)."""
        return self._cached(hash_token(token))

    def verify(self, token: str) -> TokenInfo | None:
        """The live token with this secret (cached briefly), or None."""
        digest = hash_token(token)
        return self._cached(digest) or self._look_up(token, digest)

    def authenticate(self, token: str, client: str) -> TokenInfo | None:
        """``verify`` under the rate limits: a live token is charged one request, an unknown one counts
        as a failure of ``client`` (whose spent failure budget refuses it before any lookup). 429 over
        either limit."""
        digest = hash_token(token)
        info = self._cached(digest)
        if info is None:
            self.limits.check_failures(client)
            info = self._look_up(token, digest)
            if info is None:
                self.limits.record_failure(client)
                return None
        self.limits.charge_token(info.id)
        return info

    def session_token(self, cookie: str | None) -> TokenInfo | None:
        """The live token of the dashboard session in ``cookie`` (charged one request), or None."""
        info = self.dashboard.token(cookie)
        if info is not None:
            self.limits.charge_token(info.id)
        return info

    def _cached(self, digest: str) -> TokenInfo | None:
        with self._lock:
            found = self._tokens.get(digest)
        if found is None or not digests_match(found[0], digest):
            return None
        return found[1] if found[2] > time.monotonic() else None

    def _look_up(self, token: str, digest: str) -> TokenInfo | None:
        """The database's answer for the token (``digest`` its sha256), remembered for a few seconds."""
        now = time.monotonic()
        with session_scope(self.sessions) as session:
            info = lookup(session, token)
        with self._lock:
            if info is None:
                self._tokens.pop(digest, None)
            else:
                self._tokens[digest] = (digest, info, now + TOKEN_CACHE_SECONDS)
        return info


def client_address(request: Request) -> str:
    """The client's address as the server sees it (the key of its failed-authentication budget)."""
    return request.client.host if request.client is not None else "unknown"


async def get_state(request: Request) -> AppState:
    """The ``AppState`` of the app serving this request (async: no worker-thread hop)."""
    state: AppState = request.app.state.evalgate
    return state


def admit(credentials: HTTPAuthorizationCredentials | None, info: TokenInfo | None, scope: str) -> TokenInfo:
    """``info`` if it holds ``scope``; else 401 (missing, unknown or revoked token) or 403 (scope too low)."""
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if info is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"}
        )
    if not grants(info.scope, scope):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"token {info.name!r} has scope {info.scope}; this needs {scope}"
        )
    return info


def require(scope: str) -> Callable[..., Awaitable[TokenInfo]]:
    """A dependency that admits tokens holding ``scope`` (or a higher one) and returns the token.

    Async, so a request whose token is cached costs no worker-thread hop; a cache miss queries the
    database, and a rate limit kept in Redis is checked, in the thread pool.
    """

    async def check(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
        state: AppState = Depends(get_state),
    ) -> TokenInfo:
        info = None
        if credentials is not None:
            token, client = credentials.credentials, client_address(request)
            if state.cached(token) is not None and not state.limits.shared:
                info = state.authenticate(token, client)
            else:
                info = await run_in_threadpool(state.authenticate, token, client)
        return admit(credentials, info, scope)

    return check


def check_read(
    credentials: HTTPAuthorizationCredentials | None, state: AppState, client: str = "unknown"
) -> TokenInfo:
    """``require("read")`` called directly: the bearer check of a route that also serves browsers."""
    info = state.authenticate(credentials.credentials, client) if credentials is not None else None
    return admit(credentials, info, "read")


def viewer(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    state: AppState = Depends(get_state),
) -> TokenInfo:
    """A dashboard page's reader: the bearer header (checked like ``require("read")``: 401 when bad),
    else the session cookie; without a session of a live token a browser is sent to ``/login`` (303),
    and a cookie it sent (expired, altered, or of a revoked token) is cleared."""
    if credentials is not None:
        return check_read(credentials, state, client_address(request))
    info = state.session_token(request.cookies.get(COOKIE))
    if info is None or not grants(info.scope, "read"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        headers = {"Location": "/login?" + urlencode({"next": target})}
        if COOKIE in request.cookies or LEGACY_COOKIE in request.cookies:
            headers["Set-Cookie"] = cleared_cookie(COOKIE if COOKIE in request.cookies else LEGACY_COOKIE)
        raise HTTPException(status.HTTP_303_SEE_OTHER, "log in first", headers=headers)
    return info


def came_over_tls(request: Request) -> bool:
    """Whether the browser reached the service over HTTPS: directly, or through a proxy that uvicorn
    trusts to say so (``X-Forwarded-Proto`` from an address in ``--forwarded-allow-ips`` /
    ``FORWARDED_ALLOW_IPS``, default the loopback); a session cookie is then sent Secure."""
    return request.url.scheme == "https"


def cleared_cookie(name: str) -> str:
    """A ``Set-Cookie`` value that removes the cookie ``name`` (path ``/``)."""
    response = Response()
    response.delete_cookie(name, path="/", httponly=True, samesite="lax")
    return response.headers["set-cookie"]


READ = Depends(require("read"))
WRITE = Depends(require("write"))
ADMIN = Depends(require("admin"))
