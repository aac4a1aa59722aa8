"""The outermost layer of the app: each request's id, its latency in ``/metrics``, its access line.

It wraps everything else, the error pages of unhandled exceptions included, so every answer (a 500
too) carries ``X-Request-ID`` and is counted. The request's id, method and path are set in
``api.logs.current`` before anything runs, so every log line written while serving it names the id.
"""

from __future__ import annotations

import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import logs
from api.metrics import UNMATCHED, HttpMetrics

REQUEST_ID_HEADER = "X-Request-ID"


def route_template(scope: Scope) -> str:
    """The template of the route that served the request (``/jobs/{job_id}``), or ``unmatched``."""
    route = scope.get("route")
    return str(getattr(route, "path", UNMATCHED)) if route is not None else UNMATCHED


class Telemetry:
    """ASGI middleware: request id in and out, latency histogram, and (``access_log``) one log line per
    answered request."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics, access_log: bool):
        self.app, self.metrics, self.access_log = app, metrics, access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = logs.request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        logs.current.set(logs.RequestContext(request_id, scope["method"], scope["path"]))
        started = time.perf_counter()
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int | None, seconds: float) -> None:
        """Count the request (when it was answered) and write its access line."""
        if status is not None:
            self.metrics.observe(scope["method"], route_template(scope), status, seconds)
        if self.access_log:
            logs.access_line(status, seconds)
