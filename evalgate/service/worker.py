"""``evalgate worker``: claim jobs from the database and run them, one at a time, with a heartbeat.

    evalgate worker                 # until SIGTERM / Ctrl-C
    evalgate worker --once          # run what is queued now, then exit

A background thread refreshes the job's lease, stores its progress and log tail, and notices a
cancellation request or a lost lease; the handler sees them through ``JobContext.stop_requested``.
On SIGTERM the worker stops its handler at the next safe point (a training step saves a checkpoint)
and gives the job back to the queue without spending an attempt, so a restarted worker resumes it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from evalgate.service import jobs
from evalgate.service.jobs import ClaimedJob

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
POLL_SECONDS = 1.0
LOG_LINES = 200

Handler = Callable[["JobContext", dict[str, Any]], dict[str, Any]]


class JobStopped(Exception):
    """Raised inside a handler when its job must stop: ``reason`` is cancel, shutdown or lost."""

    def __init__(self, reason: str):
        super().__init__(f"job stopped: {reason}")
        self.reason = reason


@dataclass
class JobContext:
    """What a handler may use: progress and log reporting, and whether it should stop."""

    job: ClaimedJob
    shutdown: threading.Event
    progress: dict[str, Any] = field(default_factory=dict)
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    stop_reason: str | None = None
    progress_source: Callable[[], dict[str, Any]] | None = None
    """Called on each heartbeat for fresh progress (e.g. read off a rich Progress)."""

    def log(self, line: str) -> None:
        """Append a line to the job's log tail."""
        self.lines.append(line)

    def stop_requested(self) -> bool:
        """True when the job was cancelled, its lease was lost, or the worker is shutting down."""
        if self.stop_reason is None and self.shutdown.is_set():
            self.stop_reason = "shutdown"
        return self.stop_reason is not None

    def check(self) -> None:
        """Raise ``JobStopped`` when the job should stop."""
        if self.stop_requested():
            raise JobStopped(self.stop_reason or "shutdown")

    def snapshot(self) -> tuple[dict[str, Any], str]:
        """Current progress and log tail."""
        progress = self.progress_source() if self.progress_source else self.progress
        return progress, "\n".join(self.lines)


class Worker:
    """Claims and runs jobs of the kinds it has handlers for."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        handlers: Mapping[str, Handler],
        name: str | None = None,
        lease_seconds: float = jobs.LEASE_SECONDS,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ):
        self.sessions = sessions
        self.handlers = dict(handlers)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.shutdown = threading.Event()

    def run(self, once: bool = False, poll_seconds: float = POLL_SECONDS) -> int:
        """Run jobs until ``shutdown`` is set (or, with ``once``, until the queue is empty); count them."""
        done = 0
        while not self.shutdown.is_set():
            if self.run_one():
                done += 1
            elif once:
                break
            else:
                self.shutdown.wait(poll_seconds)
        return done

    def run_one(self) -> bool:
        """Reclaim abandoned jobs, then claim and run one job; False when none was runnable."""
        jobs.reclaim_abandoned(self.sessions, self.lease_seconds)
        job = jobs.claim(self.sessions, self.name, tuple(self.handlers))
        if job is None:
            return False
        self.execute(job)
        return True

    def stop_on_signals(self) -> None:
        """SIGTERM and SIGINT ask the worker to stop after handing its job back."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.shutdown.set())

    def execute(self, job: ClaimedJob) -> None:
        """Run ``job``'s handler under a heartbeat and record how it ended."""
        context = JobContext(job, self.shutdown)
        context.lines.extend(job.log_tail.splitlines())
        beat = _Heartbeat(self.sessions, context, self.heartbeat_seconds)
        beat.start()
        try:
            result = self.handlers[job.kind](context, dict(job.payload))
        except BaseException as error:  # every ending is recorded; fatal ones are re-raised
            beat.stop()
            self._record_failure(context, error)
            if not isinstance(error, Exception | JobStopped | KeyboardInterrupt):
                raise
            return
        beat.stop()
        jobs.report(self.sessions, job, *context.snapshot())
        jobs.finish(self.sessions, job, "succeeded", result=result)

    def _record_failure(self, context: JobContext, error: BaseException) -> None:
        job = context.job
        reason = context.stop_reason if context.stop_requested() else None
        jobs.report(self.sessions, job, *context.snapshot())
        if reason == "lost":
            log.warning("job %s: lease lost to another worker; leaving it", job.id)
        elif reason == "shutdown":
            jobs.release(self.sessions, job, "worker shut down; queued again")
        elif reason == "cancel":
            jobs.finish(self.sessions, job, "cancelled", error="cancelled by request")
        else:
            summary = f"{type(error).__name__}: {error}"
            context.log(traceback.format_exc(limit=8))
            jobs.report(self.sessions, job, *context.snapshot())
            jobs.finish(self.sessions, job, "failed", error=summary)


class _Heartbeat(threading.Thread):
    """Every ``interval`` seconds: store progress and log tail, refresh the lease, look for a cancel."""

    def __init__(self, sessions: sessionmaker[Session], context: JobContext, interval: float):
        super().__init__(name=f"heartbeat-{context.job.id}", daemon=True)
        self.sessions = sessions
        self.context = context
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.beat()
            except Exception:  # the database may be briefly away: the lease tolerates missed beats
                log.exception("job %s: heartbeat failed", self.context.job.id)

    def beat(self) -> None:
        job = self.context.job
        if not jobs.report(self.sessions, job, *self.context.snapshot()):
            self.context.stop_reason = "lost"
            return
        if jobs.heartbeat(self.sessions, job) == "cancel" and self.context.stop_reason is None:
            self.context.stop_reason = "cancel"

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=self.interval + 5)
