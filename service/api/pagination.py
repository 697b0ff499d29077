"""Cursor pagination for every list: `?limit=&cursor=` answers `{"items", "next_cursor"}`.

The cursor is opaque to clients: the URL-safe base64 of the last primary key served. A page
is `WHERE key > cursor ORDER BY key LIMIT n + 1`, so pages never skip or repeat a row, even
while rows are added.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from service.core.errors import ServiceError

T = TypeVar("T")

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
LimitQuery = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"items per page (at most {MAX_LIMIT})")
]
CursorQuery = Annotated[
    str | None,
    Query(max_length=256, description="`next_cursor` of the previous page; omit for the first"),
]


class InvalidCursor(ServiceError):
    status_code, code = 400, "invalid_cursor"


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T]
    next_cursor: str | None = Field(
        description="pass as `cursor` to get the next page; null on the last page"
    )


def encode_cursor(key: int | str) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, key_type: type[int] | type[str]) -> int | str:
    """The primary key a cursor stands for; `InvalidCursor` when it was not made here."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error) as err:
        raise InvalidCursor("the cursor is not one this service handed out") from err
    if type(key) is not key_type or (key_type is int and not -(2**63) <= key < 2**63):
        raise InvalidCursor("the cursor is not one this service handed out")
    return key  # type: ignore[no-any-return]


def page_rows(
    session: Session,
    query: Select[Any],
    key: InstrumentedAttribute[Any],
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[Any], str | None]:
    """The rows of one page of `query` ordered by `key`, and the cursor of the next page."""
    key_type = key.type.python_type
    if cursor is not None:
        query = query.where(key > decode_cursor(cursor, key_type))
    rows = list(session.scalars(query.order_by(key).limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(getattr(rows[-1], key.key))
