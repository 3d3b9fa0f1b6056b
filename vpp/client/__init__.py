"""A Python client for the vpp REST API: sites, series, scheduling jobs, what-if studies.

::

    from vpp.client import Client, power_frame

    with Client("http://127.0.0.1:8000", token="...") as vpp:
        result = vpp.schedule(request)              # submit + wait
        frame = power_frame(result)                 # kW per device and for the site

:class:`Client` (``httpx.Client``) and :class:`AsyncClient` (``httpx.AsyncClient``) have the
same methods, each one line: both drive the one set of sans-I/O *operations*
(:mod:`vpp.client.operations`), generators that yield what they need done (an HTTP call, a
sleep, the time) and receive the answer. Request building and response parsing
(:mod:`vpp.client.protocol`), polling and error mapping are written once for both.

Every non-2xx answer raises a :class:`VppApiError` built from the server's problem+json body:
:class:`AuthenticationError` 401, :class:`PermissionDeniedError` 403,
:class:`ApiNotFoundError` 404 (a :class:`vpp.errors.NotFoundError`), :class:`ApiConflictError`
409 (a :class:`vpp.errors.ConflictError`), :class:`InvalidRequestError` 422 with its field
errors (a :class:`vpp.errors.RequestValidationError`), :class:`ServerError` 5xx. A job that
fails raises :class:`JobFailedError`, one that is cancelled :class:`JobCancelledError`. All
are :class:`vpp.errors.VppError`. ``NotFoundError`` and ``ConflictError`` here are the core's
own classes (:mod:`vpp.errors`), so ``except NotFoundError`` catches a 404.

The package needs httpx and pandas (no Ray, FastAPI or SQLAlchemy); only
:mod:`vpp.client.transport` imports httpx.
"""

from vpp.client.errors import (
    ApiConflictError,
    ApiConnectionError,
    ApiNotFoundError,
    AuthenticationError,
    InvalidRequestError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    PermissionDeniedError,
    ServerError,
    VppApiError,
)
from vpp.client.frames import iso_duration, power_frame, series_payload, soc_frame
from vpp.client.progress import ADMM_MAX_ITERATIONS, ProgressBar
from vpp.client.protocol import Page
from vpp.client.scenarios import (
    Scenario,
    bigger_batteries,
    combine,
    compare_results,
    deep_merge,
    is_battery,
    more_batteries,
    scale_prices,
    scenario_requests,
    with_congestion_limit,
    with_market_target,
)
from vpp.client.transport import DEFAULT_URL, AsyncClient, Client, what_if
from vpp.errors import ConflictError, NotFoundError

__all__ = [
    "ADMM_MAX_ITERATIONS",
    "DEFAULT_URL",
    "ApiConflictError",
    "ApiConnectionError",
    "ApiNotFoundError",
    "AsyncClient",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "InvalidRequestError",
    "JobCancelledError",
    "JobFailedError",
    "JobTimeoutError",
    "NotFoundError",
    "Page",
    "PermissionDeniedError",
    "ProgressBar",
    "Scenario",
    "ServerError",
    "VppApiError",
    "bigger_batteries",
    "combine",
    "compare_results",
    "deep_merge",
    "is_battery",
    "iso_duration",
    "more_batteries",
    "power_frame",
    "scale_prices",
    "scenario_requests",
    "series_payload",
    "soc_frame",
    "what_if",
    "with_congestion_limit",
    "with_market_target",
]
