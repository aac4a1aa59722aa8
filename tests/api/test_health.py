"""The API reports whether its database is up and migrated."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.main import create_app
from evalgate.core.settings import Settings


def test_health_reports_a_migrated_database(settings: Settings) -> None:
    response = TestClient(create_app(settings)).get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["schema_revision"] == body["schema_head"]


def test_health_reports_an_unmigrated_database(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'empty.db'}")

    body = TestClient(create_app(settings)).get("/healthz").json()

    assert body["database"] == "up" and body["schema_revision"] is None
    assert "evalgate db upgrade" in body["status"]


def test_health_reports_an_unreachable_database(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")

    body = TestClient(create_app(settings)).get("/healthz").json()

    assert body["database"] == "down"
