"""``/metrics`` in Prometheus's text format (prometheus_client): the API's requests, and the queue, the
workers and the gate as the database holds them at scrape time.

    curl -s http://127.0.0.1:8000/metrics               # from the host itself: no token needed
    curl -s -H "Authorization: Bearer $ADMIN" https://evalgate.example.com/metrics

Series:

- ``evalgate_http_request_duration_seconds{method, route, status}`` (histogram): every answered
  request, by route template (``/jobs/{job_id}``; ``unmatched`` for a path no route serves), method and
  status class (``2xx`` ... ``5xx``); counted by the API process that answered it;
- ``evalgate_jobs{kind, status}``: jobs in each state (every state of every kind, 0 included);
- ``evalgate_job_duration_seconds{kind, status}`` (histogram): finished jobs (succeeded, failed,
  cancelled), from submission to the end, queueing included (a job records no start time);
- ``evalgate_gate_decisions_total{verdict}``: decisions made, pass and block;
- ``evalgate_worker_heartbeat_age_seconds{worker}``: seconds since each worker running a job last
  heartbeated (a worker beats only while it runs a job: an idle one has no series; an age near
  ``EVALGATE_JOB_LEASE_SECONDS`` means the job is about to be reclaimed);
- ``evalgate_database_up``: 1 when the queries above answered, 0 when the database is away (the other
  database series are then left out, and the scrape still succeeds);
- ``process_*``: the answering process's CPU, memory and file descriptors.

The database series are read at scrape time, so every API process reports the same numbers. The
request histogram lives in each process: with ``evalgate serve --workers N`` a scrape shows the process
that accepted its connection, unless ``PROMETHEUS_MULTIPROC_DIR`` names an empty folder writable by all
of them (created before the server starts and emptied before each start), in which case every scrape
adds up all processes' requests (prometheus_client's multiprocess mode; ``process_*`` is then left out).

Access (``EVALGATE_METRICS_ACCESS``): ``local`` (default) a loopback client needs no token, any other
needs an admin token; ``token`` an admin token always; ``public`` no token; ``off`` no route.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CollectorRegistry, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.deps import AppState, admit, bearer, client_address, get_state
from api.errors import DATABASE_ERRORS
from evalgate.db.base import utcnow
from evalgate.db.models import JOB_STATUSES, GateDecision, Job
from evalgate.db.session import session_scope
from evalgate.service.handlers import JOB_KINDS
from evalgate.service.jobs import TERMINAL

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
JOB_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)
"""Seconds: an evaluation of a small model takes minutes, a sweep hours."""
VERDICTS = ("pass", "block")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods counted under their name; any other is counted as ``other`` (a label set must stay small)."""
UNMATCHED = "unmatched"
log = logging.getLogger(__name__)


class HttpMetrics:
    """The request-latency histogram of one app."""

    def __init__(self, registry: CollectorRegistry | None):
        self.latency = Histogram(
            "evalgate_http_request_duration_seconds",
            "Seconds from a request's arrival to the end of its answer.",
            ("method", "route", "status"),
            registry=registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        label = method if method in METHODS else "other"
        self.latency.labels(label, route, f"{status // 100}xx").observe(seconds)


class DatabaseCollector(Collector):
    """The queue, worker and gate series, queried when Prometheus scrapes."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime] = utcnow):
        self.sessions, self.clock = sessions, clock

    def describe(self) -> Iterable[Metric]:
        """The series' names, without touching the database (registering must not query it)."""
        return [_up(0), *_families()]

    def collect(self) -> Iterator[Metric]:
        """``evalgate_database_up`` and, when the database answers, the other series."""
        try:
            with session_scope(self.sessions) as session:
                families = _families()
                _count_jobs(session, families[0])
                _job_durations(session, families[1])
                _decisions(session, families[2])
                _heartbeats(session, families[3], self.clock())
        except DATABASE_ERRORS as error:
            log.warning("metrics: database series left out (%s: %s)", type(error).__name__, error)
            yield _up(0)
            return
        yield _up(1)
        yield from families


def _up(value: int) -> GaugeMetricFamily:
    return GaugeMetricFamily("evalgate_database_up", "1 when the database answered this scrape.", value=value)


def _families() -> list[Any]:
    """The database series, empty: jobs, job durations, decisions, heartbeat ages."""
    return [
        GaugeMetricFamily("evalgate_jobs", "Jobs by kind and status.", labels=("kind", "status")),
        HistogramMetricFamily(
            "evalgate_job_duration_seconds",
            "Finished jobs: seconds from submission to the end, queueing included.",
            labels=("kind", "status"),
        ),
        CounterMetricFamily("evalgate_gate_decisions", "Gate decisions by verdict.", labels=("verdict",)),
        GaugeMetricFamily(
            "evalgate_worker_heartbeat_age_seconds",
            "Seconds since each worker running a job last heartbeated.",
            labels=("worker",),
        ),
    ]


def _count_jobs(session: Session, family: GaugeMetricFamily) -> None:
    counts = {(kind, status): n for kind, status, n in session.execute(
        select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status))}  # fmt: skip
    for kind in sorted({*JOB_KINDS, *(kind for kind, _ in counts)}):
        for status in JOB_STATUSES:
            family.add_metric((kind, status), counts.get((kind, status), 0))


def _seconds(session: Session) -> Any:
    """SQL for a job's seconds from creation to its last update, on the session's database."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(Job.updated_at) - func.julianday(Job.created_at)) * 86400.0
    return func.extract("epoch", Job.updated_at - Job.created_at)


def _job_durations(session: Session, family: HistogramMetricFamily) -> None:
    """Bucket counts summed in the database (one row per kind and status, however many jobs)."""
    seconds = _seconds(session)
    buckets = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in JOB_DURATION_BUCKETS]
    query = (
        select(Job.kind, Job.status, func.count(), func.coalesce(func.sum(seconds), 0.0), *buckets)
        .where(Job.status.in_(TERMINAL))
        .group_by(Job.kind, Job.status)
    )
    for kind, status, count, total, *cumulative in session.execute(query):
        bounds = [floatToGoString(bound) for bound in JOB_DURATION_BUCKETS]
        points = [(bound, int(n or 0)) for bound, n in zip(bounds, cumulative, strict=True)]
        family.add_metric((kind, status), [*points, ("+Inf", int(count))], float(total))


def _decisions(session: Session, family: CounterMetricFamily) -> None:
    query = select(GateDecision.verdict, func.count()).group_by(GateDecision.verdict)
    counts: dict[str, int] = {verdict: n for verdict, n in session.execute(query)}
    for verdict in sorted({*VERDICTS, *counts}):
        family.add_metric((verdict,), counts.get(verdict, 0))


def _heartbeats(session: Session, family: GaugeMetricFamily, now: datetime) -> None:
    query = (
        select(Job.locked_by, func.max(Job.heartbeat_at))
        .where(Job.status == "running", Job.locked_by.is_not(None), Job.heartbeat_at.is_not(None))
        .group_by(Job.locked_by)
    )
    for worker, beat in session.execute(query):
        if beat is not None:
            moment = beat if beat.tzinfo else beat.replace(tzinfo=UTC)  # SQLite: naive UTC times
            family.add_metric((str(worker),), max(0.0, (now - moment).total_seconds()))


class Metrics:
    """One app's metrics: its request histogram and the registry ``/metrics`` renders."""

    def __init__(self, sessions: sessionmaker[Session]):
        self.registry = CollectorRegistry()
        if os.environ.get(MULTIPROCESS_ENV):
            MultiProcessCollector(self.registry)
            self.http = HttpMetrics(None)  # written to the shared folder, read back by the collector
        else:
            ProcessCollector(registry=self.registry)
            self.http = HttpMetrics(self.registry)
        self.registry.register(DatabaseCollector(sessions))

    def render(self) -> bytes:
        """The exposition text (queries the database)."""
        return generate_latest(self.registry)


def loopback(host: str) -> bool:
    """Whether ``host`` (a client address) is a loopback address."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def metrics_reader(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    state: AppState = Depends(get_state),
) -> None:
    """Admit a scrape under ``metrics_access``: ``public`` anyone, ``local`` a loopback client or an
    admin token, ``token`` an admin token (401 without one, 403 for a lower scope)."""
    access = state.settings.metrics_access
    client = client_address(request)
    if access == "public" or (access == "local" and loopback(client)):
        return
    info = None
    if credentials is not None:
        info = await run_in_threadpool(state.authenticate, credentials.credentials, client)
    admit(credentials, info, "admin")
