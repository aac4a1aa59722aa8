"""/tokens (admin scope): create, list and revoke API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Depends, status

from api.deps import ADMIN, AppState, get_state
from api.schemas import STORABLE, TokenCreated, TokenIn, TokenOut
from evalgate.service.api_tokens import create_token, list_tokens, revoke_token

router = APIRouter(prefix="/tokens", tags=["tokens"], dependencies=[ADMIN, STORABLE])


@router.post("", response_model=TokenCreated, status_code=status.HTTP_201_CREATED)
def create(body: TokenIn, state: AppState = Depends(get_state)) -> TokenCreated:
    """A new token; its secret is in this response only."""
    return TokenCreated(
        name=body.name, scope=body.scope, token=create_token(state.sessions, body.name, body.scope)
    )


@router.get("", response_model=list[TokenOut])
def list_all(state: AppState = Depends(get_state)) -> list[TokenOut]:
    """Every token, without secrets."""
    return [TokenOut(**vars(info)) for info in list_tokens(state.sessions)]


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def revoke(name: str, state: AppState = Depends(get_state)) -> None:
    """Revoke a token; cached verifications expire within seconds."""
    revoke_token(state.sessions, name)
