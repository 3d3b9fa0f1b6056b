"""Service functions over the store: each takes an open :class:`~sqlalchemy.orm.Session`.

The functions ``flush`` (so ids exist and constraint violations surface early) but never
commit: the caller owns the transaction, e.g. ``with session_factory(engine).begin() as s:``.
Datetimes must be timezone-aware; they are stored and returned as UTC.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from vpp.store.tables import (
    ACCOUNT_KINDS,
    DEVICE_TYPES,
    JOB_KINDS,
    JOB_STATUSES,
    Account,
    Device,
    Schedule,
    SchedulingJob,
    Sensor,
    Site,
    TimedValue,
    utcnow,
)

logger = logging.getLogger(__name__)

TERMINAL_STATUSES = frozenset({"finished", "failed", "cancelled"})
_NEXT_STATUSES: dict[str, frozenset[str]] = {
    "queued": frozenset({"queued", "running"}) | TERMINAL_STATUSES,
    "running": frozenset({"running"}) | TERMINAL_STATUSES,
    **{status: frozenset() for status in TERMINAL_STATUSES},
}


class JobNotFoundError(LookupError):
    """No scheduling job has the given id."""


class InvalidJobTransitionError(ValueError):
    """The job cannot move from its current status to the requested one."""


def _check_choice(what: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")


def _check_aware(what: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value!r}")


def _whole_seconds(resolution: timedelta) -> int:
    seconds = resolution.total_seconds()
    if seconds <= 0 or not seconds.is_integer():
        raise ValueError(f"resolution must be a positive whole number of seconds, got {resolution}")
    return int(seconds)


def get_or_create_account(
    session: Session, name: str, kind: str = "aggregator", parent: Account | None = None
) -> Account:
    """The account called ``name``, created (with ``kind`` and ``parent``) if missing.

    Raises ``ValueError`` if it exists with another ``kind``.
    """
    _check_choice("account kind", kind, ACCOUNT_KINDS)
    account = session.scalar(select(Account).where(Account.name == name))
    if account is not None:
        if account.kind != kind:
            raise ValueError(f"account {name!r} exists with kind {account.kind!r}, not {kind!r}")
        return account
    account = Account(name=name, kind=kind, parent_account_id=parent.id if parent else None)
    session.add(account)
    session.flush()
    logger.info("created %s account %r (id %s)", kind, name, account.id)
    return account


def _device_flex_model(device: Mapping[str, Any]) -> dict[str, Any]:
    """``device["flex_model"]`` if given, else every key except ``name`` and ``type``."""
    if "flex_model" in device:
        return dict(device["flex_model"])
    return {key: value for key, value in device.items() if key not in ("name", "type")}


def upsert_site(
    session: Session,
    account: Account,
    name: str,
    flex_context: Mapping[str, Any],
    devices: Sequence[Mapping[str, Any]],
    ean: str | None = None,
    congestion_point: str | None = None,
) -> Site:
    """Create or replace the site ``name`` of ``account`` and its set of devices.

    Each device is ``{"name": ..., "type": ..., "flex_model": {...}}`` (or the flex-model keys
    inline next to ``name`` and ``type``). Devices are matched by name: existing ones are
    updated in place (keeping their ids), new ones added, and ones not listed are deleted.
    """
    names = [str(device["name"]) for device in devices]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate device names in site {name!r}: {names}")
    for device in devices:
        _check_choice("device type", str(device["type"]), DEVICE_TYPES)
    site = session.scalar(select(Site).where(Site.account_id == account.id, Site.name == name))
    if site is None:
        site = Site(account_id=account.id, name=name)
        session.add(site)
    site.flex_context = dict(flex_context)
    site.ean = ean
    site.congestion_point = congestion_point
    site.updated_at = utcnow()
    existing = {device.name: device for device in site.devices}
    site.devices = [_upsert_device(existing.get(str(spec["name"])), spec) for spec in devices]
    session.flush()
    logger.info("saved site %r of account %r with %d devices", name, account.name, len(devices))
    return site


def _upsert_device(device: Device | None, spec: Mapping[str, Any]) -> Device:
    device = device or Device(name=str(spec["name"]))
    device.type = str(spec["type"])
    device.flex_model = _device_flex_model(spec)
    return device


def get_or_create_sensor(
    session: Session,
    account: Account,
    name: str,
    unit: str,
    resolution: timedelta,
    site: Site | None = None,
) -> Sensor:
    """The sensor ``name`` of ``account`` (and ``site``), created if missing."""
    site_id = site.id if site is not None else None
    sensor = session.scalar(
        select(Sensor).where(
            Sensor.account_id == account.id,
            Sensor.name == name,
            Sensor.site_id.is_(None) if site_id is None else Sensor.site_id == site_id,
        )
    )
    if sensor is None:
        sensor = Sensor(
            account_id=account.id,
            site_id=site_id,
            name=name,
            unit=unit,
            resolution_seconds=_whole_seconds(resolution),
        )
        session.add(sensor)
        session.flush()
    return sensor


def save_time_series(
    session: Session,
    sensor: Sensor,
    start: datetime,
    resolution: timedelta,
    values: Sequence[float],
    source: str,
    belief_time: datetime | None = None,
) -> int:
    """Record ``values[i]`` as ``source``'s belief about the event at ``start + i * resolution``.

    ``belief_time`` (when the values were known; default now) lets later beliefs about the
    same events coexist with earlier ones. NaN values are skipped. Returns the rows written.
    """
    _check_aware("start", start)
    belief_time = belief_time or utcnow()
    _check_aware("belief_time", belief_time)
    seconds = _whole_seconds(resolution)
    if sensor.id is None:
        session.flush()
    rows = [
        {
            "sensor_id": sensor.id,
            "event_start": start + i * resolution,
            "source": source,
            "belief_time": belief_time,
            "event_resolution_seconds": seconds,
            "value": float(value),
        }
        for i, value in enumerate(values)
        if not math.isnan(value)
    ]
    if rows:
        session.execute(insert(TimedValue), rows)
    logger.debug("saved %d values of sensor %r from %r", len(rows), sensor.name, source)
    return len(rows)


def read_time_series(
    session: Session,
    sensor: Sensor,
    start: datetime,
    end: datetime,
    source: str | None = None,
) -> pd.Series[float]:
    """The most recent belief per event in ``[start, end)`` (optionally of one ``source``).

    Returns floats indexed by the UTC ``event_start``, sorted; ties between sources with the
    same belief time go to the alphabetically last source.
    """
    _check_aware("start", start)
    _check_aware("end", end)
    rank = func.row_number().over(
        partition_by=TimedValue.event_start,
        order_by=(TimedValue.belief_time.desc(), TimedValue.source.desc()),
    )
    ranked = select(TimedValue.event_start, TimedValue.value, rank.label("rank")).where(
        TimedValue.sensor_id == sensor.id,
        TimedValue.event_start >= start,
        TimedValue.event_start < end,
    )
    if source is not None:
        ranked = ranked.where(TimedValue.source == source)
    latest = ranked.subquery()
    rows = session.execute(
        select(latest.c.event_start, latest.c.value)
        .where(latest.c.rank == 1)
        .order_by(latest.c.event_start)
    ).all()
    index = pd.DatetimeIndex(pd.to_datetime([row[0] for row in rows], utc=True), name="event_start")
    return pd.Series([row[1] for row in rows], index=index, dtype=float, name=sensor.name)


def create_job(
    session: Session,
    kind: str,
    request: Mapping[str, Any],
    account: Account | None = None,
) -> SchedulingJob:
    """A new ``queued`` job with a random UUID id."""
    _check_choice("job kind", kind, JOB_KINDS)
    job = SchedulingJob(
        id=str(uuid.uuid4()),
        account_id=account.id if account is not None else None,
        kind=kind,
        status="queued",
        request=dict(request),
        created_at=utcnow(),
    )
    session.add(job)
    session.flush()
    logger.info("queued %s job %s", kind, job.id)
    return job


def get_job(session: Session, job_id: str, *, for_update: bool = False) -> SchedulingJob:
    """The job ``job_id`` (re-read from the database); ``JobNotFoundError`` if there is none."""
    query = select(SchedulingJob).where(SchedulingJob.id == job_id)
    if for_update:
        query = query.with_for_update()
    job = session.scalar(query.execution_options(populate_existing=True))
    if job is None:
        raise JobNotFoundError(f"no scheduling job {job_id!r}")
    return job


def set_job_status(
    session: Session,
    job_id: str,
    status: str,
    result: Mapping[str, Any] | None = None,
    error: Mapping[str, Any] | None = None,
    progress: Mapping[str, Any] | None = None,
) -> SchedulingJob:
    """Move job ``job_id`` to ``status``, stamping ``started_at`` / ``finished_at``.

    Allowed: queued → running → finished | failed | cancelled (queued may also end directly),
    and repeating a non-final status to update ``progress``. ``result``, ``error`` and
    ``progress`` replace the stored values when given and are left alone when ``None``.
    Raises ``JobNotFoundError`` or ``InvalidJobTransitionError``.
    """
    _check_choice("job status", status, JOB_STATUSES)
    job = get_job(session, job_id, for_update=True)
    if status not in _NEXT_STATUSES[job.status]:
        raise InvalidJobTransitionError(f"job {job_id} cannot go from {job.status} to {status}")
    now = utcnow()
    if status == "running" and job.started_at is None:
        job.started_at = now
    if status in TERMINAL_STATUSES:
        job.finished_at = now
    job.status = status
    if result is not None:
        job.result = dict(result)
    if error is not None:
        job.error = dict(error)
    if progress is not None:
        job.progress = dict(progress)
    session.flush()
    logger.info("job %s is %s", job_id, status)
    return job


def save_schedule(
    session: Session,
    *,
    site: Site | None,
    job: SchedulingJob | None,
    device_name: str | None,
    start: datetime,
    resolution: timedelta,
    values: Sequence[float],
    unit: str,
) -> Schedule:
    """Store one schedule: ``values[i]`` (in ``unit``) holds from ``start + i * resolution``."""
    _check_aware("start", start)
    floats = [float(value) for value in values]
    if not all(math.isfinite(value) for value in floats):
        raise ValueError("schedule values must be finite numbers (JSON has no NaN or infinity)")
    schedule = Schedule(
        site_id=site.id if site is not None else None,
        job_id=job.id if job is not None else None,
        device_name=device_name,
        start=start,
        resolution_seconds=_whole_seconds(resolution),
        values=floats,
        unit=unit,
        created_at=utcnow(),
    )
    session.add(schedule)
    session.flush()
    logger.debug(
        "saved schedule %s of device %r (job %s)", schedule.id, device_name, schedule.job_id
    )
    return schedule
