"""Operations: liveness, readiness, Prometheus metrics and the problem types' documentation.

    /livez              200 while the process runs (no database call): restart the process when it fails
    /readyz             200 when the database answers, else 503 with Retry-After: send no traffic meanwhile
    /healthz            (``api/main.py``) as before: the database and its schema revision
    /metrics            Prometheus text format (``api/metrics.py``; who may read it: ``metrics_access``)
    /problems/{slug}    what an error answer's ``type`` means (``api/problems.py``)

None needs a token, except ``/metrics`` from another host under the default ``metrics_access``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy import text

from api import errors, problems
from api.deps import AppState, get_state
from api.metrics import Metrics, metrics_reader
from api.problems import Problem, ProblemTypeOut, problem_responses
from evalgate.db.session import session_scope

router = APIRouter(tags=["operations"])
metrics_router = APIRouter(tags=["operations"])
"""Only included when ``metrics_access`` is not ``off``."""


class Alive(BaseModel):
    """The process answers."""

    status: str


class Ready(BaseModel):
    """The database answers."""

    status: str
    database: str


@router.get("/livez", response_model=Alive)
async def livez() -> Alive:
    """200 while the process serves requests; touches nothing else (no database, no token)."""
    return Alive(status="alive")


@router.get("/readyz", response_model=Ready, responses=problem_responses(503))
def readyz(request: Request, state: AppState = Depends(get_state)) -> Ready | Response:
    """200 when the database answers a query; 503 with ``Retry-After`` (a problem document) when it
    cannot be reached. A database error that is not an outage is the 500 it is on every route."""
    try:
        with session_scope(state.sessions) as session:
            session.execute(text("SELECT 1"))
    except errors.DATABASE_ERRORS as error:
        if not errors.database_unavailable(error):
            raise
        return errors.unavailable_response(request.url.path)
    return Ready(status="ready", database="up")


@router.get("/problems/{slug}", response_model=ProblemTypeOut, responses=problem_responses(404))
async def problem_type(slug: str) -> ProblemTypeOut:
    """What the error answers of ``type`` ``/problems/{slug}`` mean."""
    kind = problems.CATALOGUE.get(slug)
    if kind is None:
        raise Problem(problems.NOT_FOUND, f"no problem type {slug!r}; see GET /problems/<slug> of an error")
    return ProblemTypeOut.of(kind)


@metrics_router.get(
    "/metrics",
    dependencies=[Depends(metrics_reader)],
    response_class=Response,
    responses={
        200: {"description": "Prometheus text format", "content": {CONTENT_TYPE_LATEST: {}}},
        **problem_responses(401, 403, 429, 503),
    },
)
def metrics(request: Request) -> Response:
    """Request latencies, jobs by kind and status, job durations, decisions by verdict, workers'
    heartbeat ages (queried at scrape time); ``evalgate_database_up`` 0 while the database is away."""
    collected: Metrics = request.app.state.metrics
    return Response(collected.render(), media_type=CONTENT_TYPE_LATEST)
