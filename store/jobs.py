"""Service layer between the scheduler and the store: run a site request as a stored job.

A job row is written *before* solving (status ``running``), so a crash leaves a trace; the
result and one schedule row per device (and one for the site) are written in the same
transaction that marks the job ``finished``. A ``VppError`` marks the job ``failed`` with
its problem+json body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from store import Site
from store import repository as repo
from vpp.errors import VppError
from vpp.site import SiteProblem, SiteSchedule
from vpp.telemetry import span_from

logger = logging.getLogger(__name__)


@dataclass
class StoredRun:
    job_id: str
    schedule: SiteSchedule
    problem: SiteProblem


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
    """Schedule one site and store site, job, result and schedules."""
    with sessions.begin() as session:
        account = repo.get_or_create_account(session, account_name)
        site = repo.upsert_site(
            session, account, site_name, request.get("flex-context", {}), site_devices(request)
        )
        job = repo.create_job(session, "storage", request, account=account, site=site)
        repo.set_job_status(session, job.id, "running")
        job_id, site_id = job.id, site.id
    try:
        problem = SiteProblem(request)
        schedule = problem.solve()
    except VppError as err:
        with sessions.begin() as session:
            repo.set_job_status(session, job_id, "failed", error=err.to_problem())
        raise
    result = schedule.to_json()
    with sessions.begin() as session:
        save_site_schedules(
            session, session.get(Site, site_id), repo.get_job(session, job_id), schedule
        )
        repo.set_job_status(session, job_id, "finished", result=result)
    logger.info("job %s finished: cost %.4f EUR", job_id, schedule.cost)
    return StoredRun(job_id, schedule, problem)


def save_site_schedules(session: Session, site: Any, job: Any, schedule: SiteSchedule) -> None:
    """One schedule row per device and one for the site's net power (``device_name`` None)."""
    series = [*schedule.device_power.items(), (None, schedule.site_power)]
    for name, power in series:
        repo.save_schedule(
            session,
            site=site,
            job=job,
            device_name=name,
            start=schedule.horizon.start,
            resolution=schedule.horizon.resolution,
            values=power.tolist(),
            unit="kW",
        )


class JobCancelledError(VppError):
    """The job was cancelled while it ran."""

    http_status = 409
    title = "Job cancelled"


PortfolioRunner = Callable[[dict[str, Any], str, Callable[[dict[str, Any]], None]], dict[str, Any]]
"""``(request, job_id, on_progress) -> result JSON``: how portfolio jobs are run (Ray)."""


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
            writer = _progress_writer(sessions, job_id)
            writer.phase("starting")  # at once: starting Ray actors takes seconds
            result = portfolio_runner(request, job_id, writer)
        else:
            schedule = SiteProblem(request).solve()
            result = schedule.to_json()
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
    if kind == "portfolio":
        return _finish(sessions, job_id, "finished", result=result)
    return _finish(sessions, job_id, "finished", result=result, schedule=schedule)


def _finish(
    sessions: sessionmaker[Session],
    job_id: str,
    status: str,
    schedule: SiteSchedule | None = None,
    **fields: Any,
) -> str:
    """Store the outcome (and a site job's schedules) unless the job was cancelled."""
    with sessions.begin() as session:
        job = repo.get_job(session, job_id, for_update=True)
        if job.status != "running":  # cancelled meanwhile: keep it so
            return str(job.status)
        if schedule is not None:
            save_site_schedules(session, None, job, schedule)
        repo.set_job_status(session, job_id, status, **fields)
    logger.info("job %s %s", job_id, status)
    return status


_PROGRESS_KEYS = (
    "iteration",
    "primal_residual",
    "dual_residual",
    "rho",
    "objective",
    "violation",
    "lower_bound",
    "certified_gap",
    "max_iterations",
)
PHASES = ("queued", "starting", "building", "iterating", "finalising")
"""A portfolio job's phases, in order: waiting for a runner; starting its actors; building
the site models; ADMM iterations (residuals, certified gap); the final schedules."""


class ProgressWriter:
    """Stores a portfolio job's progress: its ``phase`` (:data:`PHASES`), the server's
    iteration cap (``max-iterations``) and each ADMM iteration's residuals, bound and gap
    (kebab-case keys). Called with an iteration's entry it stores that entry (phase
    ``iterating``); :meth:`phase` moves to another phase keeping the last iteration's
    figures. Either raises :class:`JobCancelledError` once the job was cancelled."""

    def __init__(self, sessions: sessionmaker[Session], job_id: str) -> None:
        self.sessions = sessions
        self.job_id = job_id
        self.current: dict[str, Any] = {}

    def __call__(self, entry: dict[str, Any]) -> None:
        self._store("iterating", entry)

    def phase(self, name: str, fields: dict[str, Any] | None = None) -> None:
        if name not in PHASES:
            raise ValueError(f"unknown job phase {name!r}")
        self._store(name, fields or {})

    def _store(self, phase: str, entry: dict[str, Any]) -> None:
        fields = {key.replace("_", "-"): entry[key] for key in _PROGRESS_KEYS if key in entry}
        with self.sessions.begin() as session:
            job = repo.get_job(session, self.job_id)
            if job.status == "cancelled":
                raise JobCancelledError(f"job {self.job_id} was cancelled")
            self.current = {"phase": phase, **{k: v for k, v in self.current.items()
                                               if k != "phase"}, **fields}
            repo.set_job_status(session, self.job_id, "running", progress=dict(self.current))


def _progress_writer(sessions: sessionmaker[Session], job_id: str) -> ProgressWriter:
    """Store each ADMM iteration's residuals as the job's progress; stop if cancelled."""
    return ProgressWriter(sessions, job_id)
