"""Cursor pagination for the list routes (jobs, sites, portfolios, sensors, UFTP messages).

A list route answers with a JSON list, as it always did, and says where the next page is in
headers: ``Link: <...?cursor=...&limit=N>; rel="next"`` (RFC 8288) and ``X-Next-Cursor``.
Neither is sent on the last page. The cursor is opaque to callers: base64url of the list's
name and the sort key of the last row sent, so a cursor of one list is refused by another
(422 naming ``cursor``), as is anything that is not a cursor. Filters are not part of the
cursor: a caller repeats them with it (the ``Link`` URL does).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any, Final

from fastapi import Query, Request, Response
from pydantic import AfterValidator

from api.fields import no_nul
from vpp.errors import RequestValidationError

__all__ = [
    "MAX_LIMIT",
    "NEXT_HEADER",
    "Cursor",
    "Limit",
    "check_range",
    "decode",
    "encode",
    "link_next",
]


MAX_LIMIT: Final = 1000
"""The most rows one page holds; a larger ``limit`` is cut to this."""

NEXT_HEADER: Final = "X-Next-Cursor"

Cursor = Annotated[
    str | None,
    Query(max_length=512, description="the `X-Next-Cursor` of the previous page"),
    AfterValidator(lambda v: no_nul(v) if v is not None else v),
]
Limit = Annotated[
    int, Query(ge=1, description=f"rows per page; at most {MAX_LIMIT} are returned")
]


def encode(name: str, key: list[Any]) -> str:
    raw = json.dumps([name, *key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(name: str, cursor: str | None, types: tuple[type, ...]) -> list[Any] | None:
    """The sort key in ``cursor`` (None without one); 422 naming ``cursor`` if it is not a
    cursor of the list ``name`` whose key has ``types`` (``datetime`` keys travel as ISO
    text)."""
    if cursor is None:
        return None
    bad = RequestValidationError.single("cursor", f"is not a cursor of the {name} list")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        raise bad from None
    if not isinstance(value, list) or len(value) != len(types) + 1 or value[0] != name:
        raise bad
    key: list[Any] = []
    for item, kind in zip(value[1:], types, strict=True):
        if kind is datetime:
            if not isinstance(item, str):
                raise bad
            try:
                parsed = datetime.fromisoformat(item)
            except ValueError:
                raise bad from None
            if parsed.tzinfo is None:
                raise bad
            key.append(parsed)
        elif kind is int:
            if not isinstance(item, int) or isinstance(item, bool):
                raise bad
            key.append(item)
        else:
            if not isinstance(item, kind):
                raise bad
            key.append(item)
    return key


def check_range(after: datetime | None, before: datetime | None, names: tuple[str, str]) -> None:
    """``after`` < ``before`` when both are given (422 naming the second)."""
    if after is not None and before is not None and after >= before:
        raise RequestValidationError.single(names[1], f"must be later than {names[0]}")


def link_next(request: Request, response: Response, cursor: str | None, limit: int) -> None:
    """Point to the next page (``cursor``), if there is one, in ``Link`` and
    ``X-Next-Cursor``."""
    if cursor is None:
        return
    url = request.url.remove_query_params(["cursor", "limit"]).include_query_params(
        cursor=cursor, limit=limit
    )
    response.headers["Link"] = f'<{url.path}?{url.query}>; rel="next"'
    response.headers[NEXT_HEADER] = cursor
