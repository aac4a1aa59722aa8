"""A real HTTP server on a loopback port whose answers a test scripts, and which records every request.

    def answer(request: Seen) -> Answer:
        return Answer(503, {"Retry-After": "1"}) if request.nth == 1 else Answer(200, body=b"{}")

    with StubServer(answer) as server:
        Client(server.url, "eg_x").health()
    server.seen  # [Seen(path="/healthz", nth=1, ...), Seen(path="/healthz", nth=2, ...)]

``nth`` counts the requests to one path, so concurrent clients on distinct paths each see their own
sequence. The server adds its own ``Date`` header unless ``date=False`` (then only the answer's go).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    nth: int
    at: float
    """``time.monotonic()`` when it arrived."""


@dataclass(frozen=True)
class Answer:
    """What to send back."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"detail": "scripted"}'
    date: bool = True


class StubServer:
    """``ThreadingHTTPServer`` on 127.0.0.1 (a port the kernel picks) answering with ``answer``."""

    def __init__(self, answer: Callable[[Seen], Answer]):
        self.answer = answer
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="stub-http", daemon=True)

    def _record(self, method: str, path: str) -> Seen:
        with self._lock:
            nth = 1 + sum(seen.path == path for seen in self.seen)
            seen = Seen(method, path, nth, time.monotonic())
            self.seen.append(seen)
        return seen

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _respond(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                answer = stub.answer(stub._record(self.command, self.path.split("?")[0]))
                if answer.date:
                    self.send_response(answer.status)
                else:
                    self.send_response_only(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            do_GET = do_POST = _respond

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the test reads ``seen``."""

        return Handler

    def arrivals(self, path: str) -> list[float]:
        """When each request to ``path`` arrived, in order."""
        with self._lock:
            return [seen.at for seen in self.seen if seen.path == path]

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
