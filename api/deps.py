"""What every route shares: the app's settings and database sessions, and token authentication.

Clients send ``Authorization: Bearer eg_...``. A missing or unknown (or revoked) token gets 401, a
token whose scope is too low gets 403. The dashboard's HTML pages (``viewer``) also accept the token
from the ``evalgate_token`` cookie that ``POST /login`` sets (HttpOnly, SameSite=Strict), for reading
only: the JSON routes never look at the cookie, so no cross-site form can write with it.

A verified token is remembered for ``TOKEN_CACHE_SECONDS`` so a busy client costs one hash per request
instead of one query; a revocation takes effect within that time.
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

from evalgate.db.session import session_scope
from evalgate.settings import Settings
from evalgate.store import DatasetStore
from evalgate.tokens import TokenInfo, grants, hash_token, lookup

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
    _tokens: dict[str, tuple[TokenInfo, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cached(self, token: str) -> TokenInfo | None:
        """The token's verification if it is still fresh in the cache, else None (no database access)."""
        with self._lock:
            found = self._tokens.get(hash_token(token))
        return found[0] if found is not None and found[1] > time.monotonic() else None

    def verify(self, token: str) -> TokenInfo | None:
        """The live token with this secret (cached briefly), or None."""
        cached = self.cached(token)
        if cached is not None:
            return cached
        digest, now = hash_token(token), time.monotonic()
        with session_scope(self.sessions) as session:
            info = lookup(session, token)
        with self._lock:
            if info is None:
                self._tokens.pop(digest, None)
            else:
                self._tokens[digest] = (info, now + TOKEN_CACHE_SECONDS)
        return info


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
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
        state: AppState = Depends(get_state),
    ) -> TokenInfo:
        info = None
        if credentials is not None:
            info = state.cached(credentials.credentials)
            if info is None:
                info = await run_in_threadpool(state.verify, credentials.credentials)
        return admit(credentials, info, scope)

    return check


def check_read(credentials: HTTPAuthorizationCredentials | None, state: AppState) -> TokenInfo:
    """``require("read")`` called directly: the bearer check of a route that also serves browsers."""
    info = state.verify(credentials.credentials) if credentials is not None else None
    return admit(credentials, info, "read")


def viewer(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    state: AppState = Depends(get_state),
) -> TokenInfo:
    """A dashboard page's reader: the bearer header (checked like ``require("read")``: 401 when bad),
    else the ``evalgate_token`` cookie; without a live token a browser is sent to ``/login`` (303)."""
    if credentials is not None:
        return check_read(credentials, state)
    token = request.cookies.get(COOKIE)
    info = state.verify(token) if token else None
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
