"""Scheduling jobs: ``POST /scheduling-job/{storage,shifting,portfolio}``,
``GET``/``DELETE /scheduling-job/{id}`` (FlexMeasures' planned REST-like jobs API)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response

from api import pages, schemas
from api.deps import CallerDep, KnownQuery, OperatorDep, SessionDep
from api.fields import Id, IsoDateTime, is_id, reject_nul
from api.limits import check_job, check_portfolio_sites
from api.problems import errors, link
from api.references import Scope, expand_sensors, expand_site, visible_site
from api.uftp.flex import add_commitments
from store import Portfolio, SchedulingJob, Site
from store import repository as repo
from vpp.errors import ConflictError, NotFoundError, RequestValidationError
from vpp.portfolio import validate_portfolio
from vpp.site import validate_site_request
from vpp.telemetry import inject

__all__ = [
    "JobAccepted",
    "JobKind",
    "JobStatus",
    "Json",
    "delete_job",
    "expand_portfolio",
    "get_job",
    "list_jobs",
    "post_portfolio",
    "post_shifting",
    "post_storage",
    "router",
]

router = APIRouter(prefix="/api/v1", tags=["scheduling jobs"], dependencies=[KnownQuery])

Json = Annotated[
    dict[str, Any],
    Body(
        openapi_examples={
            "battery": {
                "summary": "one battery (see README)",
                "value": {
                    "start": "2026-03-02T00:00:00+01:00",
                    "duration": "PT24H",
                    "resolution": "PT15M",
                    "flex-model": {
                        "soc-at-start": "10 kWh",
                        "soc-max": "40 kWh",
                        "power-capacity": "10 kW",
                    },
                    "flex-context": {"consumption-price": "50 EUR/MWh"},
                },
            },
            "stored site": {
                "summary": "a stored site with overrides",
                "value": {
                    "site": 1,
                    "start": "2026-03-02T00:00:00+01:00",
                    "duration": "PT24H",
                    "flex-context": {"consumption-price": {"sensor": 3}},
                },
            },
        }
    ),
]


JobAccepted = schemas.JobAccepted

# what a job's POST reads: a stored site, portfolio or sensor named in the body may be
# another account's or missing (404); the caller must be an operator (403)
_POST_ERRORS = errors(403, 404)

def _accept(
    request: Request,
    response: Response,
    caller: Any,
    session: Any,
    kind: str,
    body: dict[str, Any],
    portfolio: Portfolio | None = None,
    site: Site | None = None,
) -> JobAccepted:
    reject_nul(body)  # PostgreSQL's jsonb refuses U+0000
    job = repo.create_job(
        session,
        kind,
        body,
        account=session.get(repo.Account, caller.account_id),
        portfolio=portfolio,  # the job list filters by it (?portfolio=)
        site=site,  # and by this (?site=)
        trace_context=inject(),  # the job's spans continue this request's trace
    )
    job_id = job.id
    session.commit()  # the runner must find the job when it is kicked
    request.app.state.dispatcher.kick()
    response.headers["Location"] = f"/api/v1/scheduling-job/{job_id}"
    return JobAccepted(job=job_id, status="queued")


@router.post("/scheduling-job/storage", status_code=202, response_model=JobAccepted,
             responses=_POST_ERRORS)
def post_storage(
    body: Json, request: Request, response: Response, caller: OperatorDep, session: SessionDep
) -> JobAccepted:
    """Schedule one site (storage and any other devices); its request, or a stored site."""
    check_job(body)  # before sensors are read for a horizon too long to schedule
    expanded = expand_site(session, caller, body)
    check_job(expanded)  # a stored site's devices count too
    validate_site_request(expanded)  # 422 with field paths before anything is queued
    site = _stored_site(session, caller, body)
    return _accept(request, response, caller, session, "storage", expanded, site=site)


@router.post("/scheduling-job/shifting", status_code=202, response_model=JobAccepted,
             responses=_POST_ERRORS)
def post_shifting(
    body: Json, request: Request, response: Response, caller: OperatorDep, session: SessionDep
) -> JobAccepted:
    """Schedule a shiftable process (devices default to ``type: shiftable`` here)."""
    raw = dict(body)
    model = raw.get("flex-model")
    if isinstance(model, dict):
        raw["flex-model"] = {"type": "shiftable", **model}
    elif isinstance(model, list):
        raw["flex-model"] = [
            {"type": "shiftable", **d} if isinstance(d, dict) else d for d in model
        ]
    check_job(raw)
    expanded = expand_site(session, caller, raw)
    check_job(expanded)
    parsed = validate_site_request(expanded)
    if not any(spec.type == "shiftable" for spec, _, _ in parsed.devices):
        raise RequestValidationError.single("flex-model", "a shifting job needs a shiftable device")
    site = _stored_site(session, caller, body)
    return _accept(request, response, caller, session, "shifting", expanded, site=site)


@router.post("/scheduling-job/portfolio", status_code=202, response_model=JobAccepted,
             responses=_POST_ERRORS)
def post_portfolio(
    body: Json, request: Request, response: Response, caller: OperatorDep, session: SessionDep
) -> JobAccepted:
    """Schedule a portfolio toward its target with ADMM on Ray; or a stored portfolio:
    ``{"portfolio": id, "start", "duration", "flex-context", "target"}``."""
    expanded, stored = expand_portfolio(session, caller, list(caller.visible), body)
    validate_portfolio(expanded)
    return _accept(request, response, caller, session, "portfolio", expanded, stored)


def expand_portfolio(
    session: Any, caller: Scope, accounts: list[int], body: dict[str, Any]
) -> tuple[dict[str, Any], Portfolio | None]:
    """A portfolio request as it is solved: a stored portfolio's sites (``"portfolio": id``)
    as entries with their outages, the accepted FlexOrders of ``accounts`` as commitments,
    every sensor reference filled in; and the stored portfolio, if any."""
    raw = dict(body)
    check_job(raw)
    if "portfolio" in raw:
        portfolio_id = raw.pop("portfolio")
        stored = session.get(Portfolio, portfolio_id) if is_id(portfolio_id) else None
        if stored is None or not caller.may_see(stored.account_id):
            raise NotFoundError(f"no portfolio {body.get('portfolio')!r}")
        check_portfolio_sites(len(stored.sites), "portfolio")
        raw["sites"] = [
            {"id": site.name, **_site_body(session, caller, site.id, raw)} for site in stored.sites
        ]
        points = {p for p in [stored.congestion_point, *(s.congestion_point for s in stored.sites)]
                  if p}
    else:
        stored, points = None, set()
    check_job(raw)  # a stored portfolio's sites and devices count too
    raw = add_commitments(session, accounts, raw, points)  # accepted FlexOrders
    return expand_sensors(session, caller, raw), stored


def _stored_site(session: Any, caller: Any, body: dict[str, Any]) -> Site | None:
    """The stored site a single-site request names (``"site": id``), if any."""
    return visible_site(session, caller, body["site"]) if "site" in body else None


def _site_body(session: Any, caller: Any, site_id: int, window: dict[str, Any]) -> dict[str, Any]:
    """A stored portfolio's site as its entry, its outages over ``window``'s horizon as its
    devices' unavailability."""
    from api.references import site_as_request, without_outages

    site = visible_site(session, caller, site_id)
    body = site_as_request(site)
    body["flex-model"] = without_outages(session, site, {**window, **body})
    return body


def _visible_job(session: Any, caller: Any, job_id: str) -> SchedulingJob:
    try:
        uuid.UUID(job_id)
    except ValueError:  # not an id we ever made (and, with a NUL, not one PostgreSQL reads)
        raise NotFoundError(f"no scheduling job {job_id}") from None
    job: SchedulingJob | None = session.get(SchedulingJob, job_id)
    if job is None or not caller.may_see(job.account_id):
        raise NotFoundError(f"no scheduling job {job_id}")
    return job


@router.get(
    "/scheduling-job/{job_id}",
    response_model=schemas.Job,
    response_model_exclude_unset=True,
    responses=errors(404),
)
def get_job(job_id: str, caller: CallerDep, session: SessionDep) -> dict[str, Any]:
    """Status, progress while running, the result when finished, the error when failed."""
    job = _visible_job(session, caller, job_id)
    body: dict[str, Any] = {
        "job": job.id,
        "kind": job.kind,
        "status": job.status,
        "created": job.created_at.isoformat(),
        "started": job.started_at.isoformat() if job.started_at else None,
        "finished": job.finished_at.isoformat() if job.finished_at else None,
    }
    if job.progress:
        body["progress"] = job.progress
    elif job.kind == "portfolio" and job.status == "queued":
        body["progress"] = {"phase": "queued"}  # the phases: store.jobs.PHASES
    if job.status == "finished":
        body["result"] = job.result
    if job.status == "failed":
        body["error"] = job.error
    return body


@router.delete(
    "/scheduling-job/{job_id}",
    status_code=204,
    responses=errors(403, 404, e409="the job has an outcome already; it cannot be cancelled"),
)
def delete_job(job_id: str, caller: OperatorDep, session: SessionDep) -> Response:
    """Cancel a job that is not computed yet; 409 once it has an outcome."""
    job = _visible_job(session, caller, job_id)
    if job.status in repo.TERMINAL_STATUSES:
        raise ConflictError(f"job {job_id} is {job.status}; it cannot be cancelled")
    repo.set_job_status(session, job_id, "cancelled")
    return Response(status_code=204)


JobStatus = Literal["queued", "running", "finished", "failed", "cancelled"]


JobKind = Literal["storage", "shifting", "portfolio", "redispatch-bid", "forecasting"]


@router.get("/scheduling-jobs", response_model=list[schemas.JobSummary])
def list_jobs(
    request: Request,
    response: Response,
    caller: CallerDep,
    session: SessionDep,
    status: JobStatus | None = None,
    kind: JobKind | None = None,
    portfolio: Annotated[Id | None, Query(description="jobs of a stored portfolio")] = None,
    site: Annotated[Id | None, Query(description="jobs of a stored site, its portfolios' too")]
    = None,
    created_after: Annotated[IsoDateTime | None, Query(alias="created-after")] = None,
    created_before: Annotated[IsoDateTime | None, Query(alias="created-before")] = None,
    cursor: pages.Cursor = None,
    limit: pages.Limit = 100,
) -> list[dict[str, Any]]:
    """Jobs newest first, a page at a time: the next page's cursor is in the ``Link`` and
    ``X-Next-Cursor`` headers (absent on the last page). Filters: ``status``, ``kind``,
    ``portfolio``, ``site`` (jobs that scheduled the stored site, alone or in a stored
    portfolio), ``created-after`` (inclusive), ``created-before`` (exclusive)."""
    pages.check_range(created_after, created_before, ("created-after", "created-before"))
    key = pages.decode("scheduling-jobs", cursor, (datetime, str))
    limit = min(limit, pages.MAX_LIMIT)
    jobs = repo.list_jobs(
        session,
        list(caller.visible),
        status=status,
        limit=limit + 1,  # one more: is there a next page?
        kind=kind,
        portfolio_id=portfolio,
        site_id=site,
        created_after=created_after,
        created_before=created_before,
        after=(key[0], key[1]) if key is not None else None,
    )
    more, jobs = len(jobs) > limit, jobs[:limit]
    last = jobs[-1] if more else None
    pages.link_next(
        request,
        response,
        pages.encode("scheduling-jobs", [last.created_at.isoformat(), last.id]) if last else None,
        limit,
    )
    return [
        {
            "job": j.id,
            "kind": j.kind,
            "status": j.status,
            "created": j.created_at.isoformat(),
            "started": j.started_at.isoformat() if j.started_at else None,
            "finished": j.finished_at.isoformat() if j.finished_at else None,
        }
        for j in jobs
    ]


for _kind in ("storage", "shifting", "portfolio"):
    _job = ("GET", "/api/v1/scheduling-job/{job_id}")
    _source = ("POST", f"/api/v1/scheduling-job/{_kind}", 202)
    link(_source, "GetJob", _job, job_id="$response.body#/job")
    link(_source, "CancelJob", ("DELETE", "/api/v1/scheduling-job/{job_id}"),
         job_id="$response.body#/job")
    link(_source, "GetChart", ("GET", "/api/v1/scheduling-job/{job_id}/chart"),
         job_id="$response.body#/job")
