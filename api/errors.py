"""Domain errors to HTTP: 404 unknown ids, 409 conflicts, 413 too large, 422 bad input with its path,
503 (with ``Retry-After``) while the database cannot be reached.

Every error body has FastAPI's shape, ``{"detail": ...}``; for 422 the detail is a list of
``{"loc": [...], "msg": ..., "type": ...}`` like request-validation errors, so clients parse one form.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Sequence

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa
from starlette.types import ASGIApp, Receive, Scope, Send

from evalgate.candidates import AdapterLocationError
from evalgate.gate import GateRefusal
from evalgate.gate_policy import PolicyError
from evalgate.gate_service import PromotionRefused
from evalgate.jobs import JobStateError
from evalgate.rows import DatasetInputError
from evalgate.store_files import DatasetIntegrityError
from evalgate.sweep_config import ConfigError
from evalgate.tokens import TokenError

CONFLICTS = (GateRefusal, PromotionRefused, JobStateError)
BAD_INPUT: dict[type[Exception], tuple[str, ...]] = {
    PolicyError: ("body", "policy"),
    ConfigError: ("body", "config"),
    AdapterLocationError: ("body", "adapter_uri"),
    DatasetInputError: ("body",),
    TokenError: ("body",),
}
_KEY_PATH = re.compile(r"^([A-Za-z_][\w./\[\]-]*): ")
DATABASE_RETRY_AFTER_SECONDS = 2
"""What a 503 asks clients to wait: about as long as a PostgreSQL restart takes."""
SQLITE_UNAVAILABLE = ("database is locked", "database table is locked", "unable to open database file",
                      "disk I/O error")  # fmt: skip
log = logging.getLogger(__name__)


class PayloadTooLarge(Exception):
    """The request body is over ``Settings.max_upload_bytes``."""


def validation_error(loc: Sequence[str | int], message: str, kind: str = "value_error") -> JSONResponse:
    """A 422 in FastAPI's validation-error shape."""
    return JSONResponse(
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        content={"detail": [{"loc": list(loc), "msg": message, "type": kind}]},
    )


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


def database_unavailable(error: Exception) -> bool:
    """True when ``error`` says the database cannot be reached or is busy (worth retrying), not that a
    statement is wrong: a lost or refused connection, an exhausted pool, a locked SQLite file.

    SQLite reports syntax errors and missing tables as ``OperationalError`` too, so its messages are
    matched; for server databases every ``OperationalError`` and ``InterfaceError`` counts.
    """
    if isinstance(error, sa.TimeoutError):
        return True
    if not isinstance(error, sa.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    if isinstance(error.orig, sqlite3.Error):
        return str(error.orig).startswith(SQLITE_UNAVAILABLE)
    return isinstance(error, sa.OperationalError | sa.InterfaceError)


def unavailable_response() -> JSONResponse:
    """The 503 every route answers while the database is away."""
    seconds = DATABASE_RETRY_AFTER_SECONDS
    return JSONResponse(
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        content={"detail": f"database unavailable; retry in {seconds} s"},
        headers={"Retry-After": str(seconds)},
    )


def install(app: FastAPI) -> None:
    """Register the domain-error handlers on ``app``."""

    @app.exception_handler(sa.DBAPIError)
    @app.exception_handler(sa.TimeoutError)
    async def database_error(request: Request, error: Exception) -> JSONResponse:
        if not database_unavailable(error):
            raise error
        cause = getattr(error, "orig", None) or error
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        log.warning("%s %s: database unavailable (%s: %s)", request.method, request.url.path,
                    type(cause).__name__, reason)  # fmt: skip
        return unavailable_response()

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


class BodySizeLimit:
    """ASGI middleware: 413 for a request whose declared Content-Length is over ``limit`` bytes.

    Streamed bodies without a length are counted by the upload route itself.
    """

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.limit:
                response = JSONResponse(
                    status_code=status.HTTP_413_CONTENT_TOO_LARGE,
                    content={
                        "detail": f"request body of {int(length)} bytes is over the {self.limit}-byte limit"
                    },
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
