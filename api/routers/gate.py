"""/gate: decide a candidate against its baseline, list and get decisions, promote a candidate."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import select

from api.deps import READ, AppState, get_state, require
from api.pagination import LINK_HEADER, Page, fetch, link_next, paging
from api.problems import problem_responses
from api.schemas import STORABLE, DecideIn, DecisionOut, PathId, PromotionOut, QueryId
from evalgate.db.models import GateDecision
from evalgate.db.session import session_scope
from evalgate.gate.service import current_baseline, decide_candidate, get_decision, promote
from evalgate.service.api_tokens import TokenInfo

router = APIRouter(
    prefix="/gate",
    tags=["gate"],
    dependencies=[STORABLE],
    responses=problem_responses(401, 403, 422, 429, 503),
)
write = require("write")
PAGES = paging(100, 1000)


@router.post(
    "/decide",
    response_model=DecisionOut,
    responses=problem_responses(
        404,
        413,
        s409="Not comparable: different dataset versions (`/problems/dataset-version-mismatch`), or no "
        "finished run, baseline, shared evaluators or rows (`/problems/not-comparable`)",
    ),
)
def decide(
    body: DecideIn, state: AppState = Depends(get_state), token: TokenInfo = Depends(write)
) -> DecisionOut:
    """Decide the candidate's latest finished evaluation against its baseline; store the evidence.

    The same candidate run, baseline run and policy return the decision already stored
    (``reused: true``). An invalid policy is a 422 naming the bad field.
    """
    stored = decide_candidate(
        state.sessions, body.candidate_id, body.policy, baseline=body.baseline, decided_by=token.name
    )
    return DecisionOut.of(stored)


@router.get(
    "/decisions/{decision_id}",
    response_model=DecisionOut,
    dependencies=[READ],
    responses=problem_responses(404),
)
def get_one(decision_id: PathId, state: AppState = Depends(get_state)) -> DecisionOut:
    """One decision with its evidence (never changed after it was made)."""
    return DecisionOut.of(get_decision(state.sessions, decision_id))


@router.get(
    "/decisions",
    response_model=list[DecisionOut],
    dependencies=[READ],
    responses={200: {"headers": LINK_HEADER}},
)
def list_all(
    request: Request,
    response: Response,
    candidate_id: QueryId = None,
    page: Page = Depends(PAGES),
    state: AppState = Depends(get_state),
) -> list[DecisionOut]:
    """Decisions, newest first (optionally of one candidate); paged."""
    query = select(GateDecision)
    if candidate_id is not None:
        query = query.where(GateDecision.candidate_id == candidate_id)
    with session_scope(state.sessions) as session:
        found = fetch(session, query, page, (GateDecision.id,), lambda row: (row.id,), descending=True)
        decisions = [DecisionOut.of_row(row) for row in found.items]
    link_next(request, response, found.next_key)
    return decisions


@router.post(
    "/candidates/{candidate_id}/promote",
    response_model=PromotionOut,
    responses=problem_responses(
        404, 413, s409="The candidate's latest decision is not a pass (`/problems/promotion-refused`)"
    ),
)
def promote_candidate(
    candidate_id: PathId, state: AppState = Depends(get_state), token: TokenInfo = Depends(write)
) -> PromotionOut:
    """Make the candidate the baseline for later decisions on its base model."""
    return PromotionOut.of(promote(state.sessions, candidate_id, promoted_by=token.name))


@router.get("/baseline", response_model=PromotionOut | None, dependencies=[READ])
def baseline(base_model: str, state: AppState = Depends(get_state)) -> PromotionOut | None:
    """The promoted baseline of ``base_model`` (null: the base model itself)."""
    found = current_baseline(state.sessions, base_model)
    return PromotionOut.of(found) if found else None
