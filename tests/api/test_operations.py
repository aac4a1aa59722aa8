"""Operations: ``/livez`` never needs the database, ``/readyz`` follows it (503 with ``Retry-After`` while
it is away, 200 again when it returns), ``/metrics`` speaks Prometheus's text format with the queue,
the gate and the workers read from the database at scrape time and is served to whom
``metrics_access`` says; every answer carries a request id that every log line of the request names."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from sqlalchemy.engine import make_url

from api import logs
from api.main import create_app
from api.routers import jobs as jobs_router
from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.base import utcnow
from evalgate.db.models import Job
from evalgate.db.session import engine_for, session_scope
from evalgate.service import jobs
from evalgate.service.handlers import EVALUATE, SWEEP
from tests.api.conftest import POLICY, GateData, bearer
from tests.api.service import ServerPort
from tests.reliability.relay import Relay

LOOPBACK = ("127.0.0.1", 50000)


def scrape(client: TestClient, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` parsed: each sample's value by (name, sorted labels)."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def unreachable(tmp_path: Path, port: ServerPort) -> Settings:
    """Settings whose PostgreSQL port refuses every connection."""
    return Settings(home=tmp_path, database_url=f"postgresql+psycopg://evalgate@127.0.0.1:{port.number}/none")


# ------------------------------------------------------------------------------------ livez and readyz


def test_livez_answers_without_the_database_and_readyz_says_it_is_away(tmp_path: Path) -> None:
    with ServerPort() as refusing:
        client = TestClient(create_app(unreachable(tmp_path, refusing)))
        alive = client.get("/livez")
        ready = client.get("/readyz")
        healthy = client.get("/healthz")
        engine_for(unreachable(tmp_path, refusing).resolved_database_url).dispose()

    assert alive.status_code == 200 and alive.json() == {"status": "alive"}
    assert ready.status_code == 503 and ready.headers["retry-after"] == "2"
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.json()["type"] == "/problems/database-unavailable" and ready.json()["instance"] == "/readyz"
    assert healthy.status_code == 503 and healthy.json()["database"] == "down"  # /healthz as it was


def test_readyz_is_200_on_a_database_that_answers(api: TestClient) -> None:
    response = api.get("/readyz")

    assert response.status_code == 200 and response.json() == {"status": "ready", "database": "up"}


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_readyz_follows_postgres_going_away_and_coming_back(database_url: str, tmp_path: Path) -> None:
    url = make_url(database_url)
    relay = Relay((url.host or "127.0.0.1", url.port or 5432))
    relayed = url.set(port=relay.port).render_as_string(hide_password=False)
    client = TestClient(create_app(Settings(home=tmp_path, database_url=relayed)))
    try:
        before = [client.get("/readyz").status_code for _ in range(2)]
        relay.cut()
        during = [client.get("/readyz") for _ in range(2)]
        alive = client.get("/livez")
        relay.restore()
        after = client.get("/readyz")
    finally:
        relay.close()
        engine_for(relayed).dispose()

    assert before == [200, 200]
    for response in during:
        assert response.status_code == 503 and response.headers["retry-after"] == "2", response.text
        assert response.json()["type"] == "/problems/database-unavailable"
    assert alive.status_code == 200
    assert after.status_code == 200, "the first readiness check after the outage must pass"


# ----------------------------------------------------------------------------------------------- metrics


@pytest.mark.parametrize(
    ("access", "expected"),
    [
        ("local", {"loopback": 200, "remote": 401, "remote-write": 403, "remote-admin": 200}),
        ("token", {"loopback": 401, "remote": 401, "remote-write": 403, "remote-admin": 200}),
        ("public", {"loopback": 200, "remote": 200, "remote-write": 200, "remote-admin": 200}),
        ("off", {"loopback": 404, "remote": 404, "remote-write": 404, "remote-admin": 404}),
    ],
)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_metrics_access_follows_the_setting(
    settings: Settings, tokens: dict[str, str], access: str, expected: dict[str, int]
) -> None:
    app = create_app(settings.model_copy(update={"metrics_access": access}))
    local, remote = TestClient(app, client=LOOPBACK), TestClient(app)  # remote: the address "testclient"

    found = {
        "loopback": local.get("/metrics").status_code,
        "remote": remote.get("/metrics").status_code,
        "remote-write": remote.get("/metrics", headers=bearer(tokens["write"])).status_code,
        "remote-admin": remote.get("/metrics", headers=bearer(tokens["admin"])).status_code,
    }

    assert found == expected
    assert ("/metrics" in remote.get("/openapi.json").json()["paths"]) == (access != "off")


def test_loopback_addresses_are_recognised() -> None:
    from api.metrics import loopback

    assert loopback("127.0.0.1") and loopback("127.8.9.10") and loopback("::1")
    assert not loopback("10.0.0.1") and not loopback("testclient") and not loopback("::ffff:8.8.8.8")


def test_requests_are_counted_by_route_template_method_and_status_class(settings: Settings) -> None:
    client = TestClient(create_app(settings), client=LOOPBACK)
    for _ in range(3):
        client.get("/jobs/12345")  # 401: no token
    client.get("/no/such/page")
    client.request("BREW", "/livez")
    client.get("/livez")

    samples = scrape(client)

    def count(method: str, route: str, status: str) -> float:
        labels = (("method", method), ("route", route), ("status", status))
        return samples.get(("evalgate_http_request_duration_seconds_count", labels), 0.0)

    assert count("GET", "/jobs/{job_id}", "4xx") == 3
    assert count("GET", "unmatched", "4xx") == 1
    assert count("other", "/livez", "4xx") == 1 and count("GET", "/livez", "2xx") == 1
    buckets = [key for key in samples if key[0] == "evalgate_http_request_duration_seconds_bucket"]
    assert buckets and samples[("process_open_fds", ())] > 0


def test_metrics_read_jobs_durations_decisions_and_heartbeats_from_the_database(
    settings: Settings, store: DatasetStore, gate_data: GateData, tokens: dict[str, str]
) -> None:
    client = TestClient(create_app(settings), client=LOOPBACK)
    for candidate in (gate_data.good, gate_data.forgets):
        body = {"candidate_id": candidate, "policy": POLICY}
        assert client.post("/gate/decide", json=body, headers=bearer(tokens["write"])).status_code == 200
    for kind in (SWEEP, SWEEP, EVALUATE):
        jobs.enqueue(store.sessions, kind, {})
    running = jobs.claim(store.sessions, "worker-a", (SWEEP,))
    finished = jobs.claim(store.sessions, "worker-b", (EVALUATE,))
    assert running is not None and finished is not None
    jobs.finish(store.sessions, finished, "succeeded", result={})
    now = utcnow()
    with session_scope(store.sessions) as session:
        session.execute(
            update(Job).where(Job.id == running.id).values(heartbeat_at=now - timedelta(seconds=42))
        )
        session.execute(
            update(Job)
            .where(Job.id == finished.id)
            .values(created_at=now - timedelta(seconds=100), updated_at=now)
        )

    samples = scrape(client)

    assert samples[("evalgate_database_up", ())] == 1
    assert samples[("evalgate_jobs", (("kind", "sweep"), ("status", "queued")))] == 1
    assert samples[("evalgate_jobs", (("kind", "sweep"), ("status", "running")))] == 1
    assert samples[("evalgate_jobs", (("kind", "evaluate"), ("status", "succeeded")))] == 1
    assert samples[("evalgate_jobs", (("kind", "evaluate"), ("status", "failed")))] == 0
    labels = (("kind", "evaluate"), ("status", "succeeded"))
    assert samples[("evalgate_job_duration_seconds_bucket", (*labels[:1], ("le", "60.0"), *labels[1:]))] == 0
    assert samples[("evalgate_job_duration_seconds_bucket", (*labels[:1], ("le", "120.0"), *labels[1:]))] == 1
    assert samples[("evalgate_job_duration_seconds_count", labels)] == 1
    assert samples[("evalgate_job_duration_seconds_sum", labels)] == pytest.approx(100.0, abs=0.05)
    assert samples[("evalgate_gate_decisions_total", (("verdict", "pass"),))] == 1
    assert samples[("evalgate_gate_decisions_total", (("verdict", "block"),))] == 1
    age = samples[("evalgate_worker_heartbeat_age_seconds", (("worker", "worker-a"),))]
    assert 42 <= age < 60
    assert not any(
        key[0] == "evalgate_worker_heartbeat_age_seconds" and "worker-b" in str(key) for key in samples
    )


def test_metrics_say_the_database_is_down_and_still_answer(tmp_path: Path) -> None:
    with ServerPort() as refusing:
        settings = unreachable(tmp_path, refusing)
        samples = scrape(TestClient(create_app(settings), client=LOOPBACK))
        engine_for(settings.resolved_database_url).dispose()

    assert samples[("evalgate_database_up", ())] == 0
    assert not any(name.startswith(("evalgate_jobs", "evalgate_gate")) for name, _ in samples)


# ----------------------------------------------------------------------------------------- request ids


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_every_answer_carries_a_request_id_the_clients_made_safe_or_a_new_one(
    settings: Settings, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs_router, "request_cancel", lambda *_: 1 / 0)
    client = TestClient(create_app(settings.model_copy(update={"max_upload_bytes": 10})),
                        raise_server_exceptions=False)  # fmt: skip
    given = client.get("/jobs", headers={**bearer(tokens["read"]), "X-Request-ID": "ci-run-7/step.3"})
    unsafe = client.get("/livez", headers={"X-Request-ID": b'a b"<c>\\d\xe9\t'})
    long = client.get("/livez", headers={"X-Request-ID": "x" * 500})
    nothing_left = client.get("/livez", headers={"X-Request-ID": "\"<>'"})
    bug = client.post("/jobs/1/cancel", headers=bearer(tokens["write"]))
    answers = [
        client.get("/livez"),
        client.get("/jobs"),
        client.get("/nowhere"),
        client.post("/tokens", content=b"x" * 50),
        bug,
    ]

    assert given.headers["x-request-id"] == "ci-run-7/step.3"
    assert unsafe.headers["x-request-id"] == "abcd"
    assert long.headers["x-request-id"] == "x" * 128
    assert [answer.status_code for answer in answers] == [200, 401, 404, 413, 500]
    made = [answer.headers["x-request-id"] for answer in [nothing_left, *answers]]
    assert all(len(made_id) == 32 and int(made_id, 16) >= 0 for made_id in made) and len(set(made)) == len(
        made
    )


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Every log record, as ``--log-format json`` writes it, into a buffer (the access log at INFO)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.RequestFields())
    access = logging.getLogger(logs.ACCESS_LOGGER)
    level = access.level
    access.setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)
    yield buffer
    logging.getLogger().removeHandler(handler)
    access.setLevel(level)


def test_json_lines_name_the_request_on_every_line_it_writes(
    json_lines: io.StringIO, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ServerPort() as refusing:
        settings = unreachable(tmp_path, refusing).model_copy(update={"log_format": "json"})
        monkeypatch.setattr(logs, "configure", lambda _: None)  # the fixture stands in for it
        client = TestClient(create_app(settings))
        response = client.get("/jobs", headers={**bearer("eg_secret-token-value"), "X-Request-ID": "req-1"})
        engine_for(settings.resolved_database_url).dispose()
    logging.getLogger("outside").warning("not in a request")

    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]

    assert response.status_code == 503
    mine = [line for line in lines if line["request_id"] == "req-1"]
    assert {line["logger"] for line in mine} == {"api.errors", logs.ACCESS_LOGGER}, lines
    for line in lines:
        assert list(line)[:4] == ["time", "level", "logger", "message"] and line["time"].endswith("Z")
        assert {"request_id", "method", "path", "status", "duration_ms"} <= line.keys()
    (access,) = [line for line in mine if line["logger"] == logs.ACCESS_LOGGER]
    assert (access["method"], access["path"], access["status"]) == ("GET", "/jobs", 503)
    assert access["duration_ms"] > 0 and access["message"].startswith("GET /jobs 503 ")
    assert lines[-1]["message"] == "not in a request" and lines[-1]["request_id"] is None
    assert "secret-token-value" not in json_lines.getvalue()
