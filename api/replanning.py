"""Recurring re-planning of a stored site, every ISP (rolling horizon, :mod:`vpp.mpc`).

:class:`Replanner` holds one site's loop. Each :meth:`Replanner.tick` at ``now`` plans the
ISP that contains ``now`` and the ``horizon`` after it, once per ISP:

* the stored site's devices and flex-context, its series read from their sensors as the
  newest beliefs (a forecast stored later wins, :mod:`api.references`), outages applied;
* each storage's ``soc-at-start`` from the newest value of its measured-SoC sensor at or
  before ``now``;
* the storages' power already ordered by earlier plans (``commit - 1`` steps ahead) held as
  ``power-fixed``;
* warm-started from the previous plan (:meth:`vpp.site.SiteProblem.warm_start`).

Each plan is stored as a finished ``storage`` scheduling job of the site, with its schedule
rows, exactly as a REST job's (:func:`actors.job_service.store_outcome`), so the dashboard,
reports and clients see it. :meth:`Replanner.run` ticks at every ISP boundary until stopped:
``vpp replan`` runs it in a process (on a cluster, as a Ray job:
``ray job submit -- vpp replan ...``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from actors.job_service import store_outcome
from api.references import AccountScope, expand_site
from store import repository as repo
from vpp.errors import RequestValidationError
from vpp.mpc import replan
from vpp.site import SiteProblem
from vpp.timeseries import iso_duration

__all__ = ["Replanner", "Replanning"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Replanning:
    """What to re-plan: a stored site, each storage's measured-SoC sensor (device name ->
    sensor id; the sensor's unit an energy), the horizon, the ISP, and how many steps of
    power are ordered at each plan (1: only the step being started)."""

    site_id: int
    soc_sensors: Mapping[str, int]
    horizon: timedelta = timedelta(hours=24)
    resolution: timedelta = timedelta(minutes=15)
    commit: int = 1

    def __post_init__(self) -> None:
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
    previous: SiteProblem | None = None
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
            site = repo.get_site(session, self.plan.site_id)
            scope = AccountScope((site.account_id,))
            request = expand_site(session, scope, self._body(start))
            self._measured_soc(session, request, now)
        self._hold_ordered(request, start)
        problem = replan(request, self._warm(start))
        result = problem.schedule_of_last().to_json()
        with self.sessions.begin() as session:
            site = repo.get_site(session, self.plan.site_id)
            job = repo.create_job(session, "storage", request, account=site.account, site=site)
            repo.set_job_status(session, job.id, "running")
            store_outcome(session, job, result)
            job_id = str(job.id)
        self.previous, self.previous_start = problem, start
        self.jobs.append(job_id)
        logger.info("site %s re-planned from %s: job %s", self.plan.site_id, start, job_id)
        return job_id

    def run(self, stop: threading.Event, clock: Any = None) -> None:
        """Tick now and at every ISP boundary until ``stop`` is set."""
        now = clock or (lambda: datetime.now(UTC))
        while not stop.is_set():
            self.tick(now())
            following = _floor(now(), self.plan.resolution) + self.plan.resolution
            stop.wait(max((following - now()).total_seconds(), 0.0))

    def _body(self, start: datetime) -> dict[str, Any]:
        return {
            "site": self.plan.site_id,
            "start": start.isoformat(),
            "duration": iso_duration(self.plan.horizon),
            "resolution": iso_duration(self.plan.resolution),
        }

    def _measured_soc(self, session: Session, request: dict[str, Any], now: datetime) -> None:
        devices = {d.get("name"): d for d in request["flex-model"]}
        for name, sensor_id in self.plan.soc_sensors.items():
            where = f"soc-sensors.{name}"
            if name not in devices:
                raise RequestValidationError.single(where, "the site has no such device")
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
        if self.previous is None or self.previous_start is None or self.plan.commit < 2:
            return
        schedule = self.previous.schedule_of_last()
        shift = round((start - self.previous_start) / self.plan.resolution)
        for device in request["flex-model"]:
            name = device.get("name")
            if name not in self.plan.soc_sensors or name not in schedule.device_power:
                continue
            power = schedule.device_power[name][shift : self.plan.commit]
            device["power-fixed"] = [
                {
                    "start": (start + i * self.plan.resolution).isoformat(),
                    "end": (start + (i + 1) * self.plan.resolution).isoformat(),
                    "value": f"{float(np.round(value, 9))} kW",
                }
                for i, value in enumerate(power)
            ]

    def _warm(self, start: datetime) -> SiteProblem | None:
        """The previous plan when it was one ISP before (a warm start shifts by one)."""
        if self.previous_start is None or start - self.previous_start != self.plan.resolution:
            return None
        return self.previous


def _floor(moment: datetime, resolution: timedelta) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    steps = (moment - epoch) // resolution
    return (epoch + steps * resolution).astimezone(moment.tzinfo)
