"""Domain errors to HTTP: 404 unknown ids, 409 conflicts, 413 too large, 422 bad input with its path,
503 (with ``Retry-After``) while the database cannot be reached, 500 for a bug.

``database_unavailable`` is the one place that decides whether an error means "the database is away"
(a 503 that a retry will get past) or is a bug (a 500): the exception handlers, ``/healthz`` and
``/readyz`` all ask it.

Every error answer is an RFC 9457 problem document (``application/problem+json``, ``api/problems.py``
lists the types): ``type``, ``title``, ``status``, ``detail``, ``instance``. ``detail`` is the message
string FastAPI clients always read; for 422 it stays FastAPI's list of ``{"loc": [...], "msg": ...,
"type": ...}`` (request-validation errors and the domain's bad input alike, so clients parse one form),
and the ``errors`` member repeats the locations. Request-validation errors echo the bad input in
``detail``; values JSON cannot carry (NaN, infinities, lone surrogates, undecodable bytes) are echoed as
text, so a 422 is never turned into a 500 by its own body.
"""

from __future__ import annotations

import logging
import math
import re
import sqlite3
from collections.abc import Sequence
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import exc as sa
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import problems
from api.problems import Problem, ProblemType, problem_response, validation_problem
from evalgate.data.rows import DatasetInputError
from evalgate.data.store_files import DatasetIntegrityError
from evalgate.gate.decide import GateRefusal
from evalgate.gate.service import PromotionRefused
from evalgate.service.api_tokens import TokenError
from evalgate.service.jobs import JobStateError
from evalgate.sweep.external import AdapterLocationError

DIFFERENT_VERSIONS = "different dataset versions"
"""How ``evalgate.gate.decide`` begins the refusal of runs on different dataset versions."""
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


def validation_error(
    loc: Sequence[str | int], message: str, kind: str = "value_error", instance: str = ""
) -> JSONResponse:
    """A 422 problem naming one location, in FastAPI's validation-error shape (``instance``: the
    request's path)."""
    return validation_problem([{"loc": list(loc), "msg": message, "type": kind}], instance)


def conflict_kind(error: ValueError) -> ProblemType | None:
    """The 409 problem type of a domain conflict, or None when ``error`` is not one."""
    if isinstance(error, GateRefusal):
        if str(error).startswith(DIFFERENT_VERSIONS):
            return problems.DATASET_VERSION_MISMATCH
        return problems.NOT_COMPARABLE
    if isinstance(error, PromotionRefused):
        return problems.PROMOTION_REFUSED
    if isinstance(error, JobStateError):
        return problems.JOB_FINISHED
    return None


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


def unavailable_response(instance: str = "") -> JSONResponse:
    """The 503 every route answers while the database is away (``instance``: the request's path)."""
    seconds = DATABASE_RETRY_AFTER_SECONDS
    return problem_response(
        problems.DATABASE_UNAVAILABLE,
        f"database unavailable; retry in {seconds} s",
        instance,
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
    return unavailable_response(request.url.path)


async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    """422 for a request FastAPI (or a route) found invalid, the bad input echoed."""
    return validation_problem(encodable(error.errors()), request.url.path)


async def not_found(request: Request, error: LookupError) -> JSONResponse:
    """404 for an unknown id or name (the domain raises ``LookupError``, ``KeyError`` included)."""
    message = error.args[0] if error.args else str(error)
    return problem_response(problems.NOT_FOUND, str(message), request.url.path)


async def bad_value(request: Request, error: ValueError) -> JSONResponse:
    """409 for a domain conflict, 422 for the domain's bad input; any other ``ValueError`` is a bug."""
    conflict = conflict_kind(error)
    if conflict is not None:
        return problem_response(conflict, str(error), request.url.path)
    for kind, prefix in BAD_INPUT.items():
        if isinstance(error, kind):
            return validation_error([*prefix, *_path_of(str(error))], str(error), instance=request.url.path)
    raise error


async def integrity(request: Request, error: DatasetIntegrityError) -> JSONResponse:
    """409: the stored dataset files no longer match their recorded hashes."""
    return problem_response(problems.DATASET_TAMPERED, str(error), request.url.path)


async def too_large(request: Request, error: PayloadTooLarge) -> JSONResponse:
    """413 for a streamed body that passed the limit."""
    return problem_response(problems.PAYLOAD_TOO_LARGE, str(error), request.url.path)


async def raised_problem(request: Request, error: Problem) -> JSONResponse:
    """The problem a route raised."""
    return problem_response(error.kind, error.detail, request.url.path, headers=error.headers)


async def http_error(request: Request, error: HTTPException) -> Response:
    """An ``HTTPException`` (authentication, rate limits, unknown routes and methods) as a problem, its
    headers kept; a redirect (the dashboard's 303 to /login) stays what FastAPI makes of it."""
    if error.status_code < 400:
        return await http_exception_handler(request, error)
    kind = problems.BY_STATUS.get(error.status_code, problems.HTTP_ERROR)
    return problem_response(
        kind, error.detail, request.url.path, status=error.status_code, headers=error.headers
    )


async def internal_error(request: Request, _: Exception) -> JSONResponse:
    """500 for an exception no handler took (the server logs its traceback); nothing of it is shown."""
    detail = "internal server error; the server's log has the traceback under this request's X-Request-ID"
    return problem_response(problems.INTERNAL_ERROR, detail, request.url.path)


def install(app: FastAPI) -> None:
    """Register the error handlers on ``app``: every error answer becomes a problem document."""
    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]
    for kind in DATABASE_ERRORS:
        app.add_exception_handler(kind, database_error)
    app.add_exception_handler(LookupError, not_found)  # type: ignore[arg-type]
    app.add_exception_handler(ValueError, bad_value)  # type: ignore[arg-type]
    app.add_exception_handler(DatasetIntegrityError, integrity)  # type: ignore[arg-type]
    app.add_exception_handler(PayloadTooLarge, too_large)  # type: ignore[arg-type]
    app.add_exception_handler(Problem, raised_problem)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, internal_error)


def too_large_response(message: str, instance: str = "") -> JSONResponse:
    """A 413 problem with ``message`` as its detail."""
    return problem_response(problems.PAYLOAD_TOO_LARGE, message, instance)


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
            await too_large_response(message, scope.get("path", ""))(scope, receive, send)
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
        path = self.scope.get("path", "")
        await too_large_response(message, path)(self.scope, self.outer_receive, self.outer_send)

    async def send(self, message: Message) -> None:
        """Pass the app's response on, unless the 413 has answered in its place."""
        if self.refused:
            return
        if message["type"] == "http.response.start":
            self.started = True
        await self.outer_send(message)
