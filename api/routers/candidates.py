"""/candidates: register an externally trained adapter; list and get candidates."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response, status
from sqlalchemy import select

from api.deps import READ, WRITE, AppState, get_state
from api.pagination import LINK_HEADER, Page, fetch, link_next, paging
from api.problems import problem_responses
from api.schemas import STORABLE, CandidateIn, CandidateOut, PathId, QueryId
from evalgate.db.models import Candidate
from evalgate.db.session import session_scope
from evalgate.sweep.external import CandidateRegistration, register_candidate_once

router = APIRouter(
    prefix="/candidates",
    tags=["candidates"],
    dependencies=[STORABLE],
    responses=problem_responses(401, 403, 422, 429, 503),
)
PAGES = paging(100, 1000)
CREATED = {
    "description": "Registered",
    "headers": {"Location": {"description": "`/candidates/{id}`", "schema": {"type": "string"}}},
}


@router.post(
    "",
    response_model=CandidateOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[WRITE],
    responses={
        200: {"model": CandidateOut, "description": "An identical registration existed: that one"},
        201: CREATED,
        **problem_responses(413),
    },
)
def register(body: CandidateIn, response: Response, state: AppState = Depends(get_state)) -> CandidateOut:
    """Register an adapter folder inside an allowed root (422 when outside, missing or not an adapter).

    Safe to repeat: an identical registration (same name, base model, adapter folder and content,
    learning rate and training record) answers 200 with the candidate already registered, so a client
    may resend a POST whose answer it never got without creating a duplicate.
    """
    candidate_id, created = register_candidate_once(
        state.sessions, state.settings, CandidateRegistration(**body.model_dump())
    )
    if created:
        response.headers["Location"] = f"/candidates/{candidate_id}"
    else:
        response.status_code = status.HTTP_200_OK
    return get_candidate(candidate_id, state)


@router.get(
    "/{candidate_id}", response_model=CandidateOut, dependencies=[READ], responses=problem_responses(404)
)
def get_candidate(candidate_id: PathId, state: AppState = Depends(get_state)) -> CandidateOut:
    """One candidate with its training record."""
    with session_scope(state.sessions) as session:
        candidate = session.get(Candidate, candidate_id)
        if candidate is None:
            raise LookupError(f"candidate {candidate_id} not found")
        return CandidateOut.of(candidate)


@router.get(
    "", response_model=list[CandidateOut], dependencies=[READ], responses={200: {"headers": LINK_HEADER}}
)
def list_candidates(
    request: Request,
    response: Response,
    sweep_id: QueryId = None,
    page: Page = Depends(PAGES),
    state: AppState = Depends(get_state),
) -> list[CandidateOut]:
    """Candidates, newest first (optionally of one sweep); paged."""
    query = select(Candidate)
    if sweep_id is not None:
        query = query.where(Candidate.sweep_id == sweep_id)
    with session_scope(state.sessions) as session:
        found = fetch(session, query, page, (Candidate.id,), lambda row: (row.id,), descending=True)
        candidates = [CandidateOut.of(candidate) for candidate in found.items]
    link_next(request, response, found.next_key)
    return candidates
