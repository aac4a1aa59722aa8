"""The durable job queue: rows of the ``job`` table, claimed by workers under a heartbeat lease.

    job_id = enqueue(sessions, "sweep", {"config": {...}})
    job = claim(sessions, "host:pid")          # None when nothing is runnable

Why the database and not a queue library: jobs must survive an API restart, be listed with their
progress and log tail over REST, and be cancelled, all next to the rows they produce. The database
already holds all of that, on SQLite and PostgreSQL alike, so no broker joins the deployment.

Claiming is safe with several workers: the oldest runnable job is selected ``FOR UPDATE SKIP LOCKED``
on PostgreSQL (so concurrent workers pass over each other's rows instead of waiting), and every state
change is a conditional ``UPDATE ... WHERE status = ... AND locked_by = ...`` whose row count tells the
worker whether it still owns the job (on SQLite the file lock serialises writers; the conditional
update alone keeps a job from being claimed twice).

A running job holds a lease: its worker refreshes ``heartbeat_at`` every few seconds. A job whose
heartbeat is older than the lease (its worker was killed, or lost the database) is reclaimed: queued
again after a back-off while attempts remain, otherwise failed with the reason. A worker that finds
its lease taken stops its handler, so one job never runs twice at once for longer than one heartbeat.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from evalgate.db.base import utcnow
from evalgate.db.models import Job
from evalgate.db.session import session_scope

LEASE_SECONDS = 60.0
"""A running job whose heartbeat is older than this is considered abandoned."""
RETRY_BACKOFF_SECONDS = 5.0
"""Delay before an abandoned job is offered again, times the attempts so far."""
LOG_TAIL_CHARS = 8_000
TERMINAL = ("succeeded", "failed", "cancelled")


class JobStateError(ValueError):
    """The job is not in a state that allows the request (e.g. cancelling a finished job)."""


@dataclass(frozen=True)
class ClaimedJob:
    """A job this worker now owns."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempt: int
    worker: str
    log_tail: str = ""
    """The log of earlier attempts (and why they ended), continued by this one."""


def enqueue(
    sessions: sessionmaker[Session], kind: str, payload: dict[str, Any], max_attempts: int = 3
) -> int:
    """Queue a job; returns its id."""
    with session_scope(sessions) as session:
        job = Job(kind=kind, payload=payload, max_attempts=max_attempts, progress={}, log_tail="")
        session.add(job)
        session.flush()
        return job.id


def claim(
    sessions: sessionmaker[Session], worker: str, kinds: tuple[str, ...] | None = None
) -> ClaimedJob | None:
    """Take the oldest runnable queued job for ``worker``; None when there is none."""
    while True:
        job_id = _next_runnable(sessions, worker, kinds)
        if job_id is None:
            return None
        if job_id > 0:
            with session_scope(sessions) as session:
                job = session.get_one(Job, job_id)
                return ClaimedJob(job.id, job.kind, dict(job.payload), job.attempts, worker, job.log_tail)
        # another worker took the row between our select and update (SQLite): look again


def _next_runnable(sessions: sessionmaker[Session], worker: str, kinds: tuple[str, ...] | None) -> int | None:
    """Claim one row: its id, None when the queue is empty, or -1 when another worker won the race."""
    now = utcnow()
    with session_scope(sessions) as session:
        query = (
            select(Job.id)
            .where(Job.status == "queued", or_(Job.run_after.is_(None), Job.run_after <= now))
            .order_by(Job.created_at, Job.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if kinds:
            query = query.where(Job.kind.in_(kinds))
        job_id = session.scalars(query).first()
        if job_id is None:
            return None
        changes = {
            "status": "running",
            "locked_by": worker,
            "attempts": Job.attempts + 1,
            "heartbeat_at": now,
        }
        return job_id if _update(session, job_id, {"status": "queued"}, **changes) else -1


def heartbeat(sessions: sessionmaker[Session], job: ClaimedJob) -> str:
    """Refresh the lease. Returns ``"ok"``, ``"cancel"`` (cancellation asked) or ``"lost"`` (not ours)."""
    with session_scope(sessions) as session:
        if not _update(session, job.id, _owned(job), heartbeat_at=utcnow()):
            return "lost"
        cancel = session.scalar(select(Job.cancel_requested).where(Job.id == job.id))
        return "cancel" if cancel else "ok"


def report(sessions: sessionmaker[Session], job: ClaimedJob, progress: dict[str, Any], log_tail: str) -> bool:
    """Store the job's progress and log tail (trimmed to ``LOG_TAIL_CHARS``); False when not ours."""
    with session_scope(sessions) as session:
        return _update(
            session,
            job.id,
            _owned(job),
            progress=progress,
            log_tail=log_tail[-LOG_TAIL_CHARS:],
            heartbeat_at=utcnow(),
        )


def finish(
    sessions: sessionmaker[Session],
    job: ClaimedJob,
    status: str,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> bool:
    """Move an owned job to ``succeeded``, ``failed`` or ``cancelled``; False when it is not ours."""
    if status not in TERMINAL:
        raise JobStateError(f"{status!r} is not a final job status")
    with session_scope(sessions) as session:
        return _update(session, job.id, _owned(job), status=status, result=result, error=error)


def release(sessions: sessionmaker[Session], job: ClaimedJob, reason: str) -> bool:
    """Give an owned job back to the queue without spending its attempt (worker shutting down); the
    reason is kept in the job's log, as a reclaimed job's is, since ``error`` is cleared by the next
    attempt's success."""
    with session_scope(sessions) as session:
        return _update(
            session,
            job.id,
            _owned(job),
            status="queued",
            locked_by=None,
            attempts=Job.attempts - 1,
            error=reason,
            log_tail=Job.log_tail + f"\n[evalgate] {reason}\n",
        )


def reclaim_abandoned(sessions: sessionmaker[Session], lease_seconds: float = LEASE_SECONDS) -> list[int]:
    """Requeue (or fail, when out of attempts) running jobs whose heartbeat expired; returns their ids."""
    now = utcnow()
    cutoff = now - timedelta(seconds=lease_seconds)
    reclaimed = []
    with session_scope(sessions) as session:
        stale = session.execute(
            select(Job.id, Job.locked_by, Job.attempts, Job.max_attempts, Job.heartbeat_at)
            .where(Job.status == "running", Job.heartbeat_at < cutoff)
            .with_for_update(skip_locked=True)
        ).all()
        for job_id, worker, attempts, max_attempts, beat in stale:
            reason = f"worker {worker} stopped heartbeating (last at {_iso(beat)}) during attempt {attempts}"
            expected = {"status": "running", "locked_by": worker, "attempts": attempts}
            if attempts < max_attempts:
                reason += "; queued again"
                changes: dict[str, Any] = {
                    "status": "queued",
                    "locked_by": None,
                    "run_after": now + timedelta(seconds=RETRY_BACKOFF_SECONDS * attempts),
                }
            else:
                reason += f"; gave up after {attempts} attempts"
                changes = {"status": "failed"}
            changes.update(error=reason, log_tail=Job.log_tail + f"\n[evalgate] {reason}\n")
            if _update(session, job_id, expected, **changes):
                reclaimed.append(job_id)
    return reclaimed


def request_cancel(sessions: sessionmaker[Session], job_id: int) -> str:
    """Cancel a queued job at once, or ask a running one's worker to stop; returns the new status."""
    with session_scope(sessions) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise LookupError(f"job {job_id} not found")
        if job.status in TERMINAL:
            raise JobStateError(f"job {job_id} already {job.status}")
        if _update(session, job_id, {"status": "queued"}, status="cancelled", error="cancelled before start"):
            return "cancelled"
        _update(session, job_id, {"status": "running"}, cancel_requested=True)
        return "cancelling"


def _owned(job: ClaimedJob) -> dict[str, Any]:
    return {"status": "running", "locked_by": job.worker, "attempts": job.attempt}


def _update(session: Session, job_id: int, expected: dict[str, Any], **values: Any) -> bool:
    """``UPDATE job SET values WHERE id = job_id AND <expected columns match>``; True if a row changed."""
    conditions = [getattr(Job, column) == value for column, value in expected.items()]
    statement = update(Job).where(Job.id == job_id, *conditions).values(updated_at=utcnow(), **values)
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def _iso(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "never"
