"""The dashboard's sessions: a browser logs in with a token once, then holds a signed, expiring session.

    EVALGATE_SESSION_SECRET=$(python -c 'import secrets; print(secrets.token_urlsafe(32))') evalgate serve

The ``evalgate_session`` cookie carries a random session id and the id of the token that logged in (never
the token's secret), signed with itsdangerous (HMAC-SHA256 under a key derived from the session secret)
and stamped with the time it was issued; a cookie that was altered, was signed with another secret, or is
older than ``SESSION_SECONDS`` is refused. The token is looked up by its id on every request, so revoking
it ends all of its sessions at their next request; logging out clears the cookie.

The secret is ``EVALGATE_SESSION_SECRET``; unset, one is generated on first use and kept in
``<home>/session-secret`` (mode 0600), which every API process sharing the home reads. Replacing the
secret ends every session. The secret is never logged.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session, sessionmaker

from evalgate.core.settings import Settings
from evalgate.db.models import ApiToken
from evalgate.db.session import session_scope
from evalgate.service.api_tokens import TokenInfo

SESSION_SECONDS = 12 * 3600
"""How long a session lasts after its login (the cookie's ``Max-Age`` and the signature's age limit)."""
SECRET_FILE = "session-secret"
SALT = "evalgate.dashboard-session"
"""Separates the session signatures from anything else the same secret might ever sign."""


@dataclass(frozen=True)
class DashboardSession:
    """What a valid session cookie holds."""

    session_id: str
    token_id: int


class DashboardSessions:
    """Issues and reads session cookies; loads (or makes) the secret on first use."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session], max_age: int = SESSION_SECONDS):
        self.settings, self.sessions, self.max_age = settings, sessions, max_age
        self._serializer: URLSafeTimedSerializer | None = None
        self._lock = threading.Lock()

    @property
    def serializer(self) -> URLSafeTimedSerializer:
        """The signer, keyed by the session secret (read or generated on first use)."""
        with self._lock:
            if self._serializer is None:
                self._serializer = URLSafeTimedSerializer(
                    session_secret(self.settings), salt=SALT, signer_kwargs={"digest_method": hashlib.sha256}
                )
            return self._serializer

    def issue(self, token_id: int) -> str:
        """A new session of the token with id ``token_id``: the cookie value."""
        return str(self.serializer.dumps({"sid": secrets.token_urlsafe(16), "tid": token_id}))

    def read(self, cookie: str) -> DashboardSession | None:
        """The session in ``cookie``, or None when it is forged, altered, expired or malformed."""
        try:
            payload: Any = self.serializer.loads(cookie, max_age=self.max_age)
        except BadSignature:  # SignatureExpired included
            return None
        if not isinstance(payload, dict):
            return None
        session_id, token_id = payload.get("sid"), payload.get("tid")
        if not isinstance(session_id, str) or not isinstance(token_id, int) or isinstance(token_id, bool):
            return None
        return DashboardSession(session_id, token_id)

    def token(self, cookie: str | None) -> TokenInfo | None:
        """The live token behind a valid session ``cookie`` (looked up now, not cached), else None."""
        session = self.read(cookie) if cookie else None
        return live_token(self.sessions, session.token_id) if session is not None else None


def live_token(sessions: sessionmaker[Session], token_id: int) -> TokenInfo | None:
    """The token with id ``token_id`` unless it is revoked or gone."""
    with session_scope(sessions) as session:
        row = session.get(ApiToken, token_id)
        if row is None or row.revoked_at is not None:
            return None
        return TokenInfo(row.id, row.name, row.scopes[0], row.created_at, revoked=False)


def session_secret(settings: Settings) -> str:
    """``EVALGATE_SESSION_SECRET``, else the one kept under the home (made there on first use)."""
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value()
    return stored_secret(settings.home / SECRET_FILE)


def stored_secret(path: Path) -> str:
    """The secret in ``path``; a new random one written there first if the file does not exist.

    The new secret goes to a private temporary file that is then hard-linked to ``path``: the link
    fails if another process got there first, and every process reads the one secret that won."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(48) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process stored its secret first: use that one
        finally:
            temporary.unlink(missing_ok=True)
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise RuntimeError(f"{path} holds no usable session secret (under 32 characters); delete it")
    return secret
