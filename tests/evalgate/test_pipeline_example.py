"""examples/pipeline.py ends every failure to reach or use the service with one line on stderr and its
documented error status (2), never a traceback: connection refused, a request timeout, server errors."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from evalgate.core.paths import REPO_ROOT
from tests.api.service import ServerPort
from tests.support.http_stub import Answer, StubServer

PIPELINE = REPO_ROOT / "examples" / "pipeline.py"
EXIT_ERROR = 2


def run_pipeline(url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """The example as a user runs it, against ``url``; finished within a minute."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("checks: [{evaluator: exact_match, cohort: target, margin: 0.05}]\n")
    command = [sys.executable, str(PIPELINE), "--url", url, "--token", "eg_test", "--adapter", "/adapters/a",
               "--dataset", "suite@v1", "--policy", str(policy), "--retries", "1", *extra]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)


def assert_one_line_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit status 2, a single ``error: ...`` line on stderr naming ``words``, no traceback anywhere."""
    assert done.returncode == EXIT_ERROR, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert all(word in lines[0] for word in words), lines[0]
    assert "Traceback" not in done.stdout + done.stderr


def test_connection_refused_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with ServerPort() as port:  # bound, never listening: every connection is refused
        done = run_pipeline(port.url, tmp_path)

    assert_one_line_error(done, "cannot reach", port.url, "refused")


@pytest.mark.parametrize("status", [500, 502])
def test_a_server_error_is_one_line_and_exit_2(tmp_path: Path, status: int) -> None:
    body = b'{"detail": "internal error:\\n  the server broke"}'
    with StubServer(lambda _: Answer(status, body=body)) as server:
        done = run_pipeline(server.url, tmp_path)

    assert_one_line_error(done, f"HTTP {status}", "POST /candidates", "internal error: the server broke")
    assert [seen.path for seen in server.seen] == ["/candidates"]  # a 5xx other than 503 is not retried


def test_an_unavailable_server_is_retried_then_one_line_and_exit_2(tmp_path: Path) -> None:
    with StubServer(lambda _: Answer(503, {"Retry-After": "0"})) as server:
        done = run_pipeline(server.url, tmp_path)

    assert_one_line_error(done, "HTTP 503")
    assert len(server.seen) == 2  # the first try and --retries 1


def test_a_request_timeout_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        done = run_pipeline(url, tmp_path, "--request-timeout", "0.5")

    assert_one_line_error(done, "no answer from", url, "ReadTimeout")


def test_a_missing_policy_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    answers = {"/candidates": Answer(201, body=b'{"id": 3, "adapter_hash": "0123456789abcdef"}'),
               "/evaluations": Answer(202, body=b'{"id": 9}'),
               "/jobs/9": Answer(200, body=b'{"id": 9, "status": "succeeded"}')}  # fmt: skip
    with StubServer(lambda seen: answers[seen.path]) as server:
        done = run_pipeline(server.url, tmp_path, "--policy", str(tmp_path / "missing.yaml"))

    assert_one_line_error(done, "missing.yaml")
