"""/evaluations: start one (a worker job), read runs with their aggregates, page through row scores."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, status
from sqlalchemy import select

from api.deps import READ, WRITE, AppState, get_state
from api.routers.jobs import job_out
from api.schemas import EvaluationIn, EvaluationOut, JobOut
from evalgate.db.models import EvaluationRun, RowScore, Sweep
from evalgate.db.session import session_scope
from evalgate.evaluation_records import candidate_info
from evalgate.job_handlers import EVALUATE
from evalgate.jobs import enqueue

router = APIRouter(prefix="/evaluations", tags=["evaluations"])


@router.post("", response_model=JobOut, status_code=status.HTTP_202_ACCEPTED, dependencies=[WRITE])
def start_evaluation(body: EvaluationIn, state: AppState = Depends(get_state)) -> JobOut:
    """Queue the evaluation of a candidate on ``dataset`` (with the base model), or of a whole sweep."""
    if (body.candidate_id is None) == (body.sweep_id is None):
        raise ValueError("give candidate_id (with dataset) or sweep_id")
    payload: dict[str, Any] = {"options": body.options.model_dump()}
    if body.sweep_id is not None:
        with session_scope(state.sessions) as session:
            if session.get(Sweep, body.sweep_id) is None:
                raise LookupError(f"sweep {body.sweep_id} not found")
        payload["sweep_id"] = body.sweep_id
    else:
        if body.dataset is None:
            raise ValueError("dataset (NAME@vN) is required with candidate_id")
        candidate_info(state.sessions, body.candidate_id)  # type: ignore[arg-type]
        payload.update(candidate_id=body.candidate_id, dataset=state.store.get(body.dataset).label)
    return job_out(state, enqueue(state.sessions, EVALUATE, payload))


@router.get("/{run_id}", response_model=EvaluationOut, dependencies=[READ])
def get_evaluation(run_id: int, state: AppState = Depends(get_state)) -> EvaluationOut:
    """A run's status and summary (per evaluator x cohort: mean, interval, delta vs the base run)."""
    with session_scope(state.sessions) as session:
        run = session.get(EvaluationRun, run_id)
        if run is None:
            raise LookupError(f"evaluation run {run_id} not found")
        return EvaluationOut.of(run)


@router.get("", response_model=list[EvaluationOut], dependencies=[READ])
def list_evaluations(
    candidate_id: int | None = None, limit: int = 50, state: AppState = Depends(get_state)
) -> list[EvaluationOut]:
    """Runs, newest first (optionally of one candidate)."""
    query = select(EvaluationRun).order_by(EvaluationRun.id.desc()).limit(max(1, min(limit, 500)))
    if candidate_id is not None:
        query = query.where(EvaluationRun.candidate_id == candidate_id)
    with session_scope(state.sessions) as session:
        return [EvaluationOut.of(run) for run in session.scalars(query)]


@router.get("/{run_id}/scores", dependencies=[READ])
def row_scores(
    run_id: int,
    evaluator: str | None = None,
    cohort: str | None = None,
    offset: int = 0,
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
