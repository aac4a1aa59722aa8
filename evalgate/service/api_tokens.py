"""REST API tokens: created once, shown once, stored as sha256, checked on every request.

    evalgate tokens create ci-pipeline --scope write     # prints eg_... once

Scopes are ordered ``read < write < admin``: a token grants its own scope and every lower one.
Tokens are 32 random bytes (URL-safe), so a plain sha256 of the token is a safe stored form: there is
nothing to brute-force that a slow hash would protect. The secret itself is never stored, logged or
compared: a request's token is hashed, the row is found by its digest (an index match), and the stored
digest is checked against the computed one with ``hmac.compare_digest`` (constant time).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from evalgate.db.base import utcnow
from evalgate.db.models import ApiToken
from evalgate.db.session import session_scope

SCOPES = ("read", "write", "admin")
TOKEN_PREFIX = "eg_"


class TokenError(ValueError):
    """A token name or scope is invalid, or the name is taken."""


@dataclass(frozen=True)
class TokenInfo:
    """A stored token, without its secret."""

    id: int
    name: str
    scope: str
    created_at: datetime
    revoked: bool


def hash_token(token: str) -> str:
    """sha256 hex digest of the token as sent by the client."""
    return hashlib.sha256(token.encode()).hexdigest()


def digests_match(stored: str, computed: str) -> bool:
    """Whether two token digests are equal, compared in constant time (no early exit on a mismatch)."""
    return hmac.compare_digest(stored.encode(), computed.encode())


def grants(held: str, needed: str) -> bool:
    """True when scope ``held`` includes scope ``needed`` (read < write < admin)."""
    return SCOPES.index(held) >= SCOPES.index(needed)


def create_token(sessions: sessionmaker[Session], name: str, scope: str) -> str:
    """Store a new token named ``name`` with ``scope``; return its secret (the only time it is shown)."""
    if scope not in SCOPES:
        raise TokenError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if not name.strip():
        raise TokenError("a token needs a name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with session_scope(sessions) as session:
            session.add(ApiToken(name=name, token_hash=hash_token(token), scopes=[scope]))
    except IntegrityError as error:
        raise TokenError(f"a token named {name!r} already exists") from error
    return token


def lookup(session: Session, token: str) -> TokenInfo | None:
    """The live (not revoked) token with this secret, or None."""
    digest = hash_token(token)
    row = session.scalars(
        select(ApiToken).where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None))
    ).first()
    return _info(row) if row is not None and digests_match(row.token_hash, digest) else None


def list_tokens(sessions: sessionmaker[Session]) -> list[TokenInfo]:
    """Every token, oldest first."""
    with session_scope(sessions) as session:
        return [_info(row) for row in session.scalars(select(ApiToken).order_by(ApiToken.id))]


def revoke_token(sessions: sessionmaker[Session], name: str) -> None:
    """Revoke the token named ``name``; it stops working at once."""
    with session_scope(sessions) as session:
        changed = session.execute(
            update(ApiToken)
            .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        ).rowcount  # type: ignore[attr-defined]
    if not changed:
        raise LookupError(f"no live token named {name!r}")


def _info(row: ApiToken) -> TokenInfo:
    return TokenInfo(row.id, row.name, row.scopes[0], row.created_at, row.revoked_at is not None)
