"""No token secret, database password or session secret reaches a log, a CLI listing or a job's log tail.

A real ``evalgate serve --with-worker`` runs on PostgreSQL through a URL carrying a password (the
test server trusts local connections, so any password works), with every logger at DEBUG (SQL
statements and their parameters included) and uvicorn's access log on. Tokens are made with the CLI
and over REST, then used on many routes with successes and failures (401, 403, 404, 422, the login
form); a sweep on a model that does not exist fails in the worker and leaves a traceback in its log
tail. Every secret is then looked for in everything that was written.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from api.sessions import SECRET_FILE
from evalgate.client import Client, JobFailed
from evalgate.core.settings import Settings
from tests.api.service import ServerPort, Service, sweep_config, wait_until_healthy, write_rows

pytestmark = [pytest.mark.reliability, pytest.mark.postgres, pytest.mark.slow]
DEBUG_SERVE = """
import logging, sys
logging.basicConfig(level=logging.DEBUG, format="%(name)s %(levelname)s %(message)s")
import api.main, evalgate.cli.main  # SQLAlchemy sets its loggers to WARNING on import: lower them again
for name in list(logging.root.manager.loggerDict):
    logging.getLogger(name).setLevel(logging.DEBUG)
sys.argv[0] = "evalgate"
evalgate.cli.main.app()
"""
"""``evalgate serve`` with every logger at DEBUG (uvicorn's own stay at the level ``serve`` gives them)."""


def _use_tokens(url: str, admin: str, tmp_path: Path, tiny_model: Path) -> tuple[list[str], list[str]]:
    """Create a token over REST and call routes with good, bad and unknown tokens; the new secrets
    and the texts the API showed (job log tails, token listings)."""
    unknown = f"eg_{secrets.token_urlsafe(32)}"
    with httpx.Client(base_url=url, timeout=30) as http:
        made = http.post("/tokens", json={"name": "rest-writer", "scope": "write"}, headers=_auth(admin))
        writer = made.json()["token"]
        statuses = [
            http.get("/jobs", headers=_auth(writer)).status_code,
            http.get("/tokens", headers=_auth(writer)).status_code,  # 403
            http.get("/jobs", headers=_auth(unknown)).status_code,  # 401
            http.get("/candidates/999", headers=_auth(writer)).status_code,  # 404
            http.post("/candidates", json={"adapter_uri": 3}, headers=_auth(writer)).status_code,  # 422
            http.post("/login", data={"token": unknown}).status_code,  # 401 page
            http.post("/login", data={"token": admin, "next": "/"}).status_code,  # 303
            http.get("/", headers={"Accept": "text/html"}).status_code,  # the session cookie it set
            http.get("/jobs", headers={"Authorization": writer}).status_code,  # malformed header: 401
        ]
        listing = http.get("/tokens", headers=_auth(admin)).text
    assert statuses == [200, 403, 401, 404, 422, 401, 303, 200, 401], statuses
    with Client(url, writer, retries=5) as client:
        client.upload_dataset("tiny-e2e", write_rows(tmp_path / "rows.jsonl"))
        config = {**sweep_config(tiny_model, 2), "base_model": str(tiny_model)}
        with pytest.raises(JobFailed) as failed:
            client.wait_for_job(client.submit_sweep(config)["id"], timeout=120, poll=0.5)
    job = failed.value.job
    assert job["status"] == "failed" and "Traceback" in job["log_tail"], job
    return [writer, unknown], [listing, job["log_tail"], str(job.get("error"))]


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_no_token_or_database_password_appears_in_any_log(database_url: str, tmp_path: Path) -> None:
    password = f"pw-{secrets.token_hex(12)}"
    url = make_url(database_url).set(password=password).render_as_string(hide_password=False)
    running = Service(Settings(home=tmp_path / "home", database_url=url), tmp_path)
    admin = running.cli("tokens", "create", "cli-admin", "--scope", "admin")  # printed once, by design
    listing = running.cli("tokens", "list")
    port, log = ServerPort(), tmp_path / "serve.log"
    running.ports.append(port)
    with log.open("wb") as sink, port.listener() as listener:
        fd = listener.fileno()
        command = [sys.executable, "-c", DEBUG_SERVE, "serve", "--with-worker", "--fd", str(fd)]
        server = subprocess.Popen(
            command, env=running.env, stdout=sink, stderr=subprocess.STDOUT, pass_fds=(fd,)
        )
    running.processes.append(server)
    try:
        wait_until_healthy(port.url, server, log, 120)
        made, shown = _use_tokens(port.url, admin, tmp_path, tmp_path / "no-such-model")
    finally:
        running.stop()
    written = "\n".join([log.read_text(errors="replace"), listing, *shown])

    assert '"GET /jobs HTTP/1.1" 401' in written and '"POST /login HTTP/1.1" 303' in written
    assert "sqlalchemy.engine" in written and "api_token" in written, "DEBUG logging was not on"
    for secret in [admin, *made]:
        assert secret.startswith("eg_") and secret.removeprefix("eg_") not in written
    assert password not in written
    session_secret = (tmp_path / "home" / SECRET_FILE).read_text().strip()  # made by the dashboard login
    assert len(session_secret) >= 32 and session_secret not in written
