"""docker-compose.yml: valid, wired in the right order, and its commands and settings work for real
against the local PostgreSQL (no Docker engine runs here, so the containers' commands run directly)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text

from evalgate.core.paths import REPO_ROOT
from tests.api.service import ServerPort
from tests.conftest import POSTGRES_ADMIN_URL

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
TEST_DATABASE = "evalgate_compose_test"


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    return services


def _compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    return None


def test_compose_file_is_valid() -> None:
    compose = _compose_command()
    if compose is None:
        if os.environ.get("CI"):
            pytest.fail("docker compose (or docker-compose) is required in CI to validate the file")
        pytest.skip("neither docker compose nor docker-compose is installed")

    done = subprocess.run([*compose, "-f", str(COMPOSE_FILE), "config", "-q"], capture_output=True, text=True)

    assert done.returncode == 0, done.stderr


def test_compose_migrates_before_serving_and_working_on_one_database() -> None:
    services = _services()

    assert services["migrate"]["command"] == ["evalgate", "db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["volumes"] == services["migrate"]["volumes"]
    urls = {services[name]["environment"]["EVALGATE_DATABASE_URL"] for name in ("migrate", "api", "worker")}
    assert len(urls) == 1 and urls.pop().startswith("postgresql+psycopg://")
    assert "gpu" in COMPOSE_FILE.read_text()  # the commented GPU reservation for the worker


@pytest.fixture
def compose_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The services' environment, pointed at a local database owned by the compose user."""
    environment = dict(_services()["api"]["environment"])
    url = environment["EVALGATE_DATABASE_URL"].replace(
        "@postgres:5432/evalgate", f"@127.0.0.1:5432/{TEST_DATABASE}"
    )
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{TEST_DATABASE}" WITH (FORCE)'))
        if not connection.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = 'evalgate'")):
            connection.execute(text("CREATE ROLE evalgate LOGIN PASSWORD 'evalgate'"))
        connection.execute(text(f'CREATE DATABASE "{TEST_DATABASE}" OWNER evalgate'))
    yield {**os.environ, **environment, "EVALGATE_DATABASE_URL": url, "EVALGATE_HOME": str(tmp_path)}
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{TEST_DATABASE}" WITH (FORCE)'))
    admin.dispose()


def _run_service_command(command: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.Popen[str]:
    program, *args = command
    assert program == "evalgate"
    return subprocess.Popen([sys.executable, "-m", "evalgate", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)  # fmt: skip


@pytest.mark.postgres
def test_the_services_commands_run_with_the_compose_settings(compose_env: dict[str, str]) -> None:
    services = _services()
    migrate = _run_service_command(services["migrate"]["command"], compose_env)
    assert migrate.wait(120) == 0, migrate.stdout.read() if migrate.stdout else ""

    port = ServerPort()
    with port.listener() as listener:  # the api serves on the test's socket: --fd overrides host and port
        fd = listener.fileno()
        api = _run_service_command(
            [*services["api"]["command"], "--fd", str(fd)], compose_env, pass_fds=(fd,)
        )
    worker = _run_service_command([*services["worker"]["command"], "--once"], compose_env)
    try:
        health = _wait_for_health(f"{port.url}/healthz")
        assert worker.wait(120) == 0
    finally:
        api.terminate()
        api.wait(30)
        port.close()
    assert health["status"] == "ok" and health["schema_revision"] == health["schema_head"]


def _wait_for_health(url: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            body: dict[str, Any] = httpx.get(url, timeout=2).json()
            return body
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
