"""A Python client for the vpp REST API: sites, series, scheduling jobs, what-if studies.

::

    from vpp.client import Client, power_frame

    with Client("http://127.0.0.1:8000", token="...") as vpp:
        result = vpp.schedule(request)              # submit + wait
        frame = power_frame(result)                 # kW per device and for the site

:class:`Client` (``httpx.Client``) and :class:`AsyncClient` (``httpx.AsyncClient``) have the
same methods. Both are thin drivers of one set of *operations*: generators that yield what
they need done (an HTTP call, a sleep, the time) and receive the answer, so request building,
response parsing, polling and error mapping are written once for both transports.

Every non-2xx answer raises a :class:`VppApiError` built from the server's problem+json body
(:class:`AuthenticationError` 401, :class:`PermissionDeniedError` 403, :class:`NotFoundError`
404, :class:`ConflictError` 409, :class:`InvalidRequestError` 422 with its field errors,
:class:`ServerError` 5xx). A job that fails raises :class:`JobFailedError`, one that is
cancelled :class:`JobCancelledError`. All are :class:`vpp.errors.VppError`.

This module needs only httpx and pandas (no Ray, FastAPI or SQLAlchemy).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import IO, Any, TypeVar

import httpx
import numpy as np
import pandas as pd

from vpp import errors as _errors

__all__ = [
    "ADMM_MAX_ITERATIONS",
    "ApiConnectionError",
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

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8000"
API_PREFIX = "/api/v1"
JOB_KINDS = ("storage", "shifting", "portfolio")

Scenario = Callable[[dict[str, Any]], dict[str, Any] | None]
"""A request variant: takes a deep copy of the base request, returns the variant (or
``None`` after changing the copy in place)."""
ADMM_MAX_ITERATIONS = 100
"""The default ADMM iteration cap (``vpp.admm.AdmmSettings.max_iterations``): the progress
bar's length until the job's ``progress`` says the server's own (``max-iterations``: the
request's ``max-iterations``, or the server's default)."""


# =========================================================================================
# Errors
# =========================================================================================
class VppApiError(_errors.VppError):
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
        _errors.VppError.__init__(self, f"{status} {title}: {detail}{where}")

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


class NotFoundError(VppApiError, _errors.NotFoundError):
    """404: no such site, sensor, portfolio or job (or it belongs to another account)."""


class ConflictError(VppApiError, _errors.ConflictError):
    """409: a name already taken, or a job that already has an outcome."""


class InvalidRequestError(VppApiError, _errors.RequestValidationError):
    """422: the request is invalid; ``errors`` (and ``issues``) name each bad field."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        VppApiError.__init__(self, *args, **kwargs)
        self.issues = [
            _errors.FieldIssue(str(e.get("field", "")), str(e.get("message", "")))
            for e in self.errors
        ]


class ServerError(VppApiError):
    """5xx: the server could not complete the request."""


class ApiConnectionError(_errors.VppError, ConnectionError):
    """The server could not be reached (or did not answer in time)."""


class JobFailedError(_errors.VppError):
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
        self.errors = list(self.problem.get("errors") or [])
        self.constraint = self.problem.get("constraint")
        self.device = self.problem.get("device")
        self.time = self.problem.get("time")
        super().__init__(f"job {job_id} failed: {self.title}: {self.detail}")

    def to_problem(self) -> dict[str, Any]:
        return dict(self.problem)


class JobCancelledError(_errors.VppError):
    """The job was cancelled before it had a result."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} was cancelled")


class JobTimeoutError(_errors.VppError, TimeoutError):
    """:meth:`Client.wait` gave up; the job goes on (cancel it with :meth:`Client.cancel`)."""

    def __init__(self, job_id: str, timeout: float, status: str) -> None:
        self.job_id = job_id
        self.timeout = timeout
        self.job_status = status
        super().__init__(f"job {job_id} is still {status} after {timeout:g} s")


_ERRORS: dict[int, type[VppApiError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: InvalidRequestError,
}


def _api_error(response: httpx.Response) -> VppApiError:
    """The exception for a non-2xx response, from its problem+json body when it has one."""
    status = response.status_code
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        title = str(body.get("title") or response.reason_phrase or "HTTP error")
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
        title = response.reason_phrase or "HTTP error"
        detail = response.text.strip()[:500]
        field_errors, kind = [], "about:blank"
    cls = _ERRORS.get(status, ServerError if status >= 500 else VppApiError)
    return cls(
        status,
        title,
        detail,
        field_errors,
        body,
        type=kind,
        method=response.request.method,
        url=str(response.request.url),
    )


# =========================================================================================
# The operation layer: what to do, independent of the transport
# =========================================================================================
@dataclass(frozen=True)
class _Call:
    """One HTTP call; the driver answers with the decoded JSON body (``None`` for 204)."""

    method: str
    path: str
    params: Mapping[str, str] | None = None
    payload: Any = None
    has_payload: bool = False
    paged: bool = False
    """A list route: the driver answers with a :class:`Page` (the body and the next cursor)."""


class Page(list[dict[str, Any]]):
    """One page of a list route: a list of its rows, and ``next``, the cursor of the next
    page (the ``X-Next-Cursor`` header; ``None`` on the last page)."""

    def __init__(self, rows: Iterable[dict[str, Any]] = (), next: str | None = None) -> None:
        super().__init__(rows)
        self.next = next


@dataclass(frozen=True)
class _Sleep:
    seconds: float


@dataclass(frozen=True)
class _Now:
    """Ask the driver's monotonic clock."""


_Effect = _Call | _Sleep | _Now
_Op = Generator[_Effect, Any, T]


def _get(path: str, params: Mapping[str, str] | None = None) -> _Call:
    return _Call("GET", API_PREFIX + path, params)


def _post(path: str, payload: Any) -> _Call:
    return _Call("POST", API_PREFIX + path, payload=payload, has_payload=True)


def _delete(path: str) -> _Call:
    return _Call("DELETE", API_PREFIX + path)


def _request_kwargs(call: _Call) -> dict[str, Any]:
    """``build_request`` arguments (shared by both transports)."""
    kwargs: dict[str, Any] = {"params": dict(call.params) if call.params else None}
    if call.has_payload:
        kwargs["content"] = _dumps(call.payload)
        kwargs["headers"] = {"Content-Type": "application/json"}
    return kwargs


def _decode(response: httpx.Response, paged: bool = False) -> Any:
    """The body of a 2xx response as JSON (``None`` if empty; a :class:`Page` if ``paged``);
    a ``VppApiError`` otherwise."""
    if not response.is_success:
        raise _api_error(response)
    if not paged and (response.status_code == 204 or not response.content):
        return None
    try:
        body, is_json = response.json(), True
    except ValueError:
        body, is_json = None, False
    if not is_json or (paged and not isinstance(body, list)):
        raise VppApiError(
            response.status_code,
            "Invalid response",
            f"expected {'a JSON list' if paged else 'JSON'}, got {response.text[:200]!r}",
            method=response.request.method,
            url=str(response.request.url),
        )
    if paged:
        return Page(body, response.headers.get("X-Next-Cursor"))
    return body


def _connection_error(err: httpx.TransportError, call: _Call, base_url: str) -> ApiConnectionError:
    what = "did not answer in time" if isinstance(err, httpx.TimeoutException) else "is unreachable"
    return ApiConnectionError(
        f"{call.method} {call.path}: the vpp API at {base_url} {what} ({type(err).__name__}: "
        f"{err}); is `vpp serve` running there?"
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray | pd.Series | pd.Index):
        return np.asarray(value).tolist()
    if isinstance(value, datetime):
        return _aware(value, "a datetime").isoformat()
    if isinstance(value, timedelta):
        return iso_duration(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _dumps(payload: Any) -> bytes:
    try:
        text = json.dumps(payload, default=_json_default, allow_nan=False, ensure_ascii=False)
    except ValueError as err:
        if "JSON compliant" in str(err):
            raise ValueError(
                "the request holds NaN or infinity; JSON has no such numbers"
            ) from None
        raise
    return text.encode("utf-8")


# -- simple operations --------------------------------------------------------------------
def _list_params(limit: int | None = None, cursor: str | None = None, **filters: Any
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


def _op_page(path: str, params: Mapping[str, str]) -> _Op[Page]:
    """One page of a list route."""
    page: Page = yield _Call("GET", API_PREFIX + path, params, paged=True)
    return page


def _op_every(path: str, params: Mapping[str, str]) -> _Op[list[dict[str, Any]]]:
    """Every row of a list route, following its cursors."""
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = yield from _op_page(path, {**params} | ({"cursor": cursor} if cursor else {}))
        rows.extend(page)
        if page.next is None:
            return rows
        cursor = page.next


def _op_call(call: _Call) -> _Op[Any]:
    return (yield call)


def _op_create_site(
    name: str,
    flex_model: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    flex_context: Mapping[str, Any] | None,
    ean: str | None,
    congestion_point: str | None,
) -> _Op[dict[str, Any]]:
    devices = [flex_model] if isinstance(flex_model, Mapping) else list(flex_model)
    body: dict[str, Any] = {
        "name": name,
        "flex-model": devices,
        "flex-context": dict(flex_context or {}),
    }
    if ean is not None:
        body["ean"] = ean
    if congestion_point is not None:
        body["congestion-point"] = congestion_point
    return (yield _post("/sites", body))


def _op_create_portfolio(
    name: str, site_ids: Iterable[int], congestion_point: str | None
) -> _Op[dict[str, Any]]:
    body: dict[str, Any] = {"name": name, "sites": [int(s) for s in site_ids]}
    if congestion_point is not None:
        body["congestion-point"] = congestion_point
    return (yield _post("/portfolios", body))


def _op_create_sensor(
    name: str, unit: str, resolution: str | timedelta, site: int | None
) -> _Op[dict[str, Any]]:
    body: dict[str, Any] = {"name": name, "unit": unit, "resolution": _iso(resolution)}
    if site is not None:
        body["site"] = site
    return (yield _post("/sensors", body))


def _op_upload_series(
    sensor_id: int, series: pd.Series, resolution: str | timedelta | None
) -> _Op[dict[str, Any]]:
    body = series_payload(series, resolution)
    return (yield _post(f"/sensors/{int(sensor_id)}/data", body))


def _op_series(
    sensor_id: int,
    start: datetime | str,
    end: datetime | str,
    resolution: str | timedelta | None,
) -> _Op[pd.Series]:
    first, last = _timestamp(start, "start"), _timestamp(end, "end")
    if last <= first:
        raise ValueError(f"end {last.isoformat()} must be after start {first.isoformat()}")
    params = {"start": first.isoformat(), "end": last.isoformat()}
    if resolution is not None:
        params["resolution"] = _iso(resolution)
    body = yield _get(f"/sensors/{int(sensor_id)}/data", params)
    values = [math.nan if v is None else float(v) for v in body["values"]]
    index = _steps(body["start"], body["resolution"], len(values), tz=first.tz)
    out = pd.Series(values, index=index, dtype=float, name=body.get("sensor", sensor_id))
    out.attrs["unit"] = body.get("unit")
    return out


def _op_submit(kind: str, request: Mapping[str, Any]) -> _Op[str]:
    if kind not in JOB_KINDS:
        raise ValueError(f"kind must be one of {', '.join(JOB_KINDS)}, not {kind!r}")
    body = yield _post(f"/scheduling-job/{kind}", request)
    return str(body["job"])


def _op_cancel(job_id: str) -> _Op[None]:
    yield _delete(f"/scheduling-job/{job_id}")


def _op_gopacs_redispatch_bid(
    direction: str,
    start: datetime | str,
    end: datetime | str,
    volume: str | float | Sequence[float] | Mapping[str, Any],
    congestion_point: str | None,
    connections: Sequence[str] | None,
    resolution: str | timedelta | None,
    horizon: tuple[datetime | str, datetime | str] | None,
) -> _Op[dict[str, Any]]:
    if (congestion_point is None) == (connections is None):
        raise ValueError("give congestion_point or connections (a list of EANs)")
    body: dict[str, Any] = {"direction": direction, "start": start, "end": end}
    if isinstance(volume, str | Mapping):
        body["volume"] = volume
    elif isinstance(volume, int | float):
        body["volume"] = f"{float(volume)!r} kW"
    else:
        body["volume"] = {"values": [float(v) for v in volume], "unit": "kW"}
    if congestion_point is not None:
        body["congestion-point"] = congestion_point
    if connections is not None:
        body["connections"] = list(connections)
    if resolution is not None:
        body["resolution"] = _iso(resolution)
    if horizon is not None:
        body["horizon"] = {"start": horizon[0], "end": horizon[1]}
    return (yield _post("/gopacs/redispatch-bid", body))


def _op_uftp_add_participant(
    domain: str, role: str, public_key: str, endpoint: str
) -> _Op[dict[str, Any]]:
    body = {"domain": domain, "role": role, "public-key": public_key, "endpoint": endpoint}
    return (yield _post("/uftp/participants", body))


def _op_uftp_messages(
    message_type: str | None,
    conversation_id: str | None,
    direction: str | None,
    limit: int,
    filters: Mapping[str, Any] | None = None,
) -> _Op[Page]:
    params = _list_params(limit, type=message_type, conversation_id=conversation_id,
                          direction=direction, **(filters or {}))
    return (yield from _op_page("/uftp/messages", params))


def _op_uftp_d_prognosis(
    congestion_point: str, day: date | str, dso: str | None
) -> _Op[dict[str, Any]]:
    body: dict[str, Any] = {"congestion-point": congestion_point, "date": str(day)}
    if dso is not None:
        body["dso"] = dso
    return (yield _post("/uftp/d-prognosis", body))


def _op_uftp_cro(path: str, body: dict[str, Any], cro: str | None) -> _Op[dict[str, Any]]:
    if cro is not None:
        body = {**body, "cro": cro}
    return (yield _post(path, body))


def _op_wait(
    job_id: str,
    timeout: float | None,
    poll: float,
    max_poll: float,
    progress: bool | IO[str],
    label: str | None = None,
) -> _Op[dict[str, Any]]:
    """Poll the job with a growing interval (``poll`` doubling up to ``max_poll``) until it
    has an outcome; draw its ADMM progress while it runs."""
    if poll <= 0 or max_poll <= 0:
        raise ValueError("poll and max_poll must be positive")
    started = yield _Now()
    interval = poll
    bar: _ProgressBar | None = None
    try:
        while True:
            body = yield _get(f"/scheduling-job/{job_id}")
            if progress is not False and body.get("kind") == "portfolio":
                if bar is None:
                    stream = None if progress is True else progress
                    bar = _ProgressBar(label or f"job {job_id[:8]}", stream=stream)
                bar.update(body)
            status = body.get("status")
            if status == "finished":
                return dict(body.get("result") or {})
            if status == "failed":
                raise JobFailedError(job_id, body.get("error"))
            if status == "cancelled":
                raise JobCancelledError(job_id)
            now = yield _Now()
            left = math.inf if timeout is None else started + timeout - now
            if left <= 0:
                raise JobTimeoutError(job_id, float(timeout or 0), str(status))
            yield _Sleep(min(interval, left))
            interval = min(interval * 2, max(max_poll, poll))
    finally:
        if bar is not None:
            bar.close()


def _op_schedule(
    request: Mapping[str, Any],
    kind: str,
    timeout: float | None,
    poll: float,
    max_poll: float,
    progress: bool | IO[str],
) -> _Op[dict[str, Any]]:
    job_id = yield from _op_submit(kind, request)
    return (yield from _op_wait(job_id, timeout, poll, max_poll, progress))


def _op_what_if(
    portfolio: Mapping[str, Any],
    scenarios: Mapping[str, Scenario | Mapping[str, Any]],
    parallel: bool,
    timeout: float | None,
    poll: float,
    max_poll: float,
    progress: bool | IO[str],
) -> _Op[pd.DataFrame]:
    requests = scenario_requests(portfolio, scenarios)
    pending: dict[str, str] = {}
    results: dict[str, dict[str, Any]] = {}
    width = max(len(name) for name in requests)

    def wait(name: str) -> _Op[None]:
        try:
            results[name] = yield from _op_wait(
                pending[name], timeout, poll, max_poll, progress, label=name.ljust(width)
            )
        except _errors.VppError as err:
            err.add_note(f"in what-if scenario {name!r}")
            raise
        del pending[name]

    try:
        for name, request in requests.items():
            pending[name] = yield from _op_submit("portfolio", request)
            if not parallel:
                yield from wait(name)
        for name in list(pending):
            yield from wait(name)
    except GeneratorExit:  # the driver dropped us: no more calls possible
        raise
    except BaseException:
        # a failure or an interrupt: the jobs still queued or running are of no use now
        for job_id in pending.values():
            with contextlib.suppress(_errors.VppError):  # finished meanwhile, or server gone
                yield from _op_cancel(job_id)
        raise
    return compare_results(results)


# =========================================================================================
# Transports
# =========================================================================================
def _token(token: str | None) -> str | None:
    return token if token is not None else os.environ.get("VPP_TOKEN") or None


def _base_url(base_url: str) -> str:
    url = base_url.rstrip("/")
    return url.removesuffix(API_PREFIX)


def _headers(token: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json, application/problem+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


class Client:
    """The vpp REST API over ``httpx.Client``.

    ``token`` defaults to ``$VPP_TOKEN``; ``base_url`` may end in ``/api/v1`` or not.
    ``transport`` is handed to httpx (e.g. an ``httpx.MockTransport`` in tests). Use it as a
    context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        token: str | None = None,
        timeout: float = 30,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = _base_url(base_url)
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=_headers(_token(token)),
            timeout=timeout,
            transport=transport,
        )
        self._sleep: Callable[[float], None] = time.sleep
        self._clock: Callable[[], float] = time.monotonic

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def _perform(self, effect: _Effect) -> Any:
        if isinstance(effect, _Call):
            request = self._http.build_request(
                effect.method, effect.path, **_request_kwargs(effect)
            )
            try:
                response = self._http.send(request)
            except httpx.TransportError as err:
                raise _connection_error(err, effect, self.base_url) from err
            return _decode(response, effect.paged)
        if isinstance(effect, _Sleep):
            self._sleep(effect.seconds)
            return None
        return self._clock()

    def _run(self, op: _Op[T]) -> T:
        """Drive an operation: perform each effect it yields, send back the answer (or throw
        the error into it, so it may clean up), until it returns."""
        answer: Any = None
        failure: BaseException | None = None
        while True:
            try:
                effect = op.throw(failure) if failure is not None else op.send(answer)
            except StopIteration as stop:
                return stop.value
            answer, failure = None, None
            try:
                answer = self._perform(effect)
            except BaseException as err:
                failure = err

    # -- accounts ----------------------------------------------------------------------
    def me(self) -> dict[str, Any]:
        """Who the token belongs to: user, role, account, visible accounts."""
        return self._run(_op_call(_get("/me")))

    # -- sites and portfolios ----------------------------------------------------------
    def create_site(
        self,
        name: str,
        flex_model: Sequence[Mapping[str, Any]] | Mapping[str, Any],
        flex_context: Mapping[str, Any] | None = None,
        ean: str | None = None,
        congestion_point: str | None = None,
    ) -> dict[str, Any]:
        """Store a site with its devices (each a named flex-model) and flex-context."""
        return self._run(_op_create_site(name, flex_model, flex_context, ean, congestion_point))

    def sites(self, congestion_point: str | None = None) -> list[dict[str, Any]]:
        """Every site you see (all pages), optionally only those behind a congestion
        point."""
        return self._run(_op_every("/sites", _list_params(congestion_point=congestion_point)))

    def site(self, site_id: int) -> dict[str, Any]:
        return self._run(_op_call(_get(f"/sites/{int(site_id)}")))

    def delete_site(self, site_id: int) -> None:
        self._run(_op_call(_delete(f"/sites/{int(site_id)}")))

    def create_portfolio(
        self, name: str, site_ids: Iterable[int], congestion_point: str | None = None
    ) -> dict[str, Any]:
        """A named set of your sites, optionally behind one congestion point."""
        return self._run(_op_create_portfolio(name, site_ids, congestion_point))

    def portfolios(self, congestion_point: str | None = None) -> list[dict[str, Any]]:
        """Every portfolio you see (all pages), optionally only those behind a congestion
        point."""
        return self._run(
            _op_every("/portfolios", _list_params(congestion_point=congestion_point))
        )

    def portfolio(self, portfolio_id: int) -> dict[str, Any]:
        return self._run(_op_call(_get(f"/portfolios/{int(portfolio_id)}")))

    # -- time series -------------------------------------------------------------------
    def create_sensor(
        self,
        name: str,
        unit: str,
        resolution: str | timedelta = "PT15M",
        site: int | None = None,
    ) -> dict[str, Any]:
        """A time series (prices, load, a forecast) with its unit and native resolution."""
        return self._run(_op_create_sensor(name, unit, resolution, site))

    def sensors(self, site: int | None = None) -> list[dict[str, Any]]:
        """Every sensor you see (all pages), optionally only those of ``site``."""
        return self._run(_op_every("/sensors", _list_params(site=site)))

    def upload_series(
        self, sensor_id: int, series: pd.Series, resolution: str | timedelta | None = None
    ) -> dict[str, Any]:
        """Store ``series`` (tz-aware, regular ``DatetimeIndex``) on the sensor.

        The step is the index's; ``resolution`` is only needed for a single value whose
        index has no ``freq`` (else the sensor's resolution is used). Raises ``ValueError``
        before sending anything if the index is naive or irregular or a value is missing.
        """
        return self._run(_op_upload_series(sensor_id, series, resolution))

    def series(
        self,
        sensor_id: int,
        start: datetime | str,
        end: datetime | str,
        resolution: str | timedelta | None = None,
    ) -> pd.Series:
        """The sensor's values on ``[start, end)`` (resampled to ``resolution``), NaN where
        nothing is stored; indexed in ``start``'s time zone."""
        return self._run(_op_series(sensor_id, start, end, resolution))

    # -- scheduling jobs ---------------------------------------------------------------
    def submit(self, kind: str, request: Mapping[str, Any]) -> str:
        """Queue a ``storage``, ``shifting`` or ``portfolio`` job; its id."""
        return self._run(_op_submit(kind, request))

    def job(self, job_id: str) -> dict[str, Any]:
        """The job's status, ``progress`` while it runs, ``result`` or ``error``."""
        return self._run(_op_call(_get(f"/scheduling-job/{job_id}")))

    def jobs(
        self,
        status: str | None = None,
        limit: int = 100,
        *,
        kind: str | None = None,
        portfolio: int | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        cursor: str | None = None,
    ) -> Page:
        """One page of jobs, newest first, filtered; its ``next`` is the ``cursor`` of the
        next page (``None`` on the last)."""
        params = _list_params(limit, cursor, status=status, kind=kind, portfolio=portfolio,
                              created_after=created_after, created_before=created_before)
        return self._run(_op_page("/scheduling-jobs", params))

    def cancel(self, job_id: str) -> None:
        """Cancel a queued or running job (:class:`ConflictError` once it has an outcome)."""
        self._run(_op_cancel(job_id))

    def wait(
        self,
        job_id: str,
        timeout: float | None = 600,
        poll: float = 0.05,
        progress: bool | IO[str] = True,
        *,
        max_poll: float = 1.0,
    ) -> dict[str, Any]:
        """The job's result once it is finished.

        Polls after ``poll`` seconds, doubling up to ``max_poll``. A portfolio job's ADMM
        progress is drawn on stderr (or the stream given as ``progress``; ``False``: quiet).
        Raises :class:`JobFailedError`, :class:`JobCancelledError`, or
        :class:`JobTimeoutError` after ``timeout`` seconds (``None``: no limit).
        """
        return self._run(_op_wait(job_id, timeout, poll, max_poll, progress))

    def schedule(
        self,
        request: Mapping[str, Any],
        kind: str = "storage",
        *,
        timeout: float | None = 600,
        poll: float = 0.05,
        progress: bool | IO[str] = True,
        max_poll: float = 1.0,
    ) -> dict[str, Any]:
        """:meth:`submit` and :meth:`wait`: the result."""
        return self._run(_op_schedule(request, kind, timeout, poll, max_poll, progress))

    def what_if(
        self,
        portfolio: Mapping[str, Any],
        scenarios: Mapping[str, Scenario | Mapping[str, Any]],
        *,
        parallel: bool = True,
        timeout: float | None = 600,
        poll: float = 0.05,
        progress: bool | IO[str] = True,
        max_poll: float = 1.0,
    ) -> pd.DataFrame:
        """See :func:`what_if`."""
        return self._run(
            _op_what_if(portfolio, scenarios, parallel, timeout, poll, max_poll, progress)
        )

    def gopacs_redispatch_bid(
        self,
        direction: str,
        start: datetime | str,
        end: datetime | str,
        volume: str | float | Sequence[float] | Mapping[str, Any],
        *,
        congestion_point: str | None = None,
        connections: Sequence[str] | None = None,
        resolution: str | timedelta | None = None,
        horizon: tuple[datetime | str, datetime | str] | None = None,
    ) -> dict[str, Any]:
        """A GOPACS redispatch (IDCONS) bid for a congestion announcement (docs/gopacs.md):
        ``direction`` ``"sell"``/``"buy"`` (the in-area order's side), the period
        ``[start, end)``, the needed ``volume`` (``"2 MW"``, kW as a number, kW per ISP as a
        list, or a series object), at ``congestion_point`` or at the ``connections`` EANs."""
        return self._run(
            _op_gopacs_redispatch_bid(
                direction, start, end, volume, congestion_point, connections, resolution, horizon
            )
        )

    # UFTP (ShapeShifter) as the aggregator: admin role (docs/uftp.md)
    def uftp_participants(self) -> list[dict[str, Any]]:
        """The registered UFTP peers (DSOs, GOPACS, CROs)."""
        return self._run(_op_call(_get("/uftp/participants")))

    def add_uftp_participant(
        self, domain: str, role: str, public_key: str, endpoint: str
    ) -> dict[str, Any]:
        """Register a peer: ``role`` ``"DSO"`` or ``"CRO"``, its base64 public signing key
        and its message endpoint URL."""
        return self._run(_op_uftp_add_participant(domain, role, public_key, endpoint))

    def delete_uftp_participant(self, domain: str) -> None:
        self._run(_op_call(_delete(f"/uftp/participants/{domain}")))

    def uftp_messages(
        self,
        message_type: str | None = None,
        *,
        conversation_id: str | None = None,
        direction: str | None = None,
        limit: int = 200,
        status: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        cursor: str | None = None,
    ) -> Page:
        """One page of stored UFTP messages, newest first (``message_type`` e.g.
        ``"FlexOffer"``); its ``next`` is the ``cursor`` of the next page."""
        filters = {"status": status, "created_after": created_after,
                   "created_before": created_before, "cursor": cursor}
        return self._run(
            _op_uftp_messages(message_type, conversation_id, direction, limit, filters)
        )

    def flex_offers(self) -> list[dict[str, Any]]:
        return self._run(_op_call(_get("/uftp/flex-offers")))

    def revoke_flex_offer(self, offer_id: int) -> dict[str, Any]:
        """Revoke an open offer (a FlexOfferRevocation goes to the DSO)."""
        return self._run(_op_call(_post(f"/uftp/flex-offers/{int(offer_id)}/revoke", None)))

    def commitments(self) -> list[dict[str, Any]]:
        """Accepted FlexOrders: the limits the schedules keep."""
        return self._run(_op_call(_get("/uftp/commitments")))

    def send_d_prognosis(
        self, congestion_point: str, day: date | str, dso: str | None = None
    ) -> dict[str, Any]:
        """Send the congestion point's D-Prognosis for ``day`` to the DSO."""
        return self._run(_op_uftp_d_prognosis(congestion_point, day, dso))

    def agr_portfolio_update(
        self, start_period: date | str, end_period: date | str | None = None,
        cro: str | None = None,
    ) -> dict[str, Any]:
        """Tell the CRO which connections (site EANs) we represent from ``start_period``."""
        body: dict[str, Any] = {"start-period": str(start_period)}
        if end_period is not None:
            body["end-period"] = str(end_period)
        return self._run(_op_uftp_cro("/uftp/agr-portfolio-update", body, cro))

    def agr_portfolio_query(self, period: date | str, cro: str | None = None) -> dict[str, Any]:
        """Ask the CRO about our connections on ``period`` (the answer is a stored message)."""
        return self._run(_op_uftp_cro("/uftp/agr-portfolio-query", {"period": str(period)}, cro))


class AsyncClient:
    """:class:`Client`'s methods over ``httpx.AsyncClient``, each awaitable."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        token: str | None = None,
        timeout: float = 30,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        import asyncio

        self.base_url = _base_url(base_url)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=_headers(_token(token)),
            timeout=timeout,
            transport=transport,
        )
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        self._clock: Callable[[], float] = time.monotonic

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient({self.base_url!r})"

    async def _perform(self, effect: _Effect) -> Any:
        if isinstance(effect, _Call):
            request = self._http.build_request(
                effect.method, effect.path, **_request_kwargs(effect)
            )
            try:
                response = await self._http.send(request)
            except httpx.TransportError as err:
                raise _connection_error(err, effect, self.base_url) from err
            return _decode(response, effect.paged)
        if isinstance(effect, _Sleep):
            await self._sleep(effect.seconds)
            return None
        return self._clock()

    async def _run(self, op: _Op[T]) -> T:
        answer: Any = None
        failure: BaseException | None = None
        while True:
            try:
                effect = op.throw(failure) if failure is not None else op.send(answer)
            except StopIteration as stop:
                return stop.value
            answer, failure = None, None
            try:
                answer = await self._perform(effect)
            except BaseException as err:
                failure = err

    async def me(self) -> dict[str, Any]:
        return await self._run(_op_call(_get("/me")))

    async def create_site(
        self,
        name: str,
        flex_model: Sequence[Mapping[str, Any]] | Mapping[str, Any],
        flex_context: Mapping[str, Any] | None = None,
        ean: str | None = None,
        congestion_point: str | None = None,
    ) -> dict[str, Any]:
        return await self._run(
            _op_create_site(name, flex_model, flex_context, ean, congestion_point)
        )

    async def sites(self, congestion_point: str | None = None) -> list[dict[str, Any]]:
        """Every site you see (all pages), optionally only those behind a congestion
        point."""
        return await self._run(_op_every("/sites", _list_params(congestion_point=congestion_point)))

    async def site(self, site_id: int) -> dict[str, Any]:
        return await self._run(_op_call(_get(f"/sites/{int(site_id)}")))

    async def delete_site(self, site_id: int) -> None:
        await self._run(_op_call(_delete(f"/sites/{int(site_id)}")))

    async def create_portfolio(
        self, name: str, site_ids: Iterable[int], congestion_point: str | None = None
    ) -> dict[str, Any]:
        return await self._run(_op_create_portfolio(name, site_ids, congestion_point))

    async def portfolios(self, congestion_point: str | None = None) -> list[dict[str, Any]]:
        """Every portfolio you see (all pages), optionally only those behind a congestion
        point."""
        return await self._run(
            _op_every("/portfolios", _list_params(congestion_point=congestion_point))
        )

    async def portfolio(self, portfolio_id: int) -> dict[str, Any]:
        return await self._run(_op_call(_get(f"/portfolios/{int(portfolio_id)}")))

    async def create_sensor(
        self,
        name: str,
        unit: str,
        resolution: str | timedelta = "PT15M",
        site: int | None = None,
    ) -> dict[str, Any]:
        return await self._run(_op_create_sensor(name, unit, resolution, site))

    async def sensors(self, site: int | None = None) -> list[dict[str, Any]]:
        """Every sensor you see (all pages), optionally only those of ``site``."""
        return await self._run(_op_every("/sensors", _list_params(site=site)))

    async def upload_series(
        self, sensor_id: int, series: pd.Series, resolution: str | timedelta | None = None
    ) -> dict[str, Any]:
        return await self._run(_op_upload_series(sensor_id, series, resolution))

    async def series(
        self,
        sensor_id: int,
        start: datetime | str,
        end: datetime | str,
        resolution: str | timedelta | None = None,
    ) -> pd.Series:
        return await self._run(_op_series(sensor_id, start, end, resolution))

    async def submit(self, kind: str, request: Mapping[str, Any]) -> str:
        return await self._run(_op_submit(kind, request))

    async def job(self, job_id: str) -> dict[str, Any]:
        return await self._run(_op_call(_get(f"/scheduling-job/{job_id}")))

    async def jobs(
        self,
        status: str | None = None,
        limit: int = 100,
        *,
        kind: str | None = None,
        portfolio: int | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        cursor: str | None = None,
    ) -> Page:
        """One page of jobs, newest first, filtered; its ``next`` is the ``cursor`` of the
        next page (``None`` on the last)."""
        params = _list_params(limit, cursor, status=status, kind=kind, portfolio=portfolio,
                              created_after=created_after, created_before=created_before)
        return await self._run(_op_page("/scheduling-jobs", params))

    async def cancel(self, job_id: str) -> None:
        await self._run(_op_cancel(job_id))

    async def wait(
        self,
        job_id: str,
        timeout: float | None = 600,
        poll: float = 0.05,
        progress: bool | IO[str] = True,
        *,
        max_poll: float = 1.0,
    ) -> dict[str, Any]:
        return await self._run(_op_wait(job_id, timeout, poll, max_poll, progress))

    async def schedule(
        self,
        request: Mapping[str, Any],
        kind: str = "storage",
        *,
        timeout: float | None = 600,
        poll: float = 0.05,
        progress: bool | IO[str] = True,
        max_poll: float = 1.0,
    ) -> dict[str, Any]:
        return await self._run(_op_schedule(request, kind, timeout, poll, max_poll, progress))

    async def what_if(
        self,
        portfolio: Mapping[str, Any],
        scenarios: Mapping[str, Scenario | Mapping[str, Any]],
        *,
        parallel: bool = True,
        timeout: float | None = 600,
        poll: float = 0.05,
        progress: bool | IO[str] = True,
        max_poll: float = 1.0,
    ) -> pd.DataFrame:
        return await self._run(
            _op_what_if(portfolio, scenarios, parallel, timeout, poll, max_poll, progress)
        )

    async def gopacs_redispatch_bid(
        self,
        direction: str,
        start: datetime | str,
        end: datetime | str,
        volume: str | float | Sequence[float] | Mapping[str, Any],
        *,
        congestion_point: str | None = None,
        connections: Sequence[str] | None = None,
        resolution: str | timedelta | None = None,
        horizon: tuple[datetime | str, datetime | str] | None = None,
    ) -> dict[str, Any]:
        return await self._run(
            _op_gopacs_redispatch_bid(
                direction, start, end, volume, congestion_point, connections, resolution, horizon
            )
        )

    # UFTP (ShapeShifter) as the aggregator: admin role (docs/uftp.md)
    async def uftp_participants(self) -> list[dict[str, Any]]:
        """The registered UFTP peers (DSOs, GOPACS, CROs)."""
        return await self._run(_op_call(_get("/uftp/participants")))

    async def add_uftp_participant(
        self, domain: str, role: str, public_key: str, endpoint: str
    ) -> dict[str, Any]:
        """Register a peer: ``role`` ``"DSO"`` or ``"CRO"``, its base64 public signing key
        and its message endpoint URL."""
        return await self._run(_op_uftp_add_participant(domain, role, public_key, endpoint))

    async def delete_uftp_participant(self, domain: str) -> None:
        await self._run(_op_call(_delete(f"/uftp/participants/{domain}")))

    async def uftp_messages(
        self,
        message_type: str | None = None,
        *,
        conversation_id: str | None = None,
        direction: str | None = None,
        limit: int = 200,
        status: str | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        cursor: str | None = None,
    ) -> Page:
        """One page of stored UFTP messages, newest first (``message_type`` e.g.
        ``"FlexOffer"``); its ``next`` is the ``cursor`` of the next page."""
        filters = {"status": status, "created_after": created_after,
                   "created_before": created_before, "cursor": cursor}
        return await self._run(
            _op_uftp_messages(message_type, conversation_id, direction, limit, filters)
        )

    async def flex_offers(self) -> list[dict[str, Any]]:
        return await self._run(_op_call(_get("/uftp/flex-offers")))

    async def revoke_flex_offer(self, offer_id: int) -> dict[str, Any]:
        """Revoke an open offer (a FlexOfferRevocation goes to the DSO)."""
        return await self._run(_op_call(_post(f"/uftp/flex-offers/{int(offer_id)}/revoke", None)))

    async def commitments(self) -> list[dict[str, Any]]:
        """Accepted FlexOrders: the limits the schedules keep."""
        return await self._run(_op_call(_get("/uftp/commitments")))

    async def send_d_prognosis(
        self, congestion_point: str, day: date | str, dso: str | None = None
    ) -> dict[str, Any]:
        """Send the congestion point's D-Prognosis for ``day`` to the DSO."""
        return await self._run(_op_uftp_d_prognosis(congestion_point, day, dso))

    async def agr_portfolio_update(
        self, start_period: date | str, end_period: date | str | None = None,
        cro: str | None = None,
    ) -> dict[str, Any]:
        """Tell the CRO which connections (site EANs) we represent from ``start_period``."""
        body: dict[str, Any] = {"start-period": str(start_period)}
        if end_period is not None:
            body["end-period"] = str(end_period)
        return await self._run(_op_uftp_cro("/uftp/agr-portfolio-update", body, cro))

    async def agr_portfolio_query(
        self, period: date | str, cro: str | None = None
    ) -> dict[str, Any]:
        """Ask the CRO about our connections on ``period`` (the answer is a stored message)."""
        body = {"period": str(period)}
        return await self._run(_op_uftp_cro("/uftp/agr-portfolio-query", body, cro))


# =========================================================================================
# Progress bar
# =========================================================================================
def _entry(progress: Mapping[str, Any], key: str) -> Any:
    """``progress[key]`` under its kebab-case or snake_case name."""
    return progress.get(key, progress.get(key.replace("-", "_")))


class _ProgressBar:
    """One line on stderr per job, rewritten in place on a terminal or in a notebook; in a
    log, one line per status change and per ten iterations."""

    width = 30

    def __init__(
        self, label: str, total: int = ADMM_MAX_ITERATIONS, stream: IO[str] | None = None
    ) -> None:
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", lambda: False)
        self.inplace = bool(isatty()) or (stream is None and "ipykernel" in sys.modules)
        self.shown = ""
        self.last: tuple[str, int] | None = None  # what the line shows
        self.k = 0
        self.progress: dict[str, Any] = {}

    def update(self, body: Mapping[str, Any]) -> None:
        if body.get("progress"):
            self.progress = dict(body["progress"])
        cap = _entry(self.progress, "max-iterations")
        if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0:
            self.total = cap  # the server's cap for this job
        phase = _entry(self.progress, "phase")
        status = str(body.get("status"))
        if phase and body.get("status") in ("queued", "running"):
            status += f" {phase}"  # e.g. "running starting": actors are starting
        summary = (body.get("result") or {}).get("portfolio") or {}
        reported = _entry(self.progress, "iteration") or summary.get("iterations") or 0
        self.k = max(self.k, int(reported))
        if self.last is not None:
            last_status, last_k = self.last
            if status == last_status and (
                self.k == last_k or (not self.inplace and self.k // 10 == last_k // 10)
            ):
                return
        self.last = (status, self.k)
        self._write(self._line(status, self.k, self.progress))

    def _line(self, status: str, k: int, progress: Mapping[str, Any]) -> str:
        filled = int(self.width * min(k, self.total) / self.total)
        bar = f"[{'#' * filled}{'.' * (self.width - filled)}]"
        line = f"{self.label} ADMM {bar} {k:3d}/{self.total} {status}"
        parts = [
            ("r", _entry(progress, "primal-residual"), ".2e", ""),
            ("s", _entry(progress, "dual-residual"), ".2e", ""),
            ("rho", _entry(progress, "rho"), ".2e", ""),
            ("cost", _entry(progress, "objective"), ".2f", " EUR"),
            ("gap", _entry(progress, "certified-gap"), ".2e", ""),
        ]
        for name, value, spec, unit in parts:
            if isinstance(value, int | float) and not isinstance(value, bool):
                line += f" {name}={value:{spec}}{unit}"
        return line

    def _write(self, line: str) -> None:
        if self.inplace:
            pad = max(0, len(self.shown) - len(line))
            self.stream.write("\r" + line + " " * pad)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.shown = line

    def close(self) -> None:
        if self.inplace and self.shown:
            self.stream.write("\n")
            self.stream.flush()


# =========================================================================================
# Time helpers and pandas conversions
# =========================================================================================
def iso_duration(delta: timedelta | pd.Timedelta) -> str:
    """``PT15M``, ``PT24H``, ``PT1H30M``, ``PT0.5S`` (hours, not days, like the server)."""
    micros = round(pd.Timedelta(delta) / pd.Timedelta(microseconds=1))
    if micros <= 0:
        raise ValueError(f"a duration must be positive, not {delta}")
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, micro = divmod(rest, 1_000_000)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if micro:
        text += f"{seconds}.{micro:06d}".rstrip("0") + "S"
    elif seconds or text == "PT":
        text += f"{seconds}S"
    return text


def _iso(value: str | timedelta | pd.Timedelta) -> str:
    return value if isinstance(value, str) else iso_duration(value)


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, not {value.isoformat()}")
    return value


def _timestamp(value: datetime | str, what: str) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        raise ValueError(
            f"{what} must be timezone-aware (e.g. '2026-03-02T00:00:00+01:00'), not {value!r}"
        )
    return stamp


def _steps(start: str, resolution: str, periods: int, tz: Any = None) -> pd.DatetimeIndex:
    """``periods`` instants from ``start`` every ``resolution`` (tz-aware)."""
    index = pd.date_range(
        pd.Timestamp(start), periods=periods, freq=pd.Timedelta(resolution), name="datetime"
    )
    return index.tz_convert(tz) if tz is not None else index


def series_payload(series: pd.Series, resolution: str | timedelta | None = None) -> dict[str, Any]:
    """The JSON body ``{"start", "values", "resolution"}`` for ``series``, checked first:
    a tz-aware, strictly increasing ``DatetimeIndex`` at one regular step, finite values."""
    if not isinstance(series, pd.Series):
        raise ValueError(f"expected a pandas Series, got {type(series).__name__}")
    index = series.index
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError(f"the series' index must be a DatetimeIndex, not {type(index).__name__}")
    if index.tz is None:
        raise ValueError(
            "the series' index must be timezone-aware: use series.tz_localize('Europe/Amsterdam')"
            " (or the zone the data is in)"
        )
    if len(index) == 0:
        raise ValueError("the series is empty")
    given = pd.Timedelta(resolution) if resolution is not None else None
    step: pd.Timedelta | None
    if len(index) > 1:
        steps = index[1:] - index[:-1]
        step = steps[0]
        bad = np.flatnonzero(steps != step)
        if step <= pd.Timedelta(0):
            raise ValueError(
                f"the index must increase: {index[1].isoformat()} follows {index[0].isoformat()}"
            )
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"the index must be regular: {index[i + 1].isoformat()} follows "
                f"{index[i].isoformat()} after {steps[i]}, but the first step is {step}"
            )
        if given is not None and given != step:
            raise ValueError(f"resolution {resolution} differs from the index's step {step}")
    else:
        freq = index.freq
        step = given
        if step is None and freq is not None:
            try:
                step = pd.Timedelta(freq.nanos, unit="ns")
            except ValueError:  # a calendar offset (months...): no fixed length
                raise ValueError(
                    f"the index' freq {freq.freqstr} has no fixed length; pass resolution="
                ) from None
    try:
        values = pd.to_numeric(series, errors="raise").to_numpy(dtype=float)
    except (ValueError, TypeError) as err:
        raise ValueError(f"the values must be numbers: {err}") from None
    missing = np.flatnonzero(~np.isfinite(values))
    if missing.size:
        at = index[int(missing[0])].isoformat()
        raise ValueError(
            f"{missing.size} value(s) are missing or infinite, the first at {at}; the API stores"
            " regular runs of numbers: fill them, or upload each run separately"
        )
    body: dict[str, Any] = {"start": index[0].isoformat(), "values": values.tolist()}
    if step is not None:
        body["resolution"] = iso_duration(step)
    return body


_POWER_UNITS = {"W": 1e-3, "kW": 1.0, "MW": 1e3}
_ENERGY_UNITS = {"Wh": 1e-3, "kWh": 1.0, "MWh": 1e3}


def _values(series: Mapping[str, Any], units: Mapping[str, float], want: str) -> list[float]:
    unit = series.get("unit", want)
    if unit not in units:
        raise ValueError(f"cannot convert {unit!r} to {want}")
    f = units[unit]
    return [math.nan if v is None else float(v) * f for v in series["values"]]


def _result(result: Mapping[str, Any]) -> Mapping[str, Any]:
    """A result, also when given the job body that holds it."""
    if "job" in result and "status" in result and "start" not in result:
        if result["status"] != "finished" or "result" not in result:
            raise ValueError(f"job {result['job']} is {result['status']}: it has no result")
        inner: Mapping[str, Any] = result["result"]
        return inner
    return result


def _is_portfolio(result: Mapping[str, Any]) -> bool:
    return "portfolio" in result and "sites" in result


def _frame(result: Mapping[str, Any], columns: dict[Any, list[float]], extra: int) -> pd.DataFrame:
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"the result's series differ in length: {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    index = _steps(result["start"], result["resolution"], n)
    if extra == 0 and n and "duration" in result:
        expected = pd.Timedelta(result["duration"]) / pd.Timedelta(result["resolution"])
        if round(expected) != n:
            raise ValueError(f"the result has {n} steps, its duration says {expected:g}")
    return pd.DataFrame(columns, index=index)


def power_frame(result: Mapping[str, Any], tz: Any = None) -> pd.DataFrame:
    """Power (kW, consumption positive) per step, indexed by each step's start.

    A site result has one column per device and ``"site"``; a portfolio result one column
    per site (its net power) and ``"portfolio"``. ``tz`` converts the index (it is in the
    result's offset otherwise). Takes a result or a finished job's body.
    """
    result = _result(result)
    columns: dict[Any, list[float]] = {}
    if _is_portfolio(result):
        for site in result["sites"]:
            columns[site["id"]] = _values(site["site"]["power"], _POWER_UNITS, "kW")
        columns["portfolio"] = _values(result["portfolio"]["power"], _POWER_UNITS, "kW")
    else:
        for device in result.get("devices", []):
            columns[device["name"]] = _values(device["power"], _POWER_UNITS, "kW")
        columns["site"] = _values(result["site"]["power"], _POWER_UNITS, "kW")
    frame = _frame(result, columns, 0)
    return frame.tz_convert(tz) if tz is not None else frame


def soc_frame(result: Mapping[str, Any], tz: Any = None) -> pd.DataFrame:
    """State of charge (kWh) at every instant (``steps + 1`` rows, the first the
    ``soc-at-start``), one column per device that has one; for a portfolio the columns are
    ``(site, device)`` pairs."""
    result = _result(result)
    columns: dict[Any, list[float]] = {}
    sites = result["sites"] if _is_portfolio(result) else [{"id": None, **result}]
    for site in sites:
        for device in site.get("devices", []):
            if "soc" in device:
                key = device["name"] if site["id"] is None else (site["id"], device["name"])
                columns[key] = _values(device["soc"], _ENERGY_UNITS, "kWh")
    frame = _frame(result, columns, 1)
    if _is_portfolio(result) and columns:
        frame.columns = pd.MultiIndex.from_tuples(list(columns), names=["site", "device"])
    return frame.tz_convert(tz) if tz is not None else frame


# =========================================================================================
# What-if studies
# =========================================================================================
BASE = "base"


def deep_merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged in: dicts recursively, anything else replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def scenario_requests(
    portfolio: Mapping[str, Any], scenarios: Mapping[str, Scenario | Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The base request (as ``"base"``) and every scenario's variant of it."""
    if BASE in scenarios:
        raise ValueError(f"{BASE!r} is the unchanged request; name the scenario otherwise")
    requests = {BASE: copy.deepcopy(dict(portfolio))}
    for name, scenario in scenarios.items():
        base = copy.deepcopy(dict(portfolio))
        if isinstance(scenario, Mapping):
            requests[name] = deep_merge(base, scenario)
        elif callable(scenario):
            variant = scenario(base)
            requests[name] = base if variant is None else dict(variant)
        else:
            raise TypeError(f"scenario {name!r} must be a function or a dict")
    return requests


def _net_power(result: Mapping[str, Any]) -> np.ndarray:
    power = result["portfolio"]["power"] if _is_portfolio(result) else result["site"]["power"]
    return np.asarray(_values(power, _POWER_UNITS, "kW"), dtype=float)


def compare_results(results: Mapping[str, Mapping[str, Any]], base: str = BASE) -> pd.DataFrame:
    """One row per result: ``cost`` (EUR), ``peak`` (kW, the highest net power),
    ``energy_shifted`` (kWh, ``sum_t |P[t] - P_base[t]| * dt / 2``: the energy moved in time
    relative to ``base``), ``gap`` (to the centralised optimum, when reported),
    ``iterations``, ``converged`` and ``limit_violation_kw``."""
    if base not in results:
        raise ValueError(f"no {base!r} result to compare with")
    reference = _result(results[base])
    p_base = _net_power(reference)
    rows = []
    for name, raw in results.items():
        result = _result(raw)
        p = _net_power(result)
        dt = pd.Timedelta(result["resolution"]) / pd.Timedelta(hours=1)
        same_axis = p.shape == p_base.shape and result["start"] == reference["start"]
        summary = result.get("portfolio", {}) if _is_portfolio(result) else {}
        cost = summary["cost"] if "cost" in summary else result.get("cost", {})
        rows.append(
            {
                "scenario": name,
                "cost": float(cost.get("value", math.nan)),
                "peak": float(p.max()) if p.size else math.nan,
                "energy_shifted": float(np.abs(p - p_base).sum() * dt / 2)
                if same_axis
                else math.nan,
                "gap": float(summary.get("gap", math.nan)),
                "iterations": summary.get("iterations"),
                "converged": summary.get("converged"),
                "limit_violation_kw": float(summary.get("target-violation-kw", math.nan)),
            }
        )
    table = pd.DataFrame(rows).set_index("scenario")
    table["iterations"] = table["iterations"].astype("Int64")
    table["converged"] = table["converged"].astype("boolean")
    return table


def what_if(
    portfolio: Mapping[str, Any],
    scenarios: Mapping[str, Scenario | Mapping[str, Any]],
    *,
    client: Client | None = None,
    parallel: bool = True,
    timeout: float | None = 600,
    progress: bool | IO[str] = True,
) -> pd.DataFrame:
    """Schedule a portfolio request and variants of it; compare them in one table.

    Each scenario is a function given a deep copy of ``portfolio`` that returns the variant
    (see :func:`scale_prices`, :func:`with_congestion_limit`, :func:`bigger_batteries`,
    :func:`more_batteries`, :func:`with_market_target`, :func:`combine`), or a dict
    deep-merged into it (``{"target": None}`` drops the target). With ``parallel`` every job
    is submitted before any is waited for, so they run side by side on the server's Ray
    cluster. If one fails (or on Ctrl-C) the others are cancelled and the error raised.

    Returns :func:`compare_results` of ``"base"`` (the unchanged request) and the scenarios.
    ``client`` defaults to ``Client()`` (``$VPP_URL`` or 127.0.0.1:8000, ``$VPP_TOKEN``);
    with an :class:`AsyncClient` use ``await client.what_if(...)``.
    """
    if isinstance(client, AsyncClient):
        raise TypeError("with an AsyncClient, use `await client.what_if(...)`")
    if client is not None:
        return client.what_if(
            portfolio, scenarios, parallel=parallel, timeout=timeout, progress=progress
        )
    with Client(os.environ.get("VPP_URL", DEFAULT_URL)) as own:
        return own.what_if(
            portfolio, scenarios, parallel=parallel, timeout=timeout, progress=progress
        )


# -- scenario builders --------------------------------------------------------------------
_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


def _number(x: float) -> str:
    return f"{x:.10g}"


def _scale(node: Any, factor: float, field: str) -> Any:
    """A quantity or series (constant, compact values or segments) times ``factor``."""
    if isinstance(node, bool):
        raise ValueError(f"{field}: expected a quantity, got {node!r}")
    if isinstance(node, int | float):
        return node * factor
    if isinstance(node, str):
        match = _QUANTITY.match(node)
        if match is None:
            raise ValueError(f"{field}: cannot read {node!r} as a number with a unit")
        value, unit = match.groups()
        return f"{_number(float(value) * factor)} {unit}".rstrip()
    if isinstance(node, Mapping):
        if set(node) == {"sensor"}:
            raise ValueError(
                f"{field} refers to sensor {node['sensor']}: the client cannot scale stored "
                "data; give the values inline (Client.series) to scale them"
            )
        out = dict(node)
        if "values" in out:
            out["values"] = [v * factor for v in out["values"]]
            return out
        for key in ("value", "min", "max"):
            if key in out:
                out[key] = _scale(out[key], factor, f"{field}.{key}")
        return out
    if isinstance(node, list):
        return [_scale(s, factor, f"{field}[{i}]") for i, s in enumerate(node)]
    raise ValueError(f"{field}: cannot scale {node!r}")


def _sites(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's sites (a single-site request is its own one site)."""
    if "sites" in request:
        sites: list[dict[str, Any]] = request["sites"]
        return sites
    if "flex-model" in request:
        return [request]
    raise ValueError("the request has neither 'sites' nor a 'flex-model' to change")


def _devices(site: dict[str, Any]) -> list[dict[str, Any]]:
    """The site's devices as a list (turning a single-device flex-model into one)."""
    model = site.get("flex-model")
    if model is None:
        site["flex-model"] = model = []
    elif isinstance(model, dict):
        site["flex-model"] = model = [model]
    return model


def is_battery(device: Mapping[str, Any], include_vehicles: bool = False) -> bool:
    """A stationary battery: a ``storage`` device without ``availability`` windows (those
    are vehicles that come and go), or any storage device with ``include_vehicles``."""
    if device.get("type", "storage") != "storage":
        return False
    return include_vehicles or "availability" not in device


def combine(*scenarios: Scenario) -> Scenario:
    """One scenario applying each of ``scenarios`` in turn."""

    def apply(request: dict[str, Any]) -> dict[str, Any]:
        for scenario in scenarios:
            request = scenario(request) or request
        return request

    return apply


def scale_prices(factor: float) -> Scenario:
    """Consumption and production prices times ``factor``: the portfolio's, every site's
    override and every device's own prices (not a market target's deviation price)."""

    def apply(request: dict[str, Any]) -> dict[str, Any]:
        contexts = [request.get("flex-context")]
        for site in _sites(request):
            if site is not request:
                contexts.append(site.get("flex-context"))
            contexts.extend(_devices(site))
        for i, context in enumerate(contexts):
            for key in ("consumption-price", "production-price"):
                if isinstance(context, dict) and key in context:
                    context[key] = _scale(context[key], factor, f"[{i}].{key}")
        return request

    return apply


def _power(value: float | str | Sequence[float] | np.ndarray | pd.Series) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | np.number):
        return f"{_number(float(value))} kW"
    return {"values": [float(v) for v in np.asarray(value, dtype=float)], "unit": "kW"}


def with_congestion_limit(
    max_consumption_kw: float | str | Sequence[float] | np.ndarray | pd.Series,
    max_production_kw: float | str | Sequence[float] | np.ndarray | None = None,
) -> Scenario:
    """A congestion target with this consumption limit (kW: one number, or one per step);
    an existing congestion target keeps its congestion point and production limit."""

    def apply(request: dict[str, Any]) -> dict[str, Any]:
        old = request.get("target")
        target = dict(old) if isinstance(old, dict) and old.get("type") == "congestion" else {}
        target["type"] = "congestion"
        target["max-consumption"] = _power(max_consumption_kw)
        if max_production_kw is not None:
            target["max-production"] = _power(max_production_kw)
        request["target"] = target
        return request

    return apply


def with_market_target(
    volume_kw: float | str | Sequence[float] | np.ndarray | pd.Series,
    deviation_price: str | float = "200 EUR/MWh",
) -> Scenario:
    """A market target: follow ``volume_kw`` (a number or one per step), each kWh of
    deviation costing ``deviation_price`` (EUR/MWh when a number)."""

    def apply(request: dict[str, Any]) -> dict[str, Any]:
        price = deviation_price
        request["target"] = {
            "type": "market",
            "volume": _power(volume_kw),
            "deviation-price": price if isinstance(price, str) else f"{_number(price)} EUR/MWh",
        }
        return request

    return apply


def bigger_batteries(factor: float, *, include_vehicles: bool = False) -> Scenario:
    """Every battery's ``soc-max`` and power limits (``power-capacity``,
    ``consumption-capacity``, ``production-capacity``) times ``factor``; its
    ``soc-at-start`` stays. Batteries per :func:`is_battery`."""
    if factor <= 0:
        raise ValueError(f"factor must be positive, not {factor}")

    def apply(request: dict[str, Any]) -> dict[str, Any]:
        for site in _sites(request):
            for i, device in enumerate(_devices(site)):
                if not is_battery(device, include_vehicles):
                    continue
                for key in (
                    "soc-max",
                    "power-capacity",
                    "consumption-capacity",
                    "production-capacity",
                ):
                    if key in device:
                        device[key] = _scale(device[key], factor, f"flex-model[{i}].{key}")
        return request

    return apply


def _rank(site_id: str) -> str:
    return hashlib.sha256(site_id.encode("utf-8")).hexdigest()


def more_batteries(share: float, size_kwh: float = 10.0) -> Scenario:
    """A ``size_kwh`` battery (power ``size / 2.5`` kW, 90 % round trip, half full at the
    start and again at the end) for ``share`` of the sites that have none.

    Which sites is deterministic: ranked by a hash of their id, so a larger share adds to
    the same sites and the order of the sites does not matter.
    """
    if not 0 <= share <= 1:
        raise ValueError(f"share must be in [0, 1], not {share}")
    if size_kwh <= 0:
        raise ValueError(f"size_kwh must be positive, not {size_kwh}")

    def apply(request: dict[str, Any]) -> dict[str, Any]:
        end = pd.Timestamp(request["start"]) + pd.Timedelta(request["duration"])
        sites = _sites(request)
        without = [
            (str(site.get("id", i)), site)
            for i, site in enumerate(sites)
            if not any(is_battery(d) for d in _devices(site))
        ]
        chosen = sorted(without, key=lambda pair: _rank(pair[0]))[: round(share * len(without))]
        half = _number(size_kwh / 2)
        for _, site in chosen:
            devices = _devices(site)
            names = {d.get("name") for d in devices}
            name = next(
                n for n in ("battery", *(f"battery-{k}" for k in range(2, 99))) if n not in names
            )
            devices.append(
                {
                    "name": name,
                    "type": "storage",
                    "soc-at-start": f"{half} kWh",
                    "soc-min": "0 kWh",
                    "soc-max": f"{_number(size_kwh)} kWh",
                    "power-capacity": f"{_number(size_kwh / 2.5)} kW",
                    "roundtrip-efficiency": "90%",
                    "soc-targets": [{"datetime": end.isoformat(), "value": f"{half} kWh"}],
                }
            )
        return request

    return apply
