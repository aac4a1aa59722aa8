"""/gate: decide a candidate against its baseline, list and get decisions, promote a candidate."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api.deps import READ, AppState, get_state, require
from api.schemas import STORABLE, DecideIn, DecisionOut, PathId, PromotionOut, QueryId
from evalgate.gate.service import current_baseline, decide_candidate, get_decision, list_decisions, promote
from evalgate.service.api_tokens import TokenInfo

router = APIRouter(prefix="/gate", tags=["gate"], dependencies=[STORABLE])
write = require("write")


@router.post(
    "/decide",
    response_model=DecisionOut,
    responses={409: {"description": "Not comparable: different dataset versions, evaluators or rows"}},
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


@router.get("/decisions/{decision_id}", response_model=DecisionOut, dependencies=[READ])
def get_one(decision_id: PathId, state: AppState = Depends(get_state)) -> DecisionOut:
    """One decision with its evidence (never changed after it was made)."""
    return DecisionOut.of(get_decision(state.sessions, decision_id))


@router.get("/decisions", response_model=list[DecisionOut], dependencies=[READ])
def list_all(
    candidate_id: QueryId = None, limit: int = 100, state: AppState = Depends(get_state)
) -> list[DecisionOut]:
    """Decisions, newest first (optionally of one candidate)."""
    return [DecisionOut.of(d) for d in list_decisions(state.sessions, candidate_id, max(1, min(limit, 1000)))]


@router.post(
    "/candidates/{candidate_id}/promote",
    response_model=PromotionOut,
    responses={409: {"description": "The candidate's latest decision is not a pass"}},
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
