"""Domain errors to HTTP: 404 unknown ids, 409 conflicts, 413 too large, 422 bad input with its path,
503 (with ``Retry-After``) while the database cannot be reached.

``database_unavailable`` is the one place that decides whether an error means "the database is away"
(a 503 that a retry will get past) or is a bug (a 500): the exception handlers and ``/healthz`` both
ask it.

Every error body has FastAPI's shape, ``{"detail": ...}``; for 422 the detail is a list of
``{"loc": [...], "msg": ..., "type": ...}`` like request-validation errors, so clients parse one form.
Request-validation errors echo the bad input; values JSON cannot carry (NaN, infinities, lone
surrogates, undecodable bytes) are echoed as text, so a 422 is never turned into a 500 by its own body.
"""

from __future__ import annotations

import logging
import math
import re
import sqlite3
from collections.abc import Sequence
from typing import Any

import psycopg
from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from evalgate.data.rows import DatasetInputError
from evalgate.data.store_files import DatasetIntegrityError
from evalgate.gate.decide import GateRefusal
from evalgate.gate.service import PromotionRefused
from evalgate.service.api_tokens import TokenError
from evalgate.service.jobs import JobStateError
from evalgate.sweep.external import AdapterLocationError

CONFLICTS = (GateRefusal, PromotionRefused, JobStateError)
BAD_INPUT: dict[type[Exception], tuple[str, ...]] = {
    AdapterLocationError: ("body", "adapter_uri"),
    DatasetInputError: ("body",),
    TokenError: ("body",),
}
_KEY_PATH = re.compile(r"^([A-Za-z_][\w./\[\]-]*): ")
DATABASE_RETRY_AFTER_SECONDS = 2
"""What a 503 asks clients to wait: about as long as a PostgreSQL restart takes."""
DATABASE_ERRORS: tuple[type[Exception], ...] = (sa.SQLAlchemyError, psycopg.Error, sqlite3.Error)
"""What the database layer raises: SQLAlchemy's errors, and a driver's own should one escape unwrapped."""
SQLITE_UNAVAILABLE = ("database is locked", "database table is locked", "unable to open database file",
                      "disk I/O error")  # fmt: skip
LOST_CONNECTION = ("server closed the connection", "connection is closed", "connection is lost",
                   "connection was closed", "consuming input failed", "terminating connection",
                   "lost synchronization", "invalid transaction", "this connection is closed",
                   "connection reset", "broken pipe")  # fmt: skip
"""Phrases of driver and ORM errors that mean the connection died, whatever the error's class."""
INVALIDATED_TRANSACTION = "8s2b"
"""SQLAlchemy's code of "Can't reconnect until invalid transaction is rolled back": the connection under
an open transaction was invalidated, which SQLAlchemy does when it sees the connection die."""
PERMANENT_SQLSTATE_CLASSES = ("54",)
"""PostgreSQL's "program limit exceeded" (statement too complex, too many columns, ...): psycopg raises
it as an ``OperationalError``, but no retry can make the statement pass."""
log = logging.getLogger(__name__)


class PayloadTooLarge(Exception):
    """The request body is over ``Settings.max_upload_bytes``."""


def validation_error(loc: Sequence[str | int], message: str, kind: str = "value_error") -> JSONResponse:
    """A 422 in FastAPI's validation-error shape."""
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": [{"loc": list(loc), "msg": message, "type": kind}]},
    )


def encodable(value: Any) -> Any:
    """``value`` made safe for a strict UTF-8 JSON body: non-finite floats as ``"NaN"``,
    ``"Infinity"`` or ``"-Infinity"`` (how the request spelled them), lone surrogates and undecodable
    bytes as backslash escapes; other objects through FastAPI's ``jsonable_encoder``, then the same."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {str(encodable(key)): encodable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [encodable(item) for item in value]
    try:
        return encodable(jsonable_encoder(value))
    except Exception:  # an object FastAPI cannot encode still gets a readable echo
        return encodable(repr(value))


def _path_of(message: str) -> list[str | int]:
    """``checks[1].margin: must be >= 0`` -> ``["checks", 1, "margin"]``."""
    match = _KEY_PATH.match(message)
    if not match:
        return []
    parts: list[str | int] = []
    for piece in re.split(r"[.\[\]]+", match.group(1)):
        if piece:
            parts.append(int(piece) if piece.isdigit() else piece)
    return parts


def database_unavailable(error: BaseException) -> bool:
    """True when ``error`` says the database cannot be reached or is too busy to answer now (a retry may
    pass), False when it says the statement or the code is wrong (no retry will).

    Unavailable, in order:

    - the pool found no connection in time (``sqlalchemy.exc.TimeoutError``) or dropped one at
      checkout (``DisconnectionError``);
    - a driver error that SQLAlchemy saw invalidate its connection (``connection_invalidated``);
    - a driver error by its kind: on SQLite, a locked or unopenable file only (SQLite calls syntax
      errors and missing tables ``OperationalError`` too); on a server database, every
      ``OperationalError`` and ``InterfaceError`` (refused, lost or closed connection, server shutting
      down, too many connections, lock or statement timeout) except PostgreSQL's "program limit
      exceeded" (SQLSTATE class 54), and psycopg's plain ``DatabaseError`` without a SQLSTATE, which
      is how it reports a failure libpq found itself, such as "server closed the connection
      unexpectedly" in the middle of a query; the same, whether SQLAlchemy wrapped it or not;
    - an ORM error that follows a dead connection: ``PendingRollbackError`` for a transaction whose
      connection was invalidated, or any SQLAlchemy error whose message names a lost connection
      (``ResourceClosedError("This Connection is closed")``, the session's "rolled back due to a
      previous exception" with a lost connection as that exception).

    Everything else is a server error: integrity and programming errors, ORM misuse, and any
    exception that is not a database error.
    """
    if isinstance(error, sa.TimeoutError | sa.DisconnectionError):
        return True
    if isinstance(error, sa.DBAPIError):
        operational = isinstance(error, sa.OperationalError | sa.InterfaceError)
        return error.connection_invalidated or _driver_unavailable(error.orig, operational)
    if isinstance(error, psycopg.Error | sqlite3.Error):
        operational_kinds = (psycopg.OperationalError, psycopg.InterfaceError, sqlite3.OperationalError,
                             sqlite3.InterfaceError)  # fmt: skip
        return _driver_unavailable(error, isinstance(error, operational_kinds))
    if isinstance(error, sa.PendingRollbackError) and error.code == INVALIDATED_TRANSACTION:
        return True
    return isinstance(error, sa.SQLAlchemyError) and _names_lost_connection(str(error))


def _driver_unavailable(error: BaseException | None, operational: bool) -> bool:
    """Whether the driver's ``error`` means the database is away; ``operational``: it is an
    ``OperationalError`` or ``InterfaceError`` in PEP 249's terms."""
    if isinstance(error, sqlite3.Error):
        return str(error).startswith(SQLITE_UNAVAILABLE)
    sqlstate = getattr(error, "sqlstate", None)
    if operational:
        return not (isinstance(sqlstate, str) and sqlstate.startswith(PERMANENT_SQLSTATE_CLASSES))
    if type(error) is psycopg.DatabaseError and sqlstate is None:
        return True
    return _names_lost_connection(str(error))


def _names_lost_connection(message: str) -> bool:
    lowered = message.lower()
    return any(phrase in lowered for phrase in LOST_CONNECTION)


def unavailable_response() -> JSONResponse:
    """The 503 every route answers while the database is away."""
    seconds = DATABASE_RETRY_AFTER_SECONDS
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        content={"detail": f"database unavailable; retry in {seconds} s"},
        headers={"Retry-After": str(seconds)},
    )


async def database_error(request: Request, error: Exception) -> JSONResponse:
    """The handler of every database error: 503 (``unavailable_response``) when ``database_unavailable``
    says the database is away, else the error raised on, to be the 500 it is."""
    if not database_unavailable(error):
        raise error
    cause = getattr(error, "orig", None) or error
    reason = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    log.warning("%s %s: database unavailable (%s: %s)", request.method, request.url.path,
                type(cause).__name__, reason)  # fmt: skip
    return unavailable_response()


def install(app: FastAPI) -> None:
    """Register the domain-error handlers on ``app``."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": encodable(error.errors())}
        )

    for kind in DATABASE_ERRORS:
        app.add_exception_handler(kind, database_error)

    @app.exception_handler(LookupError)
    async def not_found(_: Request, error: LookupError) -> JSONResponse:
        message = error.args[0] if error.args else str(error)
        return JSONResponse(status_code=status.HTTP_404_NOT_FOUND, content={"detail": str(message)})

    @app.exception_handler(ValueError)
    async def bad_value(_: Request, error: ValueError) -> JSONResponse:
        if isinstance(error, CONFLICTS):
            return JSONResponse(status_code=status.HTTP_409_CONFLICT, content={"detail": str(error)})
        for kind, prefix in BAD_INPUT.items():
            if isinstance(error, kind):
                return validation_error([*prefix, *_path_of(str(error))], str(error))
        raise error

    @app.exception_handler(DatasetIntegrityError)
    async def integrity(_: Request, error: DatasetIntegrityError) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_409_CONFLICT, content={"detail": str(error)})

    @app.exception_handler(PayloadTooLarge)
    async def too_large(_: Request, error: PayloadTooLarge) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_413_CONTENT_TOO_LARGE, content={"detail": str(error)})


def too_large_response(message: str) -> JSONResponse:
    """A 413 with ``message`` as its detail."""
    return JSONResponse(status_code=status.HTTP_413_CONTENT_TOO_LARGE, content={"detail": message})


class BodySizeLimit:
    """ASGI middleware: 413 for a request body over ``limit`` bytes, before the app reads it whole.

    A declared ``Content-Length`` over the limit is refused before any byte is read. A body without
    one (chunked) is counted as the app pulls it: past the limit, the 413 is sent (when no response
    has started), the app is told the client went away, and whatever it sends afterwards is dropped.
    The upload route also counts its stream, so it stops even when mounted without this middleware.
    """

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            message = f"request body of {int(length)} bytes is over the {self.limit}-byte limit"
            await too_large_response(message)(scope, receive, send)
            return
        await _CountedRequest(self, scope, receive, send).run()


class _CountedRequest:
    """One request under ``BodySizeLimit``: its body bytes counted, its response passed on until the
    limit is passed."""

    def __init__(self, guard: BodySizeLimit, scope: Scope, receive: Receive, send: Send):
        self.app, self.limit = guard.app, guard.limit
        self.scope, self.outer_receive, self.outer_send = scope, receive, send
        self.received = 0
        self.started = False
        self.refused = False

    async def run(self) -> None:
        """Run the app; a disconnect it raises after the refusal is the one this class told it of."""
        try:
            await self.app(self.scope, self.receive, self.send)
        except ClientDisconnect:
            if not self.refused:
                raise

    async def receive(self) -> Message:
        """The next body message, counted; past the limit (and ever after), a disconnect."""
        if self.refused:
            return {"type": "http.disconnect"}
        message = await self.outer_receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                await self.refuse()
                return {"type": "http.disconnect"}
        return message

    async def refuse(self) -> None:
        """Answer 413 (unless the app already started its response) and stop reading the body."""
        self.refused = True
        if self.started:
            return
        self.started = True
        message = f"request body passed the {self.limit}-byte limit after {self.received} bytes"
        await too_large_response(message)(self.scope, self.outer_receive, self.outer_send)

    async def send(self, message: Message) -> None:
        """Pass the app's response on, unless the 413 has answered in its place."""
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self.outer_send(message)
