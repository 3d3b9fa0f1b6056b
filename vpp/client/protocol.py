"""The client's wire protocol, without I/O: calls in, request descriptions out; responses in,
results or typed errors out.

An *operation* (:mod:`vpp.client.operations`) is a generator that yields *effects*: a
:class:`Call` (one HTTP request), a :class:`Sleep` or a :class:`Now` (the monotonic clock).
A driver (:mod:`vpp.client.transport`) performs each effect and sends the answer back: for a
call, :func:`decode` of the :class:`Response`. So request building, response parsing,
polling and error mapping are written once, for the sync and the async transport alike.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from vpp.client.errors import VppApiError, api_error
from vpp.client.frames import aware, iso_duration

__all__ = [
    "API_PREFIX",
    "Call",
    "Effect",
    "Now",
    "Op",
    "Page",
    "Request",
    "Response",
    "Sleep",
    "base_url",
    "decode",
    "delete",
    "dumps",
    "get",
    "list_params",
    "post",
    "request_of",
    "session_headers",
]

T = TypeVar("T")

API_PREFIX = "/api/v1"
ACCEPT = "application/json, application/problem+json"


# -- effects --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Call:
    """One HTTP call; the driver answers with :func:`decode` of its response: the JSON body
    (``None`` for an empty one), a :class:`Page` for a list route (``paged``)."""

    method: str
    path: str
    params: Mapping[str, str] | None = None
    payload: Any = None
    has_payload: bool = False
    paged: bool = False


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Now:
    """Ask the driver's monotonic clock (seconds)."""


Effect = Call | Sleep | Now
Op = Generator[Effect, Any, T]
"""An operation: yields effects, receives their answers, returns its result."""


def get(path: str, params: Mapping[str, str] | None = None) -> Call:
    return Call("GET", API_PREFIX + path, params)


def post(path: str, payload: Any) -> Call:
    return Call("POST", API_PREFIX + path, payload=payload, has_payload=True)


def delete(path: str) -> Call:
    return Call("DELETE", API_PREFIX + path)


# -- requests and responses, as plain data ---------------------------------------------------
@dataclass(frozen=True)
class Request:
    """What a transport sends: a method, a path (relative to the base URL), query
    parameters, headers and the body."""

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes | None = None


@dataclass(frozen=True)
class Response:
    """What a transport received, for :func:`decode`."""

    status: int
    reason: str
    headers: Mapping[str, str]
    content: bytes
    method: str
    url: str

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The decoded body; ``ValueError`` if it is not JSON."""
        return json.loads(self.content)


def request_of(call: Call) -> Request:
    """The request a call makes."""
    if not call.has_payload:
        return Request(call.method, call.path, dict(call.params or {}))
    headers = {"Content-Type": "application/json"}
    return Request(call.method, call.path, dict(call.params or {}), headers, dumps(call.payload))


def session_headers(token: str | None) -> dict[str, str]:
    """The headers every request of a session carries."""
    headers = {"Accept": ACCEPT}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def base_url(url: str) -> str:
    """The server's root, whether ``url`` ends in ``/api/v1`` (and a slash) or not."""
    return url.rstrip("/").removesuffix(API_PREFIX)


class Page(list[dict[str, Any]]):
    """One page of a list route: a list of its rows, and ``next``, the cursor of the next
    page (the ``X-Next-Cursor`` header; ``None`` on the last page)."""

    def __init__(self, rows: Iterable[dict[str, Any]] = (), next: str | None = None) -> None:
        super().__init__(rows)
        self.next = next


def decode(call: Call, response: Response) -> Any:
    """The body of a 2xx response as JSON (``None`` if empty; a :class:`Page` for a paged
    call); the typed :class:`VppApiError` of any other status."""
    if not 200 <= response.status < 300:
        raise api_error(response.status, response.reason, _body(response), response.text,
                        method=response.method, url=response.url)
    if not call.paged and (response.status == 204 or not response.content):
        return None
    body = _body(response)
    if body is _NOT_JSON or (call.paged and not isinstance(body, list)):
        raise VppApiError(
            response.status,
            "Invalid response",
            f"expected {'a JSON list' if call.paged else 'JSON'}, got {response.text[:200]!r}",
            method=response.method,
            url=response.url,
        )
    if call.paged:
        next_cursor = {k.lower(): v for k, v in response.headers.items()}.get("x-next-cursor")
        return Page(body, next_cursor)
    return body


_NOT_JSON: Any = object()


def _body(response: Response) -> Any:
    """The decoded body, or ``_NOT_JSON``."""
    try:
        return response.json()
    except ValueError:  # also UnicodeDecodeError: a body that is not JSON text
        return _NOT_JSON


# -- JSON bodies ----------------------------------------------------------------------------
def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray | pd.Series | pd.Index):
        return np.asarray(value).tolist()
    if isinstance(value, datetime):
        return aware(value, "a datetime").isoformat()
    if isinstance(value, timedelta):
        return iso_duration(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(payload: Any) -> bytes:
    """``payload`` as UTF-8 JSON: numpy values, datetimes and timedeltas included; a
    ``ValueError`` for NaN or infinity (JSON has no such numbers)."""
    try:
        text = json.dumps(payload, default=_json_default, allow_nan=False, ensure_ascii=False)
    except ValueError as err:
        if "JSON compliant" not in str(err):
            raise
        raise ValueError("the request holds NaN or infinity; JSON has no such numbers") from None
    return text.encode("utf-8")


def list_params(
    limit: int | None = None, cursor: str | None = None, **filters: Any
) -> dict[str, str]:
    """Query parameters of a list route: the filters that are set, in their wire names
    (``created_after``: ``created-after``), datetimes as ISO 8601."""
    params = {} if limit is None else {"limit": str(limit)}
    if cursor is not None:
        params["cursor"] = cursor
    for key, value in filters.items():
        if value is not None:
            text = value.isoformat() if isinstance(value, datetime) else str(value)
            params[key.replace("_", "-")] = text
    return params
