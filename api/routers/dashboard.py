"""The dashboard: server-rendered HTML pages (inline CSS and SVG, no script, no CDN).

    /                                   sweeps (recommended rate) and datasets (decisions)
    /sweeps/{id}                        the sweep report, with links   (JSON for non-browser clients)
    /candidates/{id}/rows?evaluator=&cohort=    worst rows of one check
    /datasets/{name}/history            decisions across weekly sweeps; new regressions outlined
    /login, /logout                     the session cookie

Pages take a read token from the ``Authorization`` header, or a dashboard session from the
``evalgate_session`` cookie (``api/sessions.py``): ``POST /login`` checks a token once and sets a signed
session naming the token's id (HttpOnly, SameSite=Lax, Secure over HTTPS), which lasts 12 hours, ends
with ``/logout`` and dies with the token's revocation. Without either a browser is redirected to
``/login``. ``/sweeps/{id}`` is shared with the JSON API: a request whose
``Accept`` header names ``text/html`` gets the page, any other gets the JSON API's answer under the
JSON API's rules (bearer header only). These routes are left out of the OpenAPI document.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool

from api.deps import (
    COOKIE,
    LEGACY_COOKIE,
    AppState,
    bearer,
    came_over_tls,
    check_read,
    client_address,
    get_state,
    viewer,
)
from api.routers.sweeps import get_sweep
from api.schemas import STORABLE, PathId
from api.sessions import SESSION_SECONDS
from evalgate.report.history import dataset_history, dataset_rows, sweep_rows
from evalgate.report.pages import history_page, index_page, login_page, message_page, rows_page, sweep_page
from evalgate.report.rows import candidate_rows_view
from evalgate.report.sweep import build_sweep_view
from evalgate.service.api_tokens import TokenInfo

router = APIRouter(include_in_schema=False, tags=["dashboard"], dependencies=[STORABLE])
MAX_LOGIN_BODY = 8192
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def html(body: str, status_code: int = status.HTTP_200_OK) -> HTMLResponse:
    """An HTML response with the dashboard's security headers (no script, no framing, no caching)."""
    return HTMLResponse(body, status_code=status_code, headers=HEADERS)


@router.get("/")
def home(state: AppState = Depends(get_state), token: TokenInfo = Depends(viewer)) -> HTMLResponse:
    """Sweeps and datasets."""
    return html(index_page(sweep_rows(state.sessions), dataset_rows(state.sessions), token.name))


@router.get("/sweeps/{sweep_id}", response_model=None)
def sweep(
    sweep_id: PathId,
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    state: AppState = Depends(get_state),
) -> Response | dict[str, Any]:
    """The sweep page for browsers; the JSON API's ``GET /sweeps/{id}`` for everyone else."""
    if "text/html" not in request.headers.get("accept", ""):
        check_read(credentials, state, client_address(request))
        return get_sweep(sweep_id, state)
    token = viewer(request, credentials, state)
    try:
        view = build_sweep_view(state.sessions, sweep_id)
    except LookupError as error:
        return html(message_page("Not found", str(error), token.name), status.HTTP_404_NOT_FOUND)
    return html(sweep_page(view, token.name))


@router.get("/candidates/{candidate_id}/rows")
def candidate_rows(
    candidate_id: PathId,
    evaluator: str | None = None,
    cohort: str | None = None,
    limit: int = 50,
    state: AppState = Depends(get_state),
    token: TokenInfo = Depends(viewer),
) -> HTMLResponse:
    """The candidate's worst rows on ``evaluator/cohort`` (default: its first scored pair)."""
    limit = max(1, min(limit, 500))
    try:
        data = candidate_rows_view(state.sessions, candidate_id, evaluator or "", cohort or "", limit)
        if (evaluator is None or cohort is None) and data.available:
            data = candidate_rows_view(state.sessions, candidate_id, *data.available[0], limit)
    except LookupError as error:
        return html(message_page("Not found", str(error), token.name), status.HTTP_404_NOT_FOUND)
    return html(rows_page(data, token.name))


@router.get("/datasets/{name}/history")
def history(
    name: str, state: AppState = Depends(get_state), token: TokenInfo = Depends(viewer)
) -> HTMLResponse:
    """Decisions on the dataset's versions, per candidate series."""
    try:
        found = dataset_history(state.sessions, name)
    except LookupError as error:
        return html(message_page("Not found", str(error), token.name), status.HTTP_404_NOT_FOUND)
    return html(history_page(found, token.name))


@router.get("/login")
def login_form(next: str = "/") -> HTMLResponse:
    """The token form."""
    return html(login_page(safe_next(next)))


@router.post("/login")
async def login(request: Request, state: AppState = Depends(get_state)) -> Response:
    """Check the posted token (form field ``token``); start a session (the cookie) and go to ``next``
    (303)."""
    if not same_origin(request):
        return html(message_page("Forbidden", "cross-site login refused", None), status.HTTP_403_FORBIDDEN)
    body = await request.body()
    fields = parse_qs(body[:MAX_LOGIN_BODY].decode("utf-8", "replace"))
    token, target = fields.get("token", [""])[0].strip(), safe_next(fields.get("next", ["/"])[0])
    info = await run_in_threadpool(state.authenticate, token, client_address(request)) if token else None
    if info is None:
        return html(login_page(target, "Unknown or revoked token."), status.HTTP_401_UNAUTHORIZED)
    response = RedirectResponse(target, status.HTTP_303_SEE_OTHER, headers=HEADERS)
    cookie = await run_in_threadpool(state.dashboard.issue, info.id)  # the first may create the secret
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="lax",
        secure=came_over_tls(request),
    )
    forget_legacy_cookie(request, response)
    return response


@router.get("/logout")
@router.post("/logout")
def logout(request: Request) -> Response:
    """End the session (clear the cookie) and go to the login page."""
    response = RedirectResponse("/login", status.HTTP_303_SEE_OTHER, headers=HEADERS)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=came_over_tls(request))
    forget_legacy_cookie(request, response)
    return response


def forget_legacy_cookie(request: Request, response: Response) -> None:
    """Clear the old cookie that held a raw token, where the browser still sends one."""
    if LEGACY_COOKIE in request.cookies:
        response.delete_cookie(LEGACY_COOKIE, path="/", httponly=True, samesite="lax")


def safe_next(target: str) -> str:
    """``target`` when it is a path on this site, else ``/`` (no open redirect)."""
    parts = urlsplit(target)
    local = target.startswith("/") and not target.startswith("//") and "\\" not in target
    return target if local and not parts.scheme and not parts.netloc else "/"


def same_origin(request: Request) -> bool:
    """False when the browser says the form came from another site (``Origin`` names another host)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")
