"""/jobs: status, progress and log tail of background work (sweeps, evaluations); cancel."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.exceptions import RequestValidationError
from sqlalchemy import select

from api.deps import READ, WRITE, AppState, get_state
from api.schemas import STORABLE, JobOut, PathId
from evalgate.db.models import JOB_STATUSES, Job
from evalgate.db.session import session_scope
from evalgate.service.jobs import request_cancel

router = APIRouter(prefix="/jobs", tags=["jobs"], dependencies=[STORABLE])


def job_out(state: AppState, job_id: int) -> JobOut:
    """The job as a response body; ``LookupError`` (404) when unknown."""
    with session_scope(state.sessions) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise LookupError(f"job {job_id} not found")
        return JobOut.of(job)


@router.get("/{job_id}", response_model=JobOut, dependencies=[READ])
def get_job(job_id: PathId, state: AppState = Depends(get_state)) -> JobOut:
    """A job's status, attempts, progress, log tail, result or error."""
    return job_out(state, job_id)


@router.get("", response_model=list[JobOut], dependencies=[READ])
def list_jobs(
    status: str | None = None, limit: int = 50, state: AppState = Depends(get_state)
) -> list[JobOut]:
    """Jobs, newest first, optionally of one status (422 for a status that does not exist)."""
    if status is not None and status not in JOB_STATUSES:
        message = f"status must be one of {', '.join(JOB_STATUSES)}, got {status!r}"
        raise RequestValidationError([{"loc": ("query", "status"), "msg": message, "type": "value_error"}])
    query = select(Job).order_by(Job.id.desc()).limit(max(1, min(limit, 500)))
    if status is not None:
        query = query.where(Job.status == status)
    with session_scope(state.sessions) as session:
        return [JobOut.of(job) for job in session.scalars(query)]


@router.post("/{job_id}/cancel", response_model=JobOut, dependencies=[WRITE])
def cancel_job(job_id: PathId, state: AppState = Depends(get_state)) -> JobOut:
    """Cancel a queued job now, or ask a running job to stop (409 when it already ended)."""
    request_cancel(state.sessions, job_id)
    return job_out(state, job_id)
