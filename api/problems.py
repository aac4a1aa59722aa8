"""Error answers as RFC 9457 problem details (``application/problem+json``): the one list of problem types.

Every error the API answers is a JSON object with

- ``type``: a URI naming the kind of problem, relative to the server (``/problems/promotion-refused``);
  ``GET /problems/{slug}`` describes it, no token needed, so the URI can be followed;
- ``title``: the short, fixed summary of that type;
- ``status``: the HTTP status code, as in the status line;
- ``detail``: what went wrong this time. A string, except for 422: there it stays the list of
  ``{"loc", "msg", "type"}`` objects (with ``input`` and ``ctx`` where the request's validation gave
  them) that FastAPI clients already read from ``detail``; RFC 9457 tells consumers to ignore a member
  whose type they do not expect, so problem-aware clients lose nothing;
- ``instance``: the request's path;
- ``errors`` (422 only): the same locations as ``{"loc", "msg", "type"}``, the extension member
  problem-aware clients read.

Clients that read ``response.json()["detail"]`` keep working unchanged; new ones can branch on
``type``. ``CATALOGUE`` below is the one place that lists the types.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

MEDIA_TYPE = "application/problem+json"
PREFIX = "/problems/"


@dataclass(frozen=True)
class ProblemType:
    """One kind of error: its slug (the last part of its ``type`` URI), default status and title."""

    slug: str
    status: int
    title: str
    description: str

    @property
    def uri(self) -> str:
        """The ``type`` member: ``/problems/<slug>``."""
        return PREFIX + self.slug


VALIDATION = ProblemType(
    "validation-error", 422, "Request validation failed",
    "A path, query or body value is missing, malformed or out of range; `errors` (and `detail`) name each "
    "one by its location, e.g. [\"query\", \"limit\"] or [\"body\", \"policy\", \"checks\", 0, \"margin\"].",
)  # fmt: skip
NOT_FOUND = ProblemType(
    "not-found", 404, "Not found",
    "No such route, or no object with this id or name (dataset version, sweep, candidate, evaluation "
    "run, decision, job, token).",
)  # fmt: skip
DATASET_VERSION_MISMATCH = ProblemType(
    "dataset-version-mismatch", 409, "Different dataset versions",
    "The candidate's evaluation and the baseline's were made on different dataset versions, so the gate "
    "cannot compare them: evaluate both on the same NAME@vN.",
)  # fmt: skip
NOT_COMPARABLE = ProblemType(
    "not-comparable", 409, "Evaluations not comparable",
    "The gate cannot compare the candidate with its baseline: no finished evaluation, no baseline run, "
    "evaluators missing or at different versions, or no row scored on both sides.",
)  # fmt: skip
PROMOTION_REFUSED = ProblemType(
    "promotion-refused", 409, "Promotion refused",
    "The candidate's latest gate decision is not a pass (it was blocked, or never decided).",
)  # fmt: skip
JOB_FINISHED = ProblemType(
    "job-finished", 409, "Job already finished",
    "The job has already succeeded, failed or been cancelled: there is nothing left to cancel.",
)  # fmt: skip
CANDIDATE_NOT_TRAINED = ProblemType(
    "candidate-not-trained", 409, "Candidate has no trained adapter",
    "The candidate has no adapter to evaluate (its training failed, diverged, was stopped or has not "
    "finished).",
)  # fmt: skip
DATASET_TAMPERED = ProblemType(
    "dataset-tampered", 409, "Dataset files changed",
    "A stored dataset file is missing or its bytes no longer match the sha256 recorded for the version: "
    "restore the artifact root from a backup (`evalgate datasets verify` lists the files).",
)  # fmt: skip
PAYLOAD_TOO_LARGE = ProblemType(
    "payload-too-large", 413, "Request body too large",
    "The request body is over the server's `max_upload_bytes` (EVALGATE_MAX_UPLOAD_BYTES).",
)  # fmt: skip
UNAUTHORIZED = ProblemType(
    "unauthorized", 401, "Authentication required",
    "No token, or an unknown or revoked one: send `Authorization: Bearer <token>`.",
)  # fmt: skip
FORBIDDEN = ProblemType(
    "forbidden", 403, "Scope too low",
    "The token is valid but its scope (read < write < admin) is below what the route needs.",
)  # fmt: skip
METHOD_NOT_ALLOWED = ProblemType(
    "method-not-allowed", 405, "Method not allowed", "The route exists but does not answer this method."
)
RATE_LIMITED = ProblemType(
    "rate-limited", 429, "Too many requests",
    "The token's request rate, or the client address's failed authentications, are over the limit: "
    "wait the seconds `Retry-After` names.",
)  # fmt: skip
DATABASE_UNAVAILABLE = ProblemType(
    "database-unavailable", 503, "Database unavailable",
    "The database cannot be reached or is too busy to answer now: retry after the seconds `Retry-After` "
    "names (the service recovers by itself when the database is back).",
)  # fmt: skip
INTERNAL_ERROR = ProblemType(
    "internal-error", 500, "Internal server error",
    "A bug: the server's log has the traceback, under the request id of the `X-Request-ID` header.",
)  # fmt: skip
IDEMPOTENCY_KEY_IN_USE = ProblemType(
    "idempotency-key-in-use", 409, "Idempotency key in use",
    "A request with this `Idempotency-Key` is still running: retry after the seconds `Retry-After` names "
    "to get its answer.",
)  # fmt: skip
HTTP_ERROR = ProblemType(
    "http-error", 400, "HTTP error", "An HTTP-level error without a type of its own; `status` says which."
)

CATALOGUE: dict[str, ProblemType] = {
    kind.slug: kind
    for kind in (
        VALIDATION,
        NOT_FOUND,
        DATASET_VERSION_MISMATCH,
        NOT_COMPARABLE,
        PROMOTION_REFUSED,
        JOB_FINISHED,
        CANDIDATE_NOT_TRAINED,
        DATASET_TAMPERED,
        PAYLOAD_TOO_LARGE,
        UNAUTHORIZED,
        FORBIDDEN,
        METHOD_NOT_ALLOWED,
        RATE_LIMITED,
        DATABASE_UNAVAILABLE,
        INTERNAL_ERROR,
        IDEMPOTENCY_KEY_IN_USE,
        HTTP_ERROR,
    )
}
"""Every problem type, by slug."""
BY_STATUS: dict[int, ProblemType] = {
    kind.status: kind
    for kind in (
        VALIDATION,
        NOT_FOUND,
        PAYLOAD_TOO_LARGE,
        UNAUTHORIZED,
        FORBIDDEN,
        METHOD_NOT_ALLOWED,
        RATE_LIMITED,
        DATABASE_UNAVAILABLE,
        INTERNAL_ERROR,
    )
}
"""The type of an error known only by its status (an ``HTTPException``); others are ``HTTP_ERROR``."""


class Problem(Exception):
    """Raise to answer with problem ``kind``; ``detail`` says what went wrong this time."""

    def __init__(self, kind: ProblemType, detail: str, headers: Mapping[str, str] | None = None):
        super().__init__(detail)
        self.kind, self.detail, self.headers = kind, detail, dict(headers or {})


class ValidationIssue(BaseModel):
    """One invalid value: where (``["query", "limit"]``), why, and the error's kind."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int]
    msg: str
    type: str


class ProblemDetail(BaseModel):
    """An error answer (RFC 9457, ``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="The problem type's URI, e.g. `/problems/promotion-refused`.")
    title: str = Field(description="The type's fixed summary.")
    status: int = Field(description="The HTTP status code.")
    detail: str | list[ValidationIssue] = Field(
        description="What went wrong; for 422 the list of invalid values (as FastAPI clients read it)."
    )
    instance: str = Field(description="The request's path.")
    errors: list[ValidationIssue] | None = Field(
        default=None, description="422 only: each invalid value's location, message and kind."
    )


class ProblemTypeOut(BaseModel):
    """A problem type's documentation (``GET /problems/{slug}``)."""

    type: str
    title: str
    status: int
    description: str

    @classmethod
    def of(cls, kind: ProblemType) -> ProblemTypeOut:
        return cls(type=kind.uri, title=kind.title, status=kind.status, description=kind.description)


def problem_body(kind: ProblemType, detail: Any, instance: str, status: int | None = None) -> dict[str, Any]:
    """The problem document's members (``status`` overrides the type's own, for ``HTTP_ERROR``)."""
    return {"type": kind.uri, "title": kind.title, "status": status or kind.status, "detail": detail,
            "instance": instance}  # fmt: skip


def problem_response(
    kind: ProblemType,
    detail: Any,
    instance: str,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    """A problem answer with media type ``application/problem+json``."""
    body = {**problem_body(kind, detail, instance, status), **extensions}
    return JSONResponse(body, status_code=status or kind.status, headers=headers, media_type=MEDIA_TYPE)


def validation_problem(issues: Sequence[Mapping[str, Any]], instance: str) -> JSONResponse:
    """A 422: ``detail`` the issues as given (with any ``input`` echo), ``errors`` their locations."""
    located = [{"loc": list(issue["loc"]), "msg": issue["msg"], "type": issue["type"]} for issue in issues]
    return problem_response(VALIDATION, list(issues), instance, errors=located)


RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}
COMMON_DESCRIPTIONS = {
    401: "No token, or an unknown or revoked one (`/problems/unauthorized`)",
    403: "The token's scope is too low (`/problems/forbidden`)",
    404: "Unknown id or name (`/problems/not-found`)",
    413: "Request body over the upload limit (`/problems/payload-too-large`)",
    422: "Invalid parameter or body (`/problems/validation-error`): `errors` lists each location",
    429: "Rate limited (`/problems/rate-limited`), with `Retry-After`",
    503: "Database unavailable (`/problems/database-unavailable`), with `Retry-After`",
}


def problem_responses(*statuses: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status with the problem schema (``ProblemDetail``) as
    ``application/problem+json``; ``described`` gives route-specific descriptions, keyed ``"s409"``."""
    wanted = {*statuses, *(int(key.removeprefix("s")) for key in described)}
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(wanted):
        description = described.get(f"s{status}", COMMON_DESCRIPTIONS.get(status, "Error"))
        responses[status] = {"model": ProblemDetail, "description": description}
        if status in (429, 503):
            responses[status]["headers"] = RETRY_AFTER
    return responses
