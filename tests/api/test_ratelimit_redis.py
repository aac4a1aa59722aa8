"""Rate-limit buckets in a real Redis (a private ``redis-server``): shared and atomic across clients, idle
buckets expire, and an unreachable Redis fails open to in-process buckets with one warning a minute,
then is used again once it answers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import HTTPException

from api import ratelimit
from api.ratelimit import Limits, RateLimiter, RedisBuckets, RedisHealth, redis_client, redis_location
from evalgate.core.settings import Settings
from tests.support.redis_server import RedisServer, free_port


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private, running redis-server."""
    with RedisServer.started(tmp_path / "redis") as server:
        yield server


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def buckets(url: str, rate: float, burst: float, clock: Clock | None = None) -> RedisBuckets:
    """Token buckets on ``url`` with a client of their own, as one API process has."""
    client = redis_client(url)
    health = RedisHealth(redis_location(client), clock or Clock())
    return RedisBuckets(client, "test", rate, burst, health)


def test_processes_sharing_a_redis_share_one_bucket_and_spend_it_atomically(
    redis_server: RedisServer,
) -> None:
    burst = 25
    processes = [buckets(redis_server.url, rate=0.001, burst=burst) for _ in range(4)]
    admitted: list[int] = []
    lock = threading.Lock()

    def hammer(limiter: RedisBuckets) -> None:
        passed = sum(limiter.take("token-1") == 0 for _ in range(20))
        with lock:
            admitted.append(passed)

    threads = [threading.Thread(target=hammer, args=(limiter,)) for limiter in processes for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sum(admitted) == burst, admitted  # 160 tries, one bucket of 25, no double spend
    assert processes[0].take("token-2") == 0  # another key has its own bucket
    wait = processes[1].wait("token-1")
    assert 0 < wait <= 1 / 0.001


def test_a_bucket_refills_at_its_rate_and_expires_once_full(redis_server: RedisServer) -> None:
    limiter = buckets(redis_server.url, rate=20.0, burst=2)
    assert limiter.take("k") == 0 and limiter.take("k") == 0
    wait = limiter.take("k")
    assert 0 < wait <= 0.05

    ttl = redis_server.client().pttl(limiter.key("k"))
    assert 0 < ttl <= 2 / 20.0 * 1000 + 1000  # gone once it would be full again (plus a second)
    assert (
        limiter.wait("k") > 0 and redis_server.client().pttl(limiter.key("k")) <= ttl
    )  # waiting spends nothing


def test_an_unreachable_redis_fails_open_to_local_buckets_warning_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    limiter = buckets(f"redis://127.0.0.1:{free_port()}/0", rate=0.001, burst=3, clock=clock)
    caplog.set_level(logging.WARNING, logger=ratelimit.__name__)

    answers = []
    for _ in range(50):
        answers.append(limiter.take("token"))
        clock.now += ratelimit.REDIS_RETRY_SECONDS  # every request tries Redis again
    warnings = [record.getMessage() for record in caplog.records]
    clock.now += ratelimit.WARNING_INTERVAL_SECONDS
    limiter.take("token")

    assert answers[:3] == [0, 0, 0] and all(wait > 0 for wait in answers[3:])  # this process's own limit
    assert len(warnings) == 1 and "unreachable" in warnings[0] and "ConnectionError" in warnings[0]
    assert len(caplog.records) == 2  # the next minute's warning


def test_a_redis_that_returns_is_used_again(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    limiter = buckets(redis_server.url, rate=0.001, burst=5, clock=clock)
    caplog.set_level(logging.WARNING, logger=ratelimit.__name__)
    assert [limiter.take("t") for _ in range(2)] == [0, 0]

    redis_server.kill()
    during = [limiter.take("t") for _ in range(7)]  # local buckets: a full burst of their own
    redis_server.start()  # empty: the old bucket is gone
    skipped = limiter.take("t")  # within REDIS_RETRY_SECONDS of the failure: still local
    clock.now += ratelimit.REDIS_RETRY_SECONDS
    after = [limiter.take("t") for _ in range(6)]

    assert during == [0] * 5 + during[5:] and all(wait > 0 for wait in during[5:])
    assert skipped > 0 and after == [0] * 5 + after[5:] and after[5] > 0
    assert redis_server.client().exists(limiter.key("t")) == 1
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2 and "unreachable" in messages[0] and "answers again" in messages[1]


def test_a_script_error_fails_open_too(redis_server: RedisServer) -> None:
    limiter = buckets(redis_server.url, rate=1.0, burst=2)
    redis_server.client().set(limiter.key("k"), "not a hash")  # HMGET on a string: WRONGTYPE

    assert [limiter.take("k") for _ in range(3)][:2] == [0, 0]


def test_limits_use_redis_only_when_a_url_is_set(tmp_path: Path, redis_server: RedisServer) -> None:
    local = Limits.from_settings(Settings(home=tmp_path))
    shared = Limits.from_settings(Settings(home=tmp_path, redis_url=redis_server.url, rate_limit_burst=3))

    assert isinstance(local.per_token, RateLimiter) and not local.shared
    assert isinstance(shared.per_token, RedisBuckets) and isinstance(shared.auth_failures, RedisBuckets)
    assert shared.shared
    for _ in range(3):
        shared.charge_token(7)
    with pytest.raises(HTTPException, match="rate limit exceeded") as refused:
        shared.charge_token(7)
    assert refused.value.status_code == 429 and int((refused.value.headers or {})["Retry-After"]) >= 1
    assert redis_server.client().exists("evalgate:ratelimit:token:7") == 1


def test_the_logged_location_never_holds_the_password() -> None:
    client = redis_client("redis://user:s3cret-pass@127.0.0.1:6390/2")

    assert redis_location(client) == "127.0.0.1:6390/2"
