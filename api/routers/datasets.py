"""/datasets: upload a new version (the request body is one JSONL, CSV or Parquet file), list, get, diff."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response, status
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from starlette.concurrency import run_in_threadpool

from api.deps import READ, WRITE, AppState, get_state
from api.errors import PayloadTooLarge
from api.pagination import LINK_HEADER, Page, fetch, link_next, paging
from api.problems import problem_responses
from api.schemas import MAX_ID, STORABLE, DiffOut, VersionOut, version_ref
from evalgate.data.dataset_ops import diff_versions
from evalgate.data.rows import COHORT_PATTERN, Split
from evalgate.data.store import VersionInfo, VersionRef
from evalgate.db.models import Dataset, DatasetVersion
from evalgate.db.session import session_scope

router = APIRouter(
    prefix="/datasets",
    tags=["datasets"],
    dependencies=[STORABLE],
    responses=problem_responses(401, 403, 422, 429, 503),
)
PAGES = paging(100, 1000, key=(str, int))
FORMATS = {"jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet"}
UPLOAD_BODY = {
    "required": True,
    "description": "The file itself, in the format named by ``format``.",
    "content": {
        "application/x-ndjson": {"schema": {"type": "string"}},
        "text/csv": {"schema": {"type": "string"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}
"""The upload's body in the OpenAPI document (the route streams it, so FastAPI cannot infer it)."""
UNSAFE_IN_FILENAME = re.compile(r"[^\w.-]+")
MAX_FILENAME_CHARS = 100


@router.post(
    "/{name}/versions",
    response_model=VersionOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[WRITE],
    responses={
        201: {
            "description": "Stored (or the identical version already stored: `created` false)",
            "headers": {"Location": {"description": "`/datasets/NAME@vN`", "schema": {"type": "string"}}},
        },
        **problem_responses(413, s422="Bad rows: `errors` names the line and field"),
    },
    openapi_extra={"requestBody": UPLOAD_BODY},
)
async def upload_version(
    name: str,
    request: Request,
    response: Response,
    format: Literal["jsonl", "csv", "parquet"] = Query("jsonl", description="Format of the body."),
    cohort: str = Query(
        "target", pattern=COHORT_PATTERN.pattern, description="Cohort of rows that carry none."
    ),
    split: Split = Query("eval", description="Split of rows that carry none."),
    filename: str = Query("upload", description="Name used in error messages."),
    description: str = Query(""),
    state: AppState = Depends(get_state),
) -> VersionOut:
    """Store the body as a new version of ``name`` (or return the identical existing version).

    The body is streamed to a temporary file and refused with 413 past ``max_upload_bytes``; a bad
    row gives 422 naming the line and field, and leaves no version behind.
    """
    limit = state.settings.max_upload_bytes
    with tempfile.TemporaryDirectory(prefix="evalgate-upload-") as folder:
        path = Path(folder) / (upload_name(filename) + FORMATS[format])
        received = 0
        with path.open("wb") as handle:
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise PayloadTooLarge(f"upload is over the {limit}-byte limit")
                handle.write(chunk)
        result = await run_in_threadpool(
            state.store.add, name, [str(path)], cohort=cohort, split=split, description=description
        )
    response.headers["Location"] = "/datasets/" + quote(result.version.label, safe="@")
    return VersionOut.of(result.version, created=result.created)


def upload_name(filename: str) -> str:
    """``filename`` made safe as the temporary file's name (it only appears in error messages): no
    folders, no characters a file system may refuse (NUL, separators), at most 100 characters."""
    name = UNSAFE_IN_FILENAME.sub("_", filename.replace("\\", "/").rsplit("/", 1)[-1])
    name = name.strip("._")[:MAX_FILENAME_CHARS]
    return name or "upload"


@router.get(
    "", response_model=list[VersionOut], dependencies=[READ], responses={200: {"headers": LINK_HEADER}}
)
def list_versions(
    request: Request,
    response: Response,
    name: str | None = None,
    page: Page = Depends(PAGES),
    state: AppState = Depends(get_state),
) -> list[VersionOut]:
    """Stored versions (of one dataset with ``name``), by name then number; paged."""
    query = select(DatasetVersion).join(Dataset).options(selectinload(DatasetVersion.dataset))
    if name is not None:
        query = query.where(Dataset.name == name)
    columns = (Dataset.name, DatasetVersion.number)
    with session_scope(state.sessions) as session:
        found = fetch(session, query, page, columns, lambda version: (version.dataset.name, version.number))
        versions = [VersionOut.of(VersionInfo.from_row(version)) for version in found.items]
    link_next(request, response, found.next_key)
    return versions


@router.get("/{ref}", response_model=VersionOut, dependencies=[READ], responses=problem_responses(404))
def get_version(ref: str, state: AppState = Depends(get_state)) -> VersionOut:
    """One version: ``NAME`` (latest) or ``NAME@vN`` (422 for a malformed or impossible version)."""
    return VersionOut.of(state.store.get(version_ref(ref, ("path", "ref"))))


@router.get("/{name}/diff", response_model=DiffOut, dependencies=[READ], responses=problem_responses(404))
def diff(
    name: str,
    old: int = Query(ge=1, le=MAX_ID),
    new: int = Query(ge=1, le=MAX_ID),
    state: AppState = Depends(get_state),
) -> DiffOut:
    """Rows added, removed and changed from version ``old`` to ``new``."""
    result = diff_versions(state.store, VersionRef(name, old), VersionRef(name, new))
    return DiffOut(
        old=result.old,
        new=result.new,
        added=result.added,
        removed=result.removed,
        changed=result.changed,
        unchanged=result.unchanged,
    )
