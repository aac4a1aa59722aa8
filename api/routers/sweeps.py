"""/sweeps: submit a sweep config (trained by a worker, returns its job); list and get sweeps."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response, status
from sqlalchemy import select

from api.deps import READ, WRITE, AppState, get_state
from api.pagination import LINK_HEADER, Page, fetch, link_next, paging
from api.problems import problem_responses
from api.routers.jobs import ACCEPTED, accepted, job_out
from api.schemas import STORABLE, JobOut, PathId, SweepIn, halted_reason, version_ref
from evalgate.db.models import Sweep
from evalgate.db.session import session_scope
from evalgate.service.handlers import SWEEP
from evalgate.service.jobs import enqueue
from evalgate.sweep.records import candidate_rows

router = APIRouter(
    prefix="/sweeps",
    tags=["sweeps"],
    dependencies=[STORABLE],
    responses=problem_responses(401, 403, 422, 429, 503),
)
PAGES = paging(100, 1000)


@router.post(
    "",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[WRITE],
    responses={202: ACCEPTED, **problem_responses(413, s404="The config's dataset version does not exist")},
)
def submit_sweep(body: SweepIn, response: Response, state: AppState = Depends(get_state)) -> JobOut:
    """Validate the config and its dataset, then queue the sweep; follow the job at ``Location``."""
    config = body.config
    state.store.get(
        version_ref(config.dataset, ("body", "config", "dataset"))
    )  # 404 now, not a failed job later
    return accepted(response, job_out(state, enqueue(state.sessions, SWEEP, {"config": config.to_dict()})))


@router.get("/{sweep_id}", dependencies=[READ], responses=problem_responses(404))
def get_sweep(sweep_id: PathId, state: AppState = Depends(get_state)) -> dict[str, Any]:
    """A sweep's status, config and candidates (name, rate, hyperparameters, status, diagnosis, loss
    curve; ``halted``: why successive halving stopped one, null unless its status is stopped)."""
    with session_scope(state.sessions) as session:
        sweep = session.get(Sweep, sweep_id)
        if sweep is None:
            raise LookupError(f"sweep {sweep_id} not found")
        fields = ("id", "name", "status", "base_model", "config", "created_at", "finished_at")
        head = {name: getattr(sweep, name) for name in fields}
    candidates = [
        {**row, "halted": halted_reason(row["status"], row["training"])}
        for row in candidate_rows(state.sessions, sweep_id)
    ]
    return {**head, "candidates": candidates}


@router.get("", dependencies=[READ], responses={200: {"headers": LINK_HEADER}})
def list_sweeps(
    request: Request, response: Response, page: Page = Depends(PAGES), state: AppState = Depends(get_state)
) -> list[dict[str, Any]]:
    """Sweeps, newest first; paged."""
    with session_scope(state.sessions) as session:
        found = fetch(session, select(Sweep), page, (Sweep.id,), lambda sweep: (sweep.id,), descending=True)
        sweeps = [{"id": s.id, "name": s.name, "status": s.status, "base_model": s.base_model}
                  for s in found.items]  # fmt: skip
    link_next(request, response, found.next_key)
    return sweeps
