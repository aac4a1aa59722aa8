"""The read shapes the REST API answers with and ``evalgate ... --json`` prints: defined once here.

``api/schemas.py`` builds its response models on them (adding what only the API returns) and
``evalgate/cli/json_output.py`` its ``--json`` documents (refusing unknown fields in their JSON Schema).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class DatasetVersionView(BaseModel):
    """One dataset version."""

    name: str
    number: int
    label: str
    """``NAME@vN``."""
    content_hash: str
    row_count: int
    counts: dict[str, dict[str, int]]
    """cohort -> split -> rows."""
    created_at: datetime


class DiffView(BaseModel):
    """What changed between two versions of a dataset, by row id."""

    old: str
    new: str
    added: list[str]
    removed: list[str]
    changed: dict[str, list[str]]
    """Changed row id -> the fields whose values differ."""
    unchanged: int


class TokenView(BaseModel):
    """An API token, never its secret."""

    id: int
    name: str
    scope: str
    created_at: datetime
    revoked: bool


class JobView(BaseModel):
    """A background job (sweep, evaluation)."""

    id: int
    kind: str
    status: str
    attempts: int
    max_attempts: int
    progress: dict[str, Any]
    log_tail: str
    error: str | None
    result: dict[str, Any] | None
    locked_by: str | None
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
