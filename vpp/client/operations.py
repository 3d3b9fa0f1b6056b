"""Every client method, once: an operation (a generator of effects, see
:mod:`vpp.client.protocol`) with the method's signature and documentation. ``Client`` and
``AsyncClient`` turn each into a method with one line."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import IO, Any

import pandas as pd

from vpp import errors as core
from vpp.client.errors import (
    InvalidRequestError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    VppApiError,
)
from vpp.client.frames import iso, period_frame, series_payload, steps, timestamp
from vpp.client.frames import report_frame as report_frame_of
from vpp.client.progress import ProgressBar
from vpp.client.protocol import (
    API_PREFIX,
    Call,
    Now,
    Op,
    Page,
    Sleep,
    delete,
    get,
    list_params,
    post,
)
from vpp.client.scenarios import Scenario, compare_results, scenario_requests

__all__ = [
    "JOB_KINDS",
    "METHODS",
    "add_uftp_participant",
    "agr_portfolio_query",
    "agr_portfolio_update",
    "annotate",
    "bid_curves",
    "cancel",
    "commitments",
    "create_portfolio",
    "create_sensor",
    "create_site",
    "delete_annotation",
    "delete_site",
    "delete_uftp_participant",
    "flex_offers",
    "gopacs_redispatch_bid",
    "headroom",
    "import_holidays",
    "job",
    "jobs",
    "list_annotations",
    "me",
    "portfolio",
    "portfolios",
    "report",
    "report_frame",
    "reports",
    "revoke_flex_offer",
    "schedule",
    "send_d_prognosis",
    "sensors",
    "series",
    "site",
    "sites",
    "submit",
    "uftp_messages",
    "uftp_participants",
    "upload_series",
    "wait",
    "what_if",
]

JOB_KINDS = ("storage", "shifting", "portfolio")
SeriesValues = str | float | Sequence[float] | Mapping[str, Any]


def _object(call: Call) -> Op[dict[str, Any]]:
    """A call whose answer is a JSON object."""
    body: object = yield call
    if not isinstance(body, dict):
        raise _unexpected(call, "a JSON object", body)
    return body


def _rows(call: Call) -> Op[list[dict[str, Any]]]:
    """A call whose answer is a JSON list of objects."""
    body: object = yield call
    if not isinstance(body, list) or not all(isinstance(row, dict) for row in body):
        raise _unexpected(call, "a JSON list of objects", body)
    return body


def _unexpected(call: Call, expected: str, body: object) -> VppApiError:
    return VppApiError(200, "Invalid response", f"expected {expected}, got {str(body)[:200]!r}",
                       method=call.method, url=call.path)


def _page(path: str, params: Mapping[str, str]) -> Op[Page]:
    """One page of a list route."""
    page: Page = yield Call("GET", API_PREFIX + path, params, paged=True)
    return page


def _every(path: str, params: Mapping[str, str]) -> Op[list[dict[str, Any]]]:
    """Every row of a list route, following its cursors."""
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page = yield from _page(path, {**params} | ({"cursor": cursor} if cursor else {}))
        rows.extend(page)
        if page.next is None:
            return rows
        cursor = page.next


# -- accounts, sites, portfolios ------------------------------------------------------------
def me() -> Op[dict[str, Any]]:
    """Who the token belongs to: user, role, account, visible accounts."""
    return (yield from _object(get("/me")))


def create_site(
    name: str,
    flex_model: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    flex_context: Mapping[str, Any] | None = None,
    ean: str | None = None,
    congestion_point: str | None = None,
) -> Op[dict[str, Any]]:
    """Store a site with its devices (each a named flex-model) and flex-context."""
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
    return (yield from _object(post("/sites", body)))


def sites(congestion_point: str | None = None) -> Op[list[dict[str, Any]]]:
    """Every site you see (all pages), optionally only those behind a congestion point."""
    return (yield from _every("/sites", list_params(congestion_point=congestion_point)))


def site(site_id: int) -> Op[dict[str, Any]]:
    """One site with its flex-model and flex-context."""
    return (yield from _object(get(f"/sites/{int(site_id)}")))


def delete_site(site_id: int) -> Op[None]:
    """Delete one of your sites."""
    yield delete(f"/sites/{int(site_id)}")


def create_portfolio(
    name: str, site_ids: Iterable[int], congestion_point: str | None = None
) -> Op[dict[str, Any]]:
    """A named set of your sites, optionally behind one congestion point."""
    body: dict[str, Any] = {"name": name, "sites": [int(s) for s in site_ids]}
    if congestion_point is not None:
        body["congestion-point"] = congestion_point
    return (yield from _object(post("/portfolios", body)))


def portfolios(congestion_point: str | None = None) -> Op[list[dict[str, Any]]]:
    """Every portfolio you see (all pages), optionally only those behind a congestion
    point."""
    return (yield from _every("/portfolios", list_params(congestion_point=congestion_point)))


def portfolio(portfolio_id: int) -> Op[dict[str, Any]]:
    """One portfolio."""
    return (yield from _object(get(f"/portfolios/{int(portfolio_id)}")))


# -- time series ----------------------------------------------------------------------------
def create_sensor(
    name: str, unit: str, resolution: str | timedelta = "PT15M", site: int | None = None
) -> Op[dict[str, Any]]:
    """A time series (prices, load, a forecast) with its unit and native resolution."""
    body: dict[str, Any] = {"name": name, "unit": unit, "resolution": iso(resolution)}
    if site is not None:
        body["site"] = site
    return (yield from _object(post("/sensors", body)))


def sensors(site: int | None = None) -> Op[list[dict[str, Any]]]:
    """Every sensor you see (all pages), optionally only those of ``site``."""
    return (yield from _every("/sensors", list_params(site=site)))


def upload_series(
    sensor_id: int, series: pd.Series, resolution: str | timedelta | None = None
) -> Op[dict[str, Any]]:
    """Store ``series`` (tz-aware, regular ``DatetimeIndex``) on the sensor.

    The step is the index's; ``resolution`` is only needed for a single value whose index
    has no ``freq`` (else the sensor's resolution is used). Raises ``ValueError`` before
    sending anything if the index is naive or irregular or a value is missing.
    """
    body = series_payload(series, resolution)
    return (yield from _object(post(f"/sensors/{int(sensor_id)}/data", body)))


def series(
    sensor_id: int,
    start: datetime | str,
    end: datetime | str,
    resolution: str | timedelta | None = None,
) -> Op[pd.Series]:
    """The sensor's values on ``[start, end)`` (resampled to ``resolution``), NaN where
    nothing is stored; indexed in ``start``'s time zone.

    A range longer than one read may cover (the server's ``VPP_MAX_SENSOR_POINTS``) is
    read in pages of at most that many points, following the server's ``next``.
    """
    first, last = timestamp(start, "start"), timestamp(end, "end")
    if last <= first:
        raise ValueError(f"end {last.isoformat()} must be after start {first.isoformat()}")
    params = {"start": first.isoformat(), "end": last.isoformat()}
    if resolution is not None:
        params["resolution"] = iso(resolution)
    path = f"/sensors/{int(sensor_id)}/data"
    try:
        body: dict[str, Any] = yield get(path, params)
    except InvalidRequestError as refused:
        if refused.limit != "max-sensor-points" or refused.maximum is None:
            raise
        # the whole range is more than one read: read it in pages (the refusal says how big)
        size = yield from _page_size(sensor_id, refused.maximum, resolution)
        body = yield from _pages(path, params, size)
    values = [math.nan if v is None else float(v) for v in body["values"]]
    index = steps(body["start"], body["resolution"], len(values), tz=first.tz)
    out = pd.Series(values, index=index, dtype=float, name=body.get("sensor", sensor_id))
    out.attrs["unit"] = body.get("unit")
    return out


def _page_size(sensor_id: int, maximum: int, resolution: str | timedelta | None) -> Op[int]:
    """Values per page so that a page reads at most ``maximum`` points, counted at the finer
    of the sensor's and the requested resolution (as the server counts them). Finer than
    the sensor's, a page holds whole stored values: the server reads those that start in
    the page, so a page starting inside one would miss it."""
    if resolution is None:
        return maximum  # read at the sensor's own resolution: a value is a point
    step = pd.Timedelta(iso(resolution))
    rows = yield from _every("/sensors", {})
    native = next((pd.Timedelta(s["resolution"]) for s in rows if s["id"] == sensor_id), None)
    if native is None:
        raise core.NotFoundError(f"sensor {sensor_id} is not in the sensor list")
    size = int(maximum * min(step, native) // step)
    per_value = native // step if native > step and native % step == pd.Timedelta(0) else 1
    return max(per_value, size // per_value * per_value)


def _pages(path: str, params: Mapping[str, str], size: int) -> Op[dict[str, Any]]:
    """Every page of a sensor read from ``params["start"]``, joined into one answer."""
    joined: dict[str, Any] | None = None
    start: str | None = params["start"]
    while start is not None:
        page: dict[str, Any] = yield get(path, {**params, "start": start, "limit": str(size)})
        if joined is None:
            joined = {**page, "values": list(page["values"])}
        elif page["start"] != joined["end"] or page["resolution"] != joined["resolution"]:
            detail = f"the page at {page['start']} does not follow {joined['end']}"
            raise VppApiError(200, "Invalid response", detail, method="GET", url=path)
        else:
            joined["values"].extend(page["values"])
            joined["end"] = page["end"]
        start = page.get("next")
    assert joined is not None  # the loop ran at least once
    return joined


# -- scheduling jobs ------------------------------------------------------------------------
def submit(kind: str, request: Mapping[str, Any]) -> Op[str]:
    """Queue a ``storage``, ``shifting`` or ``portfolio`` job; its id."""
    if kind not in JOB_KINDS:
        raise ValueError(f"kind must be one of {', '.join(JOB_KINDS)}, not {kind!r}")
    body = yield post(f"/scheduling-job/{kind}", request)
    return str(body["job"])


def job(job_id: str) -> Op[dict[str, Any]]:
    """The job's status, ``progress`` while it runs, ``result`` or ``error``."""
    return (yield from _object(get(f"/scheduling-job/{job_id}")))


def jobs(
    status: str | None = None,
    limit: int = 100,
    *,
    kind: str | None = None,
    portfolio: int | None = None,
    created_after: datetime | str | None = None,
    created_before: datetime | str | None = None,
    cursor: str | None = None,
) -> Op[Page]:
    """One page of jobs, newest first, filtered; its ``next`` is the ``cursor`` of the next
    page (``None`` on the last)."""
    params = list_params(limit, cursor, status=status, kind=kind, portfolio=portfolio,
                         created_after=created_after, created_before=created_before)
    return (yield from _page("/scheduling-jobs", params))


def cancel(job_id: str) -> Op[None]:
    """Cancel a queued or running job (an ``ApiConflictError`` once it has an outcome)."""
    yield delete(f"/scheduling-job/{job_id}")


def wait(
    job_id: str,
    timeout: float | None = 600,
    poll: float = 0.05,
    progress: bool | IO[str] = True,
    *,
    max_poll: float = 1.0,
    label: str | None = None,
) -> Op[dict[str, Any]]:
    """The job's result once it is finished.

    Polls after ``poll`` seconds, doubling up to ``max_poll``. A portfolio job's ADMM
    progress is drawn on stderr (or the stream given as ``progress``; ``False``: quiet),
    after ``label`` (default: the job's id). Raises :class:`JobFailedError`,
    :class:`JobCancelledError`, or :class:`JobTimeoutError` after ``timeout`` seconds
    (``None``: no limit).
    """
    if poll <= 0 or max_poll <= 0:
        raise ValueError("poll and max_poll must be positive")
    started: float = yield Now()
    interval = poll
    bar: ProgressBar | None = None
    try:
        while True:
            body: dict[str, Any] = yield get(f"/scheduling-job/{job_id}")
            if progress is not False and body.get("kind") == "portfolio":
                if bar is None:
                    stream = None if progress is True else progress
                    bar = ProgressBar(label or f"job {job_id[:8]}", stream=stream)
                bar.update(body)
            outcome = _outcome(job_id, body)
            if outcome is not None:
                return outcome
            now: float = yield Now()
            left = math.inf if timeout is None else started + timeout - now
            if left <= 0:
                raise JobTimeoutError(job_id, float(timeout or 0), str(body.get("status")))
            yield Sleep(min(interval, left))
            interval = min(interval * 2, max(max_poll, poll))
    finally:
        if bar is not None:
            bar.close()


def _outcome(job_id: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
    """A finished job's result; ``None`` while it has none; its error once it failed."""
    status = body.get("status")
    if status == "failed":
        raise JobFailedError(job_id, body.get("error"))
    if status == "cancelled":
        raise JobCancelledError(job_id)
    return dict(body.get("result") or {}) if status == "finished" else None


def schedule(
    request: Mapping[str, Any],
    kind: str = "storage",
    *,
    timeout: float | None = 600,
    poll: float = 0.05,
    progress: bool | IO[str] = True,
    max_poll: float = 1.0,
) -> Op[dict[str, Any]]:
    """:meth:`submit` and :meth:`wait`: the result."""
    job_id = yield from submit(kind, request)
    return (yield from wait(job_id, timeout, poll, progress, max_poll=max_poll))


def what_if(
    portfolio: Mapping[str, Any],
    scenarios: Mapping[str, Scenario | Mapping[str, Any]],
    *,
    parallel: bool = True,
    timeout: float | None = 600,
    poll: float = 0.05,
    progress: bool | IO[str] = True,
    max_poll: float = 1.0,
) -> Op[pd.DataFrame]:
    """See :func:`vpp.client.what_if`."""
    requests = scenario_requests(portfolio, scenarios)
    pending: dict[str, str] = {}
    results: dict[str, dict[str, Any]] = {}
    width = max(len(name) for name in requests)

    def wait_for(name: str) -> Op[None]:
        try:
            results[name] = yield from wait(pending[name], timeout, poll, progress,
                                            max_poll=max_poll, label=name.ljust(width))
        except core.VppError as err:
            err.add_note(f"in what-if scenario {name!r}")
            raise
        del pending[name]

    try:
        for name, request in requests.items():
            pending[name] = yield from submit("portfolio", request)
            if not parallel:
                yield from wait_for(name)
        for name in list(pending):
            yield from wait_for(name)
    except GeneratorExit:  # the driver dropped us: no more calls possible
        raise
    except BaseException:
        # a failure or an interrupt: the jobs still queued or running are of no use now
        for job_id in pending.values():
            with contextlib.suppress(core.VppError):  # finished meanwhile, or server gone
                yield from cancel(job_id)
        raise
    return compare_results(results)


# -- GOPACS and UFTP ------------------------------------------------------------------------
def gopacs_redispatch_bid(
    direction: str,
    start: datetime | str,
    end: datetime | str,
    volume: SeriesValues,
    *,
    congestion_point: str | None = None,
    connections: Sequence[str] | None = None,
    resolution: str | timedelta | None = None,
    horizon: tuple[datetime | str, datetime | str] | None = None,
) -> Op[dict[str, Any]]:
    """A GOPACS redispatch (IDCONS) bid for a congestion announcement (docs/gopacs.md):
    ``direction`` ``"sell"``/``"buy"`` (the in-area order's side), the period
    ``[start, end)``, the needed ``volume`` (``"2 MW"``, kW as a number, kW per ISP as a
    list, or a series object), at ``congestion_point`` or at the ``connections`` EANs."""
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
        body["resolution"] = iso(resolution)
    if horizon is not None:
        body["horizon"] = {"start": horizon[0], "end": horizon[1]}
    return (yield from _object(post("/gopacs/redispatch-bid", body)))


def uftp_participants() -> Op[list[dict[str, Any]]]:
    """The registered UFTP peers (DSOs, GOPACS, CROs); admin role (docs/uftp.md)."""
    return (yield from _rows(get("/uftp/participants")))


def add_uftp_participant(
    domain: str, role: str, public_key: str, endpoint: str
) -> Op[dict[str, Any]]:
    """Register a peer: ``role`` ``"DSO"`` or ``"CRO"``, its base64 public signing key and
    its message endpoint URL."""
    body = {"domain": domain, "role": role, "public-key": public_key, "endpoint": endpoint}
    return (yield from _object(post("/uftp/participants", body)))


def delete_uftp_participant(domain: str) -> Op[None]:
    """Remove a registered peer."""
    yield delete(f"/uftp/participants/{domain}")


def uftp_messages(
    message_type: str | None = None,
    *,
    conversation_id: str | None = None,
    direction: str | None = None,
    limit: int = 200,
    status: str | None = None,
    created_after: datetime | str | None = None,
    created_before: datetime | str | None = None,
    cursor: str | None = None,
) -> Op[Page]:
    """One page of stored UFTP messages, newest first (``message_type`` e.g.
    ``"FlexOffer"``); its ``next`` is the ``cursor`` of the next page."""
    params = list_params(limit, cursor, type=message_type, conversation_id=conversation_id,
                         direction=direction, status=status, created_after=created_after,
                         created_before=created_before)
    return (yield from _page("/uftp/messages", params))


def flex_offers() -> Op[list[dict[str, Any]]]:
    """The FlexOffers sent, with their state."""
    return (yield from _rows(get("/uftp/flex-offers")))


def revoke_flex_offer(offer_id: int) -> Op[dict[str, Any]]:
    """Revoke an open offer (a FlexOfferRevocation goes to the DSO)."""
    return (yield from _object(post(f"/uftp/flex-offers/{int(offer_id)}/revoke", None)))


def commitments() -> Op[list[dict[str, Any]]]:
    """Accepted FlexOrders: the limits the schedules keep."""
    return (yield from _rows(get("/uftp/commitments")))


def send_d_prognosis(
    congestion_point: str, day: date | str, dso: str | None = None
) -> Op[dict[str, Any]]:
    """Send the congestion point's D-Prognosis for ``day`` to the DSO."""
    body: dict[str, Any] = {"congestion-point": congestion_point, "date": str(day)}
    if dso is not None:
        body["dso"] = dso
    return (yield from _object(post("/uftp/d-prognosis", body)))


def agr_portfolio_update(
    start_period: date | str, end_period: date | str | None = None, cro: str | None = None
) -> Op[dict[str, Any]]:
    """Tell the CRO which connections (site EANs) we represent from ``start_period``."""
    body: dict[str, Any] = {"start-period": str(start_period)}
    if end_period is not None:
        body["end-period"] = str(end_period)
    if cro is not None:
        body["cro"] = cro
    return (yield from _object(post("/uftp/agr-portfolio-update", body)))


def agr_portfolio_query(period: date | str, cro: str | None = None) -> Op[dict[str, Any]]:
    """Ask the CRO about our connections on ``period`` (the answer is a stored message)."""
    body: dict[str, Any] = {"period": str(period)}
    if cro is not None:
        body["cro"] = cro
    return (yield from _object(post("/uftp/agr-portfolio-query", body)))


# -- annotations, reports, markets --------------------------------------------------------
def annotate(
    type: str,
    start: datetime | str,
    end: datetime | str,
    content: str = "",
    *,
    site: int | None = None,
    device: str | None = None,
    sensor: int | None = None,
) -> Op[dict[str, Any]]:
    """Store a ``holiday``, ``outage``, ``maintenance`` or ``label`` on your account, a site
    (``device``: one of its devices) or a sensor; a site's outage makes its devices
    unavailable in the jobs that schedule the stored site (docs/annotations.md)."""
    body: dict[str, Any] = {"type": type, "start": _when(start), "end": _when(end)}
    body |= {"content": content} if content else {}
    for key, value in (("site", site), ("device", device), ("sensor", sensor)):
        if value is not None:
            body[key] = value
    return (yield from _object(post("/annotations", body)))


def list_annotations(
    *,
    site: int | None = None,
    sensor: int | None = None,
    type: str | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
) -> Op[list[dict[str, Any]]]:
    """Every annotation you may see, filtered by target, type and overlap with
    ``[start, end)``."""
    params = {
        key: str(value) if not isinstance(value, datetime) else _when(value)
        for key, value in (("site", site), ("sensor", sensor), ("type", type),
                           ("start", start), ("end", end))
        if value is not None
    }  # fmt: skip
    return (yield from _every("/annotations", params))


def delete_annotation(annotation_id: int) -> Op[None]:
    """Delete an annotation."""
    yield delete(f"/annotations/{annotation_id}")


def import_holidays(
    country: str, years: Sequence[int], timezone: str = "UTC", *, site: int | None = None
) -> Op[list[dict[str, Any]]]:
    """Store ``country``'s public holidays of ``years`` as ``holiday`` annotations (local
    midnight to midnight in ``timezone``); those already there are not repeated."""
    body: dict[str, Any] = {"country": country, "years": list(years), "timezone": timezone}
    if site is not None:
        body["site"] = site
    return (yield from _rows(post("/holidays", body)))


def report(job_id: str) -> Op[dict[str, Any]]:
    """The finished job's KPIs (docs/reports.md): ``site``, or ``portfolio`` and ``sites``."""
    return (yield from _object(get(f"/scheduling-job/{job_id}/report")))


def headroom(request: Mapping[str, Any]) -> Op[dict[str, Any]]:
    """Up and down capacity a portfolio request can hold per ISP on top of its optimal
    schedule (docs/markets.md)."""
    return (yield from _object(post("/headroom", dict(request))))


def forecast(
    sensor: int,
    *,
    start: datetime | str | None = None,
    duration: str = "PT24H",
    history: str | None = None,
    coverage: float | None = None,
    timezone: str | None = None,
    country: str | None = None,
) -> Op[dict[str, Any]]:
    """Forecast a stored sensor and store the forecast on it (docs/forecasting.md): the
    finished forecasting job, its ``result`` the point forecast and interval."""
    body: dict[str, Any] = {"sensor": sensor, "duration": duration}
    optional = {"history": history, "coverage": coverage, "timezone": timezone,
                "country": country}  # fmt: skip
    body.update({k: v for k, v in optional.items() if v is not None})
    if start is not None:
        body["start"] = _when(start)
    return (yield from _object(post("/forecasting-job", body)))


def forecasting_job(job_id: str) -> Op[dict[str, Any]]:
    """A forecasting job: the forecast it made and stored."""
    return (yield from _object(get(f"/forecasting-job/{job_id}")))


def bid_curves(
    request: Mapping[str, Any], prices: Sequence[float] | None = None
) -> Op[dict[str, Any]]:
    """Day-ahead step bid curves (price EUR/MWh -> volume kW) per market hour of a
    portfolio request, at the ladder ``prices`` or the server's default (docs/markets.md)."""
    body = dict(request)
    if prices is not None:
        body["prices"] = list(prices)
    return (yield from _object(post("/bid-curves", body)))


def reports(
    start: datetime | str,
    end: datetime | str,
    *,
    site: int | None = None,
    portfolio: int | None = None,
) -> Op[pd.DataFrame]:
    """KPIs over ``[start, end)`` (docs/reports.md) as a DataFrame: one row per site and
    ``"total"``, a column per KPI (units in ``attrs["units"]``), ``hours`` and ``jobs``.
    ``site`` or ``portfolio``: only that stored site, or that portfolio's sites."""
    first, last = timestamp(start, "start"), timestamp(end, "end")
    params = list_params(None, None, start=first.isoformat(), end=last.isoformat(), site=site,
                         portfolio=portfolio)  # fmt: skip
    body = yield from _object(get("/reports", params))
    return period_frame(body)


def report_frame(job_id: str) -> Op[pd.DataFrame]:
    """:meth:`report` as a DataFrame: the row ``"site"``, or each site and ``"portfolio"``."""
    body = yield from report(job_id)
    return report_frame_of(body)


def _when(value: datetime | str) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


METHODS = (
    me, create_site, sites, site, delete_site, create_portfolio, portfolios, portfolio,
    create_sensor, sensors, upload_series, series, submit, job, jobs, cancel, wait, schedule,
    what_if, gopacs_redispatch_bid, uftp_participants, add_uftp_participant,
    delete_uftp_participant, uftp_messages, flex_offers, revoke_flex_offer, commitments,
    send_d_prognosis, agr_portfolio_update, agr_portfolio_query, annotate, list_annotations,
    delete_annotation, import_holidays, report, headroom,
    forecast, forecasting_job,
    bid_curves,
    reports, report_frame,
)
"""Every operation that is a client method of the same name."""
