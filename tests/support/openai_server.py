"""A real OpenAI-compatible server for the LLM judge's tests: ``transformers serve`` (the CLI beside this
interpreter) pinned to a local model folder, on a free loopback port, offline (``HF_HUB_OFFLINE=1``).

The openai SDK comes from ``pip install -e '.[judge]'`` (it is also what ``transformers serve`` needs
besides FastAPI, Uvicorn and pydantic); without it, or without the ``transformers`` command, the tests
skip locally and fail under CI (``CI`` set).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

START_TIMEOUT_SECONDS = 90.0
"""Long enough to load a 135M model on a loaded 2-core machine (about 8 s idle)."""


def unavailable(reason: str) -> None:
    """Skip, or fail under CI: the judge's tests must run there."""
    if os.environ.get("CI"):
        pytest.fail(f"LLM judge tests need it in CI: {reason}")
    pytest.skip(reason)


def require_openai() -> None:
    """Skip (fail under CI) when the openai SDK is not installed."""
    try:
        import openai  # noqa: F401
    except ImportError:
        unavailable("the openai SDK is not installed (pip install -e '.[judge]')")


def require_transformers_serve() -> Path:
    """The ``transformers`` command beside this interpreter, able to ``serve`` (else skip or fail)."""
    require_openai()
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        unavailable(
            "`transformers serve` lacks fastapi, uvicorn, pydantic or openai (pip install -e '.[judge]')"
        )
    executable = Path(sys.executable).parent / "transformers"
    if not executable.is_file():
        unavailable(f"no transformers command at {executable}")
    return executable


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ServedModel:
    """A running ``transformers serve``: its ``/v1`` base URL, the model name it answers to, and how many
    seconds it took from launch to a 200 on ``/health``."""

    base_url: str
    model: str
    started_in: float
    log: Path


def wait_until_healthy(root: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll ``root``/health until it answers 200; ``RuntimeError`` with the log's tail when the server
    exits first or is not up within ``START_TIMEOUT_SECONDS``."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"transformers serve exited {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{root}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise RuntimeError(
        f"transformers serve not up in {START_TIMEOUT_SECONDS:.0f} s:\n{log.read_text()[-3000:]}"
    )


@contextmanager
def serving(model_folder: Path, folder: Path) -> Iterator[ServedModel]:
    """``transformers serve <model_folder>`` on CPU at a free loopback port, its log in ``folder``; the
    server's process group is stopped (SIGTERM, then SIGKILL after 20 s) on exit."""
    executable = require_transformers_serve()
    port, log = free_port(), folder / "serve.log"
    command = [str(executable), "serve", str(model_folder), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--device", "cpu", "--log-level", "info"]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    started = time.perf_counter()
    with log.open("wb") as output:
        process = subprocess.Popen(  # its own process group: whatever it spawns stops with it
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=folder,
            env=environment,
            start_new_session=True,
        )
    root = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(root, process, log)
        yield ServedModel(f"{root}/v1", str(model_folder), time.perf_counter() - started, log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
