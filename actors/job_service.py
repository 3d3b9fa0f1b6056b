"""The job service: runs a scheduling job of any kind and stores its outcome one way.

Every job is a row of ``scheduling_jobs`` (:mod:`store.repository`) and ends the same way:
its result JSON, and one schedule row per device and one per site (the site's net power),
written in the transaction that marks it ``finished`` (:func:`store_outcome`). The kinds:

* ``storage`` / ``shifting``: one site, solved here (:func:`execute_job`, queued over REST;
  :func:`run_site_job`, the CLI);
* ``portfolio`` over REST: the portfolio runner solves it (ADMM on Ray or centralised, see
  :mod:`actors.job_worker`), then its result is stored here;
* ``portfolio`` from UFTP: an ordered FlexOffer's reschedule, solved by the UFTP handler and
  recorded at once (:func:`record_portfolio_job`);
* ``redispatch-bid``: a GOPACS bid, computed by its route and recorded at once with the
  schedule that delivers it (:func:`record_bid_job`).

Schedule rows come from the result JSON (:func:`schedule_rows`), the same for all kinds, so a
REST portfolio job and a UFTP reschedule of the same sites store the same rows. A site with a
stored record (a job's ``site``, a stored portfolio's sites, a congestion point's sites) gets
its rows under that site; a site that exists only in the request (a portfolio's inline
sites) gets them under no site, with its entry id in the device name (``<entry>/<device>``
and ``<entry>`` for the net power).

store/ stays persistence only: it runs nothing; this module is the floor above it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.orm import Session, sessionmaker

from store import Portfolio, SchedulingJob, Site
from store import repository as repo
from store.jobs import JobCancelledError, ProgressWriter
from vpp.errors import VppError
from vpp.site import SiteProblem, SiteSchedule
from vpp.telemetry import span_from

__all__ = [
    "PortfolioRunner",
    "ScheduleRow",
    "StoredRun",
    "execute_job",
    "fail_job",
    "record_bid_job",
    "record_job",
    "record_portfolio_job",
    "run_site_job",
    "schedule_rows",
    "site_devices",
    "store_outcome",
    "store_schedules",
]

logger = logging.getLogger(__name__)

PortfolioRunner = Callable[[dict[str, Any], str, ProgressWriter], dict[str, Any]]
"""``(request, job_id, progress) -> result JSON``: how portfolio jobs are run (Ray)."""

_DURATION = TypeAdapter(timedelta)
_TIME = TypeAdapter(datetime)


@dataclass(frozen=True)
class ScheduleRow:
    """One schedule of a result: ``entry`` is the portfolio's site entry (None for a
    single-site result), ``device`` the device's name (None for the site's net power)."""

    entry: str | None
    device: str | None
    values: list[float]


@dataclass
class StoredRun:
    job_id: str
    schedule: SiteSchedule
    problem: SiteProblem


def schedule_rows(result: Mapping[str, Any]) -> list[ScheduleRow]:
    """The schedules (kW) of a site's or a portfolio's result JSON, per device and per site."""
    if "sites" in result:
        return [row for site in result["sites"] for row in _site_rows(site, str(site["id"]))]
    return _site_rows(result, None)


def _site_rows(site: Mapping[str, Any], entry: str | None) -> list[ScheduleRow]:
    rows = [
        ScheduleRow(entry, str(d["name"]), list(d["power"]["values"])) for d in site["devices"]
    ]
    return [*rows, ScheduleRow(entry, None, list(site["site"]["power"]["values"]))]


def store_outcome(
    session: Session,
    job: SchedulingJob,
    result: dict[str, Any],
    sites: Mapping[str, Site] | None = None,
) -> None:
    """Store ``result`` (a site's or a portfolio's schedule) as ``job``'s outcome: its
    schedule rows and the job ``finished`` with the result."""
    store_schedules(session, job, result, sites)
    repo.set_job_status(session, job.id, "finished", result=result)


def store_schedules(
    session: Session,
    job: SchedulingJob,
    schedule: Mapping[str, Any],
    sites: Mapping[str, Site] | None = None,
) -> None:
    """One schedule row per device and per site of ``schedule`` (:func:`schedule_rows`).
    ``sites``: the stored site of each portfolio entry (entries missing here are inline
    sites); a single-site job's site is ``job.site_id``."""
    start = _TIME.validate_python(schedule["start"])
    resolution = _DURATION.validate_python(schedule["resolution"])
    own = session.get(Site, job.site_id) if job.site_id is not None else None
    for row in schedule_rows(schedule):
        site, name = _placed(row, own, sites or {})
        repo.save_schedule(
            session, site=site, job=job, device_name=name, start=start,
            resolution=resolution, values=row.values, unit="kW",
        )


def _placed(
    row: ScheduleRow, own: Site | None, sites: Mapping[str, Site]
) -> tuple[Site | None, str | None]:
    """The stored site a row belongs to and the device name it is stored under."""
    if row.entry is None:
        return own, row.device
    site = sites.get(row.entry)
    if site is not None:
        return site, row.device
    return None, row.entry if row.device is None else f"{row.entry}/{row.device}"


def stored_portfolio_sites(session: Session, job: SchedulingJob) -> dict[str, Site]:
    """A REST portfolio job's entries that are stored sites: a stored portfolio's sites
    are its entries by name (``POST /scheduling-job/portfolio`` with ``portfolio``)."""
    if job.portfolio_id is None:
        return {}
    portfolio = session.get(Portfolio, job.portfolio_id)
    return {site.name: site for site in portfolio.sites} if portfolio is not None else {}


# --------------------------------------------------------------------------- running jobs
def execute_job(
    sessions: sessionmaker[Session],
    job_id: str,
    portfolio_runner: PortfolioRunner | None = None,
) -> str:
    """Run a claimed (``running``) job and store its outcome; returns the final status.

    A job cancelled meanwhile keeps its ``cancelled`` status: its result is dropped. The run is
    span ``scheduling.job``, in the trace of the request that queued the job (its stored
    ``trace_context``); a portfolio runner continues it from the current span.
    """
    with sessions.begin() as session:
        job = repo.get_job(session, job_id)
        kind, request, carrier = job.kind, dict(job.request), job.trace_context
    with span_from(carrier, "scheduling.job", job=job_id, kind=kind) as span:
        status = _execute(sessions, job_id, kind, request, portfolio_runner)
        span.set_attribute("vpp.status", status)
    return status


def fail_job(sessions: sessionmaker[Session], job_id: str, error: VppError) -> str:
    """Fail a claimed job with ``error``'s problem+json when it could not run to its end (the
    process running it died); returns the final status. A job that ended meanwhile keeps its
    status: ``cancelled``, or whatever that process stored before it died."""
    logger.error("job %s failed: %s", job_id, error.message)
    return _finish(sessions, job_id, "failed", error=error.to_problem())


def _execute(
    sessions: sessionmaker[Session],
    job_id: str,
    kind: str,
    request: dict[str, Any],
    portfolio_runner: PortfolioRunner | None,
) -> str:
    try:
        if kind == "portfolio":
            if portfolio_runner is None:
                raise VppError("portfolio jobs need a Ray runner")
            writer = ProgressWriter(sessions, job_id)
            writer.phase("starting")  # at once: starting Ray actors takes seconds
            result = portfolio_runner(request, job_id, writer)
        else:
            result = SiteProblem(request).solve().to_json()
    except JobCancelledError:
        return "cancelled"
    except VppError as err:
        return _finish(sessions, job_id, "failed", error=err.to_problem())
    except Exception as err:  # a bug or a lost actor: the job fails, the runner lives on
        logger.exception("job %s failed unexpectedly", job_id)
        problem = {
            "type": "urn:vpp:error:InternalError",
            "title": "Internal error",
            "status": 500,
            "detail": f"{type(err).__name__}: the job could not finish",
        }
        return _finish(sessions, job_id, "failed", error=problem)
    return _finish(sessions, job_id, "finished", result=result)


def _finish(
    sessions: sessionmaker[Session],
    job_id: str,
    status: str,
    result: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> str:
    """Store the outcome unless the job was cancelled meanwhile (then it keeps that)."""
    with sessions.begin() as session:
        job = repo.get_job(session, job_id, for_update=True)
        if job.status != "running":  # cancelled meanwhile: keep it so
            return str(job.status)
        if status == "finished" and result is not None:
            store_outcome(session, job, result, stored_portfolio_sites(session, job))
        else:
            repo.set_job_status(session, job_id, status, error=error)
    logger.info("job %s %s", job_id, status)
    return status


# --------------------------------------------------------------------------- direct runs
def site_devices(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's devices in the store's shape: name, type and the flex-model itself."""
    from vpp.request import parse_request

    parsed = parse_request(request)
    raw = request["flex-model"]
    raw_list = [raw] if isinstance(raw, dict) else raw
    return [
        {"name": spec.label, "type": spec.type, "flex_model": dict(raw_dev)}
        for spec, raw_dev in zip(parsed.flex_model, raw_list, strict=True)
    ]


def run_site_job(
    sessions: sessionmaker[Session],
    request: dict[str, Any],
    *,
    account_name: str,
    site_name: str,
) -> StoredRun:
    """Schedule one site now (the CLI) and store site, job, result and schedules."""
    with sessions.begin() as session:
        account = repo.get_or_create_account(session, account_name)
        site = repo.upsert_site(
            session, account, site_name, request.get("flex-context", {}), site_devices(request)
        )
        job = repo.create_job(session, "storage", request, account=account, site=site)
        repo.set_job_status(session, job.id, "running")
        job_id = job.id
    try:
        problem = SiteProblem(request)
        schedule = problem.solve()
    except VppError as err:
        with sessions.begin() as session:
            repo.set_job_status(session, job_id, "failed", error=err.to_problem())
        raise
    with sessions.begin() as session:
        store_outcome(session, repo.get_job(session, job_id), schedule.to_json())
    logger.info("job %s finished: cost %.4f EUR", job_id, schedule.cost)
    return StoredRun(job_id, schedule, problem)


def record_job(
    session: Session,
    kind: str,
    request: dict[str, Any],
    result: dict[str, Any],
    *,
    account_id: int | None,
    sites: Mapping[str, Site],
    schedule: Mapping[str, Any] | None,
) -> str:
    """A job solved outside the runner, at once, stored as :func:`execute_job` stores a
    queued one: the request, the result and the rows of ``schedule`` (the part of the
    result that is a schedule; None: none); the finished job's id."""
    account = session.get(repo.Account, account_id) if account_id is not None else None
    job = repo.create_job(session, kind, request, account=account)
    repo.set_job_status(session, job.id, "running")
    if schedule is not None:
        store_schedules(session, job, schedule, sites)
    repo.set_job_status(session, job.id, "finished", result=result)
    return str(job.id)


def record_portfolio_job(
    session: Session,
    request: dict[str, Any],
    result: dict[str, Any],
    *,
    account_id: int | None,
    sites: Mapping[str, Site],
) -> str:
    """A portfolio solved outside the runner (a UFTP reschedule) as a finished portfolio
    job with its schedules; its id."""
    return record_job(session, "portfolio", request, result, account_id=account_id,
                      sites=sites, schedule=result)


def record_bid_job(
    session: Session,
    announcement: dict[str, Any],
    bid: dict[str, Any],
    *,
    account_id: int | None,
    sites: Mapping[str, Site],
) -> str:
    """A GOPACS redispatch bid as a finished ``redispatch-bid`` job: the announcement as its
    request, the bid as its result, and the schedule that delivers the bid (none when
    nothing is deliverable) as its schedule rows; its id."""
    return record_job(session, "redispatch-bid", announcement, bid, account_id=account_id,
                      sites=sites, schedule=bid.get("schedule"))
