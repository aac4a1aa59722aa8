"""/evaluations: start one (a worker job), read runs with their aggregates, page through row scores."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy import select

from api.deps import READ, WRITE, AppState, get_state
from api.pagination import LINK_HEADER, Page, fetch, link_next, paging
from api.problems import CANDIDATE_NOT_TRAINED, Problem, problem_responses
from api.routers.jobs import ACCEPTED, accepted, job_out
from api.schemas import MAX_ID, STORABLE, EvaluationIn, EvaluationOut, JobOut, PathId, QueryId, version_ref
from evalgate.db.models import Candidate, EvaluationRun, RowScore, Sweep
from evalgate.db.session import session_scope
from evalgate.service.handlers import EVALUATE
from evalgate.service.jobs import enqueue

router = APIRouter(
    prefix="/evaluations",
    tags=["evaluations"],
    dependencies=[STORABLE],
    responses=problem_responses(401, 403, 422, 429, 503),
)
PAGES = paging(50, 500)
SCORE_PAGES = paging(500, 5000, key=(str, str))


@router.post(
    "",
    response_model=JobOut,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[WRITE],
    responses={
        202: ACCEPTED,
        **problem_responses(
            404, 413, s409="The candidate has no trained adapter (`/problems/candidate-not-trained`)"
        ),
    },
)
def start_evaluation(body: EvaluationIn, response: Response, state: AppState = Depends(get_state)) -> JobOut:
    """Queue the evaluation of a candidate on ``dataset`` (with the base model), or of a whole sweep;
    follow it at ``Location`` (``/jobs/{id}``).

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
    return accepted(response, job_out(state, enqueue(state.sessions, EVALUATE, payload)))


def _check_trained(state: AppState, candidate_id: int) -> None:
    """404 for an unknown candidate, 409 for one that has no adapter to evaluate."""
    with session_scope(state.sessions) as session:
        candidate = session.get(Candidate, candidate_id)
        if candidate is None:
            raise LookupError(f"candidate {candidate_id} not found")
        if not candidate.adapter_uri or not candidate.adapter_hash:
            raise Problem(
                CANDIDATE_NOT_TRAINED, f"candidate {candidate_id} ({candidate.status}) has no trained adapter"
            )


@router.get("/{run_id}", response_model=EvaluationOut, dependencies=[READ], responses=problem_responses(404))
def get_evaluation(run_id: PathId, state: AppState = Depends(get_state)) -> EvaluationOut:
    """A run's status and summary (per evaluator x cohort: mean, interval, delta vs the base run)."""
    with session_scope(state.sessions) as session:
        run = session.get(EvaluationRun, run_id)
        if run is None:
            raise LookupError(f"evaluation run {run_id} not found")
        return EvaluationOut.of(run)


@router.get(
    "", response_model=list[EvaluationOut], dependencies=[READ], responses={200: {"headers": LINK_HEADER}}
)
def list_evaluations(
    request: Request,
    response: Response,
    candidate_id: QueryId = None,
    page: Page = Depends(PAGES),
    state: AppState = Depends(get_state),
) -> list[EvaluationOut]:
    """Runs, newest first (optionally of one candidate); paged."""
    query = select(EvaluationRun)
    if candidate_id is not None:
        query = query.where(EvaluationRun.candidate_id == candidate_id)
    with session_scope(state.sessions) as session:
        found = fetch(session, query, page, (EvaluationRun.id,), lambda run: (run.id,), descending=True)
        runs = [EvaluationOut.of(run) for run in found.items]
    link_next(request, response, found.next_key)
    return runs


@router.get(
    "/{run_id}/scores",
    dependencies=[READ],
    responses={200: {"headers": LINK_HEADER}, **problem_responses(404)},
)
def row_scores(
    request: Request,
    response: Response,
    run_id: PathId,
    evaluator: str | None = None,
    cohort: str | None = None,
    offset: int = Query(0, ge=0, le=MAX_ID, description="Rows to skip (older clients); not with `cursor`."),
    page: Page = Depends(SCORE_PAGES),
    state: AppState = Depends(get_state),
) -> list[dict[str, Any]]:
    """Per-row scores of a run, ordered by evaluator then row id; paged."""
    if offset and page.after is not None:
        message = "give cursor or offset, not both"
        raise RequestValidationError([{"loc": ("query", "offset"), "msg": message, "type": "value_error"}])
    get_evaluation(run_id, state)
    query = select(RowScore).where(RowScore.evaluation_run_id == run_id).offset(offset)
    if evaluator is not None:
        query = query.where(RowScore.evaluator == evaluator)
    if cohort is not None:
        query = query.where(RowScore.cohort == cohort)
    with session_scope(state.sessions) as session:
        columns = (RowScore.evaluator, RowScore.row_id)
        found = fetch(session, query, page, columns, lambda score: (score.evaluator, score.row_id))
        scores = [
            {"row_id": s.row_id, "cohort": s.cohort, "evaluator": s.evaluator, "version": s.evaluator_version,
             "score": s.score, "passed": s.passed, "detail": s.detail}
            for s in found.items
        ]  # fmt: skip
    link_next(request, response, found.next_key)
    return scores
