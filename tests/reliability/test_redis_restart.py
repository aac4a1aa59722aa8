"""The shared rate limits through a Redis crash: a real `evalgate serve` limits one token through its own
``redis-server``, which is killed (SIGKILL) in the middle of a burst and started again, empty, on the same
port. Every request is answered 200 or 429, never 5xx, and none is lost: while Redis is away the process
limits on its own buckets (one warning, not one per request); once Redis is back, the limit lives in
Redis again and refuses the burst past ``burst``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from api.ratelimit import REDIS_RETRY_SECONDS
from tests.reliability.load import injected_fault
from tests.reliability.served import ServedApi
from tests.support.redis_server import RedisServer

pytestmark = [pytest.mark.reliability, pytest.mark.postgres]
BURST = 20
RATE = 0.5


def statuses(http: httpx.Client, requests: int) -> list[int]:
    """``requests`` GET /jobs in a row; every status (a transport error fails the test: a lost request)."""
    return [http.get("/jobs").status_code for _ in range(requests)]


def test_a_redis_killed_mid_burst_costs_no_5xx_and_the_limit_is_shared_again(
    serve: Callable[..., ServedApi], tmp_path: Path
) -> None:
    with RedisServer.started(tmp_path / "redis") as redis_server:
        api = serve(1, {"EVALGATE_REDIS_URL": redis_server.url, "EVALGATE_RATE_LIMIT_BURST": str(BURST),
                        "EVALGATE_RATE_LIMIT_PER_SECOND": str(RATE)})  # fmt: skip
        headers = {"Authorization": f"Bearer {api.plan.tokens[0]}"}
        with (
            injected_fault("redis killed mid-burst and restarted") as report,
            httpx.Client(base_url=api.url, headers=headers, timeout=30) as http,
        ):
            before = statuses(http, BURST // 2)
            in_redis = redis_server.client().keys("evalgate:ratelimit:token:*")
            redis_server.kill()
            started = time.monotonic()
            during = statuses(http, 2 * BURST)
            redis_server.start()
            time.sleep(REDIS_RETRY_SECONDS + 0.5)
            after = statuses(http, 2 * BURST)
            seconds = time.monotonic() - started
            answered = before + during + after
            back_in_redis = redis_server.client().keys("evalgate:ratelimit:token:*")
            report(all(status in (200, 429) for status in answered) and 429 in after and bool(back_in_redis))

    log = api.log_tail(400)
    refilled = int(RATE * seconds) + 1
    assert before == [200] * (BURST // 2) and len(in_redis) == 1
    assert Counter(answered).keys() <= {200, 429}, Counter(answered)  # no 5xx, nothing else
    assert BURST <= during.count(200) <= BURST + refilled, during  # the process's own limit meanwhile
    assert BURST <= after.count(200) <= BURST + refilled and after[-1] == 429, after  # Redis's, fresh
    assert back_in_redis == in_redis
    assert log.count("rate limits: Redis at") == 2, log  # one warning for the whole outage, one on return
    assert "unreachable" in log and "answers again" in log
