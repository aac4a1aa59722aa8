"""/jobs: status, progress and log tail of background work (sweeps, evaluations); cancel."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy import select

from api.deps import READ, WRITE, AppState, get_state
from api.pagination import LINK_HEADER, Page, fetch, link_next, paging
from api.problems import problem_responses
from api.schemas import STORABLE, JobOut, PathId
from evalgate.db.models import JOB_STATUSES, Job
from evalgate.db.session import session_scope
from evalgate.service.jobs import request_cancel

router = APIRouter(
    prefix="/jobs",
    tags=["jobs"],
    dependencies=[STORABLE],
    responses=problem_responses(401, 403, 422, 429, 503),
)
PAGES = paging(50, 500)


def job_out(state: AppState, job_id: int) -> JobOut:
    """The job as a response body; ``LookupError`` (404) when unknown."""
    with session_scope(state.sessions) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise LookupError(f"job {job_id} not found")
        return JobOut.of(job)


def accepted(response: Response, job: JobOut) -> JobOut:
    """``job`` as a 202's body, its URL in the ``Location`` header."""
    response.headers["Location"] = f"/jobs/{job.id}"
    return job


ACCEPTED = {
    "description": "Queued: follow the job at the URL in `Location`",
    "headers": {"Location": {"description": "`/jobs/{id}`: the job's status", "schema": {"type": "string"}}},
}
"""The 202 of a route that queues a job, in the OpenAPI document."""


@router.get("/{job_id}", response_model=JobOut, dependencies=[READ], responses=problem_responses(404))
def get_job(job_id: PathId, state: AppState = Depends(get_state)) -> JobOut:
    """A job's status, attempts, progress, log tail, result or error."""
    return job_out(state, job_id)


@router.get("", response_model=list[JobOut], dependencies=[READ], responses={200: {"headers": LINK_HEADER}})
def list_jobs(
    request: Request,
    response: Response,
    status: str | None = None,
    page: Page = Depends(PAGES),
    state: AppState = Depends(get_state),
) -> list[JobOut]:
    """Jobs, newest first, optionally of one status (422 for a status that does not exist); paged."""
    if status is not None and status not in JOB_STATUSES:
        message = f"status must be one of {', '.join(JOB_STATUSES)}, got {status!r}"
        raise RequestValidationError([{"loc": ("query", "status"), "msg": message, "type": "value_error"}])
    query = select(Job)
    if status is not None:
        query = query.where(Job.status == status)
    with session_scope(state.sessions) as session:
        found = fetch(session, query, page, (Job.id,), lambda job: (job.id,), descending=True)
        jobs = [JobOut.of(job) for job in found.items]
    link_next(request, response, found.next_key)
    return jobs


@router.post(
    "/{job_id}/cancel",
    response_model=JobOut,
    dependencies=[WRITE],
    responses=problem_responses(404, 413, s409="The job already ended (`/problems/job-finished`)"),
)
def cancel_job(job_id: PathId, state: AppState = Depends(get_state)) -> JobOut:
    """Cancel a queued job now, or ask a running job to stop (409 when it already ended)."""
    request_cancel(state.sessions, job_id)
    return job_out(state, job_id)
