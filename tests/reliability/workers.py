"""Real `evalgate serve` and `evalgate worker` processes for the worker fault tests, and what those
tests read back: a job's progress while it runs, and the database rows it left behind.

Builds on ``tests.api.service`` (the processes, the tiny dataset and sweep config); what is added here
is waiting for a precise point inside a running job (so a fault lands mid-training or mid-generation,
found from the job's own progress rather than a guessed sleep) and killing a worker there.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select

from evalgate.client import FINAL_JOB_STATUSES, Client
from evalgate.core.settings import Settings
from evalgate.db.models import Candidate, EvaluationRun, RowScore, Sweep
from evalgate.db.session import session_factory, session_scope
from tests.api.service import Service, write_rows

DATASET = "tiny-e2e"


@contextmanager
def served(
    settings: Settings, logs: Path, env: Mapping[str, str] | None = None
) -> Iterator[tuple[Service, Client]]:
    """A served API on loopback (with ``env`` added to every process) and a client with a write token;
    the tiny dataset is uploaded as ``tiny-e2e@v1``. Every process is stopped at the end."""
    running = Service(settings, logs)
    running.env.update(env or {})
    _, url = running.serve("api")
    client: Client | None = None
    try:
        token = running.cli("tokens", "create", "pipeline", "--scope", "write")
        client = Client(url, token, retries=8, backoff=0.5)
        client.health()
        client.upload_dataset(DATASET, write_rows(logs / "rows.jsonl"))
        yield running, client
    finally:
        if client is not None:
            client.close()
        running.stop()


def task_progress(client: Client, job_id: int, prefix: str) -> dict[str, Any] | None:
    """The job's progress task whose name starts with ``prefix`` (its last one), or None."""
    tasks = [t for t in client.job(job_id)["progress"].get("tasks", []) if t["name"].startswith(prefix)]
    return tasks[-1] if tasks else None


def wait_mid_task(client: Client, job_id: int, prefix: str, at_least: int, timeout: float = 180) -> int:
    """Wait until task ``prefix`` of the job has ``at_least`` units done but is not complete; the units
    done. Raises when the task finishes first (the fault would not land mid-task) or never starts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = task_progress(client, job_id, prefix)
        if task is not None and task["completed"] >= at_least:
            if task["total"] is not None and task["completed"] >= task["total"]:
                raise AssertionError(f"task {prefix!r} of job {job_id} ended before the fault: {task}")
            return int(task["completed"])
        job = client.job(job_id)
        if job["status"] in FINAL_JOB_STATUSES:
            raise AssertionError(f"job {job_id} ended before the fault: {job}")
        time.sleep(0.1)
    raise TimeoutError(f"job {job_id} never reached {at_least} of {prefix!r}: {client.job(job_id)}")


def wait_to_end(client: Client, job_id: int, timeout: float = 300) -> dict[str, Any]:
    """Poll until the job is succeeded, failed or cancelled; the job, whichever way it ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.job(job_id)
        if job["status"] in FINAL_JOB_STATUSES:
            return job
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} did not end within {timeout} s: {client.job(job_id)}")


def kill_hard(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL: no handler runs, nothing is saved or handed back; the lease must tell."""
    process.send_signal(signal.SIGKILL)
    process.wait(10)


def sweep_state(settings: Settings, sweep_id: int) -> dict[str, Any]:
    """The sweep's status and its candidates (rate, status, adapter, curves, error) from the database."""
    sessions = session_factory(settings.resolved_database_url)
    with session_scope(sessions) as session:
        sweep = session.get_one(Sweep, sweep_id)
        candidates = session.scalars(
            select(Candidate).where(Candidate.sweep_id == sweep_id).order_by(Candidate.learning_rate)
        ).all()
        rows = [{"id": c.id, "rate": c.learning_rate, "status": c.status, "adapter_uri": c.adapter_uri,
                 "adapter_hash": c.adapter_hash, "training": dict(c.training or {}), "error": c.error}
                for c in candidates]  # fmt: skip
        return {"status": sweep.status, "candidates": rows}


def sweep_ids(settings: Settings) -> list[int]:
    """Every sweep row's id (a resumed sweep must not have been opened twice)."""
    with session_scope(session_factory(settings.resolved_database_url)) as session:
        return list(session.scalars(select(Sweep.id).order_by(Sweep.id)).all())


def evaluation_state(settings: Settings) -> list[dict[str, Any]]:
    """Every evaluation run: id, candidate, status, and its (row, evaluator) score keys in id order."""
    sessions = session_factory(settings.resolved_database_url)
    with session_scope(sessions) as session:
        runs = session.scalars(select(EvaluationRun).order_by(EvaluationRun.id)).all()
        found = []
        for run in runs:
            keys = session.execute(
                select(RowScore.row_id, RowScore.evaluator).where(RowScore.evaluation_run_id == run.id)
            ).all()
            found.append({"id": run.id, "candidate_id": run.candidate_id, "status": run.status,
                          "scores": [tuple(key) for key in keys]})  # fmt: skip
        return found
