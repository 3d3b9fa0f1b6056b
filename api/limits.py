"""Bounded work, refused before it starts: the request body size (413) and the size of a
scheduling job, a site, a portfolio and a sensor read (422 naming the limit).

The limits are settings (``VPP_MAX_*``, :mod:`vpp.settings`, docs/operations.md "Limits"),
read once per process: a change takes effect when the API's replicas restart.
The job checks look at the raw request, before sensors are read or anything is parsed into
arrays: a job too big to run must cost nothing to refuse.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic import AwareDatetime, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vpp.errors import LimitExceededError, PayloadTooLargeError
from vpp.settings import get_settings

__all__ = [
    "DEFAULT_RESOLUTION",
    "BodyLimit",
    "check_job",
    "check_portfolio_sites",
    "check_sensor_read",
    "check_site_devices",
]


logger = logging.getLogger(__name__)

_DATETIME = TypeAdapter(AwareDatetime)
_DURATION = TypeAdapter(timedelta)
DEFAULT_RESOLUTION = timedelta(minutes=15)  # a request's default (vpp.request.TimeWindow)


# --------------------------------------------------------------------------- request body
class BodyLimit:
    """ASGI middleware: a body over ``max_body_bytes`` is answered 413 problem+json without
    being read any further (by its ``Content-Length`` at once, else as it streams in)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = get_settings().max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, receive, send, limit)
            return
        # Read the body here, up to the limit, and hand it on: every route reads its whole
        # body anyway, and refusing from inside a route's read would reach FastAPI's own
        # body parser, which turns any error into a 400.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(scope, receive, send, limit)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        from starlette.responses import JSONResponse

        from api.problems import PROBLEM

        err = PayloadTooLargeError(
            f"the request body is larger than {limit} bytes (VPP_MAX_BODY_BYTES)"
        )
        logger.warning("refused a body over %d bytes on %s", limit, scope.get("path"))
        body = err.to_problem() | {"instance": scope.get("path", ""), "maximum": limit}
        response = JSONResponse(body, status_code=err.http_status, media_type=PROBLEM)
        # the client may still be sending: tell it not to reuse the connection
        response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:  # a malformed header: the streamed count decides
                return None
    return None


# --------------------------------------------------------------------------- jobs
def _steps(body: Mapping[str, Any]) -> int | None:
    """The number of steps of a request's horizon, or None if its fields do not say (they
    are then reported by the request's own validation, field by field)."""
    try:
        resolution = _DURATION.validate_python(body.get("resolution", DEFAULT_RESOLUTION))
        if "duration" in body:
            span = _DURATION.validate_python(body["duration"])
        else:
            span = _DATETIME.validate_python(body["end"]) - _DATETIME.validate_python(
                body["start"]
            )
    except (KeyError, TypeError, PydanticValidationError):
        return None
    if resolution <= timedelta(0) or span <= timedelta(0):
        return None
    return math.ceil(span / resolution)


def _device_count(model: Any) -> int:
    return len(model) if isinstance(model, list) else 1 if isinstance(model, dict) else 0


def check_site_devices(count: int, field: str = "flex-model") -> None:
    maximum = get_settings().max_site_devices
    if count > maximum:
        raise LimitExceededError(
            field,
            f"{count} devices; a site has at most {maximum} (VPP_MAX_SITE_DEVICES)",
            limit="max-site-devices",
            maximum=maximum,
        )


def check_portfolio_sites(count: int, field: str = "sites") -> None:
    maximum = get_settings().max_portfolio_sites
    if count > maximum:
        raise LimitExceededError(
            field,
            f"{count} sites; a portfolio has at most {maximum} (VPP_MAX_PORTFOLIO_SITES)",
            limit="max-portfolio-sites",
            maximum=maximum,
        )


def check_job(body: Mapping[str, Any]) -> None:
    """A scheduling job's request (single site or portfolio) is within the limits."""
    steps = _steps(body)
    maximum = get_settings().max_job_steps
    if steps is not None and steps > maximum:
        field = "duration" if "duration" in body else "end"
        raise LimitExceededError(
            field,
            f"the horizon has {steps} steps; a job has at most {maximum} (VPP_MAX_JOB_STEPS): "
            "shorten it or use a coarser resolution",
            limit="max-job-steps",
            maximum=maximum,
        )
    check_site_devices(_device_count(body.get("flex-model")))
    sites = body.get("sites")
    if isinstance(sites, list):
        check_portfolio_sites(len(sites))
        for i, site in enumerate(sites):
            if isinstance(site, Mapping):
                check_site_devices(_device_count(site.get("flex-model")),
                                   f"sites[{i}].flex-model")


# --------------------------------------------------------------------------- sensor reads
def check_sensor_read(points: int, field: str) -> None:
    maximum = get_settings().max_sensor_points
    if points > maximum:
        raise LimitExceededError(
            field,
            f"the read covers {points} points; one read covers at most {maximum} "
            "(VPP_MAX_SENSOR_POINTS): page with ?limit= or use a coarser resolution",
            limit="max-sensor-points",
            maximum=maximum,
        )
