"""What every route shares: the app's settings and database sessions, and token authentication.

Clients send ``Authorization: Bearer eg_...``. A missing or unknown (or revoked) token gets 401, a
token whose scope is too low gets 403. The dashboard's HTML pages (``viewer``) also accept the token
from the ``evalgate_token`` cookie that ``POST /login`` sets (HttpOnly, SameSite=Strict), for reading
only: the JSON routes never look at the cookie, so no cross-site form can write with it.

A verified token is remembered for ``TOKEN_CACHE_SECONDS`` so a busy client costs one hash per request
instead of one query; a revocation takes effect within that time. Cache and database both find a token
by its sha256 digest and confirm it with a constant-time comparison
(``evalgate.service.api_tokens.digests_match``).
Every verified request is charged to its token's rate limit, and every failed one to its client
address's (``api/ratelimit.py``): over either, 429 with ``Retry-After``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.ratelimit import Limits
from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.session import session_scope
from evalgate.service.api_tokens import TokenInfo, digests_match, grants, hash_token, lookup

TOKEN_CACHE_SECONDS = 5.0
COOKIE = "evalgate_token"
"""The dashboard's session cookie: the token itself, HttpOnly and SameSite=Strict."""
bearer = HTTPBearer(auto_error=False, description="An evalgate token: `evalgate tokens create NAME`.")


@dataclass
class AppState:
    """Per-app objects, built once in ``create_app``."""

    settings: Settings
    sessions: sessionmaker[Session]
    store: DatasetStore
    limits: Limits = field(init=False)
    _tokens: dict[str, tuple[str, TokenInfo, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.limits = Limits.from_settings(self.settings)

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
        self.limits.charge_token(digest)
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

    Async, so a request whose token is cached costs no worker-thread hop; only a cache miss queries
    the database, in the thread pool.
    """

    async def check(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
        state: AppState = Depends(get_state),
    ) -> TokenInfo:
        info = None
        if credentials is not None:
            token, client = credentials.credentials, client_address(request)
            if state.cached(token) is not None:
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
    else the ``evalgate_token`` cookie; without a live token a browser is sent to ``/login`` (303)."""
    if credentials is not None:
        return check_read(credentials, state, client_address(request))
    token = request.cookies.get(COOKIE)
    info = state.authenticate(token, client_address(request)) if token else None
    if info is None or not grants(info.scope, "read"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(
            status.HTTP_303_SEE_OTHER,
            "log in first",
            headers={"Location": "/login?" + urlencode({"next": target})},
        )
    return info


READ = Depends(require("read"))
WRITE = Depends(require("write"))
ADMIN = Depends(require("admin"))
