"""docker-compose.yml's Redis: a service the API is pointed at (and starts after, without waiting for its
health: the API serves without it), keeping nothing on disk; its URL works for the rate limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from api.ratelimit import Limits, RedisBuckets
from evalgate.core.paths import REPO_ROOT
from evalgate.core.settings import Settings
from tests.support.redis_server import RedisServer


def services() -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    return found


def test_the_api_is_pointed_at_the_compose_redis_and_starts_after_it() -> None:
    found = services()
    redis_service, api = found["redis"], found["api"]

    assert redis_service["image"].startswith("redis:")
    assert redis_service["command"][:3] == ["redis-server", "--save", ""]  # nothing on disk
    assert "redis-cli" in redis_service["healthcheck"]["test"]
    assert api["depends_on"]["redis"]["condition"] == "service_started"
    assert (
        api["environment"]["EVALGATE_DATABASE_URL"]
        == found["migrate"]["environment"]["EVALGATE_DATABASE_URL"]
    )
    assert "EVALGATE_REDIS_URL" not in found["worker"]["environment"]  # workers take no requests


def test_the_compose_redis_url_shares_the_limits(tmp_path: Path) -> None:
    url = services()["api"]["environment"]["EVALGATE_REDIS_URL"]
    with RedisServer.started(tmp_path / "redis") as server:
        local_url = url.replace("redis:6379", f"127.0.0.1:{server.port}")
        limits = Limits.from_settings(Settings(home=tmp_path, redis_url=local_url))
        limits.charge_token(1)

        assert isinstance(limits.per_token, RedisBuckets)
        assert server.client().exists("evalgate:ratelimit:token:1") == 1
