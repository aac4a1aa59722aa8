"""/candidates: register an externally trained adapter; list and get candidates."""

from __future__ import annotations

from fastapi import APIRouter, Depends, status
from sqlalchemy import select

from api.deps import READ, WRITE, AppState, get_state
from api.schemas import CandidateIn, CandidateOut
from evalgate.candidates import CandidateRegistration, register_candidate
from evalgate.db.models import Candidate
from evalgate.db.session import session_scope

router = APIRouter(prefix="/candidates", tags=["candidates"])


@router.post("", response_model=CandidateOut, status_code=status.HTTP_201_CREATED, dependencies=[WRITE])
def register(body: CandidateIn, state: AppState = Depends(get_state)) -> CandidateOut:
    """Register an adapter folder inside an allowed root (422 when outside, missing or not an adapter)."""
    candidate_id = register_candidate(
        state.sessions, state.settings, CandidateRegistration(**body.model_dump())
    )
    return get_candidate(candidate_id, state)


@router.get("/{candidate_id}", response_model=CandidateOut, dependencies=[READ])
def get_candidate(candidate_id: int, state: AppState = Depends(get_state)) -> CandidateOut:
    """One candidate with its training record."""
    with session_scope(state.sessions) as session:
        candidate = session.get(Candidate, candidate_id)
        if candidate is None:
            raise LookupError(f"candidate {candidate_id} not found")
        return CandidateOut.of(candidate)


@router.get("", response_model=list[CandidateOut], dependencies=[READ])
def list_candidates(
    sweep_id: int | None = None, limit: int = 100, state: AppState = Depends(get_state)
) -> list[CandidateOut]:
    """Candidates, newest first (optionally of one sweep)."""
    query = select(Candidate).order_by(Candidate.id.desc()).limit(max(1, min(limit, 1000)))
    if sweep_id is not None:
        query = query.where(Candidate.sweep_id == sweep_id)
    with session_scope(state.sessions) as session:
        return [CandidateOut.of(candidate) for candidate in session.scalars(query)]
