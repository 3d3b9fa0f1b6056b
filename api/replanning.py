"""Recurring re-planning of a stored site or portfolio, every ISP (rolling horizon,
:mod:`vpp.mpc`).

:class:`Replanner` holds one site's (or portfolio's) loop. Each :meth:`Replanner.tick` at
``now`` plans the ISP that contains ``now`` and the ``horizon`` after it, once per ISP:

* the stored site's devices and flex-context (a stored portfolio's sites, its target, its
  accepted FlexOrders as commitments), the series read from their sensors as the newest
  beliefs (a forecast stored later wins, :mod:`api.references`), outages applied;
* each storage's ``soc-at-start`` from the newest value of its measured-SoC sensor at or
  before ``now``;
* the storages' power already ordered by earlier plans (``commit - 1`` steps ahead) held as
  ``power-fixed``;
* warm-started from the previous plan (:meth:`vpp.site.SiteProblem.warm_start`; a
  portfolio is solved centralised, one exact model of all its sites, docs/portfolio.md,
  and warm-started the same way, :meth:`vpp.portfolio.CentralisedPortfolio.warm_start`).

Each plan is stored as a finished ``storage`` job of the site (a ``portfolio`` job with
each site's rows), exactly as a REST job's (:mod:`actors.job_service`), so the dashboard,
reports and clients see it. :meth:`Replanner.run` ticks at every ISP boundary until stopped:
``vpp replan`` runs it in a process (on a cluster, as a Ray job:
``ray job submit -- vpp replan ...``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from actors.job_service import record_portfolio_job, store_outcome
from api.references import AccountScope, expand_site
from api.routes.jobs import expand_portfolio
from store import repository as repo
from vpp.errors import RequestValidationError, VppError
from vpp.mpc import replan
from vpp.portfolio import CentralisedPortfolio, validate_portfolio
from vpp.site import SiteProblem
from vpp.timeseries import iso_duration

__all__ = ["Replanner", "Replanning"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Replanning:
    """What to re-plan: a stored site (``site_id``) or a stored portfolio (``portfolio_id``,
    with its ``target``, docs/portfolio.md), each storage's measured-SoC sensor (device name
    -> sensor id; a portfolio's as ``site/device``; the sensor's unit an energy), the horizon,
    the ISP, and how many steps of power are ordered at each plan (1: only the step being
    started)."""

    site_id: int | None
    soc_sensors: Mapping[str, int]
    horizon: timedelta = timedelta(hours=24)
    resolution: timedelta = timedelta(minutes=15)
    commit: int = 1
    portfolio_id: int | None = None
    target: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if (self.site_id is None) == (self.portfolio_id is None):
            raise RequestValidationError.single("site", "give a site or a portfolio, not both")
        if self.target is not None and self.portfolio_id is None:
            raise RequestValidationError.single("target", "a portfolio's; give a portfolio")
        if self.resolution <= timedelta(0):
            raise RequestValidationError.single("resolution", "must be positive")
        steps = self.horizon / self.resolution
        if steps < 2 or steps != int(steps):
            raise RequestValidationError.single(
                "horizon", "must be at least two ISPs and a whole number of them"
            )
        if not 1 <= self.commit <= steps:
            raise RequestValidationError.single("commit", "must be 1 to the horizon's ISPs")


@dataclass
class Replanner:
    """One stored site's re-planning loop; keeps the previous plan for the ordered power
    and the warm start."""

    sessions: sessionmaker[Session]
    plan: Replanning
    previous: SiteProblem | CentralisedPortfolio | None = None
    previous_result: dict[str, Any] | None = None
    previous_start: datetime | None = None
    jobs: list[str] = field(default_factory=list)

    def tick(self, now: datetime) -> str | None:
        """Plan the ISP containing ``now`` unless it is planned already; the stored job's
        id (None: nothing to do)."""
        if now.tzinfo is None:
            raise RequestValidationError.single("now", "must be timezone-aware")
        start = _floor(now, self.plan.resolution)
        if self.previous_start is not None and start <= self.previous_start:
            return None
        with self.sessions.begin() as session:
            request = self._request(session, start)
            self._measured_soc(session, request, now)
        self._hold_ordered(request, start)
        previous = self._warm(start)
        problem: SiteProblem | CentralisedPortfolio
        if self.plan.portfolio_id is None:
            assert previous is None or isinstance(previous, SiteProblem)
            problem = replan(request, previous)
            result = problem.schedule_of_last().to_json()
        else:  # centralised: one exact model of every site (docs/portfolio.md)
            problem = CentralisedPortfolio(validate_portfolio(request))
            if isinstance(previous, CentralisedPortfolio):
                problem.warm_start(previous, 1)
            result = problem.solve().to_json()
        job_id = self._store(request, result)
        self.previous, self.previous_result, self.previous_start = problem, result, start
        self.jobs.append(job_id)
        logger.info("%s re-planned from %s: job %s", self._what(), start, job_id)
        return job_id

    def run(
        self,
        stop: threading.Event,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        """Tick now and at every ISP boundary until ``stop`` is set (``clock`` and ``sleep``:
        the wall clock and ``stop.wait`` unless given). An ISP that cannot be planned (a
        domain error: no measurement, an infeasible request...) is stored as a failed job
        naming the cause, and the next ISP is planned again; any other exception ends the
        loop."""
        now = clock or (lambda: datetime.now(UTC))
        pause = sleep or stop.wait
        while not stop.is_set():
            moment = now()
            try:
                self.tick(moment)
            except VppError as err:  # no plan for this ISP: a failed job says why; next ISP
                self._fail(moment, err)
            following = _floor(moment, self.plan.resolution) + self.plan.resolution
            pause(max((following - now()).total_seconds(), 0.0))

    def _fail(self, now: datetime, err: VppError) -> None:
        """Store the ISP's failure as a failed job (its request: what was asked)."""
        start = _floor(now, self.plan.resolution)
        body = self._window(start)
        with self.sessions.begin() as session:
            if self.plan.site_id is not None:
                site = repo.get_site(session, self.plan.site_id)
                job = repo.create_job(
                    session, "storage", {**body, "site": site.id}, account=site.account, site=site
                )
            else:
                portfolio = repo.get_portfolio(session, self._portfolio_id())
                job = repo.create_job(
                    session, "portfolio", {**body, "portfolio": portfolio.id},
                    account=session.get(repo.Account, portfolio.account_id), portfolio=portfolio,
                )  # fmt: skip
            repo.set_job_status(session, job.id, "running")
            repo.set_job_status(session, job.id, "failed", error=err.to_problem())
            self.jobs.append(str(job.id))
        self.previous_start = start  # this ISP is done with; the next one plans again
        logger.error("%s: no plan from %s: %s (job %s)", self._what(), start, err.message, job.id)

    def _portfolio_id(self) -> int:
        assert self.plan.portfolio_id is not None  # Replanning names a site or a portfolio
        return self.plan.portfolio_id

    def _what(self) -> str:
        if self.plan.portfolio_id is None:
            return f"site {self.plan.site_id}"
        return f"portfolio {self.plan.portfolio_id}"

    def _window(self, start: datetime) -> dict[str, Any]:
        """The plan's ``start``, ``duration`` and ``resolution`` as a request has them."""
        return {
            "start": start.isoformat(),
            "duration": iso_duration(self.plan.horizon),
            "resolution": iso_duration(self.plan.resolution),
        }

    def _request(self, session: Session, start: datetime) -> dict[str, Any]:
        body = self._window(start)
        if self.plan.site_id is not None:
            site = repo.get_site(session, self.plan.site_id)
            return expand_site(session, AccountScope((site.account_id,)), {**body, "site": site.id})
        portfolio = repo.get_portfolio(session, self._portfolio_id())
        scope = AccountScope((portfolio.account_id,))
        if self.plan.target is not None:
            body["target"] = dict(self.plan.target)
        body["portfolio"] = portfolio.id
        expanded, _ = expand_portfolio(session, scope, [portfolio.account_id], body)
        return expanded

    def _store(self, request: dict[str, Any], result: dict[str, Any]) -> str:
        with self.sessions.begin() as session:
            if self.plan.site_id is not None:
                site = repo.get_site(session, self.plan.site_id)
                job = repo.create_job(session, "storage", request, account=site.account, site=site)
                repo.set_job_status(session, job.id, "running")
                store_outcome(session, job, result)
                return str(job.id)
            portfolio = repo.get_portfolio(session, self._portfolio_id())
            sites = {site.name: site for site in portfolio.sites}
            return record_portfolio_job(
                session, request, result, account_id=portfolio.account_id, sites=sites
            )

    def _measured_soc(self, session: Session, request: dict[str, Any], now: datetime) -> None:
        devices = _devices(request)
        for name, sensor_id in self.plan.soc_sensors.items():
            where = f"soc-sensors.{name}"
            if name not in devices:
                raise RequestValidationError.single(where, f"{self._what()} has no such device")
            sensor = repo.get_sensor(session, sensor_id)
            after = now + timedelta(microseconds=1)  # the end is exclusive; "at now" counts
            values = repo.read_time_series(session, sensor, now - timedelta(days=1), after)
            if values.empty:
                raise RequestValidationError.single(
                    where, f"sensor {sensor_id} has no value in the day before {now.isoformat()}"
                )
            devices[name]["soc-at-start"] = f"{float(values.iloc[-1])} {sensor.unit}"

    def _hold_ordered(self, request: dict[str, Any], start: datetime) -> None:
        """``power-fixed`` for the storages' steps the previous plan ordered."""
        if self.previous_result is None or self.previous_start is None or self.plan.commit < 2:
            return
        powers = _powers(self.previous_result)
        shift = round((start - self.previous_start) / self.plan.resolution)
        for name, device in _devices(request).items():
            if name not in self.plan.soc_sensors or name not in powers:
                continue
            device["power-fixed"] = [
                {
                    "start": (start + i * self.plan.resolution).isoformat(),
                    "end": (start + (i + 1) * self.plan.resolution).isoformat(),
                    "value": f"{round(float(value), 9)} kW",
                }
                for i, value in enumerate(powers[name][shift : self.plan.commit])
            ]

    def _warm(self, start: datetime) -> SiteProblem | CentralisedPortfolio | None:
        """The previous plan when it was one ISP before (a warm start shifts by one)."""
        if self.previous_start is None or start - self.previous_start != self.plan.resolution:
            return None
        return self.previous


def _devices(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The request's device dicts by name; a portfolio's by ``site/device``."""
    if "sites" not in request:
        return {str(d.get("name")): d for d in request["flex-model"]}
    return {
        f"{entry['id']}/{d.get('name')}": d
        for entry in request["sites"]
        for d in entry["flex-model"]
    }


def _powers(result: dict[str, Any]) -> dict[str, list[float]]:
    """Each device's power in a result, keyed as :func:`_devices` keys its request."""
    if "sites" not in result:
        return {d["name"]: d["power"]["values"] for d in result["devices"]}
    return {
        f"{entry['id']}/{d['name']}": d["power"]["values"]
        for entry in result["sites"]
        for d in entry["devices"]
    }


def _floor(moment: datetime, resolution: timedelta) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    steps = (moment - epoch) // resolution
    return (epoch + steps * resolution).astimezone(moment.tzinfo)
