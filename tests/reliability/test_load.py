"""Load: 20 concurrent pipeline clients for 60 s on loopback against `evalgate serve` on PostgreSQL.

Each client registers candidates and requests (and reads back) gate decisions through
``evalgate.client.Client``. The per-token rate limit is set low enough (``RATE_LIMIT``) that the
clients must meet it: the run has to show 429s, absorbed by the clients' retries. Nothing else may go
wrong, since no fault is injected: no 503 (the database is up, so a 503 would mean requests starved
waiting for a pooled connection), no other error status, no refused or dropped connection, no failed
call; at least ``MIN_ACCEPTED_PER_CLIENT_SECOND`` writes accepted per client and second; and
afterwards every registration and decision a client was told about must be in the database, once.
``EVALGATE_LOAD_SECONDS`` shortens the run for local work; the default is the 60 s the requirement
names.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tests.reliability.figures import record
from tests.reliability.load import Load, audit
from tests.reliability.served import ServedApi

pytestmark = [pytest.mark.reliability, pytest.mark.postgres, pytest.mark.slow]

CLIENTS = 20
SECONDS = float(os.environ.get("EVALGATE_LOAD_SECONDS", "60"))
RATE_LIMIT = {"EVALGATE_RATE_LIMIT_PER_SECOND": "2", "EVALGATE_RATE_LIMIT_BURST": "2"}
"""Per token: 2 requests/s sustained, 2 at once. A client's decide and read-back, or any three calls
within a second, already go over it; unthrottled, each client sends about 4 requests/s on the 2-core
machine (87 requests/s in all, and not one 429 under the former 5/s with a burst of 10)."""
MIN_ACCEPTED_PER_CLIENT_SECOND = 0.25
"""The floor of accepted writes (registrations + decisions) per client and second. Under the limit a
client can get about 1.3 writes/s accepted (a registration costs 1 request, a decision 2) and got 1.2 on
the 2-core machine; the floor is a fifth of that, so a slower machine passes and a stalled server
(requests queued behind a starved pool or a lock) fails."""


def test_twenty_clients_for_a_minute_meet_the_rate_limit_and_lose_nothing(
    serve: Callable[..., ServedApi],
) -> None:
    api = serve(CLIENTS, env=RATE_LIMIT)

    with Load(api.plan, clients=CLIENTS, seconds=SECONDS) as load:
        result = load.finish(timeout=SECONDS + 180)
    found = audit(api.database_url, result)
    record("load", "20 clients registering and deciding", requests=result.accepted, lost=found.lost)
    print(f"\nload: {result.summary()}")

    unexpected = {status: n for status, n in result.statuses.items() if status >= 400 and status != 429}
    floor = MIN_ACCEPTED_PER_CLIENT_SECOND * CLIENTS * SECONDS
    assert result.failures == [], result.failures[:5]
    assert unexpected == {}, f"error statuses other than 429 with no fault injected: {unexpected}"
    assert result.errors == {}, f"refused or dropped connections with no fault injected: {result.errors}"
    assert result.statuses[429] > 0, f"the clients never met the rate limit: {result.summary()}"
    assert result.accepted >= floor, f"fewer than {floor:.0f} writes accepted: {result.summary()}"
    assert result.registered and result.decided, result.summary()
    assert found.lost_registrations == [] and found.lost_decisions == [], found
    assert found.duplicate_registrations == 0 and found.duplicate_decisions == 0, found
    assert found.unreported == 0, found
