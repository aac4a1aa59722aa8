"""PostgreSQL restarted under a load: 503 with Retry-After while it is down, recovery by itself after.

A real `evalgate serve` runs on the session's private cluster while pipeline clients register
candidates and request and read decisions. The cluster is stopped for a few seconds: meanwhile raw
requests on several routes (JSON reads and a write, the dashboard home, ``/healthz``) must get 503
with ``Retry-After`` (not a 500, not a hang); once it is back the same API process must answer again
without being restarted, the clients' retries must have absorbed the outage (every call succeeded in
the end), and every accepted record must be stored once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from tests.reliability.figures import record
from tests.reliability.load import Load, audit, injected_fault, policy
from tests.reliability.postgres_cluster import PostgresCluster
from tests.reliability.served import ServedApi

pytestmark = [pytest.mark.reliability, pytest.mark.postgres, pytest.mark.slow]

CLIENTS = 4
OUTAGE_SECONDS = 4.0
HANG_LIMIT_SECONDS = 30.0
"""An answer slower than this while the database is down counts as a hang: generous for a loaded 2-core
machine (a refused connection fails at once; a hung one would wait forever)."""
RECOVERY_SECONDS = 30.0
PROBE_SEED = 999_999_999
"""The probes' own policy seed: no client of the load uses it."""


def probe(api: ServedApi) -> dict[str, httpx.Response]:
    """One raw request per kind of route (a read, a list, a write, an HTML page, the health check) with
    a client's token."""
    headers = {"Authorization": f"Bearer {api.plan.tokens[0]}"}
    candidate = api.plan.decidable[0]
    with httpx.Client(base_url=api.url, headers=headers, timeout=HANG_LIMIT_SECONDS) as http:
        return {
            "GET /candidates/{id}": http.get(f"/candidates/{candidate}"),
            "GET /gate/decisions": http.get("/gate/decisions", params={"limit": 5}),
            "POST /gate/decide": http.post(
                "/gate/decide", json={"candidate_id": candidate, "policy": policy(PROBE_SEED)}
            ),
            "GET /": http.get("/", headers={"Accept": "text/html"}),
            "GET /healthz": http.get("/healthz"),
        }


def wait_until_answering(api: ServedApi) -> float:
    """Seconds until every probed route answers 200 again; ``TimeoutError`` after ``RECOVERY_SECONDS``."""
    started = time.monotonic()
    while time.monotonic() - started < RECOVERY_SECONDS:
        if all(response.status_code == 200 for response in probe(api).values()):
            return time.monotonic() - started
        time.sleep(0.5)
    raise TimeoutError(f"the API did not answer 200 within {RECOVERY_SECONDS:.0f} s of PostgreSQL's return")


def outage(
    api: ServedApi, cluster: PostgresCluster
) -> tuple[dict[str, tuple[int, str | None, float]], float]:
    """Stop PostgreSQL, probe while it is down, start it again; the answers (status, Retry-After,
    seconds) by route and the seconds the API took to answer again."""
    cluster.stop("fast")
    down_since = time.monotonic()
    try:
        answers = {}
        for route, response in probe(api).items():
            answers[route] = (response.status_code, response.headers.get("Retry-After"),
                              response.elapsed.total_seconds())  # fmt: skip
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_since)))
    finally:
        cluster.start()
    return answers, wait_until_answering(api)


def test_postgres_restart_under_load_answers_503_then_recovers_without_losing_decisions(
    serve: Callable[..., ServedApi], private_postgres: PostgresCluster
) -> None:
    api = serve(CLIENTS)
    with injected_fault("postgres restart under load") as report:
        with Load(api.plan, clients=CLIENTS) as load:
            while load.accepted() < 20 and time.monotonic() - load.started < 60:
                time.sleep(0.1)
            accepted_before = load.accepted()
            answers, recovered_in = outage(api, private_postgres)
            time.sleep(2.0)  # the load goes on against the recovered database
            result = load.finish()
        found = audit(api.database_url, result)
        print(f"\npostgres restart: while down {answers}; back in {recovered_in:.1f} s; {result.summary()}")
        all_503 = all(status == 503 and (retry_after or "").isdigit() and int(retry_after or 0) > 0
                      and seconds < HANG_LIMIT_SECONDS
                      for status, retry_after, seconds in answers.values())  # fmt: skip
        same_process = api.starts == 1 and api.process is not None and api.process.poll() is None
        report(all_503 and same_process and not result.failures and found.lost == 0
               and found.duplicate_registrations == found.duplicate_decisions == 0)  # fmt: skip
    record("load", "clients through a postgres restart", requests=result.accepted, lost=found.lost)

    assert accepted_before >= 20, "the load never got under way"
    assert all_503, f"while PostgreSQL was down: {answers}"
    assert same_process, "the API process was restarted or died"
    assert result.statuses[503] > 0, f"the clients never met the outage: {result.summary()}"
    assert result.failures == [], result.failures[:5]
    assert result.accepted > accepted_before, "nothing was accepted after the restart"
    assert found.lost_registrations == [] and found.lost_decisions == [], found
    assert found.duplicate_registrations == 0 and found.duplicate_decisions == 0, found
