"""Service functions over the store: each takes an open :class:`~sqlalchemy.orm.Session`.

The functions ``flush`` (so ids exist and constraint violations surface early) but never
commit: the caller owns the transaction, e.g. ``with session_factory(engine).begin() as s:``.
Datetimes must be timezone-aware; they are stored and returned as UTC.

Functions that list or fetch records for the API take the ids of the accounts the caller may
see (:func:`visible_account_ids`) and leave authorisation of single records to the caller;
``get_*`` raise :class:`RecordNotFoundError` (a ``LookupError``) for unknown ids.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, cast

import pandas as pd
from sqlalchemy import CursorResult, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from store.tables import (
    ACCOUNT_KINDS,
    JOB_KINDS,
    JOB_STATUSES,
    USER_ROLES,
    Account,
    ApiToken,
    Device,
    Portfolio,
    Schedule,
    SchedulingJob,
    Sensor,
    Site,
    TimedValue,
    User,
    portfolio_sites,
    utcnow,
)
from vpp.errors import AuthenticationError, ConflictError, NotFoundError

__all__ = [
    "DEVICE_TYPE_LENGTH",
    "TERMINAL_STATUSES",
    "TOKEN_PREFIX",
    "TOKEN_TOUCH_INTERVAL",
    "InvalidJobTransitionError",
    "JobNotFoundError",
    "RecordExistsError",
    "RecordNotFoundError",
    "RevokedTokenError",
    "claim_next_job",
    "count_jobs",
    "create_job",
    "create_portfolio",
    "create_user",
    "delete_site",
    "ensure_admin",
    "get_job",
    "get_or_create_account",
    "get_or_create_sensor",
    "get_portfolio",
    "get_sensor",
    "get_site",
    "hash_token",
    "issue_token",
    "list_jobs",
    "list_portfolios",
    "list_sensors",
    "list_sites",
    "read_time_series",
    "rename_site",
    "requeue_unfinished",
    "revoke_token",
    "save_schedule",
    "save_time_series",
    "set_job_status",
    "upsert_site",
    "user_for_token",
    "visible_account_ids",
]


logger = logging.getLogger(__name__)

TERMINAL_STATUSES = frozenset({"finished", "failed", "cancelled"})
_NEXT_STATUSES: dict[str, frozenset[str]] = {
    "queued": frozenset({"queued", "running"}) | TERMINAL_STATUSES,
    "running": frozenset({"running"}) | TERMINAL_STATUSES,
    **{status: frozenset() for status in TERMINAL_STATUSES},
}


DEVICE_TYPE_LENGTH: Final = 16
"""``devices.type`` is ``VARCHAR(16)``."""

TOKEN_PREFIX: Final = "vpp_"
TOKEN_TOUCH_INTERVAL: Final = timedelta(minutes=1)
"""``last_used_at`` of a token is written at most this often (not on every request)."""


# The store's errors are in vpp's one tree (vpp.errors), so the API renders them as any
# other (404, 409, 401); they stay LookupError/ValueError for code that catches those.
class RecordNotFoundError(NotFoundError, LookupError):
    """No record of the requested kind has the given id."""


class RecordExistsError(ConflictError, ValueError):
    """A record with that name already exists where names must be unique."""


class JobNotFoundError(RecordNotFoundError):
    """No scheduling job has the given id."""


class RevokedTokenError(AuthenticationError, ValueError):
    """A configured token (``VPP_ADMIN_TOKEN``) was revoked: it no longer authenticates."""


class InvalidJobTransitionError(ConflictError, ValueError):
    """The job cannot move from its current status to the requested one."""


def _check_choice(what: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")


def _check_device_type(value: object) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= DEVICE_TYPE_LENGTH:
        raise ValueError(
            f"device type must be a string of 1 to {DEVICE_TYPE_LENGTH} characters, "
            f"got {value!r}"
        )


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


def visible_account_ids(session: Session, account: Account) -> list[int]:
    """``account``'s id and, for a consultancy, the ids of its client accounts.

    Clients are the accounts whose ``parent_account_id`` is the consultancy, and their clients
    in turn (any depth; a cycle ends the walk). The account itself comes first, then the
    clients level by level, each level sorted by id.
    """
    ids = [account.id]
    if account.kind != "consultancy":
        return ids
    seen = {account.id}
    level = [account.id]
    while level:
        children = session.scalars(
            select(Account.id).where(Account.parent_account_id.in_(level)).order_by(Account.id)
        ).all()
        level = [child for child in children if child not in seen]
        seen.update(level)
        ids.extend(level)
    return ids


def create_user(session: Session, account: Account, name: str, role: str) -> User:
    """A new user ``name`` of ``account`` with ``role`` (admin, operator or viewer).

    Raises ``ValueError`` for an unknown role and ``RecordExistsError`` if the account already
    has a user of that name.
    """
    _check_choice("user role", role, USER_ROLES)
    taken = session.scalar(select(User.id).where(User.account_id == account.id, User.name == name))
    if taken is not None:
        raise RecordExistsError(f"account {account.name!r} already has a user {name!r}")
    user = User(account=account, name=name, role=role, created_at=utcnow())
    session.add(user)
    session.flush()
    logger.info("created %s user %r of account %r (id %s)", role, name, account.name, user.id)
    return user


def hash_token(token: str) -> str:
    """The hex SHA-256 of ``token``: what is stored (and looked up) instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _add_token(session: Session, user: User, name: str, token: str) -> ApiToken:
    row = ApiToken(user_id=user.id, name=name, token_hash=hash_token(token), created_at=utcnow())
    session.add(row)
    session.flush()
    logger.info("issued token %r (id %s) to user %r", name, row.id, user.name)
    return row


def issue_token(session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """A new random API token for ``user``: the stored row and the plain token.

    The plain token (``vpp_`` and 43 URL-safe characters, 256 random bits) is returned once
    and never stored; only its :func:`hash_token` is.
    """
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return _add_token(session, user, name, token), token


def user_for_token(session: Session, token: str) -> User | None:
    """The user holding the unrevoked API token ``token`` (with its account loaded), or None.

    Stamps the token's ``last_used_at``, but only if it is unset or older than
    :data:`TOKEN_TOUCH_INTERVAL`, so that authenticating is not a write on every request.
    """
    if not token:
        return None
    row = session.scalar(
        select(ApiToken)
        .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
        .options(joinedload(ApiToken.user).joinedload(User.account))
        .execution_options(populate_existing=True)
    )
    if row is None:
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= TOKEN_TOUCH_INTERVAL:
        row.last_used_at = now
        session.flush()
    return row.user


def revoke_token(session: Session, token_id: int) -> ApiToken:
    """Revoke the API token ``token_id`` (revoking twice keeps the first ``revoked_at``).

    Raises ``RecordNotFoundError`` if there is no such token.
    """
    row = session.get(ApiToken, token_id)
    if row is None:
        raise RecordNotFoundError(f"no API token {token_id!r}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
        logger.info("revoked token %r (id %s)", row.name, token_id)
    return row


def ensure_admin(
    session: Session,
    *,
    account_name: str = "admin",
    user_name: str = "admin",
    token: str | None = None,
    issue: bool = True,
) -> tuple[User, str | None]:
    """First-start bootstrap (idempotent): the admin account and user, and their token.

    Creates the ``consultancy`` account ``account_name`` (the platform account: its admins
    create the other accounts as its clients) and its ``admin`` user ``user_name``
    when missing (an existing user keeps its role), and gives that user the platform-admin
    role (``platform_admin``: operations across every account). With ``token``
    (``VPP_ADMIN_TOKEN``), makes sure the user holds an API token with that hash and returns
    ``(user, token)``. Without, a new random token is issued only when the user was just
    created: its plain text is returned that one time, ``None`` on every later call; with
    ``issue=False`` never (``vpp serve`` stores its bootstrap token only once it has started:
    :mod:`store.admin`).

    Raises ``ValueError`` if ``token`` is empty or belongs to another user,
    :class:`RevokedTokenError` if it was revoked (and, via :func:`get_or_create_account`,
    ``ValueError`` if the account exists with another kind).
    """
    if token is not None and not token.strip():
        raise ValueError("the admin token must not be empty")
    account = get_or_create_account(session, account_name, kind="consultancy")
    user = session.scalar(select(User).where(User.account_id == account.id, User.name == user_name))
    created = user is None
    if user is None:
        user = create_user(session, account, user_name, "admin")
    elif user.role != "admin":
        logger.warning("bootstrap user %r has role %r, not admin", user_name, user.role)
    if not user.platform_admin:
        user.platform_admin = True  # the platform account's admin is the platform admin
        session.flush()
        logger.info("user %r of account %r is the platform admin", user_name, account_name)
    if token is not None:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
        if row is None:
            _add_token(session, user, "VPP_ADMIN_TOKEN", token)
        elif row.user_id != user.id:
            raise ValueError("the admin token is already a token of another user")
        elif row.revoked_at is not None:
            raise RevokedTokenError("the admin token was revoked; configure a new one")
        return user, token
    if created and issue:
        _, plain = issue_token(session, user, "bootstrap")
        return user, plain
    return user, None


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
        # the kind itself is vpp's to know (requests are validated against vpp.assets before
        # they get here); the store only keeps what fits its column
        _check_device_type(device["type"])
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


def rename_site(session: Session, site: Site, name: str) -> Site:
    """Give ``site`` the new ``name``; ``RecordExistsError`` if another site of its account
    has it already (also when a concurrent rename won the name first)."""
    taken = session.scalar(
        select(Site.id).where(
            Site.account_id == site.account_id, Site.name == name, Site.id != site.id
        )
    )
    if taken is not None:
        raise RecordExistsError(f"the account already has a site named {name!r} (id {taken})")
    old = site.name
    try:
        with session.begin_nested():
            site.name = name
            session.flush()
    except IntegrityError:
        # (account_id, name) is the only unique constraint an UPDATE of the name can break
        raise RecordExistsError(f"the account already has a site named {name!r}") from None
    logger.info("renamed site %r (id %s) to %r", old, site.id, name)
    return site


def _upsert_device(device: Device | None, spec: Mapping[str, Any]) -> Device:
    device = device or Device(name=str(spec["name"]))
    device.type = str(spec["type"])
    device.flex_model = _device_flex_model(spec)
    return device


def list_sites(
    session: Session,
    account_ids: Iterable[int],
    *,
    after_id: int | None = None,
    limit: int | None = None,
    congestion_point: str | None = None,
) -> list[Site]:
    """The sites of the given accounts, with their devices, ordered by id (those with an id
    above ``after_id``, at most ``limit``, optionally behind ``congestion_point``)."""
    query = select(Site).where(Site.account_id.in_(list(account_ids)))
    if after_id is not None:
        query = query.where(Site.id > after_id)
    if congestion_point is not None:
        query = query.where(Site.congestion_point == congestion_point)
    query = query.options(selectinload(Site.devices)).order_by(Site.id)
    return list(session.scalars(_limited(query, limit)))


def _limited(query: Any, limit: int | None) -> Any:
    if limit is None:
        return query
    if limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    return query.limit(limit)


def get_site(session: Session, site_id: int) -> Site:
    """The site ``site_id`` with its devices; ``RecordNotFoundError`` if there is none."""
    site = session.scalar(
        select(Site).where(Site.id == site_id).options(selectinload(Site.devices))
    )
    if site is None:
        raise RecordNotFoundError(f"no site {site_id!r}")
    return site


def delete_site(session: Session, site_id: int) -> None:
    """Delete the site ``site_id``: its devices and portfolio memberships go with it, its
    sensors and schedules stay (their ``site_id`` becomes NULL). ``RecordNotFoundError`` if
    there is no such site."""
    site = get_site(session, site_id)
    session.delete(site)
    session.flush()
    for portfolio in [obj for obj in session.identity_map.values() if isinstance(obj, Portfolio)]:
        session.expire(portfolio, ["sites"])
    logger.info("deleted site %r (id %s)", site.name, site_id)


def create_portfolio(
    session: Session,
    account: Account,
    name: str,
    site_ids: Iterable[int],
    congestion_point: str | None = None,
) -> Portfolio:
    """A new portfolio ``name`` of ``account`` holding the sites ``site_ids``.

    The sites must belong to ``account`` or, for a consultancy, to its clients. Raises
    ``ValueError`` naming the site ids that do not (unknown ones included) and
    ``RecordExistsError`` if the account already has a portfolio of that name.
    """
    wanted = sorted(set(site_ids))
    allowed = visible_account_ids(session, account)
    sites = list(
        session.scalars(
            select(Site).where(Site.id.in_(wanted), Site.account_id.in_(allowed)).order_by(Site.id)
        )
    )
    missing = sorted(set(wanted) - {site.id for site in sites})
    if missing:
        raise ValueError(f"no site with id {missing} in account {account.name!r}")
    taken = session.scalar(
        select(Portfolio.id).where(Portfolio.account_id == account.id, Portfolio.name == name)
    )
    if taken is not None:
        raise RecordExistsError(f"account {account.name!r} already has a portfolio {name!r}")
    portfolio = Portfolio(
        account_id=account.id,
        name=name,
        congestion_point=congestion_point,
        created_at=utcnow(),
        sites=sites,
    )
    session.add(portfolio)
    session.flush()
    logger.info("created portfolio %r of account %r with %d sites", name, account.name, len(sites))
    return portfolio


def get_portfolio(session: Session, portfolio_id: int) -> Portfolio:
    """The portfolio ``portfolio_id`` with its sites; ``RecordNotFoundError`` if none."""
    portfolio = session.scalar(
        select(Portfolio).where(Portfolio.id == portfolio_id).options(selectinload(Portfolio.sites))
    )
    if portfolio is None:
        raise RecordNotFoundError(f"no portfolio {portfolio_id!r}")
    return portfolio


def list_portfolios(
    session: Session,
    account_ids: Iterable[int],
    *,
    after_id: int | None = None,
    limit: int | None = None,
    congestion_point: str | None = None,
) -> list[Portfolio]:
    """The portfolios of the given accounts, with their sites, ordered by id (those with an
    id above ``after_id``, at most ``limit``, optionally behind ``congestion_point``)."""
    query = select(Portfolio).where(Portfolio.account_id.in_(list(account_ids)))
    if after_id is not None:
        query = query.where(Portfolio.id > after_id)
    if congestion_point is not None:
        query = query.where(Portfolio.congestion_point == congestion_point)
    query = query.options(selectinload(Portfolio.sites)).order_by(Portfolio.id)
    return list(session.scalars(_limited(query, limit)))


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


def list_sensors(
    session: Session,
    account_ids: Iterable[int],
    *,
    after_id: int | None = None,
    limit: int | None = None,
    site_id: int | None = None,
) -> list[Sensor]:
    """The sensors of the given accounts, ordered by id (those with an id above
    ``after_id``, at most ``limit``, optionally only those of the site ``site_id``)."""
    query = select(Sensor).where(Sensor.account_id.in_(list(account_ids)))
    if after_id is not None:
        query = query.where(Sensor.id > after_id)
    if site_id is not None:
        query = query.where(Sensor.site_id == site_id)
    return list(session.scalars(_limited(query.order_by(Sensor.id), limit)))


def get_sensor(session: Session, sensor_id: int) -> Sensor:
    """The sensor ``sensor_id``; ``RecordNotFoundError`` if there is none."""
    sensor = session.get(Sensor, sensor_id)
    if sensor is None:
        raise RecordNotFoundError(f"no sensor {sensor_id!r}")
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
    *,
    as_of: datetime | None = None,
    exclude_source: str | None = None,
) -> pd.Series[float]:
    """The most recent belief per event in ``[start, end)`` (optionally of one ``source``).

    ``as_of``: only beliefs held at that time (``belief_time <= as_of``): what was known
    then, e.g. the forecast a past schedule used. ``exclude_source``: beliefs of every
    source but that one (a forecast learns from measurements, not from earlier forecasts).
    Returns floats indexed by the UTC ``event_start``, sorted; ties between sources with the
    same belief time go to the alphabetically last source.
    """
    _check_aware("start", start)
    _check_aware("end", end)
    if as_of is not None:
        _check_aware("as_of", as_of)
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
    if exclude_source is not None:
        ranked = ranked.where(TimedValue.source != exclude_source)
    if as_of is not None:
        ranked = ranked.where(TimedValue.belief_time <= as_of)
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
    portfolio: Portfolio | None = None,
    trace_context: Mapping[str, str] | None = None,
    site: Site | None = None,
) -> SchedulingJob:
    """A new ``queued`` job with a random UUID id (optionally about ``portfolio``, or about
    the stored ``site`` a single-site job schedules);
    ``trace_context``: the W3C carrier of the request that queued it (its spans join that
    trace, see :func:`vpp.telemetry.inject`), stored only when not empty."""
    _check_choice("job kind", kind, JOB_KINDS)
    job = SchedulingJob(
        id=str(uuid.uuid4()),
        account_id=account.id if account is not None else None,
        portfolio_id=portfolio.id if portfolio is not None else None,
        site_id=site.id if site is not None else None,
        kind=kind,
        status="queued",
        request=dict(request),
        created_at=utcnow(),
        trace_context=dict(trace_context) if trace_context else None,
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
    and repeating a non-final status to update ``progress``; queued → running counts one
    more of the job's ``attempts``. (running → queued is only done by
    :func:`requeue_unfinished`.) ``result``, ``error`` and ``progress`` replace the stored
    values when given and are left alone when ``None``.
    Raises ``JobNotFoundError`` or ``InvalidJobTransitionError``.
    """
    _check_choice("job status", status, JOB_STATUSES)
    job = get_job(session, job_id, for_update=True)
    if status not in _NEXT_STATUSES[job.status]:
        raise InvalidJobTransitionError(f"job {job_id} cannot go from {job.status} to {status}")
    now = utcnow()
    if status == "running" and job.status == "queued":
        job.attempts += 1
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


def list_jobs(
    session: Session,
    account_ids: Iterable[int],
    status: str | None = None,
    limit: int = 100,
    *,
    kind: str | None = None,
    portfolio_id: int | None = None,
    site_id: int | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    after: tuple[datetime, str] | None = None,
) -> list[SchedulingJob]:
    """The newest ``limit`` jobs of the given accounts (optionally with ``status``, of
    ``kind``, of the stored portfolio ``portfolio_id``, about the stored site ``site_id``
    (its own jobs and those of the stored portfolios it belongs to), created in
    ``[created_after, created_before)``), newest first (ties by id). ``after`` is the
    ``(created_at, id)`` of the last job of the previous page: the page goes on after it.
    Jobs without an account are not listed."""
    if limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    query = select(SchedulingJob).where(SchedulingJob.account_id.in_(list(account_ids)))
    if status is not None:
        _check_choice("job status", status, JOB_STATUSES)
        query = query.where(SchedulingJob.status == status)
    if kind is not None:
        _check_choice("job kind", kind, JOB_KINDS)
        query = query.where(SchedulingJob.kind == kind)
    if portfolio_id is not None:
        query = query.where(SchedulingJob.portfolio_id == portfolio_id)
    if site_id is not None:
        portfolios = select(portfolio_sites.c.portfolio_id).where(
            portfolio_sites.c.site_id == site_id
        )
        query = query.where(
            (SchedulingJob.site_id == site_id) | SchedulingJob.portfolio_id.in_(portfolios)
        )
    if created_after is not None:
        query = query.where(SchedulingJob.created_at >= created_after)
    if created_before is not None:
        query = query.where(SchedulingJob.created_at < created_before)
    if after is not None:
        created, job_id = after
        query = query.where(
            (SchedulingJob.created_at < created)
            | ((SchedulingJob.created_at == created) & (SchedulingJob.id > job_id))
        )
    query = query.order_by(SchedulingJob.created_at.desc(), SchedulingJob.id).limit(limit)
    return list(session.scalars(query))


def count_jobs(session: Session, statuses: Sequence[str]) -> dict[str, int]:
    """How many jobs (of every account) have each of ``statuses`` (0 where none)."""
    for status in statuses:
        _check_choice("job status", status, JOB_STATUSES)
    rows = session.execute(
        select(SchedulingJob.status, func.count())
        .where(SchedulingJob.status.in_(list(statuses)))
        .group_by(SchedulingJob.status)
    )
    counts = {status: 0 for status in statuses}
    counts.update({str(status): int(n) for status, n in rows})
    return counts

def claim_next_job(session: Session) -> SchedulingJob | None:
    """Take the oldest ``queued`` job and make it ``running`` (one more attempt, ``started_at``
    now); ``None`` if no job is queued.

    Safe with several runners: no two calls ever claim the same job. On PostgreSQL the row is
    locked with ``SELECT ... FOR UPDATE SKIP LOCKED`` (so concurrent runners take different
    jobs without waiting for each other) until the caller's transaction ends: commit soon
    after claiming. Elsewhere (SQLite) a conditional ``UPDATE ... WHERE status = 'queued'``
    wins the job, or, if another runner was faster, the next candidate is tried.
    """
    oldest_first = (SchedulingJob.created_at, SchedulingJob.id)
    if session.get_bind(SchedulingJob).dialect.name == "postgresql":
        job = session.scalar(
            select(SchedulingJob)
            .where(SchedulingJob.status == "queued")
            .order_by(*oldest_first)
            .limit(1)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
        if job is None:
            return None
        job.status = "running"
        job.attempts += 1
        job.started_at = utcnow()
        session.flush()
    else:
        job = _claim_by_conditional_update(session, oldest_first)
        if job is None:
            return None
    logger.info("claimed %s job %s (attempt %d)", job.kind, job.id, job.attempts)
    return job


def _claim_by_conditional_update(
    session: Session, oldest_first: tuple[Any, ...]
) -> SchedulingJob | None:
    while True:
        candidates = session.scalars(
            select(SchedulingJob.id)
            .where(SchedulingJob.status == "queued")
            .order_by(*oldest_first)
            .limit(10)
        ).all()
        if not candidates:
            return None
        for job_id in candidates:
            result = session.execute(
                update(SchedulingJob)
                .where(SchedulingJob.id == job_id, SchedulingJob.status == "queued")
                .values(status="running", attempts=SchedulingJob.attempts + 1, started_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if cast("CursorResult[Any]", result).rowcount == 1:
                return get_job(session, job_id)


def requeue_unfinished(
    session: Session,
    max_attempts: int = 3,
    *,
    started_before: datetime | None = None,
) -> tuple[list[str], list[str]]:
    """Recover the jobs a dead runner left ``running``; call it when a runner starts.

    A job that has had fewer than ``max_attempts`` attempts goes back to ``queued`` (its
    ``started_at`` and ``progress`` cleared); the others become ``failed`` with a
    problem+json ``error`` of type ``urn:vpp:error:JobLost``. Every ``running`` job is taken
    to be lost, so with several runners pass ``started_before`` (e.g. the start-up time of
    the oldest live runner) to leave jobs that live runners started alone.
    Returns the ids of the (requeued, failed) jobs, oldest first.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    query = (
        select(SchedulingJob)
        .where(SchedulingJob.status == "running")
        .order_by(SchedulingJob.created_at, SchedulingJob.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if started_before is not None:
        _check_aware("started_before", started_before)
        query = query.where(
            SchedulingJob.started_at.is_(None) | (SchedulingJob.started_at < started_before)
        )
    requeued: list[str] = []
    failed: list[str] = []
    for job in session.scalars(query):
        if job.attempts < max_attempts:
            job.status = "queued"
            job.started_at = None
            job.progress = None
            requeued.append(job.id)
            logger.warning("requeued lost job %s (after %d attempts)", job.id, job.attempts)
        else:
            job.status = "failed"
            job.finished_at = utcnow()
            job.error = _job_lost_problem(job.attempts, max_attempts)
            failed.append(job.id)
            logger.error("gave up on lost job %s after %d attempts", job.id, job.attempts)
    session.flush()
    return requeued, failed


def _job_lost_problem(attempts: int, max_attempts: int) -> dict[str, Any]:
    times = "once" if attempts == 1 else f"{attempts} times"
    return {
        "type": "urn:vpp:error:JobLost",
        "title": "Job lost",
        "status": 500,
        "detail": (
            f"the job was interrupted {times} (its runner stopped while running it); "
            f"given up after {max_attempts} attempts"
        ),
    }


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
