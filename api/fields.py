"""Field types and checks shared by the request models of the routes.

The database decides some limits the request models must know about before anything is
written: PostgreSQL refuses the NUL character in ``text`` and ``jsonb``, ``varchar(n)``
refuses longer strings, ``integer`` ids are 32-bit. A request that breaks one is the
caller's mistake and gets a 422 naming the field, not the database's 500.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Final

from fastapi import Path
from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field

from vpp.errors import RequestValidationError

__all__ = [
    "MAX_ID",
    "MAX_RESOLUTION",
    "NUL_MESSAGE",
    "Id",
    "IdPath",
    "IsoDateTime",
    "Label",
    "Name",
    "Resolution",
    "Short",
    "is_id",
    "iso_datetime_text",
    "no_nul",
    "nul_path",
    "positive_resolution",
    "reject_nul",
]


MAX_ID: Final = 2**31 - 1
"""Ids are 32-bit integers in the database; a larger one names nothing."""

MAX_RESOLUTION: Final = timedelta(days=366)
"""The coarsest sensor resolution (a year, in whole seconds, fits the ``integer`` column)."""

NUL_MESSAGE: Final = "must not contain the NUL character (U+0000)"


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError(NUL_MESSAGE)
    return value


def positive_resolution(value: timedelta) -> timedelta:
    """A sensor's or series' resolution: positive, whole seconds, at most a year."""
    seconds = value.total_seconds()
    if seconds <= 0:
        raise ValueError("must be a positive duration, e.g. PT15M")
    if not seconds.is_integer():
        raise ValueError("must be a whole number of seconds")
    if value > MAX_RESOLUTION:
        raise ValueError("must be at most P366D")
    return value


Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(no_nul)]
"""The name of an account, user, token, site, portfolio or sensor."""

Label = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(no_nul)]
"""A free identifier stored in a 255-character column (a congestion point)."""

Short = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(no_nul)]
"""A free identifier stored in a 64-character column (an EAN, a data source)."""

Resolution = Annotated[timedelta, AfterValidator(positive_resolution)]

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
"""A record id in a request body."""

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
"""A record id in a URL path."""


def is_id(value: Any) -> bool:
    """``value`` can be a record id (an int the database's ``integer`` holds, not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


def nul_path(value: Any, path: str = "") -> str | None:
    """The path (``flex-model[0].name``) of the first string (or key) in a JSON value that
    holds a NUL character, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return here
            found = nul_path(item, here)
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = nul_path(item, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def reject_nul(value: Any, path: str = "") -> None:
    """Raise a 422 naming the first field of a JSON value that holds a NUL character."""
    found = nul_path(value, path)
    if found is not None:
        raise RequestValidationError.single(found, NUL_MESSAGE)


_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def iso_datetime_text(value: Any) -> Any:
    """Only ISO 8601 text is a time here: pydantic would also read ``0.5`` as a Unix time,
    which the spec (``format: date-time``) does not promise and a caller never means."""
    if isinstance(value, str) and not _ISO_DATETIME.match(value):
        raise ValueError(
            "must be an ISO 8601 date-time with an offset, e.g. 2026-03-02T00:00:00+01:00"
        )
    return value


IsoDateTime = Annotated[AwareDatetime, BeforeValidator(iso_datetime_text)]
"""A timezone-aware ISO 8601 date-time in a query (a number is refused)."""
