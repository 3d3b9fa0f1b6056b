"""Forecasting jobs: a stored sensor's next values, forecast from its history and stored back
on it as beliefs (docs/forecasting.md).

:func:`run_forecast` reads the sensor's measured history (every belief but earlier
forecasts), takes holiday annotations of the sensor, its site and its account (and, if
asked, a country's public holidays) as a feature, forecasts with
:func:`vpp.forecast.forecast` and stores

* the point forecast on the sensor as beliefs of source ``forecast`` with the belief time
  ``now``: a schedule reading the sensor (``{"sensor": id}``) takes the newest belief per
  step, so the newest forecast, until a measurement stored later replaces it; with
  ``{"sensor": id, "as-of": t}`` it takes the forecast known at ``t``;
* the job, a finished ``forecasting`` job whose result holds the point forecast and the
  prediction interval (``lower``, ``upper``) with its ``coverage``.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from pydantic import AwareDatetime, Field
from sqlalchemy.orm import Session

from actors.job_service import record_job
from api.fields import Id
from api.references import Scope, visible_sensor
from store import Sensor
from store import annotations as notes
from store import repository as repo
from vpp.device import Spec
from vpp.errors import FieldIssue, RequestValidationError
from vpp.forecast import forecast
from vpp.timeseries import iso_duration

__all__ = ["FORECAST_SOURCE", "ForecastingIn", "run_forecast"]

logger = logging.getLogger(__name__)

FORECAST_SOURCE = "forecast"
MAX_DURATION = timedelta(days=14)
MAX_HISTORY = timedelta(days=366)


class ForecastingIn(Spec):
    """``POST /api/v1/forecasting-job``'s body."""

    sensor: Id
    start: AwareDatetime | None = Field(
        default=None, description="first forecast step (default: after the last measurement)"
    )
    duration: timedelta = Field(default=timedelta(hours=24), description="ISO 8601, <= P14D")
    history: timedelta = Field(default=timedelta(days=28), description="ISO 8601, <= P366D")
    coverage: float = Field(default=0.8, gt=0.0, lt=1.0)
    timezone: str = Field(default="UTC", max_length=64, description="IANA, for the calendar")
    country: str | None = Field(
        default=None, max_length=8, description="ISO 3166 code: its public holidays"
    )


def run_forecast(
    session: Session, caller: Scope, body: ForecastingIn, now: datetime | None = None
) -> tuple[str, dict[str, Any]]:
    """Forecast, store the beliefs and the finished job; the job's id and its result."""
    made = now or datetime.now(UTC)
    sensor = visible_sensor(session, caller, body.sensor)
    zone = _zone(body.timezone)
    _check_spans(body, sensor.resolution)
    start = body.start or _after_last_measurement(session, sensor, made)
    history = _history(session, sensor, start, body.history, zone)
    steps = int(body.duration / sensor.resolution)
    holidays = _holidays(session, sensor, history.index[0], start + body.duration, zone)
    result = forecast(
        history, start=start.astimezone(zone), steps=steps, resolution=sensor.resolution,
        coverage=body.coverage, country=body.country, holidays=holidays,
    )  # fmt: skip
    values = [round(float(v), 6) for v in result.mean]  # stored as returned
    repo.save_time_series(
        session, sensor, start, sensor.resolution, values, FORECAST_SOURCE, belief_time=made
    )
    out = {
        "sensor": sensor.id,
        "start": start.astimezone(UTC).isoformat(),
        "resolution": iso_duration(sensor.resolution),
        "belief-time": made.astimezone(UTC).isoformat(),
        "model": result.model,
        "coverage": result.coverage,
        "unit": sensor.unit,
        "values": values,
        "lower": [round(float(v), 6) for v in result.lower],
        "upper": [round(float(v), 6) for v in result.upper],
        "history-values": int(history.notna().sum()),
    }
    request = body.model_dump(mode="json", by_alias=True, exclude_none=True)
    request["start"] = out["start"]
    job_id = record_job(
        session, "forecasting", request, out, account_id=sensor.account_id, sites={},
        schedule=None,
    )  # fmt: skip
    logger.info("sensor %s: %d steps forecast from %s (job %s)", sensor.id, steps, start, job_id)
    return job_id, out


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RequestValidationError.single("timezone", f"{name!r} is no IANA timezone") from None


def _check_spans(body: ForecastingIn, resolution: timedelta) -> None:
    issues = []
    for key, span, most in (("duration", body.duration, MAX_DURATION),
                            ("history", body.history, MAX_HISTORY)):  # fmt: skip
        steps = span / resolution
        if span <= timedelta(0) or span > most or steps != int(steps):
            issues.append(
                FieldIssue(
                    key,
                    f"must be a positive multiple of the sensor's {iso_duration(resolution)}, "
                    f"at most {iso_duration(most)}",
                )
            )
    if issues:
        raise RequestValidationError(issues)


def _after_last_measurement(session: Session, sensor: Sensor, now: datetime) -> datetime:
    past = repo.read_time_series(
        session, sensor, now - MAX_HISTORY, now + MAX_DURATION, exclude_source=FORECAST_SOURCE
    )
    if past.empty:
        raise RequestValidationError.single(
            "start", f"sensor {sensor.id} has no measurement in the last year; give 'start'"
        )
    last: datetime = past.index[-1].to_pydatetime()
    return last + sensor.resolution


def _history(
    session: Session, sensor: Sensor, start: datetime, span: timedelta, zone: ZoneInfo
) -> pd.Series:
    """The measured values of ``[start - span, start)`` on the sensor's full grid (NaN where
    nothing is stored), in ``zone``."""
    values = repo.read_time_series(
        session, sensor, start - span, start, exclude_source=FORECAST_SOURCE
    )
    grid = pd.date_range(start - span, start, freq=sensor.resolution, inclusive="left")
    series = values.reindex(grid.tz_convert(UTC))
    series.index = grid.tz_convert(zone)
    return series


def _holidays(
    session: Session, sensor: Sensor, first: datetime, end: datetime, zone: ZoneInfo
) -> set[date]:
    """The local dates of holiday annotations on the sensor, its site or its account."""
    found = notes.list_annotations(
        session, [sensor.account_id], type="holiday", start=first, end=end
    )
    dates: set[date] = set()
    for note in found:
        mine = note.sensor_id == sensor.id or (
            note.sensor_id is None and note.site_id in (None, sensor.site_id)
        )
        if not mine:
            continue
        day = note.start_time.astimezone(zone).date()
        while datetime.combine(day, datetime.min.time(), zone) < note.end_time:
            dates.add(day)
            day += timedelta(days=1)
    return dates
