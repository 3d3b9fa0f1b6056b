"""Annotations: dated notes on accounts, sites (or one of their devices) and sensors.

An annotation's period is ``[start, end)`` in UTC. Lists filter by target and type and by
overlap with a period: an annotation overlaps ``[start, end)`` when it starts before ``end``
and ends after ``start``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.repository import RecordNotFoundError
from store.tables import ANNOTATION_TYPES, Account, Annotation, Sensor, Site

__all__ = [
    "create_annotation",
    "delete_annotation",
    "get_annotation",
    "list_annotations",
    "site_outages",
]

logger = logging.getLogger(__name__)


def create_annotation(
    session: Session,
    account: Account,
    *,
    type: str,
    start: datetime,
    end: datetime,
    content: str = "",
    site: Site | None = None,
    sensor: Sensor | None = None,
    device: str | None = None,
) -> Annotation:
    """Store an annotation of ``account`` on the account itself, ``site`` (``device`` of
    it) or ``sensor``. ``ValueError`` for a type, period or target the table refuses."""
    if type not in ANNOTATION_TYPES:
        raise ValueError(f"type must be one of {ANNOTATION_TYPES}, got {type!r}")
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    if end <= start:
        raise ValueError("end must be after start")
    if site is not None and sensor is not None:
        raise ValueError("an annotation is on a site or a sensor, not both")
    if device is not None and site is None:
        raise ValueError("a device is named only with its site")
    note = Annotation(
        account_id=account.id,
        site_id=site.id if site is not None else None,
        sensor_id=sensor.id if sensor is not None else None,
        device=device,
        type=type,
        start_time=start,
        end_time=end,
        content=content,
    )
    session.add(note)
    session.flush()
    logger.info("annotation %s: %s on account %s", note.id, type, account.id)
    return note


def get_annotation(session: Session, annotation_id: int) -> Annotation:
    """The annotation ``annotation_id``; ``RecordNotFoundError`` if there is none."""
    note = session.get(Annotation, annotation_id)
    if note is None:
        raise RecordNotFoundError(f"no annotation {annotation_id!r}")
    return note


def delete_annotation(session: Session, annotation_id: int) -> None:
    session.delete(get_annotation(session, annotation_id))
    session.flush()


def list_annotations(
    session: Session,
    account_ids: Iterable[int],
    *,
    site_id: int | None = None,
    sensor_id: int | None = None,
    type: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    after_id: int | None = None,
    limit: int | None = None,
) -> list[Annotation]:
    """The annotations of the given accounts by id, filtered by target, type and overlap
    with ``[start, end)``; those with an id above ``after_id``, at most ``limit``."""
    query = select(Annotation).where(Annotation.account_id.in_(list(account_ids)))
    if site_id is not None:
        query = query.where(Annotation.site_id == site_id)
    if sensor_id is not None:
        query = query.where(Annotation.sensor_id == sensor_id)
    if type is not None:
        query = query.where(Annotation.type == type)
    if end is not None:
        query = query.where(Annotation.start_time < end)
    if start is not None:
        query = query.where(Annotation.end_time > start)
    if after_id is not None:
        query = query.where(Annotation.id > after_id)
    query = query.order_by(Annotation.id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def site_outages(session: Session, site: Site, start: datetime, end: datetime) -> list[Annotation]:
    """The ``outage`` annotations of ``site`` that overlap ``[start, end)``."""
    return list_annotations(
        session, [site.account_id], site_id=site.id, type="outage", start=start, end=end
    )
