"""KPIs of a finished scheduling job: ``GET /api/v1/scheduling-job/{id}/report``.

Recomputed from the job's stored result and request by :func:`vpp.kpi.site_kpis` (module
docstring: the definitions): a site job's KPIs, or a portfolio job's per site and summed.

Over a period: ``GET /api/v1/reports?start&end[&site][&portfolio]`` aggregates the caller's
finished jobs whose schedules fall in the period (:mod:`vpp.reports`: the newest job per
site wins per step), ``GET /api/v1/reports/chart`` is its Vega-Lite dashboard
(:mod:`api.dashboard`) and ``GET /ui/reports`` the page that renders it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import problems, schemas
from api.dashboard import dashboard_spec
from api.deps import Caller, CallerDep, KnownQuery, SessionDep
from api.fields import Id, IsoDateTime
from api.routes.charts import PAGE_HEADERS, STATIC_DIR
from api.routes.jobs import _visible_job
from store.tables import Portfolio, Schedule, SchedulingJob, Site
from vpp.errors import RequestValidationError
from vpp.kpi import StepKpis, site_kpis
from vpp.portfolio import parse_portfolio
from vpp.reports import ScheduleSource, check_period, period_report, source_kpis

__all__ = [
    "KPI_CACHE",
    "LOOKBACK",
    "MAX_REPORT_JOBS",
    "KpiCache",
    "get_period_chart",
    "get_period_report",
    "get_report",
    "period_sources",
    "portfolio_kpis",
    "reports_page",
    "router",
]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["scheduling jobs"])

_SUMMED = ("energy-cost", "baseline-cost", "savings", "import", "export", "production",
           "consumption")  # fmt: skip


@router.get(
    "/api/v1/scheduling-job/{job_id}/report",
    dependencies=[KnownQuery],
    responses={
        200: {
            "description": "The job's KPIs (docs/reports.md)",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        **problems.errors(
            e404="No such job, or not visible to the caller",
            e409="The job is not finished (`job-status` says what it is)",
        ),
    },
)
def get_report(job_id: str, request: Request, caller: CallerDep, session: SessionDep) -> Any:
    """KPIs of the finished job: energy cost, savings against a price-blind schedule of the
    same devices, import/export, self-consumption and self-sufficiency, peaks, penalties."""
    job = _visible_job(session, caller, job_id)
    if job.status != "finished" or not job.result:
        return problems.problem(
            409,
            "Conflict",
            f"job {job_id} is {job.status}; its report exists once it has finished",
            request,
            **{"job-status": job.status},
        )
    if job.kind == "portfolio":
        body = portfolio_kpis(job.request, job.result)
    elif job.kind in ("storage", "shifting"):
        body = {"site": site_kpis(job.request, job.result)}
    else:
        return problems.problem(
            409, "Conflict", f"a {job.kind} job has no schedule to report on", request
        )
    return JSONResponse({"job": job.id, **body})


def portfolio_kpis(request: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """Each site's KPIs and the portfolio's: sums, the largest peaks and the shares of the
    sums (peaks of the sum would need the sites' powers at once: ``result`` has them)."""
    parsed = parse_portfolio(request)
    index = {s.id: i for i, s in enumerate(parsed.sites)}
    sites = {
        entry["id"]: site_kpis(parsed.site_request(index[entry["id"]]), entry)
        for entry in result["sites"]
    }
    total: dict[str, Any] = {
        key: {
            "value": round(sum(k[key]["value"] for k in sites.values()), 9),
            "unit": next(iter(sites.values()))[key]["unit"],
        }
        for key in _SUMMED
    }
    power = result["portfolio"]["power"]["values"]
    total["peak-import"] = {"value": max([0.0, *power]), "unit": "kW"}
    total["peak-export"] = {"value": max([0.0, *(-p for p in power)]), "unit": "kW"}
    production, consumption = total["production"]["value"], total["consumption"]["value"]
    exported, imported = total["export"]["value"], total["import"]["value"]
    total["self-consumption"] = (
        None if production <= 1e-12 else round(max(0.0, 1 - exported / production), 9)
    )
    total["self-sufficiency"] = (
        None if consumption <= 1e-12 else round(min(1.0, max(0.0, 1 - imported / consumption)), 9)
    )
    return {"portfolio": total, "sites": sites}


# -- over a period ------------------------------------------------------------------------------
LOOKBACK = timedelta(days=31)
"""A schedule that starts this long before a period's start is not looked for in it."""
MAX_REPORT_JOBS = 500
"""The most jobs one report recomputes (each one's baseline is re-solved)."""

_SCHEDULED = ("storage", "shifting", "portfolio")


class KpiCache:
    """The per-step KPIs of the newest ``size`` site schedules reported on, by job and site.

    A finished job's request and result never change, so neither do its KPIs; re-solving
    its baseline (most of a report's time) once per process is enough: the dashboard page
    and a report of the same period then cost one set of solves, not two."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str], StepKpis] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, source: ScheduleSource) -> StepKpis:
        key = (source.job, source.site)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        kpis = source_kpis(source)  # outside the lock: other reports go on meanwhile
        with self._lock:
            self._items[key] = kpis
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return kpis


KPI_CACHE = KpiCache(2000)
"""The process's cache (about 10 kB a day-long 15-minute schedule)."""

Start = Annotated[IsoDateTime, Query(description="the period's start (inclusive), with offset")]
End = Annotated[IsoDateTime, Query(description="the period's end (exclusive), at most 366 days on")]
SiteFilter = Annotated[Id | None, Query(description="only this stored site")]
PortfolioFilter = Annotated[Id | None, Query(description="only the sites of this portfolio")]


@router.get(
    "/api/v1/reports",
    dependencies=[KnownQuery],
    response_model=schemas.PeriodReport,
    response_model_exclude_unset=True,
    tags=["reports"],
)
def get_period_report(
    caller: CallerDep,
    session: SessionDep,
    start: Start,
    end: End,
    site: SiteFilter = None,
    portfolio: PortfolioFilter = None,
) -> dict[str, Any]:
    """KPIs over ``[start, end)`` per site and summed, from the caller's finished jobs whose
    schedules fall in it; where a site's schedules overlap, the newest job wins per step
    (docs/reports.md). Optionally only a stored ``site``, or a stored ``portfolio``'s sites."""
    check_period(start, end)
    sources = period_sources(session, caller, start, end, site=site, portfolio=portfolio)
    return period_report(sources, start, end, KPI_CACHE)


@router.get(
    "/api/v1/reports/chart",
    dependencies=[KnownQuery],
    responses={
        200: {
            "description": "A Vega-Lite v5 dashboard of the period's KPIs, data inline",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
    tags=["reports"],
)
def get_period_chart(
    caller: CallerDep,
    session: SessionDep,
    start: Start,
    end: End,
    site: SiteFilter = None,
    portfolio: PortfolioFilter = None,
) -> JSONResponse:
    """The period report (``GET /api/v1/reports``) as a Vega-Lite v5 dashboard: per site,
    cost against the baseline, savings, self-consumption and self-sufficiency."""
    check_period(start, end)
    sources = period_sources(session, caller, start, end, site=site, portfolio=portfolio)
    return JSONResponse(dashboard_spec(period_report(sources, start, end, KPI_CACHE)))


@router.get("/ui/reports", response_class=HTMLResponse, include_in_schema=False)
def reports_page() -> HTMLResponse:
    """The dashboard page; it holds no data (the script reads the period from its query and
    the token from its fragment)."""
    return HTMLResponse((STATIC_DIR / "reports.html").read_text("utf-8"), headers=PAGE_HEADERS)


def period_sources(
    session: Session,
    caller: Caller,
    start: datetime,
    end: datetime,
    *,
    site: int | None = None,
    portfolio: int | None = None,
) -> list[ScheduleSource]:
    """The site schedules of the caller's finished jobs that may fall in ``[start, end)``
    (their schedules start in ``[start - LOOKBACK, end)``), of ``site`` and of
    ``portfolio``'s sites when given (others' sites and portfolios: none, as in the job list)."""
    wanted = _wanted_sites(session, caller, site, portfolio)
    jobs = _period_jobs(session, caller, start, end, wanted)
    names = _stored_entries(session, [job.id for job in jobs if job.kind == "portfolio"])
    sources = [s for job in jobs for s in _job_sources(session, job, names.get(job.id, {}))]
    if wanted is not None:
        sources = [s for s in sources if s.site_id in wanted]
    logger.debug("report %s to %s: %d jobs, %d site schedules", start, end, len(jobs), len(sources))
    return sources


def _wanted_sites(
    session: Session, caller: Caller, site: int | None, portfolio: int | None
) -> set[int] | None:
    """The stored site ids asked for (None: every site)."""
    wanted: set[int] | None = None
    if site is not None:
        wanted = {site}
    if portfolio is not None:
        stored = session.get(Portfolio, portfolio)
        members = (
            {s.id for s in stored.sites}
            if stored is not None and caller.may_see(stored.account_id)
            else set()
        )
        wanted = members if wanted is None else wanted & members
    return wanted


def _period_jobs(
    session: Session, caller: Caller, start: datetime, end: datetime, wanted: set[int] | None
) -> list[SchedulingJob]:
    rows = select(Schedule.job_id).where(Schedule.start < end, Schedule.start >= start - LOOKBACK)
    if wanted is not None:
        rows = rows.where(Schedule.site_id.in_(sorted(wanted)))
    query = (
        select(SchedulingJob)
        .where(
            SchedulingJob.account_id.in_(list(caller.visible)),
            SchedulingJob.status == "finished",
            SchedulingJob.kind.in_(_SCHEDULED),
            SchedulingJob.id.in_(rows),
        )
        .order_by(SchedulingJob.created_at.desc(), SchedulingJob.id)
        .limit(MAX_REPORT_JOBS + 1)
    )
    jobs = list(session.scalars(query))
    if len(jobs) > MAX_REPORT_JOBS:
        raise RequestValidationError.single(
            "start",
            f"more than {MAX_REPORT_JOBS} jobs scheduled this period; ask for a shorter "
            "period or one site",
        )
    return jobs


def _stored_entries(session: Session, job_ids: list[str]) -> dict[str, dict[str, Site]]:
    """Per portfolio job, its entries that are stored sites (by name, as they are stored:
    actors.job_service.store_schedules)."""
    if not job_ids:
        return {}
    rows = session.execute(
        select(Schedule.job_id, Site)
        .join(Site, Schedule.site_id == Site.id)
        .where(Schedule.job_id.in_(job_ids), Schedule.device_name.is_(None))
    )
    out: dict[str, dict[str, Site]] = {}
    for job_id, stored in rows:
        out.setdefault(str(job_id), {})[stored.name] = stored
    return out


def _job_sources(
    session: Session, job: SchedulingJob, stored: dict[str, Site]
) -> list[ScheduleSource]:
    """A finished job's site schedules as report sources."""
    assert job.result is not None  # finished jobs have one (store.repository)
    if job.kind != "portfolio":
        own = session.get(Site, job.site_id) if job.site_id is not None else None
        key, name = (f"site:{own.id}", own.name) if own else (f"job:{job.id}", f"job {job.id}")
        site_id = own.id if own else None
        return [ScheduleSource(key, name, site_id, job.id, job.created_at, job.request, job.result)]
    parsed = parse_portfolio(job.request)
    index = {s.id: i for i, s in enumerate(parsed.sites)}
    out = []
    window = {k: job.result[k] for k in ("start", "resolution")}
    for entry in job.result["sites"]:
        site = stored.get(str(entry["id"]))
        key = f"site:{site.id}" if site else f"job:{job.id}/{entry['id']}"
        name = site.name if site else f"{entry['id']} (job {job.id})"
        request = parsed.site_request(index[entry["id"]])
        site_id = site.id if site else None
        out.append(
            ScheduleSource(key, name, site_id, job.id, job.created_at, request, {**window, **entry})
        )
    return out
