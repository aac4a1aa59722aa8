"""A real ``evalgate serve``: ``--log-format json`` writes one JSON object per line with the request id
the client sent, ``--log-format text`` puts the id on uvicorn's access line, and with ``--workers 2``
and ``PROMETHEUS_MULTIPROC_DIR`` every scrape of ``/metrics`` adds up both processes' requests."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from evalgate.core.settings import Settings
from tests.api.service import Service, wait_until_healthy

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
JSON_FIELDS = ["time", "level", "logger", "message", "request_id", "method", "path", "status", "duration_ms"]


def serve(
    settings: Settings, tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[Service, str, Path]:
    """A started ``evalgate serve`` with ``args``; the service (stop it), its URL and its log."""
    service = Service(settings, tmp_path)
    service.env.update(env or {})
    process, url = service.serve("serve", *args)
    log = tmp_path / "serve.log"
    try:
        wait_until_healthy(url, process, log)
    except BaseException:
        service.stop()
        raise
    return service, url, log


def test_json_log_lines_carry_the_request_id_method_path_status_and_duration(
    settings: Settings, tmp_path: Path
) -> None:
    service, url, log = serve(settings, tmp_path, "--log-format", "json")
    request_id = f"pipeline-{uuid.uuid4().hex[:8]}"
    try:
        answer = httpx.get(
            f"{url}/jobs/5", headers={"X-Request-ID": request_id, "Authorization": "Bearer eg_x"}
        )
        ready = httpx.get(f"{url}/readyz")
    finally:
        service.stop()

    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]  # every line is JSON

    assert answer.status_code == 401 and answer.headers["x-request-id"] == request_id
    assert all(list(line)[: len(JSON_FIELDS)] == JSON_FIELDS for line in lines), lines
    assert any(
        line["logger"] == "uvicorn.error" and "Started server process" in line["message"] for line in lines
    )
    (mine,) = [line for line in lines if line["request_id"] == request_id]
    assert (mine["logger"], mine["level"], mine["method"], mine["path"], mine["status"]) == (
        "evalgate.access", "INFO", "GET", "/jobs/5", 401
    )  # fmt: skip
    assert mine["duration_ms"] > 0
    (other,) = [line for line in lines if line["request_id"] == ready.headers["x-request-id"]]
    assert (other["path"], other["status"]) == ("/readyz", 200)
    assert "eg_x" not in log.read_text()


def test_text_logs_put_the_request_id_on_the_access_line(settings: Settings, tmp_path: Path) -> None:
    service, url, log = serve(settings, tmp_path)  # --log-format text, the default
    try:
        answer = httpx.get(f"{url}/livez", headers={"X-Request-ID": "text-42"})
    finally:
        service.stop()

    access = [line for line in log.read_text().splitlines() if '"GET /livez HTTP/1.1" 200' in line]

    assert answer.headers["x-request-id"] == "text-42"
    assert len(access) == 1 and "[text-42] 127.0.0.1:" in access[0], access


def test_with_two_processes_and_a_multiprocess_folder_each_scrape_counts_every_request(
    settings: Settings, tmp_path: Path
) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(folder), "EVALGATE_METRICS_ACCESS": "public"}
    service, url, _ = serve(settings, tmp_path, "--workers", "2", env=env)
    sent = 0
    try:
        while sent < 20 or (len(list(folder.glob("histogram_*.db"))) < 2 and sent < 400):
            assert httpx.get(f"{url}/livez", headers={"Connection": "close"}).status_code == 200
            sent += 1  # until both processes have answered some (the kernel picks which accepts)
        scrapes = [httpx.get(f"{url}/metrics", headers={"Connection": "close"}).text for _ in range(4)]
    finally:
        service.stop()

    def livez_count(text: str) -> float:
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "evalgate_http_request_duration_seconds_count"
            and sample.labels["route"] == "/livez"
        )

    assert len(list(folder.glob("histogram_*.db"))) == 2, "one process answered every request"
    assert [livez_count(text) for text in scrapes] == [float(sent)] * 4
