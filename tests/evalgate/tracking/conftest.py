"""A real MLflow tracking server for the tracking tests: ``mlflow server`` (the CLI of this environment)
on a free loopback port, with a SQLite backend store and proxied artifacts in a temporary folder, started
once and shared by the package's tests.

MLflow comes from ``pip install -e '.[mlflow]'``; without it the tests that need it skip locally and fail
under CI (``CI`` set).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

START_TIMEOUT_SECONDS = 90.0
"""Long enough for MLflow to create its SQLite schema on a loaded 2-core machine (it takes ~10 s idle)."""
SERVER_ENVIRONMENT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
"""No background job runner (its worker processes serve MLflow's GenAI jobs, which these tests never
start): the server starts and stops faster."""


def mlflow_unavailable(reason: str) -> None:
    """Skip, or fail under CI: the tracking tests must run there."""
    if os.environ.get("CI"):
        pytest.fail(f"MLflow tracking tests need it in CI: {reason}")
    pytest.skip(reason)


def require_mlflow() -> Path:
    """The ``mlflow`` executable beside this interpreter (skip or fail when mlflow is not installed)."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        mlflow_unavailable("mlflow is not installed (pip install -e '.[mlflow]')")
    executable = Path(sys.executable).parent / "mlflow"
    if not executable.is_file():
        mlflow_unavailable(f"no mlflow command at {executable}")
    return executable


@dataclass(frozen=True)
class MlflowServer:
    """A running ``mlflow server``."""

    url: str
    artifacts: Path

    def client(self) -> Any:
        """An ``MlflowClient`` for tracking and the model registry on this server."""
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.url, registry_uri=self.url)


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_answering(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``url``/health until it answers 200; ``RuntimeError`` with the log's tail when the server exits
    first or is not up within ``START_TIMEOUT_SECONDS``."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"mlflow server not up in {START_TIMEOUT_SECONDS:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="package")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """``mlflow server`` with ``--backend-store-uri sqlite:///...`` and ``--artifacts-destination`` in a
    temporary folder, one worker, on a free loopback port; stopped after the package's tests."""
    executable = require_mlflow()
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = folder / "server.log"
    command = [
        str(executable), "server",
        "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
        "--artifacts-destination", str(folder / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with log.open("wb") as output:
        process = subprocess.Popen(  # its own process group: the server's workers stop with it
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=folder,
            env={**os.environ, **SERVER_ENVIRONMENT},
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(url, process, log)
        yield MlflowServer(url, folder / "artifacts")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
