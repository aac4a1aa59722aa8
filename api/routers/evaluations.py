"""/evaluations: start one (a worker job), read runs with their aggregates, page through row scores."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from sqlalchemy import select

from api.deps import READ, WRITE, AppState, get_state
from api.routers.jobs import job_out
from api.schemas import MAX_ID, STORABLE, EvaluationIn, EvaluationOut, JobOut, PathId, QueryId, version_ref
from evalgate.db.models import Candidate, EvaluationRun, RowScore, Sweep
from evalgate.db.session import session_scope
from evalgate.service.handlers import EVALUATE
from evalgate.service.jobs import enqueue

router = APIRouter(prefix="/evaluations", tags=["evaluations"], dependencies=[STORABLE])


@router.post("", response_model=JobOut, status_code=status.HTTP_202_ACCEPTED, dependencies=[WRITE])
def start_evaluation(body: EvaluationIn, state: AppState = Depends(get_state)) -> JobOut:
    """Queue the evaluation of a candidate on ``dataset`` (with the base model), or of a whole sweep.

    404 for an unknown candidate, sweep or dataset version; 409 for a candidate without an adapter.
    """
    payload: dict[str, Any] = {"options": body.options.to_dict()}
    if body.sweep_id is not None:
        with session_scope(state.sessions) as session:
            if session.get(Sweep, body.sweep_id) is None:
                raise LookupError(f"sweep {body.sweep_id} not found")
        payload["sweep_id"] = body.sweep_id
    elif body.candidate_id is not None and body.dataset is not None:
        ref = version_ref(body.dataset, ("body", "dataset"))  # its shape first: a 422 before any 404
        _check_trained(state, body.candidate_id)
        dataset = state.store.get(ref)
        payload.update(candidate_id=body.candidate_id, dataset=dataset.label)
    return job_out(state, enqueue(state.sessions, EVALUATE, payload))


def _check_trained(state: AppState, candidate_id: int) -> None:
    """404 for an unknown candidate, 409 for one that has no adapter to evaluate."""
    with session_scope(state.sessions) as session:
        candidate = session.get(Candidate, candidate_id)
        if candidate is None:
            raise LookupError(f"candidate {candidate_id} not found")
        if not candidate.adapter_uri or not candidate.adapter_hash:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"candidate {candidate_id} ({candidate.status}) has no trained adapter",
            )


@router.get("/{run_id}", response_model=EvaluationOut, dependencies=[READ])
def get_evaluation(run_id: PathId, state: AppState = Depends(get_state)) -> EvaluationOut:
    """A run's status and summary (per evaluator x cohort: mean, interval, delta vs the base run)."""
    with session_scope(state.sessions) as session:
        run = session.get(EvaluationRun, run_id)
        if run is None:
            raise LookupError(f"evaluation run {run_id} not found")
        return EvaluationOut.of(run)


@router.get("", response_model=list[EvaluationOut], dependencies=[READ])
def list_evaluations(
    candidate_id: QueryId = None, limit: int = 50, state: AppState = Depends(get_state)
) -> list[EvaluationOut]:
    """Runs, newest first (optionally of one candidate)."""
    query = select(EvaluationRun).order_by(EvaluationRun.id.desc()).limit(max(1, min(limit, 500)))
    if candidate_id is not None:
        query = query.where(EvaluationRun.candidate_id == candidate_id)
    with session_scope(state.sessions) as session:
        return [EvaluationOut.of(run) for run in session.scalars(query)]


@router.get("/{run_id}/scores", dependencies=[READ])
def row_scores(
    run_id: PathId,
    evaluator: str | None = None,
    cohort: str | None = None,
    offset: int = Query(0, ge=0, le=MAX_ID),
    limit: int = 500,
    state: AppState = Depends(get_state),
) -> list[dict[str, Any]]:
    """Per-row scores of a run, ordered by evaluator then row id."""
    get_evaluation(run_id, state)
    query = (
        select(RowScore)
        .where(RowScore.evaluation_run_id == run_id)
        .order_by(RowScore.evaluator, RowScore.row_id)
        .offset(max(0, offset))
        .limit(max(1, min(limit, 5000)))
    )
    if evaluator is not None:
        query = query.where(RowScore.evaluator == evaluator)
    if cohort is not None:
        query = query.where(RowScore.cohort == cohort)
    with session_scope(state.sessions) as session:
        return [
            {"row_id": s.row_id, "cohort": s.cohort, "evaluator": s.evaluator, "version": s.evaluator_version,
             "score": s.score, "passed": s.passed, "detail": s.detail}
            for s in session.scalars(query)
        ]  # fmt: skip
