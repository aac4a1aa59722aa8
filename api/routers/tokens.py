"""/tokens (admin scope): create, list and revoke API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response, status
from sqlalchemy import select

from api.deps import ADMIN, AppState, get_state
from api.pagination import LINK_HEADER, Page, fetch, link_next, paging
from api.problems import problem_responses
from api.schemas import STORABLE, TokenCreated, TokenIn, TokenOut
from evalgate.db.models import ApiToken
from evalgate.db.session import session_scope
from evalgate.service.api_tokens import create_token, revoke_token

router = APIRouter(
    prefix="/tokens",
    tags=["tokens"],
    dependencies=[ADMIN, STORABLE],
    responses=problem_responses(401, 403, 422, 429, 503),
)
PAGES = paging(100, 1000)


@router.post(
    "", response_model=TokenCreated, status_code=status.HTTP_201_CREATED, responses=problem_responses(413)
)
def create(body: TokenIn, state: AppState = Depends(get_state)) -> TokenCreated:
    """A new token; its secret is in this response only (422 when the name is taken)."""
    return TokenCreated(
        name=body.name, scope=body.scope, token=create_token(state.sessions, body.name, body.scope)
    )


@router.get("", response_model=list[TokenOut], responses={200: {"headers": LINK_HEADER}})
def list_all(
    request: Request, response: Response, page: Page = Depends(PAGES), state: AppState = Depends(get_state)
) -> list[TokenOut]:
    """Tokens, oldest first, without secrets; paged."""
    with session_scope(state.sessions) as session:
        found = fetch(session, select(ApiToken), page, (ApiToken.id,), lambda row: (row.id,))
        tokens = [TokenOut.of_row(row) for row in found.items]
    link_next(request, response, found.next_key)
    return tokens


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(404))
def revoke(name: str, state: AppState = Depends(get_state)) -> None:
    """Revoke a token; cached verifications expire within seconds."""
    revoke_token(state.sessions, name)
