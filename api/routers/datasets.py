"""/datasets: upload a new version (the request body is one JSONL, CSV or Parquet file), list, get, diff."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, status
from starlette.concurrency import run_in_threadpool

from api.deps import READ, WRITE, AppState, get_state
from api.errors import PayloadTooLarge
from api.schemas import MAX_ID, STORABLE, DiffOut, VersionOut, version_ref
from evalgate.data.dataset_ops import diff_versions
from evalgate.data.rows import COHORT_PATTERN, Split
from evalgate.data.store import VersionRef

router = APIRouter(prefix="/datasets", tags=["datasets"], dependencies=[STORABLE])
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
    responses={413: {"description": "Body over the upload limit"}, 422: {"description": "Bad rows"}},
    openapi_extra={"requestBody": UPLOAD_BODY},
)
async def upload_version(
    name: str,
    request: Request,
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
    return VersionOut.of(result.version, created=result.created)


def upload_name(filename: str) -> str:
    """``filename`` made safe as the temporary file's name (it only appears in error messages): no
    folders, no characters a file system may refuse (NUL, separators), at most 100 characters."""
    name = UNSAFE_IN_FILENAME.sub("_", filename.replace("\\", "/").rsplit("/", 1)[-1])
    name = name.strip("._")[:MAX_FILENAME_CHARS]
    return name or "upload"


@router.get("", response_model=list[VersionOut], dependencies=[READ])
def list_versions(name: str | None = None, state: AppState = Depends(get_state)) -> list[VersionOut]:
    """Every stored version (of one dataset with ``name``)."""
    return [VersionOut.of(info) for info in state.store.versions(name)]


@router.get("/{ref}", response_model=VersionOut, dependencies=[READ])
def get_version(ref: str, state: AppState = Depends(get_state)) -> VersionOut:
    """One version: ``NAME`` (latest) or ``NAME@vN`` (422 for a malformed or impossible version)."""
    return VersionOut.of(state.store.get(version_ref(ref, ("path", "ref"))))


@router.get("/{name}/diff", response_model=DiffOut, dependencies=[READ])
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
