"""Idempotency keys: a POST sent again with the same ``Idempotency-Key`` gets the first answer back.

    curl -X POST -H "Idempotency-Key: 6f1c..." -H "Authorization: Bearer $TOKEN" ... /sweeps

A client that lost the answer to a POST (a timeout, a dropped connection, an API restart) cannot know
whether the work was done; sending the request again with the same key is safe: the first request's
answer is stored with the key (table ``idempotency_key``) and replayed, marked ``Idempotent-Replayed:
true``, so no second job, version, candidate, decision or token is created. Keys are scoped by the
request's credential (the sha256 of its ``Authorization`` header), so one client's keys never answer
another's requests, and kept ``RETENTION``.

- the same key with another method, path, query or body: a 422 problem naming the header, nothing done;
- the same key while the first request is still running: a 409 ``idempotency-key-in-use`` problem with
  ``Retry-After``. A running request renews its hold every ``HEARTBEAT`` seconds; a hold not renewed
  for ``ABANDONED_AFTER`` (its process died) is taken over by the retry, which ``Retry-After`` points at.
  On PostgreSQL the route's writes and the answer kept for the key commit in one transaction
  (``evalgate.db.session.joined_transaction``), and the answer is sent only once both are committed:
  a process that dies before that commit leaves no work behind, so the retry that takes over does the
  work once, and one that dies after it leaves the answer to replay. On SQLite (one process, for local
  use) the route commits on its own, and a process dying between its commit and the kept answer leaves
  work that the retry taking over does again;
- answers worth replaying are kept: 2xx, and 400, 404, 413, 422 (the same request gets them again);
  an answer that a retry may change (401, 403, 409, 429, 5xx) or a request that failed midway releases
  the key, so the retry runs afresh.

A POST without the header runs as before. The header must be 1 to 255 visible ASCII characters (a
UUID is the usual choice). The body of a keyed request is read whole before the route runs (its size
is bounded by the upload limit, checked outside this middleware), and its answer is held back until it
is kept (the API's POST routes answer small JSON documents, never a stream).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import anyio
from sqlalchemy import Connection, delete, exc, select, update
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import errors, problems
from evalgate.db.base import utcnow
from evalgate.db.models import IdempotencyKey
from evalgate.db.session import joined_transaction, session_scope

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
RETENTION = timedelta(hours=24)
"""How long an answer is kept for retries."""
HEARTBEAT = 5.0
"""Seconds between renewals of a running request's hold on its key."""
ABANDONED_AFTER = timedelta(seconds=15)
"""A hold not renewed for this long is free again: the process running the request died."""
KEPT_STATUSES = frozenset({400, 404, 413, 422})
"""Client errors a retry of the same request gets again: kept and replayed like successes."""
REPLAYED_HEADERS = ("content-type", "location")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claimed:
    """This request holds the key (row ``row_id``) and runs."""

    row_id: int


@dataclass(frozen=True)
class Refused:
    """The key cannot be used for this request: ``status`` (409 or 422), why, and for a 409 the
    seconds until its hold could be taken over."""

    status: int
    detail: str
    retry_after: int = 1


@dataclass(frozen=True)
class Stored:
    """The answer kept for the key, to replay."""

    status: int
    headers: dict[str, str]
    body: str


@dataclass
class Captured:
    """What the application answered, held back until the request's work and answer are kept."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    complete: bool = False

    async def record(self, message: Message) -> None:
        """The application's ``send``: note the status, the replayed headers and the body; hold it."""
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            for name, value in message.get("headers", []):
                if name.decode("latin-1").lower() in REPLAYED_HEADERS:
                    self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            self.complete = not message.get("more_body", False)
        self.messages.append(message)

    async def send_to(self, send: Send) -> None:
        """Pass the held answer on to the client."""
        for message in self.messages:
            await send(message)

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body")

    @property
    def work_kept(self) -> bool:
        """The route's writes are committed unless it failed: no complete answer, or a 5xx."""
        return self.complete and self.status < 500

    def answer(self) -> Stored | None:
        """The answer to keep for the key: a complete 2xx or ``KEPT_STATUSES`` answer whose body is
        empty or a JSON document (what the API's POST routes answer); None frees the key."""
        if not (self.complete and (200 <= self.status < 300 or self.status in KEPT_STATUSES)):
            return None
        body = self.body
        try:
            json.loads(body) if body else None
        except ValueError:
            return None
        return Stored(self.status, self.headers, body.decode())


class IdempotentPosts:
    """ASGI middleware: the stored answer for a POST's ``Idempotency-Key`` (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _header(scope, HEADER) if scope["type"] == "http" and scope["method"] == "POST" else None
        if key is None:
            await self.app(scope, receive, send)
            return
        instance = scope["path"]
        if not KEY_PATTERN.match(key):
            message = f"{HEADER} must be 1 to 255 visible ASCII characters, got {len(key)} characters"
            await errors.validation_error(["header", HEADER], message, instance)(scope, receive, send)
            return
        body = await _read_body(receive)
        sessions: sessionmaker[Session] = scope["app"].state.evalgate.sessions
        owner = hashlib.sha256((_header(scope, "Authorization") or "").encode()).hexdigest()
        try:
            outcome = await run_in_threadpool(claim, sessions, owner, key, request_hash(scope, body))
        except errors.DATABASE_ERRORS as error:
            await _unavailable(error, scope, receive, send)
            return
        if isinstance(outcome, Claimed):
            await self._run(scope, _replaying(body, receive), send, sessions, outcome.row_id)
        else:
            await _answer(outcome, instance)(scope, receive, send)

    async def _run(
        self, scope: Scope, receive: Receive, send: Send, sessions: sessionmaker[Session], row_id: int
    ) -> None:
        """Run the request; commit its work with its answer kept for the key, then send the answer."""
        try:
            connection = await run_in_threadpool(_begin, sessions)
        except errors.DATABASE_ERRORS as error:
            await run_in_threadpool(_abandon, sessions, None, row_id)
            await _unavailable(error, scope, receive, send)
            return
        captured = await self._held_answer(scope, receive, sessions, connection, row_id)
        try:
            await run_in_threadpool(settle, sessions, connection, row_id, captured)
        except errors.DATABASE_ERRORS as error:
            if connection is not None:  # not committed, or in doubt: the retry finds out which
                await _unavailable(error, scope, receive, send)
                return
            log.warning("idempotency key %d left held: %s", row_id, type(error).__name__)
        await captured.send_to(send)  # SQLite: the work is committed; a retry takes the key over later

    async def _held_answer(
        self,
        scope: Scope,
        receive: Receive,
        sessions: sessionmaker[Session],
        connection: Connection | None,
        row_id: int,
    ) -> Captured:
        """The application's answer, held back; its writes join ``connection``'s transaction (if any)
        while the hold on the key is renewed."""
        captured = Captured()
        holding = asyncio.create_task(_hold(sessions, row_id))
        try:
            with joined_transaction(connection) if connection is not None else nullcontext():
                await self.app(scope, receive, captured.record)
        except BaseException:
            with anyio.CancelScope(shield=True):  # even when the request was cancelled
                await run_in_threadpool(_abandon, sessions, connection, row_id)
            raise
        finally:
            holding.cancel()
        return captured


async def _unavailable(error: Exception, scope: Scope, receive: Receive, send: Send) -> None:
    """A 503 problem when ``error`` says the database is out of reach; any other error is raised."""
    if not errors.database_unavailable(error):
        raise error
    await errors.unavailable_response(scope["path"])(scope, receive, send)


def _begin(sessions: sessionmaker[Session]) -> Connection | None:
    """A connection in a transaction for the request's work and answer; None on SQLite, whose driver
    gives savepoints no reliable support (the route then commits on its own, as without a key)."""
    engine = sessions.kw["bind"]
    if engine.dialect.name != "postgresql":
        return None
    connection = engine.connect()
    connection.begin()
    return connection


def settle(
    sessions: sessionmaker[Session], connection: Connection | None, row_id: int, captured: Captured
) -> None:
    """Keep the request's answer for the key, or free the key; on PostgreSQL in the transaction of the
    request's work, committed with it, or rolled back with it when the route failed."""
    if connection is None:
        keep_answer(sessions, row_id, captured.answer())
        return
    with connection:
        if not captured.work_kept:
            connection.rollback()
        else:
            with joined_transaction(connection):
                keep_answer(sessions, row_id, captured.answer())
            connection.commit()
            return
    keep_answer(sessions, row_id, None)


def _abandon(sessions: sessionmaker[Session], connection: Connection | None, row_id: int) -> None:
    """The request raised: drop its uncommitted work and free the key (best effort: a key left held
    is taken over once its hold goes stale)."""
    try:
        if connection is not None:
            connection.close()  # rolls its transaction back
        keep_answer(sessions, row_id, None)
    except errors.DATABASE_ERRORS as error:
        log.warning("idempotency key %d left held: %s", row_id, type(error).__name__)


def request_hash(scope: Scope, body: bytes) -> str:
    """sha256 of the method, path, query string and body."""
    digest = hashlib.sha256()
    for part in (scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b""), body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def claim(sessions: sessionmaker[Session], owner: str, key: str, digest: str) -> Claimed | Refused | Stored:
    """Hold ``key`` for this request, or say why not, or give the answer kept for it."""
    _forget_old(sessions)
    try:
        with session_scope(sessions) as session:
            row = IdempotencyKey(
                scope=owner, key=key, request_hash=digest, status="pending", heartbeat_at=utcnow()
            )
            session.add(row)
            session.flush()
            return Claimed(row.id)
    except exc.IntegrityError:
        pass  # held or answered already
    with session_scope(sessions) as session:
        found = session.scalars(
            select(IdempotencyKey).where(IdempotencyKey.scope == owner, IdempotencyKey.key == key)
        ).one()
        if found.request_hash != digest:
            return Refused(422, f"this {HEADER} was used for another request (method, path or body)")
        if found.status == "done":
            return Stored(
                found.response_status or 200, dict(found.response_headers), found.response_body or ""
            )
        return _take_over(session, found)


def _take_over(session: Session, found: IdempotencyKey) -> Claimed | Refused:
    """The key of a request still running (409), or of one whose hold went stale (taken over)."""
    now = utcnow()
    taken = session.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.id == found.id,
            IdempotencyKey.status == "pending",
            IdempotencyKey.heartbeat_at < now - ABANDONED_AFTER,
        )
        .values(heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount == 1:  # type: ignore[attr-defined]
        return Claimed(found.id)
    held = now - _aware(found.heartbeat_at)
    wait = max(1, math.ceil((ABANDONED_AFTER - held).total_seconds()))
    return Refused(409, f"a request with this {HEADER} is still running: retry when it has answered", wait)


def _aware(moment: datetime) -> datetime:
    """``moment`` with its time zone (SQLite gives stored UTC times back without one)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def _hold(sessions: sessionmaker[Session], row_id: int) -> None:
    """Renew the hold on ``row_id`` every ``HEARTBEAT`` seconds until cancelled."""
    while True:
        await asyncio.sleep(HEARTBEAT)
        await run_in_threadpool(_renew, sessions, row_id)


def _renew(sessions: sessionmaker[Session], row_id: int) -> None:
    with session_scope(sessions) as session:
        session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.id == row_id, IdempotencyKey.status == "pending")
            .values(heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def keep_answer(sessions: sessionmaker[Session], row_id: int, answer: Stored | None) -> None:
    """Store the answer of the request holding ``row_id``; without one (it failed, or got an answer a
    retry may change), free the key."""
    with session_scope(sessions) as session:
        if answer is None:
            session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == row_id))
            return
        row = session.get_one(IdempotencyKey, row_id)
        row.status, row.response_status = "done", answer.status
        row.response_headers, row.response_body = answer.headers, answer.body


def _forget_old(sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as session:
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - RETENTION))


def _answer(outcome: Refused | Stored, instance: str) -> Response:
    if isinstance(outcome, Stored):
        headers = {**outcome.headers, REPLAYED: "true"}
        media = headers.pop("content-type", None)
        return Response(outcome.body, outcome.status, headers=headers, media_type=media)
    if outcome.status == 422:
        return errors.validation_error(["header", HEADER], outcome.detail, instance)
    retry = {"Retry-After": str(outcome.retry_after)}
    return problems.problem_response(problems.IDEMPOTENCY_KEY_IN_USE, outcome.detail, instance, headers=retry)


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.lower().encode("latin-1")
    for header, value in scope.get("headers", []):
        if header.lower() == wanted:
            return str(value.decode("latin-1"))
    return None


async def _read_body(receive: Receive) -> bytes:
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the application the body already read, then what the client sends."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
