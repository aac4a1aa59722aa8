"""A private ``redis-server`` on a free loopback port that a test may kill and start again.

    with RedisServer.started(tmp_path) as server:
        settings = Settings(redis_url=server.url)
        server.kill()       # SIGKILL: what a crash looks like to its clients
        server.start()      # the same port, empty (nothing is saved)

Nothing is written to disk (``--save ''``, no append-only file), so a restarted server starts empty.
Without the ``redis-server`` program the test is skipped, except under CI (``CI=true``), where that fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

START_TIMEOUT = 20.0


def free_port() -> int:
    """A loopback port no one listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` process on ``port``, logging to ``<folder>/redis.log``."""

    def __init__(self, folder: Path, port: int | None = None):
        program = shutil.which("redis-server")
        if program is None:
            message = "redis-server is not installed"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        self.program, self.folder, self.port = program, folder, port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @classmethod
    @contextmanager
    def started(cls, folder: Path) -> Iterator[RedisServer]:
        """A running server, killed when the block ends."""
        server = cls(folder)
        server.start()
        try:
            yield server
        finally:
            server.kill()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A plain client of this server (for the test's own looks)."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> None:
        """Start the server on its port; return once it answers PING."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with (self.folder / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [self.program, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.folder)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited {self.process.returncode} (port {self.port} taken?)")
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise TimeoutError(f"redis-server on port {self.port} did not answer in {START_TIMEOUT:.0f} s")

    def kill(self) -> None:
        """SIGKILL the server and wait until it is gone (its port then refuses connections)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)
