"""Serialise check-then-insert steps that must not run twice at once for the same thing.

    with serialised(sessions, "decision", run_id, baseline_run_id, policy_hash) as session:
        existing = find(session)            # no other block with this identity runs meanwhile
        if existing is None:
            session.add(new_row)

On PostgreSQL a transaction-scoped advisory lock, keyed by a hash of the identity, serialises the
blocks across processes and is released when the session commits or rolls back. SQLite (embedded,
served by one process) has no advisory locks: one process-wide lock serialises every such block.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from evalgate.db.session import session_scope

_PROCESS_LOCK = threading.Lock()
"""Serialises ``serialised`` blocks where there are no advisory locks (SQLite)."""


def advisory_key(identity: tuple[object, ...]) -> int:
    """A signed 64-bit key for ``pg_advisory_xact_lock``: the first 8 bytes of the identity's sha256."""
    digest = hashlib.sha256(json.dumps(identity, default=str).encode()).digest()
    return int.from_bytes(digest[:8], signed=True)


@contextmanager
def serialised(sessions: sessionmaker[Session], *identity: object) -> Iterator[Session]:
    """A committing session (as ``session_scope``) that holds the lock of ``identity`` throughout."""
    bind = sessions.kw.get("bind")
    postgres = bind is not None and bind.dialect.name == "postgresql"
    with nullcontext() if postgres else _PROCESS_LOCK, session_scope(sessions) as session:
        if postgres:
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": advisory_key(identity)})
        yield session
