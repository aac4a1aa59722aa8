"""/sweeps: submit a sweep config (trained by a worker, returns its job); list and get sweeps."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, status
from sqlalchemy import select

from api.deps import READ, WRITE, AppState, get_state
from api.routers.jobs import job_out
from api.schemas import STORABLE, JobOut, PathId, SweepIn, halted_reason, version_ref
from evalgate.db.models import Sweep
from evalgate.db.session import session_scope
from evalgate.service.handlers import SWEEP
from evalgate.service.jobs import enqueue
from evalgate.sweep.records import candidate_rows

router = APIRouter(prefix="/sweeps", tags=["sweeps"], dependencies=[STORABLE])


@router.post("", response_model=JobOut, status_code=status.HTTP_202_ACCEPTED, dependencies=[WRITE])
def submit_sweep(body: SweepIn, state: AppState = Depends(get_state)) -> JobOut:
    """Validate the config and its dataset, then queue the sweep; follow it at ``/jobs/{id}``."""
    config = body.config
    state.store.get(
        version_ref(config.dataset, ("body", "config", "dataset"))
    )  # 404 now, not a failed job later
    return job_out(state, enqueue(state.sessions, SWEEP, {"config": config.to_dict()}))


@router.get("/{sweep_id}", dependencies=[READ])
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


@router.get("", dependencies=[READ])
def list_sweeps(state: AppState = Depends(get_state)) -> list[dict[str, Any]]:
    """Every sweep, newest first."""
    with session_scope(state.sessions) as session:
        sweeps = session.scalars(select(Sweep).order_by(Sweep.id.desc())).all()
        return [{"id": s.id, "name": s.name, "status": s.status, "base_model": s.base_model} for s in sweeps]
