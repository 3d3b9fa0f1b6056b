"""Requests may name stored things instead of repeating them:

* ``{"site": 12, "start": ..., "flex-model": [...overrides by device name...],
  "flex-context": {...overrides...}}`` takes the stored site's devices and flex-context;
* any series may be ``{"sensor": 7}``: the stored time series for the request's window,
  resampled to the request's resolution (mean of finer data, finer steps repeat coarser data),
  the newest belief per step (a forecast stored later replaces an earlier one; a measurement
  stored after a forecast replaces it); ``{"sensor": 7, "as-of": "2026-03-01T12:00+01:00"}``
  takes the beliefs held at that time instead (a schedule on the forecast known then).

References are expanded when a job is submitted, so a stored job is self-contained.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np
import pandas as pd
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from api.fields import is_id
from store import Sensor, Site
from store import repository as repo
from store.annotations import site_outages
from vpp.errors import NotFoundError, RequestValidationError
from vpp.outages import apply_outages
from vpp.request import parse_window

__all__ = [
    "AccountScope",
    "Scope",
    "expand_sensors",
    "expand_site",
    "read_covering",
    "resample",
    "site_as_request",
    "visible_sensor",
    "visible_site",
    "without_outages",
]


class Scope(Protocol):
    """Whose records a request may read: an API caller (:class:`api.deps.Caller`), or the
    accounts behind a UFTP peer or a GOPACS announcement (:class:`AccountScope`)."""

    def may_see(self, account_id: int | None) -> bool: ...


@dataclass(frozen=True)
class AccountScope:
    """The records of these accounts, e.g. the accounts a UFTP peer's portfolio is made of."""

    account_ids: tuple[int, ...]

    def may_see(self, account_id: int | None) -> bool:
        return account_id is not None and account_id in self.account_ids


_DATETIME = TypeAdapter(datetime)
_DURATION = TypeAdapter(timedelta)


def visible_site(session: Session, caller: Scope, site_id: Any) -> Site:
    site = session.get(Site, site_id) if is_id(site_id) else None
    if site is None or not caller.may_see(site.account_id):
        raise NotFoundError(f"no site {site_id!r}")
    return site


def visible_sensor(session: Session, caller: Scope, sensor_id: Any) -> Sensor:
    sensor = session.get(Sensor, sensor_id) if is_id(sensor_id) else None
    if sensor is None or not caller.may_see(sensor.account_id):
        raise NotFoundError(f"no sensor {sensor_id!r}")
    return sensor


def site_as_request(site: Site) -> dict[str, Any]:
    devices = [{"name": d.name, "type": d.type, **d.flex_model} for d in site.devices]
    return {"flex-model": devices, "flex-context": dict(site.flex_context or {})}


def expand_site(session: Session, caller: Scope, body: dict[str, Any]) -> dict[str, Any]:
    """A single-site request with its stored site and sensors filled in."""
    out = dict(body)
    if "site" in out:
        site = visible_site(session, caller, out.pop("site"))
        stored = site_as_request(site)
        overrides = out.get("flex-model") or []
        out["flex-model"] = _merge_devices(stored["flex-model"], overrides)
        out["flex-context"] = {**stored["flex-context"], **(out.get("flex-context") or {})}
        out["flex-model"] = without_outages(session, site, out)
    return expand_sensors(session, caller, out)


def without_outages(session: Session, site: Site, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The stored site's devices with its ``outage`` annotations over the job's horizon as
    unavailability (a whole-site outage takes every device; docs/annotations.md)."""
    devices: list[dict[str, Any]] = body["flex-model"]
    try:
        window = parse_window(body)
    except RequestValidationError:
        return devices  # the request's validation names the field
    start, end = window.start, window.start + window.duration
    outages = site_outages(session, site, start, end)
    return [
        apply_outages(
            d,
            [(o.start_time, o.end_time) for o in outages if o.device in (None, d.get("name"))],
            start,
            end,
        )
        for d in devices
    ]


def _merge_devices(stored: list[dict[str, Any]], overrides: Any) -> list[dict[str, Any]]:
    if isinstance(overrides, dict):
        overrides = [overrides]
    by_name = {d["name"]: dict(d) for d in stored}
    for i, override in enumerate(overrides):
        if not isinstance(override, dict) or "name" not in override:
            raise RequestValidationError.single(
                f"flex-model[{i}].name", "overrides of a stored site name their device"
            )
        by_name[override["name"]] = {**by_name.get(override["name"], {}), **override}
    return list(by_name.values())


def expand_sensors(session: Session, caller: Scope, body: dict[str, Any]) -> dict[str, Any]:
    """Replace every ``{"sensor": id}`` with the stored values on the request's steps."""
    try:
        start = _DATETIME.validate_python(body["start"])
        duration = _DURATION.validate_python(body["duration"])
        resolution = _DURATION.validate_python(body.get("resolution", "PT15M"))
    except Exception:
        return body  # the request's own validation names the bad field

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            if "sensor" in node and set(node) <= {"sensor", "as-of"}:
                as_of = _as_of(node.get("as-of"), f"{path}.as-of")
                return _series(
                    session, caller, node["sensor"], (start, duration, resolution), path, as_of
                )
            return {k: walk(v, f"{path}.{k}" if path else k) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(node)]
        return node

    return dict(walk(body, ""))


def _as_of(value: Any, path: str) -> datetime | None:
    """A reference's ``as-of``: the beliefs held then (a forecast as it was known)."""
    if value is None:
        return None
    try:
        moment = _DATETIME.validate_python(value)
    except ValidationError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise RequestValidationError.single(path, "a date-time with its UTC offset")
    return moment


def _series(
    session: Session,
    caller: Scope,
    sensor_id: Any,
    window: tuple[datetime, timedelta, timedelta],
    path: str,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    start, duration, resolution = window
    try:
        sensor = visible_sensor(session, caller, sensor_id)
    except NotFoundError:
        raise RequestValidationError.single(path, f"you have no sensor {sensor_id!r}") from None
    values = resample(
        read_covering(session, sensor, start, start + duration, as_of=as_of),
        sensor.resolution,
        start,
        duration,
        resolution,
    )
    if np.isnan(values).any():
        first = int(np.flatnonzero(np.isnan(values))[0])
        raise RequestValidationError.single(
            path, f"sensor {sensor.id} has no data at {(start + first * resolution).isoformat()}"
        )
    return {"values": values.tolist(), "unit": sensor.unit}


def read_covering(
    session: Session, sensor: Sensor, start: datetime, end: datetime, as_of: datetime | None = None
) -> pd.Series:
    """The stored values that cover any of ``[start, end)``: also the one that began up to a
    sensor step before ``start`` (an hourly price read from 00:15 on starts at 00:00); the
    newest belief per step, or the newest held at ``as_of``."""
    return repo.read_time_series(session, sensor, start - sensor.resolution, end, as_of=as_of)


def resample(
    series: pd.Series,
    source: timedelta,
    start: datetime,
    duration: timedelta,
    resolution: timedelta,
) -> np.ndarray:
    """Values on ``[start, start + duration)`` every ``resolution``: the mean of finer data;
    coarser data repeated on every step it covers; NaN where nothing is stored."""
    steps = int(duration / resolution)
    out = np.full(steps, np.nan)
    if series.empty:
        return out
    offsets = np.array(
        [(pd.Timestamp(t).to_pydatetime() - start) / resolution for t in series.index]
    )
    values = series.to_numpy(dtype=float)
    if source <= resolution:  # finer or equal: average what falls in each step
        bins = np.floor(offsets + 1e-9).astype(int)
        inside = (bins >= 0) & (bins < steps)
        sums = np.bincount(bins[inside], weights=values[inside], minlength=steps)
        counts = np.bincount(bins[inside], minlength=steps)
        np.divide(sums, counts, out=out, where=counts > 0)
        return out
    span = source / resolution  # coarser: each value covers `span` of our steps
    for offset, value in zip(offsets, values, strict=True):
        lo, hi = max(0, int(np.ceil(offset - 1e-9))), min(steps, int(np.ceil(offset + span - 1e-9)))
        out[lo:hi] = value
    return out
