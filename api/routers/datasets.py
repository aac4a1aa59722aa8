"""/datasets: upload a new version (the request body is one JSONL, CSV or Parquet file), list, get, diff."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from starlette.concurrency import run_in_threadpool

from api.deps import READ, WRITE, AppState, get_state
from api.errors import PayloadTooLarge
from api.schemas import DiffOut, VersionOut
from evalgate.dataset_ops import diff_versions
from evalgate.store import VersionRef

router = APIRouter(prefix="/datasets", tags=["datasets"])
FORMATS = {"jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet"}


@router.post(
    "/{name}/versions",
    response_model=VersionOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[WRITE],
    responses={413: {"description": "Body over the upload limit"}, 422: {"description": "Bad rows"}},
)
async def upload_version(
    name: str,
    request: Request,
    format: Literal["jsonl", "csv", "parquet"] = Query("jsonl", description="Format of the body."),
    cohort: str = Query("target", description="Cohort of rows that carry none."),
    split: str = Query("eval", description="Split of rows that carry none."),
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
        path = Path(folder) / (Path(filename).name + FORMATS[format])
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


@router.get("", response_model=list[VersionOut], dependencies=[READ])
def list_versions(name: str | None = None, state: AppState = Depends(get_state)) -> list[VersionOut]:
    """Every stored version (of one dataset with ``name``)."""
    return [VersionOut.of(info) for info in state.store.versions(name)]


@router.get("/{ref}", response_model=VersionOut, dependencies=[READ])
def get_version(ref: str, state: AppState = Depends(get_state)) -> VersionOut:
    """One version: ``NAME`` (latest) or ``NAME@vN``."""
    try:
        parsed = VersionRef.parse(ref)
    except ValueError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from error
    return VersionOut.of(state.store.get(parsed))


@router.get("/{name}/diff", response_model=DiffOut, dependencies=[READ])
def diff(name: str, old: int, new: int, state: AppState = Depends(get_state)) -> DiffOut:
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
