"""Request ids and the API's log lines: every line written while a request is served names its id.

    evalgate serve --log-format json
    {"time": "2026-01-05T09:12:03.481Z", "level": "INFO", "logger": "evalgate.access",
     "message": "GET /jobs 200 3.2 ms", "request_id": "6f1c...", "method": "GET", "path": "/jobs",
     "status": 200, "duration_ms": 3.2}

A client may send its own ``X-Request-ID`` (to follow one call through its logs and the server's): it is
kept after dropping every character outside ``A-Z a-z 0-9 . _ ~ : @ / + = -`` and cutting it to
``MAX_REQUEST_ID_CHARS``; without one (or with nothing left of it) the server makes a random one.
Either way the answer carries it back in ``X-Request-ID`` (``api/telemetry.py``).

``configure`` sets up the process's logging for ``evalgate serve --log-format text|json`` (the setting
``log_format``): ``text`` keeps uvicorn's lines and adds ``[request-id]`` to the lines of a request,
its access line included; ``json`` writes one JSON object per line with ``time``, ``level``, ``logger``,
``message``, ``request_id``, ``method`` and ``path`` (null outside a request), and on the access line
``status`` and ``duration_ms`` (uvicorn's own access log is then replaced by ``evalgate.access``).
Only paths are logged, never query strings or headers, so no token reaches a log.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_REQUEST_ID_CHARS = 128
UNSAFE_IN_REQUEST_ID = re.compile(r"[^A-Za-z0-9._~:@/+=-]+")
ACCESS_LOGGER = "evalgate.access"
"""The logger of one line per answered request (``--log-format json``)."""
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
FIELDS = ("request_id", "method", "path", "status", "duration_ms")
"""The request's members of a JSON line, in order."""


@dataclass(frozen=True)
class RequestContext:
    """The request being served: its id, method and path."""

    request_id: str
    method: str
    path: str


current: ContextVar[RequestContext | None] = ContextVar("evalgate_request", default=None)
"""The request the running code serves (each request runs in its own task, so its own context)."""


def request_id(given: str | None) -> str:
    """The request id to use: the client's ``X-Request-ID`` made safe and short, else a new one."""
    kept = UNSAFE_IN_REQUEST_ID.sub("", given or "")[:MAX_REQUEST_ID_CHARS]
    return kept or uuid.uuid4().hex


class RequestFields(logging.Filter):
    """Puts the current request's id, method and path on every record (None outside a request), and
    ``request_tag`` (``"[id] "`` or ``""``) for text formats."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = current.get()
        for name in FIELDS:
            if not hasattr(record, name):
                setattr(record, name, getattr(request, name, None))
        given = getattr(record, "request_id", None)
        record.request_tag = f"[{given}] " if given else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ms), level, logger, message, the request's fields, and
    the traceback as ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "time": moment.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update({name: getattr(record, name, None) for name in FIELDS})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(request_tag)s%(message)s"
"""The lines of evalgate's (and other libraries') loggers."""
UVICORN_FORMAT = "%(levelprefix)s %(request_tag)s%(message)s"
UVICORN_ACCESS_FORMAT = '%(levelprefix)s %(request_tag)s%(client_addr)s - "%(request_line)s" %(status_code)s'
"""uvicorn's own lines as uvicorn writes them, the request id in front."""


STREAMS = {"plain": "ext://sys.stderr", "uvicorn": "ext://sys.stderr", "access": "ext://sys.stdout"}
"""Each handler's stream: uvicorn writes its access lines to stdout, the rest to stderr."""


def _handler(formatter: str, stream: str) -> dict[str, Any]:
    """A stream handler with the request filter."""
    return {
        "class": "logging.StreamHandler",
        "formatter": formatter,
        "filters": ["request"],
        "stream": stream,
    }


def logging_config(log_format: str) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of ``log_format`` (``text`` or ``json``); loggers' levels are
    left as they are (uvicorn sets its own from ``--log-level``)."""
    if log_format == "json":
        formatters: dict[str, Any] = {name: {"()": JsonFormatter} for name in ("plain", "uvicorn", "access")}
    else:
        formatters = {
            "plain": {"format": TEXT_FORMAT},
            "uvicorn": {"()": "uvicorn.logging.DefaultFormatter", "fmt": UVICORN_FORMAT},
            "access": {"()": "uvicorn.logging.AccessFormatter", "fmt": UVICORN_ACCESS_FORMAT},
        }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request": {"()": RequestFields}},
        "formatters": formatters,
        "handlers": {name: _handler(name, stream) for name, stream in STREAMS.items()},
        "loggers": {
            "uvicorn": {"handlers": ["uvicorn"], "propagate": False},
            "uvicorn.access": {"handlers": [] if log_format == "json" else ["access"], "propagate": False},
            ACCESS_LOGGER: {"handlers": ["plain"], "level": "INFO", "propagate": False},
        },
        "root": {"handlers": ["plain"]},
    }


def configure(log_format: str) -> None:
    """Set up the process's logging for ``log_format`` (``text`` or ``json``), keeping the levels
    uvicorn gave its loggers (``dictConfig`` resets those below a logger it configures)."""
    kept = {name: logging.getLogger(name).level for name in UVICORN_LOGGERS}
    logging.config.dictConfig(logging_config(log_format))
    for name, level in kept.items():
        logging.getLogger(name).setLevel(level)


def access_line(status: int | None, seconds: float) -> None:
    """Log the answered request (``evalgate.access``, INFO) with its status and duration."""
    request = current.get()
    duration_ms = round(seconds * 1000, 2)
    logging.getLogger(ACCESS_LOGGER).info(
        "%s %s %s %.1f ms",
        getattr(request, "method", "-"),
        getattr(request, "path", "-"),
        status if status is not None else "-",
        duration_ms,
        extra={"status": status, "duration_ms": duration_ms},
    )
