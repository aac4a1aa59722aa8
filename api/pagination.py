"""Cursor pagination of the list routes: ``limit`` and an opaque ``cursor`` in, the next page's URL out.

    GET /jobs?limit=2                   -> [job 9, job 8]    Link: </jobs?limit=2&cursor=Wzhd>; rel="next"
    GET /jobs?limit=2&cursor=Wzhd       -> [job 7, job 6]    Link: </jobs?limit=2&cursor=WzZd>; rel="next"
    ...                                 -> [job 1]           (no Link: the last page)

The body stays the bare JSON list each route has always returned, so clients that read it keep working;
the next page is announced in a ``Link`` header (RFC 8288, ``rel="next"``): an absolute path carrying the
request's own query parameters with the cursor replaced, absent on the last page.

The cursor is the URL-safe base64 of the JSON list of the last item's sort key (its id; a dataset
version's name and number; a row score's evaluator and row id). Clients pass it back as they got it.
Pages are keyset pages: the next one starts after that key, so rows created while a client pages
through never shift or repeat the later pages. A ``limit`` above the route's maximum, or below 1, is a
422 naming ``limit`` (never quietly lowered); a cursor the route could not have given out is a 422
naming ``cursor``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlencode

from fastapi import Query, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from api.schemas import MAX_ID

T = TypeVar("T")
SortColumn = ColumnElement[Any] | InstrumentedAttribute[Any]
MAX_CURSOR_CHARS = 2000
"""Longest cursor accepted: a dataset name (200 characters) and a number, base64-encoded, fit easily."""
MAX_KEY_TEXT = 500
"""Longest text part of a cursor's key (names and row ids are at most 200 characters)."""
LINK_HEADER = {
    "Link": {
        "description": 'The next page: `</path?...&cursor=...>; rel="next"`; absent on the last page.',
        "schema": {"type": "string"},
    }
}
"""The ``Link`` header in a list route's OpenAPI answer."""
REPLACED = ("cursor", "offset")
"""Query parameters the next page's URL does not repeat: the cursor takes their place."""


@dataclass(frozen=True)
class Page:
    """One list request's paging: how many items, and the sort key they come after (None: the first page)."""

    limit: int
    after: tuple[Any, ...] | None


@dataclass(frozen=True)
class Fetched(Generic[T]):
    """One page of rows, and the key the next page starts after (None on the last page)."""

    items: list[T]
    next_key: tuple[Any, ...] | None


def paging(default: int, maximum: int, key: tuple[type, ...] = (int,)) -> Callable[..., Page]:
    """A dependency reading ``limit`` (``default``, at most ``maximum``) and ``cursor`` (a key of the
    types ``key``) from the query."""

    def page(
        limit: int = Query(
            default, ge=1, le=maximum, description=f"Items per page: {default} by default, at most {maximum}."
        ),
        cursor: str | None = Query(
            None,
            max_length=MAX_CURSOR_CHARS,
            description="Opaque: where the page starts, as given in the previous page's `Link` header.",
        ),
    ) -> Page:
        return Page(limit, decode_cursor(cursor, key) if cursor is not None else None)

    return page


def encode_cursor(key: Sequence[Any]) -> str:
    """The cursor of sort key ``key``: URL-safe base64 of its JSON, unpadded."""
    raw = json.dumps(list(key), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, key: tuple[type, ...]) -> tuple[Any, ...]:
    """The sort key in ``cursor``; a 422 naming ``cursor`` unless it holds one of the types ``key``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw.decode("utf-8"))
    except (binascii.Error, UnicodeError, ValueError):
        values = None
    if not _key_of_types(values, key):
        message = "not a cursor of this list: pass back the one a previous page's Link header gave"
        raise RequestValidationError([{"loc": ("query", "cursor"), "msg": message, "type": "value_error"}])
    return tuple(values)


def _key_of_types(values: Any, key: tuple[type, ...]) -> bool:
    """Whether ``values`` is a list of ``len(key)`` storable values of the types ``key``."""
    if not isinstance(values, list) or len(values) != len(key):
        return False
    for value, kind in zip(values, key, strict=True):
        if kind is int and not (
            isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_ID
        ):
            return False
        if kind is str and not (
            isinstance(value, str) and len(value) <= MAX_KEY_TEXT and "\x00" not in value
        ):
            return False
    return True


def after(columns: Sequence[SortColumn], key: Sequence[Any], descending: bool) -> ColumnElement[bool]:
    """The rows that sort after ``key`` on ``columns`` (all ascending, or all descending)."""
    alternatives = []
    for index, column in enumerate(columns):
        equal = [columns[i] == key[i] for i in range(index)]
        beyond = column < key[index] if descending else column > key[index]
        alternatives.append(and_(*equal, beyond))
    return or_(*alternatives)


def fetch(
    session: Session,
    query: Select[Any],
    page: Page,
    columns: Sequence[SortColumn],
    key_of: Callable[[Any], tuple[Any, ...]],
    descending: bool = False,
) -> Fetched[Any]:
    """One page of ``query`` ordered by ``columns``: up to ``page.limit`` rows after ``page.after``, and
    the next page's key when more rows follow (one row more is read to know)."""
    if page.after is not None:
        query = query.where(after(columns, page.after, descending))
    ordered = query.order_by(*(column.desc() if descending else column.asc() for column in columns))
    rows = list(session.scalars(ordered.limit(page.limit + 1)))
    items = rows[: page.limit]
    return Fetched(items, key_of(items[-1]) if len(rows) > page.limit else None)


def link_next(request: Request, response: Response, next_key: tuple[Any, ...] | None) -> None:
    """Set the ``Link: <...>; rel="next"`` header for the page after ``next_key`` (none on the last):
    the request's path and query parameters, its cursor (or offset) replaced by the next one."""
    if next_key is None:
        return
    params = [(name, value) for name, value in request.query_params.multi_items() if name not in REPLACED]
    params.append(("cursor", encode_cursor(next_key)))
    response.headers["Link"] = f'<{request.url.path}?{urlencode(params)}>; rel="next"'
