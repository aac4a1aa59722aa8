"""docker-compose.yml wires PostgreSQL, migrations and the API in the right order."""

from __future__ import annotations

import yaml

from evalgate.paths import REPO_ROOT


def test_compose_migrates_before_serving_and_shares_one_database() -> None:
    services = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]

    assert services["migrate"]["command"] == ["evalgate", "db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    urls = {services[name]["environment"]["EVALGATE_DATABASE_URL"] for name in ("migrate", "api")}
    assert len(urls) == 1 and urls.pop().startswith("postgresql+psycopg://")
