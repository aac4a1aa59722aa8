"""The embedded default: `evalgate serve --with-worker` on SQLite runs queued jobs beside the API."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalgate.client import Client
from evalgate.core.settings import Settings
from tests.api.service import Service, sweep_config, write_rows


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_serve_with_worker_trains_a_submitted_sweep(
    settings: Settings, tmp_path: Path, tiny_lm_dir: Path
) -> None:
    running = Service(settings, tmp_path)
    _, url = running.serve("api", "--with-worker")
    token = running.cli("tokens", "create", "pipeline", "--scope", "write")
    try:
        with Client(url, token, retries=8) as client:
            client.upload_dataset("tiny-e2e", write_rows(tmp_path / "rows.jsonl"))
            job = client.wait_for_job(
                client.submit_sweep(sweep_config(tiny_lm_dir, 2))["id"], timeout=300, poll=0.5
            )
    finally:
        running.stop()

    assert job["attempts"] == 1 and job["result"]["candidates"][0]["status"] == "trained"
