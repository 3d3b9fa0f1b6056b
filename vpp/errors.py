"""One exception tree for vpp.

Everything vpp raises on purpose is a :class:`VppError`. The boundaries (CLI, REST API, Ray
actors) catch ``VppError`` and render it: the CLI as a one-line message and exit code 2, the
API as RFC 7807 problem+json with the HTTP status below. Third-party errors (solver, Ray,
database) are translated into this tree where they enter vpp, never leaked as tracebacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "AuthenticationError",
    "ConflictError",
    "FieldIssue",
    "InfeasibleError",
    "LimitExceededError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RequestValidationError",
    "ServiceUnavailableError",
    "SiteFailedError",
    "SolverError",
    "VppError",
]


class VppError(Exception):
    """Base of every error vpp raises on purpose."""

    http_status = 500
    title = "vpp error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled by its fields, not by __init__'s arguments (subclasses take others): Ray
        # ships a coordinator's error to the driver this way.
        return (_rebuild, (type(self), self.__dict__))

    def to_problem(self) -> dict[str, Any]:
        """RFC 7807 body (without ``instance``, which the API adds)."""
        return {
            "type": f"urn:vpp:error:{type(self).__name__}",
            "title": self.title,
            "status": self.http_status,
            "detail": self.message,
        }


def _rebuild(cls: type[VppError], fields: dict[str, Any]) -> VppError:
    err = cls.__new__(cls)
    Exception.__init__(err, fields.get("message", ""))
    err.__dict__.update(fields)
    return err


@dataclass(frozen=True)
class FieldIssue:
    """One problem with one field of a request, e.g. ``flex-model[0].soc-max``."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class RequestValidationError(VppError):
    """The request is malformed: a field is missing, has a bad unit, is out of range..."""

    http_status = 422
    title = "Invalid request"

    def __init__(self, issues: list[FieldIssue]) -> None:
        self.issues = list(dict.fromkeys(issues))  # one module may spot a problem twice
        super().__init__("; ".join(str(i) for i in self.issues))

    @classmethod
    def single(cls, field: str, message: str) -> RequestValidationError:
        return cls([FieldIssue(field, message)])

    def to_problem(self) -> dict[str, Any]:
        body = super().to_problem()
        body["errors"] = [{"field": i.field, "message": i.message} for i in self.issues]
        return body


class InfeasibleError(VppError):
    """The request is well-formed but no schedule satisfies all its constraints.

    ``constraint`` is the stable name of the constraint family that breaks (e.g.
    ``soc-targets``, ``site-consumption-capacity``), ``time`` the instant or step where it
    breaks and ``device`` the device it belongs to (``None`` for site-level constraints).
    """

    http_status = 422
    title = "Infeasible request"

    def __init__(
        self,
        message: str,
        *,
        constraint: str,
        time: datetime | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(message)
        self.constraint = constraint
        self.time = time
        self.device = device

    def to_problem(self) -> dict[str, Any]:
        body = super().to_problem()
        body["constraint"] = self.constraint
        body["time"] = self.time.isoformat() if self.time else None
        body["device"] = self.device
        return body


class SolverError(VppError):
    """The solver failed for a reason that is not the request's fault."""

    http_status = 503
    title = "Solver failure"


class SiteFailedError(VppError):
    """A site's own computation raised (a bug, or input its model cannot take). Never folded
    into a degraded site: the job fails and names the site."""

    http_status = 500
    title = "Site computation failed"

    def __init__(self, site: str, method: str, cause: BaseException) -> None:
        super().__init__(f"site {site}: {method} raised {type(cause).__name__}: {cause}")
        self.site = site
        self.method = method

    def to_problem(self) -> dict[str, Any]:
        body = super().to_problem()
        body["site"] = self.site
        return body


class NotFoundError(VppError):
    http_status = 404
    title = "Not found"


class ConflictError(VppError):
    http_status = 409
    title = "Conflict"


class LimitExceededError(RequestValidationError):
    """The request asks for more work than a configured limit allows (steps per job, devices
    per site, sites per portfolio, points per sensor read). ``limit`` is the setting's name
    (``max-job-steps``: ``VPP_MAX_JOB_STEPS``), ``maximum`` its value."""

    title = "Limit exceeded"

    def __init__(self, field: str, message: str, *, limit: str, maximum: int) -> None:
        super().__init__([FieldIssue(field, message)])
        self.limit = limit
        self.maximum = maximum

    def to_problem(self) -> dict[str, Any]:
        body = super().to_problem()
        body["limit"] = self.limit
        body["maximum"] = self.maximum
        return body


class PayloadTooLargeError(VppError):
    """The request body is larger than the API reads (``VPP_MAX_BODY_BYTES``)."""

    http_status = 413
    title = "Request body too large"


class AuthenticationError(VppError):
    """No usable credentials: a missing, malformed, unknown or revoked API token."""

    http_status = 401
    title = "Unauthorized"


class PermissionDeniedError(VppError):
    """The caller is known but may not do this (a role or an account's limit)."""

    http_status = 403
    title = "Forbidden"


class ServiceUnavailableError(VppError):
    """A part of the service is not configured or not reachable now (e.g. UFTP)."""

    http_status = 503
    title = "Service unavailable"
