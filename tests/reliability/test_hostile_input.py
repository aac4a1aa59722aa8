"""Hostile adapter locations and oversized bodies: refused with a clear answer, nothing stored or read.

    EVALGATE_FIGURES_FILE=/tmp/figures.jsonl pytest tests/reliability/test_hostile_input.py -m reliability

``POST /candidates`` must refuse every adapter location that is not an adapter folder inside an
allowed root with a 422 on ``body.adapter_uri``, registering nothing (``tests/api/test_candidates_api.py``
has the plain traversal, symlink, outside, relative and ``s3://`` cases; these are the rest).
Oversized bodies must be refused with 413 before they are read: the app is driven at the ASGI level so
the test sees exactly how many body bytes it pulled.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.main import create_app
from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.migrate import upgrade
from evalgate.db.models import Candidate
from evalgate.db.session import session_scope
from evalgate.service.api_tokens import create_token
from tests.reliability.figures import record

pytestmark = pytest.mark.reliability

LIMIT = 64 * 1024
"""``max_upload_bytes`` in these tests."""
CHUNK = 16 * 1024
Message = dict[str, Any]


@pytest.fixture
def app_settings(tmp_path: Path) -> Settings:
    """A migrated SQLite database, a small body limit, the per-token rate limit off."""
    url = f"sqlite:///{tmp_path / 'evalgate.db'}"
    upgrade(url)
    return Settings(home=tmp_path / "home", database_url=url, max_upload_bytes=LIMIT, rate_limit_per_second=0)


def make_adapter(folder: Path) -> Path:
    """A minimal PEFT adapter folder."""
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    return folder


def hostile_locations(root: Path, outside: Path) -> dict[str, str]:
    """Adapter locations that must all be refused; ``root`` is the artifact root."""
    make_adapter(root / "ok")
    (root / "loop").symlink_to(root / "loop")
    (root / "ping").symlink_to(root / "pong")
    (root / "pong").symlink_to(root / "ping")
    (root / "deep").mkdir()
    (root / "deep" / "out").symlink_to(outside.parent)
    sibling = make_adapter(root.parent / (root.name + "-evil") / "adapter")
    return {
        "dot-dot inside the path": f"{root}/ok/../../{outside.parent.name}/{outside.name}",
        "dot-dot to /etc": f"{root}/../../../../../../etc",
        "symlink to the parent of the roots, then down": f"{root}/deep/out/{outside.name}",
        "sibling folder sharing the root's prefix": str(sibling),
        "absolute path outside": str(outside),
        "/etc": "/etc",
        "home folder": "~/",
        "unknown user's home": "~no-such-user-here/adapter",
        "http URL": "http://evil.example.com/adapter",
        "https URL": "https://huggingface.co/org/model",
        "ftp URL": "ftp://evil.example.com/adapter",
        "file URL outside": f"file://{outside}",
        "file URL with a host": f"file://evil.example.com{root}/ok",
        "gs URL": "gs://bucket/adapter",
        "UNC-like path": "//evil.example.com/share/adapter",
        "backslash UNC": "\\\\evil.example.com\\share\\adapter",
        "hub id": "HuggingFaceTB/SmolLM2-135M",
        "hub id with dots": "../org/model",
        "NUL byte": f"{root}/ok\x00/../../etc",
        "very long path": f"{root}/" + "a" * 5000,
        "very long component chain": f"{root}/" + "/".join(["b" * 200] * 40),
        "file instead of a folder": f"{root}/ok/adapter_config.json",
        "folder without adapter_config.json": str(root / "deep"),
        "symlink to itself": str(root / "loop"),
        "symlink loop of two": str(root / "ping"),
    }


def test_hostile_adapter_locations_are_422_on_adapter_uri_and_register_nothing(
    app_settings: Settings, tmp_path: Path
) -> None:
    root = Path(app_settings.resolved_artifact_root)
    root.mkdir(parents=True)
    outside = make_adapter(tmp_path / "elsewhere" / "adapter")
    store = DatasetStore.from_settings(app_settings)
    token = create_token(store.sessions, "pipeline", "write")
    api = TestClient(create_app(app_settings), raise_server_exceptions=False)
    wrong = []
    locations = hostile_locations(root, outside)
    for case, location in locations.items():
        body = {"name": "run", "base_model": "m", "adapter_uri": location}
        response = api.post("/candidates", json=body, headers={"Authorization": f"Bearer {token}"})
        detail = response.json().get("detail") if response.status_code == 422 else None
        if not (isinstance(detail, list) and detail[0]["loc"][:2] == ["body", "adapter_uri"]):
            wrong.append(f"{case}: {response.status_code} {response.text[:200]}")
    with session_scope(store.sessions) as session:
        registered = session.scalar(select(func.count()).select_from(Candidate))
    record("bad_input", "hostile adapter locations", cases=len(locations), server_errors=len(wrong))
    assert wrong == [] and registered == 0, wrong
    assert (
        api.post(
            "/candidates",
            json={"name": "run", "base_model": "m", "adapter_uri": str(root / "ok")},
            headers={"Authorization": f"Bearer {token}"},
        ).status_code
        == 201
    )  # the same request with a good location works: the refusals were about the location


def asgi_request(
    app: Callable[..., Awaitable[None]], path: str, headers: list[tuple[bytes, bytes]], chunks: int
) -> tuple[int, int]:
    """Send ``chunks`` body chunks of ``CHUNK`` bytes (more on demand) to ``path``; ``(status, bytes read)``.

    The app pulls the body through ``receive``, so the count is exactly what it read.
    """
    import anyio

    sent = {"bytes": 0, "left": chunks}
    answer: list[Message] = []

    async def receive() -> Message:
        if sent["left"] == 0:
            return {"type": "http.request", "body": b"", "more_body": False}
        sent["left"] -= 1
        sent["bytes"] += CHUNK
        return {"type": "http.request", "body": b" " * CHUNK, "more_body": True}

    async def send(message: Message) -> None:
        answer.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"format=jsonl",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    # in a thread of its own: another test's event loop (Playwright's) may be running in this one
    with ThreadPoolExecutor(1) as pool:
        pool.submit(anyio.run, app, scope, receive, send).result()
    start = next(message for message in answer if message["type"] == "http.response.start")
    return start["status"], sent["bytes"]


@pytest.mark.parametrize("path", ["/candidates", "/gate/decide", "/tokens", "/datasets/big/versions"])
def test_a_declared_length_over_the_limit_is_413_before_any_byte_is_read(
    app_settings: Settings, path: str
) -> None:
    app = create_app(app_settings)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(LIMIT * 1000).encode())]

    status, read = asgi_request(app, path, headers, chunks=LIMIT * 1000 // CHUNK)

    record("bad_input", f"declared oversized body: POST {path}", cases=1, server_errors=int(status >= 500))
    assert (status, read) == (413, 0)


def test_a_streamed_upload_over_the_limit_is_413_once_the_limit_is_passed(app_settings: Settings) -> None:
    app = create_app(app_settings)
    token = create_token(DatasetStore.from_settings(app_settings).sessions, "uploader", "write")

    status, read = asgi_request(
        app,
        "/datasets/big/versions",
        [(b"authorization", f"Bearer {token}".encode())],
        chunks=100 * LIMIT // CHUNK,
    )

    record("bad_input", "chunked oversized upload", cases=1, server_errors=int(status >= 500))
    assert status == 413 and read <= LIMIT + CHUNK


@pytest.mark.parametrize("path", ["/candidates", "/gate/decide"])
def test_a_streamed_json_body_over_the_limit_is_413_once_the_limit_is_passed(
    app_settings: Settings, path: str
) -> None:
    app = create_app(app_settings)
    token = create_token(DatasetStore.from_settings(app_settings).sessions, "client", "write")
    headers = [(b"content-type", b"application/json"), (b"authorization", f"Bearer {token}".encode())]

    status, read = asgi_request(app, path, headers, chunks=100 * LIMIT // CHUNK)

    record("bad_input", f"chunked oversized JSON: POST {path}", cases=1, server_errors=int(status >= 500))
    assert status == 413 and read <= LIMIT + CHUNK


HUGE = "9" * 30
ONCE_SERVER_ERRORS = [
    ("POST", "/evaluations", {}, 422),
    ("POST", "/evaluations", {"candidate_id": 1}, 422),
    ("POST", "/evaluations", {"candidate_id": 1, "dataset": f"suite@v{HUGE}"}, 422),
    ("POST", "/evaluations", {"candidate_id": 1, "dataset": "suite@v1"}, 404),
    ("GET", "/jobs?status=bogus", None, 422),
    ("GET", f"/gate/decisions/{HUGE}", None, 422),
    ("GET", f"/gate/decisions?candidate_id={HUGE}", None, 422),
    ("POST", f"/jobs/{HUGE}/cancel", None, 422),
    ("GET", f"/evaluations/1/scores?offset={HUGE}", None, 422),
    ("GET", f"/datasets/suite/diff?old=1&new={HUGE}", None, 422),
    ("GET", f"/datasets/suite@v{HUGE}", None, 422),
    ("POST", "/sweeps", {"config": {"dataset": f"suite@v{HUGE}", "base_model": "m"}}, 422),
    ("POST", "/datasets/suite/versions?cohort=Bad%20Cohort", None, 422),
    ("POST", "/datasets/suite/versions?split=holdout", None, 422),
    ("GET", "/gate/baseline?base_model=a%00b", None, 422),
    ("DELETE", "/tokens/a%00b", None, 422),
    ("POST", "/tokens", {"name": "a\x00b", "scope": "read"}, 422),
    (
        "POST",
        "/candidates",
        {"name": "r", "base_model": "m", "adapter_uri": "/a", "training": {"loss_curve": ["x"]}},
        422,
    ),
]
"""Requests the fuzzing once answered with a 500 (on SQLite or PostgreSQL), and their answer now."""


@pytest.mark.parametrize(("method", "path", "body", "expected"), ONCE_SERVER_ERRORS)
def test_requests_that_once_got_a_500_get_a_clear_4xx(
    app_settings: Settings, method: str, path: str, body: dict[str, Any] | None, expected: int
) -> None:
    token = create_token(DatasetStore.from_settings(app_settings).sessions, "admin", "admin")
    api = TestClient(create_app(app_settings), raise_server_exceptions=False)

    response = api.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == expected, response.text


@pytest.mark.parametrize(
    "body",
    [
        '{"name": NaN, "scope": "read"}',
        '{"name": "\\ud800", "scope": "read"}',
        '{"name": "t", "scope": Infinity}',
        '{"name": "t", "scope": 1e309}',
    ],
)
def test_json_that_python_parses_but_cannot_echo_is_a_422(app_settings: Settings, body: str) -> None:
    token = create_token(DatasetStore.from_settings(app_settings).sessions, "admin", "admin")
    api = TestClient(create_app(app_settings), raise_server_exceptions=False)

    response = api.post(
        "/tokens",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )

    record("bad_input", "JSON that cannot be echoed", cases=1, server_errors=int(response.status_code >= 500))
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][0] == "body"
