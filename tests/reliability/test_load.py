"""Load: 20 concurrent pipeline clients for 60 s on loopback against `evalgate serve` on PostgreSQL.

Each client registers candidates and requests (and reads back) gate decisions through
``evalgate.client.Client``. The only errors allowed are 429 and 503, and only because the client's
retries absorb them: every call must end in success, and afterwards every registration and decision a
client was told about must be in the database, once. ``EVALGATE_LOAD_SECONDS`` shortens the run for
local work; the default is the 60 s the requirement names. The per-token rate limit is set low
enough (``RATE_LIMIT``) that the clients meet it, so the run also shows 429s being absorbed.
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
RATE_LIMIT = {"EVALGATE_RATE_LIMIT_PER_SECOND": "5", "EVALGATE_RATE_LIMIT_BURST": "10"}
"""Per token: 5 requests/s sustained, 10 at once. The 20 clients together may then ask for about as
much as the server answers on two shared cores, so busy clients are told 429 now and then."""


def test_twenty_clients_for_a_minute_lose_nothing_and_see_only_absorbed_429_and_503(
    serve: Callable[..., ServedApi],
) -> None:
    api = serve(CLIENTS, env=RATE_LIMIT)

    with Load(api.plan, clients=CLIENTS, seconds=SECONDS) as load:
        result = load.finish(timeout=SECONDS + 180)
    found = audit(api.database_url, result)
    record("load", "20 clients registering and deciding", requests=result.accepted, lost=found.lost)
    print(f"\nload: {result.summary()}")

    unexpected = {
        status: n for status, n in result.statuses.items() if status >= 400 and status not in (429, 503)
    }
    assert result.failures == [], result.failures[:5]
    assert unexpected == {}, f"error statuses other than 429/503: {unexpected}"
    assert result.registered and result.decided, result.summary()
    assert found.lost_registrations == [] and found.lost_decisions == [], found
    assert found.duplicate_registrations == 0 and found.duplicate_decisions == 0, found
    assert found.unreported == 0, found
