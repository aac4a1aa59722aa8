"""bench/wrk_load.py: the Lua script wrk runs, and its summary line, against a real wrk and server."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from bench import wrk_load


class Recorder(BaseHTTPRequestHandler):
    """Answers 200 (404 on /missing) and records what each request carried."""

    seen: ClassVar[list[tuple[str, str, str | None, bytes]]] = []
    lock = threading.Lock()
    protocol_version = "HTTP/1.1"

    def _answer(self, body: bytes = b"") -> None:
        with self.lock:
            self.seen.append((self.command, self.path, self.headers.get("Authorization"), body))
        status = 404 if self.path == "/missing" else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer(self.rfile.read(int(self.headers["Content-Length"])))

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Recorder.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_the_summary_line_is_read_in_milliseconds_and_seconds() -> None:
    output = "Running 1s test\nEVALGATE requests=250 duration_us=2000000 status_errors=3 socket_errors=1 " \
        "bytes=5000 p50_us=1500 p99_us=12250\n"  # fmt: skip
    figures = wrk_load.parse(output)
    assert (figures.requests, figures.seconds, figures.rate) == (250, 2.0, 125.0)
    assert (figures.status_errors, figures.socket_errors, figures.bytes_read) == (3, 1, 5000)
    assert (figures.p50_ms, figures.p99_ms) == (1.5, 12.25)
    with pytest.raises(ValueError, match="no summary line"):
        wrk_load.parse("Running 1s test\n  0 requests in 1.00s\n")


@pytest.mark.skipif(not wrk_load.available(), reason="wrk is not installed (make system-tools installs it)")
def test_real_wrk_sends_the_rotation_with_a_fresh_counter_per_body(server: str) -> None:
    body = json.dumps({"candidate_id": 7, "policy": {"seed": wrk_load.COUNTER}})
    specs = [wrk_load.Spec("GET", "/gate/decisions/1"), wrk_load.Spec("POST", "/gate/decide", body),
             wrk_load.Spec("GET", "/missing")]  # fmt: skip
    figures = wrk_load.run(server, wrk_load.lua_script(specs, "eg_secret", counter_start=500),
                           connections=1, seconds=1)  # fmt: skip

    seen = list(Recorder.seen)
    assert figures.requests >= 3 and abs(figures.requests - len(seen)) <= 1  # one may be in flight
    assert {authorization for _, _, authorization, _ in seen} == {"Bearer eg_secret"}
    rotation = ["/gate/decisions/1", "/gate/decide", "/missing"]
    paths = [path for _, path, _, _ in seen]
    assert all(rotation[(rotation.index(a) + 1) % 3] == b for a, b in itertools.pairwise(paths))
    seeds = [json.loads(raw)["policy"]["seed"] for method, _, _, raw in seen if method == "POST"]
    # wrk may build one request it never sends (it asks the script once before connecting)
    assert seeds == sorted(set(seeds)) and seeds[0] >= 500 and seeds[-1] - seeds[0] == len(seeds) - 1
    assert figures.status_errors == sum(path == "/missing" for _, path, _, _ in seen[: figures.requests])
    assert figures.socket_errors == 0 and 0 < figures.p50_ms <= figures.p99_ms
