"""The client's errors: subclasses in :mod:`vpp.errors`' tree, built from problem+json.

A 404 is an :class:`ApiNotFoundError`, a :class:`vpp.errors.NotFoundError`; a 409 an
:class:`ApiConflictError`, a :class:`vpp.errors.ConflictError`; a 422 an
:class:`InvalidRequestError`, a :class:`vpp.errors.RequestValidationError`. So
``except vpp.errors.NotFoundError`` catches a 404 from the server as well as a local one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from vpp import errors as core

__all__ = [
    "ApiConflictError",
    "ApiConnectionError",
    "ApiNotFoundError",
    "AuthenticationError",
    "InvalidRequestError",
    "JobCancelledError",
    "JobFailedError",
    "JobTimeoutError",
    "PermissionDeniedError",
    "ServerError",
    "VppApiError",
    "api_error",
]


class VppApiError(core.VppError):
    """The API answered with a non-2xx status; built from its problem+json body.

    ``status``, ``title``, ``detail`` and ``type`` are the RFC 7807 members; ``errors`` the
    field errors of a 422 (``[{"field": "flex-model[0].soc-max", "message": ...}]``);
    ``body`` the whole decoded body (``None`` if it was not JSON).
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        errors: list[dict[str, str]] | None = None,
        body: Any = None,
        *,
        type: str = "about:blank",  # the RFC 7807 member's name
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        self.status = status
        self.http_status = status
        self.title = title
        self.detail = detail
        self.errors = list(errors or [])
        self.body = body
        self.type = type
        self.method = method
        self.url = url
        where = f" ({method} {url})" if method and url else ""
        # not super(): the next class may be a vpp.errors class with another signature
        core.VppError.__init__(self, f"{status} {title}: {detail}{where}")

    def to_problem(self) -> dict[str, Any]:
        if isinstance(self.body, dict):
            return dict(self.body)
        problem: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            problem["errors"] = list(self.errors)
        return problem


class AuthenticationError(VppApiError):
    """401: no token, or an unknown or revoked one."""


class PermissionDeniedError(VppApiError):
    """403: the token's role may not do this (viewer < operator < admin)."""


class ApiNotFoundError(VppApiError, core.NotFoundError):
    """404: no such site, sensor, portfolio or job (or it belongs to another account)."""


class ApiConflictError(VppApiError, core.ConflictError):
    """409: a name already taken, or a job that already has an outcome."""


class InvalidRequestError(VppApiError, core.RequestValidationError):
    """422: the request is invalid; ``errors`` (and ``issues``) name each bad field.

    A refused limit (``type`` ``urn:vpp:error:LimitExceededError``) has ``limit``, the
    setting's name, and ``maximum``, its value (else both ``None``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        VppApiError.__init__(self, *args, **kwargs)
        self.issues = [
            core.FieldIssue(str(e.get("field", "")), str(e.get("message", "")))
            for e in self.errors
        ]
        body = self.body if isinstance(self.body, dict) else {}
        self.limit: str | None = body.get("limit") if isinstance(body.get("limit"), str) else None
        maximum = body.get("maximum")
        self.maximum: int | None = maximum if isinstance(maximum, int) else None


class ServerError(VppApiError):
    """5xx: the server could not complete the request."""


class ApiConnectionError(core.VppError, ConnectionError):
    """The server could not be reached (or did not answer in time)."""


class JobFailedError(core.VppError):
    """A scheduling job failed; ``problem`` is its problem+json body.

    For an infeasible request ``constraint``, ``device`` and ``time`` say what breaks; for an
    invalid one ``errors`` names the fields.
    """

    def __init__(self, job_id: str, problem: Mapping[str, Any] | None) -> None:
        self.job_id = job_id
        self.problem = dict(problem or {})
        self.status = int(self.problem.get("status") or 500)
        self.title = str(self.problem.get("title") or "Job failed")
        self.detail = str(self.problem.get("detail") or "")
        self.type = str(self.problem.get("type") or "about:blank")
        self.errors: list[dict[str, Any]] = list(self.problem.get("errors") or [])
        self.constraint: Any = self.problem.get("constraint")
        self.device: Any = self.problem.get("device")
        self.time: Any = self.problem.get("time")
        super().__init__(f"job {job_id} failed: {self.title}: {self.detail}")

    def to_problem(self) -> dict[str, Any]:
        return dict(self.problem)


class JobCancelledError(core.VppError):
    """The job was cancelled before it had a result."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} was cancelled")


class JobTimeoutError(core.VppError, TimeoutError):
    """``wait`` gave up; the job goes on (cancel it with ``cancel``)."""

    def __init__(self, job_id: str, timeout: float, status: str) -> None:
        self.job_id = job_id
        self.timeout = timeout
        self.job_status = status
        super().__init__(f"job {job_id} is still {status} after {timeout:g} s")


_BY_STATUS: dict[int, type[VppApiError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: ApiNotFoundError,
    409: ApiConflictError,
    422: InvalidRequestError,
}


def api_error(
    status: int, reason: str, body: Any, text: str, *, method: str, url: str
) -> VppApiError:
    """The exception for a non-2xx answer, from its problem+json ``body`` when it is one
    (a dict; else the first 500 characters of ``text`` are the detail)."""
    if isinstance(body, dict):
        title = str(body.get("title") or reason or "HTTP error")
        detail = body.get("detail")
        if not isinstance(detail, str):  # e.g. a plain FastAPI {"detail": [...]} body
            detail = json.dumps(detail) if detail is not None else ""
        field_errors = [
            {"field": str(e.get("field", "")), "message": str(e.get("message", ""))}
            for e in body.get("errors") or []
            if isinstance(e, dict)
        ]
        kind = str(body.get("type") or "about:blank")
    else:
        title, detail = reason or "HTTP error", text.strip()[:500]
        field_errors, kind, body = [], "about:blank", None
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else VppApiError)
    return cls(status, title, detail, field_errors, body, type=kind, method=method, url=url)
