"""The durable job queue and the worker loop, on SQLite and PostgreSQL (handlers are stand-ins here;
tests/api/test_service_end_to_end.py runs real sweeps and evaluations in real worker processes)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from evalgate.data.store import DatasetStore
from evalgate.db.base import utcnow
from evalgate.db.models import Job
from evalgate.db.session import session_scope
from evalgate.service import jobs
from evalgate.service.worker import JobContext, Worker


@pytest.fixture
def sessions(store: DatasetStore) -> sessionmaker[Session]:
    return store.sessions


def job_row(sessions: sessionmaker[Session], job_id: int) -> Job:
    with session_scope(sessions) as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def age_heartbeat(sessions: sessionmaker[Session], job_id: int, seconds: float) -> None:
    with session_scope(sessions) as session:
        session.execute(
            update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
        )


THREAD_SECONDS = 120.0
"""How long a test waits for a thread of its own to end: generous, for a loaded 2-core machine."""


@contextmanager
def threads_checked(*targets: Callable[[], object]) -> Iterator[None]:
    """Start a thread per target; on leaving, join them all and fail the test if one is still running
    after ``THREAD_SECONDS`` or raised (the first exception is re-raised, with the thread's name), so an
    error in a thread is never lost in a log line."""
    errors: list[tuple[str, BaseException]] = []

    def guarded(target: Callable[[], object]) -> None:
        try:
            target()
        except BaseException as error:  # kept for the test to raise, not printed by the thread
            errors.append((threading.current_thread().name, error))

    threads = [
        threading.Thread(target=guarded, args=(target,), name=f"test-{i}") for i, target in enumerate(targets)
    ]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        for thread in threads:
            thread.join(THREAD_SECONDS)
    alive = [thread.name for thread in threads if thread.is_alive()]
    if errors:
        name, error = errors[0]
        raise AssertionError(f"thread {name} raised {type(error).__name__}: {error}") from error
    assert not alive, f"threads still running after {THREAD_SECONDS:.0f} s: {alive}"


def test_a_job_is_claimed_once_run_and_finished(sessions: sessionmaker[Session]) -> None:
    job_id = jobs.enqueue(sessions, "echo", {"x": 1})

    claimed = jobs.claim(sessions, "w1")
    assert claimed is not None and claimed.id == job_id and claimed.attempt == 1
    assert jobs.claim(sessions, "w2") is None
    assert jobs.finish(sessions, claimed, "succeeded", result={"ok": True})
    row = job_row(sessions, job_id)
    assert row.status == "succeeded" and row.result == {"ok": True} and row.locked_by == "w1"


def test_concurrent_workers_never_claim_the_same_job(sessions: sessionmaker[Session]) -> None:
    ids = [jobs.enqueue(sessions, "echo", {"i": i}) for i in range(30)]
    claimed: list[tuple[str, int]] = []
    lock = threading.Lock()

    def drain(worker: str) -> None:
        while (job := jobs.claim(sessions, worker)) is not None:
            with lock:
                claimed.append((worker, job.id))

    with threads_checked(*(partial(drain, f"w{i}") for i in range(6))):
        pass

    assert sorted(job_id for _, job_id in claimed) == ids


def test_an_abandoned_job_is_requeued_then_failed_with_the_reason(sessions: sessionmaker[Session]) -> None:
    job_id = jobs.enqueue(sessions, "echo", {}, max_attempts=2)
    first = jobs.claim(sessions, "dead-worker")
    assert first is not None
    age_heartbeat(sessions, job_id, 120)

    assert jobs.reclaim_abandoned(sessions, lease_seconds=60) == [job_id]
    row = job_row(sessions, job_id)
    assert row.status == "queued" and "dead-worker stopped heartbeating" in (row.error or "")
    assert jobs.claim(sessions, "w2") is None  # back-off: not offered again at once
    assert jobs.heartbeat(sessions, first) == "lost" and not jobs.finish(sessions, first, "succeeded")

    with session_scope(sessions) as session:
        session.execute(update(Job).where(Job.id == job_id).values(run_after=None))
    second = jobs.claim(sessions, "w2")
    assert second is not None and second.attempt == 2
    age_heartbeat(sessions, job_id, 120)
    jobs.reclaim_abandoned(sessions, lease_seconds=60)
    row = job_row(sessions, job_id)
    assert row.status == "failed" and "gave up after 2 attempts" in (row.error or "")


def test_a_live_heartbeat_keeps_the_lease(sessions: sessionmaker[Session]) -> None:
    jobs.enqueue(sessions, "echo", {})
    claimed = jobs.claim(sessions, "w1")
    assert claimed is not None

    assert jobs.reclaim_abandoned(sessions, lease_seconds=60) == []
    assert jobs.heartbeat(sessions, claimed) == "ok"


def test_cancelling_queued_running_and_finished_jobs(sessions: sessionmaker[Session]) -> None:
    queued = jobs.enqueue(sessions, "echo", {})
    running = jobs.enqueue(sessions, "echo", {})

    assert jobs.request_cancel(sessions, queued) == "cancelled"
    claimed = jobs.claim(sessions, "w1")
    assert claimed is not None and claimed.id == running
    assert jobs.request_cancel(sessions, running) == "cancelling"
    assert jobs.heartbeat(sessions, claimed) == "cancel"
    with pytest.raises(jobs.JobStateError, match="already cancelled"):
        jobs.request_cancel(sessions, queued)
    with pytest.raises(LookupError):
        jobs.request_cancel(sessions, 999)


def _worker(sessions: sessionmaker[Session], handler: Any) -> Worker:
    return Worker(sessions, {"task": handler}, name="test-worker", heartbeat_seconds=0.05)


def test_the_worker_records_results_and_failures(sessions: sessionmaker[Session]) -> None:
    def handler(context: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        context.log(f"got {payload}")
        if payload.get("fail"):
            raise ValueError("bad payload field 'fail'")
        return {"doubled": payload["n"] * 2}

    ok = jobs.enqueue(sessions, "task", {"n": 21})
    bad = jobs.enqueue(sessions, "task", {"fail": True})
    assert _worker(sessions, handler).run(once=True) == 2

    assert job_row(sessions, ok).result == {"doubled": 42}
    failed = job_row(sessions, bad)
    assert failed.status == "failed" and failed.error == "ValueError: bad payload field 'fail'"
    assert "got {'fail': True}" in failed.log_tail and "Traceback" in failed.log_tail


def test_a_cancelled_running_job_stops_at_its_next_check(sessions: sessionmaker[Session]) -> None:
    job_id = jobs.enqueue(sessions, "task", {})
    started = threading.Event()

    def handler(context: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        started.set()
        deadline = time.monotonic() + THREAD_SECONDS / 2  # then it returns, and the test fails
        while time.monotonic() < deadline:
            context.progress = {"step": 1}
            context.check()
            time.sleep(0.01)
        return {}

    with threads_checked(lambda: _worker(sessions, handler).run(once=True)):
        assert started.wait(THREAD_SECONDS), "the handler never started"
        jobs.request_cancel(sessions, job_id)

    row = job_row(sessions, job_id)
    assert row.status == "cancelled" and row.progress == {"step": 1}


def test_shutdown_gives_the_job_back_without_spending_an_attempt(sessions: sessionmaker[Session]) -> None:
    job_id = jobs.enqueue(sessions, "task", {})
    worker: Worker

    def handler(context: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        worker.shutdown.set()
        context.check()
        return {}

    worker = _worker(sessions, handler)
    worker.run()

    row = job_row(sessions, job_id)
    assert row.status == "queued" and row.attempts == 0 and row.locked_by is None
    assert row.log_tail.endswith(f"[evalgate] {row.error}\n") and "shut down" in row.error
