"""The relational model: SQLAlchemy 2.x typed declarative tables.

Every datetime column is timezone-aware and stored as UTC (:class:`UTCDateTime`); JSON columns
are ``JSON`` on SQLite and ``JSONB`` on PostgreSQL. Enumerations are short strings guarded by
named CHECK constraints. The schema itself is created by the Alembic migrations in
``store/migrations``, which must stay in step with this module (a test compares them).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator, TypeEngine

ACCOUNT_KINDS: Final = ("aggregator", "consultancy", "dso")
JOB_KINDS: Final = ("storage", "shifting", "portfolio", "redispatch-bid", "forecasting")
JOB_STATUSES: Final = ("queued", "running", "finished", "failed", "cancelled")
USER_ROLES: Final = ("admin", "operator", "viewer")
ANNOTATION_TYPES: Final = ("holiday", "outage", "maintenance", "label")

NAMING_CONVENTION: Final = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


def _in(column: str, allowed: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(value) for value in allowed)})"


class UTCDateTime(TypeDecorator[datetime]):
    """``DateTime(timezone=True)`` that only accepts aware datetimes and returns UTC ones.

    PostgreSQL stores ``timestamptz`` natively; SQLite has no time zones, so values are
    converted to UTC before they are written and marked UTC when they are read back.
    Naive datetimes are refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: vpp stores timezone-aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_type(*, none_as_null: bool = False) -> TypeEngine[Any]:
    """``JSON`` that becomes ``JSONB`` on PostgreSQL."""
    return JSON(none_as_null=none_as_null).with_variant(
        JSONB(none_as_null=none_as_null), "postgresql"
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Account(Base):
    """An organisation: an aggregator, a consultancy (with client accounts) or a DSO."""

    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint(_in("kind", ACCOUNT_KINDS), name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="aggregator")
    parent_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    sites: Mapped[list[Site]] = relationship(
        back_populates="account", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"Account(id={self.id!r}, name={self.name!r}, kind={self.kind!r})"


class Site(Base):
    """A grid connection with its devices and the site-level flex-context."""

    __tablename__ = "sites"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    ean: Mapped[str | None] = mapped_column(String(64))
    congestion_point: Mapped[str | None] = mapped_column(String(255))
    flex_context: Mapped[dict[str, Any]] = mapped_column(json_type(), default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    account: Mapped[Account] = relationship(back_populates="sites")
    devices: Mapped[list[Device]] = relationship(
        back_populates="site",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Device.id",
    )

    def __repr__(self) -> str:
        return f"Site(id={self.id!r}, account_id={self.account_id!r}, name={self.name!r})"


class Device(Base):
    """A flexible (or inflexible) asset behind a site's connection, with its flex-model.

    ``type`` is the asset kind, unchecked here: the kinds are vpp's (``vpp.assets``), and
    requests are validated against them before they are stored (migration 0008 dropped the
    CHECK constraint, so adding a kind needs no migration).
    """

    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("site_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(16))
    flex_model: Mapped[dict[str, Any]] = mapped_column(json_type(), default=dict)

    site: Mapped[Site] = relationship(back_populates="devices")

    def __repr__(self) -> str:
        return f"Device(id={self.id!r}, site_id={self.site_id!r}, name={self.name!r})"


class Sensor(Base):
    """A named time series (prices, measurements, forecasts) with a unit and a resolution."""

    __tablename__ = "sensors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    site_id: Mapped[int | None] = mapped_column(
        ForeignKey("sites.id", ondelete="SET NULL"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    unit: Mapped[str] = mapped_column(String(32))
    resolution_seconds: Mapped[int] = mapped_column(Integer)

    @property
    def resolution(self) -> timedelta:
        return timedelta(seconds=self.resolution_seconds)

    def __repr__(self) -> str:
        return f"Sensor(id={self.id!r}, name={self.name!r}, unit={self.unit!r})"


class TimedValue(Base):
    """One belief about one event of a sensor: several beliefs (and sources) per event."""

    __tablename__ = "timed_values"

    sensor_id: Mapped[int] = mapped_column(
        ForeignKey("sensors.id", ondelete="CASCADE"), primary_key=True
    )
    event_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    belief_time: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    event_resolution_seconds: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Double)

    def __repr__(self) -> str:
        return (
            f"TimedValue(sensor_id={self.sensor_id!r}, event_start={self.event_start!r}, "
            f"source={self.source!r}, value={self.value!r})"
        )


class User(Base):
    """A person or client program of an account, with a role: admin, operator or viewer."""

    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("account_id", "name"),
        CheckConstraint(_in("role", USER_ROLES), name="role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    platform_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """The platform-admin role, on top of ``role``: operations across every account (peers
    and messages of all accounts, and those of none). The platform account's admin has it."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    account: Mapped[Account] = relationship()

    def __repr__(self) -> str:
        return f"User(id={self.id!r}, account_id={self.account_id!r}, name={self.name!r})"


class ApiToken(Base):
    """A bearer token of a user. Only the hex SHA-256 of the token is stored, never the token."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship()

    def __repr__(self) -> str:
        return f"ApiToken(id={self.id!r}, user_id={self.user_id!r}, name={self.name!r})"


portfolio_sites = Table(
    "portfolio_sites",
    Base.metadata,
    Column("portfolio_id", ForeignKey("portfolios.id", ondelete="CASCADE"), primary_key=True),
    Column("site_id", ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True, index=True),
)
"""Which sites belong to which portfolios (a site may be in several)."""


class Portfolio(Base):
    """A named set of sites of an account, scheduled together (e.g. behind one congestion point)."""

    __tablename__ = "portfolios"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    congestion_point: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    sites: Mapped[list[Site]] = relationship(
        secondary=portfolio_sites, order_by="Site.id", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"Portfolio(id={self.id!r}, account_id={self.account_id!r}, name={self.name!r})"


class SchedulingJob(Base):
    """A scheduling request and its lifecycle: queued → running → finished/failed/cancelled.

    A job left ``running`` by a runner that died goes back to ``queued`` (or ``failed`` after
    too many ``attempts``): see :func:`store.repository.requeue_unfinished`.
    """

    __tablename__ = "scheduling_jobs"
    __table_args__ = (
        CheckConstraint(_in("kind", JOB_KINDS), name="kind"),
        CheckConstraint(_in("status", JOB_STATUSES), name="status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True
    )
    portfolio_id: Mapped[int | None] = mapped_column(
        ForeignKey("portfolios.id", ondelete="SET NULL"), index=True
    )
    site_id: Mapped[int | None] = mapped_column(
        ForeignKey("sites.id", ondelete="SET NULL"), index=True
    )
    """The stored site a single-site job scheduled (None for a request without one)."""
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    """How many times the job went from ``queued`` to ``running`` (for crash recovery)."""
    request: Mapped[dict[str, Any]] = mapped_column(json_type())
    result: Mapped[dict[str, Any] | None] = mapped_column(json_type(none_as_null=True))
    error: Mapped[dict[str, Any] | None] = mapped_column(json_type(none_as_null=True))
    progress: Mapped[dict[str, Any] | None] = mapped_column(json_type(none_as_null=True))
    trace_context: Mapped[dict[str, str] | None] = mapped_column(json_type(none_as_null=True))
    """The W3C trace context (``traceparent``) of the request that queued the job."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"SchedulingJob(id={self.id!r}, kind={self.kind!r}, status={self.status!r})"


class Schedule(Base):
    """A computed schedule: equidistant values from ``start`` every ``resolution_seconds``."""

    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("scheduling_jobs.id", ondelete="SET NULL"), index=True
    )
    site_id: Mapped[int | None] = mapped_column(
        ForeignKey("sites.id", ondelete="SET NULL"), index=True
    )
    device_name: Mapped[str | None] = mapped_column(String(255))
    start: Mapped[datetime] = mapped_column(UTCDateTime())
    resolution_seconds: Mapped[int] = mapped_column(Integer)
    values: Mapped[list[float]] = mapped_column(json_type())
    unit: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def resolution(self) -> timedelta:
        return timedelta(seconds=self.resolution_seconds)

    def __repr__(self) -> str:
        return f"Schedule(id={self.id!r}, job_id={self.job_id!r}, device={self.device_name!r})"


# --------------------------------------------------------------------------- UFTP (ShapeShifter)
UFTP_ROLES: Final = ("DSO", "CRO")
UFTP_DIRECTIONS: Final = ("in", "out")
UFTP_STATUSES: Final = (
    "received",
    "processing",
    "processed",
    "rejected",
    "failed",
    "queued",
    "sending",
    "sent",
)


class UftpParticipant(Base):
    """A UFTP peer (a DSO, GOPACS, or a CRO): its public signing key and message endpoint.

    ``account_id`` is the account that registered it: its sites (and, for a consultancy, its
    clients' sites) are the portfolio offered to this peer.
    """

    __tablename__ = "uftp_participants"
    __table_args__ = (CheckConstraint(_in("role", UFTP_ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    role: Mapped[str] = mapped_column(String(8))
    public_key: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(2048))
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"UftpParticipant(domain={self.domain!r}, role={self.role!r})"


class UftpMessage(Base):
    """One UFTP message, inbound or outbound, with its processing or delivery state.

    Inbound: ``received`` → ``processing`` → ``processed`` | ``failed``, or ``rejected``.
    Outbound (the outbox): ``queued`` → ``sending`` → ``sent`` (back to ``queued`` with a
    later ``next_attempt_at`` after a failed attempt). A claimed row (``processing`` or
    ``sending``) whose ``next_attempt_at`` lease has passed belongs to a worker that died and
    is claimed again. ``(sender_domain, message_id, duplicate)`` is unique: the first copy of
    an inbound MessageID has ``duplicate = 0``, replays are stored with 1, 2, ...
    """

    __tablename__ = "uftp_messages"
    __table_args__ = (
        UniqueConstraint("sender_domain", "message_id", "duplicate"),
        CheckConstraint(_in("direction", UFTP_DIRECTIONS), name="direction"),
        CheckConstraint(_in("status", UFTP_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    direction: Mapped[str] = mapped_column(String(3))
    type: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str | None] = mapped_column(String(36))
    conversation_id: Mapped[str | None] = mapped_column(String(36), index=True)
    reference_message_id: Mapped[str | None] = mapped_column(String(36))
    """The MessageID this one answers or refers to (a response's, an order's offer)."""
    sender_domain: Mapped[str | None] = mapped_column(String(253))
    recipient_domain: Mapped[str | None] = mapped_column(String(253))
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True
    )
    """The account of the peer (sender inbound, recipient outbound) when it was stored; None
    for a message from an unknown sender (only platform admins see those)."""
    congestion_point: Mapped[str | None] = mapped_column(String(255))
    duplicate: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    xml: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return (
            f"UftpMessage(id={self.id!r}, direction={self.direction!r}, type={self.type!r}, "
            f"status={self.status!r})"
        )


class UftpFlexOffer(Base):
    """A FlexOffer we sent: per ISP the offered power change (W) and the price of it all.

    ``baseline`` is the congestion point's unconstrained summed power (kW per ISP) the
    changes are relative to.
    """

    __tablename__ = "uftp_flex_offers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(36), unique=True)
    flex_request_message_id: Mapped[str | None] = mapped_column(String(36))
    dso_domain: Mapped[str] = mapped_column(String(253))
    congestion_point: Mapped[str] = mapped_column(String(255), index=True)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True
    )
    period: Mapped[str] = mapped_column(String(10))
    time_zone: Mapped[str] = mapped_column(String(64))
    start: Mapped[datetime] = mapped_column(UTCDateTime())
    resolution_seconds: Mapped[int] = mapped_column(Integer)
    isps: Mapped[list[dict[str, int]]] = mapped_column(json_type())
    baseline: Mapped[list[float]] = mapped_column(json_type())
    option_reference: Mapped[str] = mapped_column(String(64))
    price: Mapped[float] = mapped_column(Double)
    currency: Mapped[str] = mapped_column(String(3))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"UftpFlexOffer(id={self.id!r}, congestion_point={self.congestion_point!r})"


class UftpCommitment(Base):
    """An accepted FlexOrder: the ordered profile as hard limits on the congestion point's
    summed power, ``lower[k] <= S[k] <= upper[k]`` (kW) over ISP ``k`` from ``start``."""

    __tablename__ = "uftp_commitments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_message_id: Mapped[str] = mapped_column(String(36), unique=True)
    offer_id: Mapped[int | None] = mapped_column(
        ForeignKey("uftp_flex_offers.id", ondelete="SET NULL"), unique=True
    )
    """Unique: an offer is ordered at most once, even by two replicas at the same time."""
    dso_domain: Mapped[str] = mapped_column(String(253))
    congestion_point: Mapped[str] = mapped_column(String(255), index=True)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True
    )
    order_reference: Mapped[str] = mapped_column(String(255))
    period: Mapped[str] = mapped_column(String(10))
    start: Mapped[datetime] = mapped_column(UTCDateTime())
    end: Mapped[datetime] = mapped_column(UTCDateTime())
    resolution_seconds: Mapped[int] = mapped_column(Integer)
    isps: Mapped[list[dict[str, int]]] = mapped_column(json_type())
    lower: Mapped[list[float | None]] = mapped_column(json_type())
    upper: Mapped[list[float | None]] = mapped_column(json_type())
    price: Mapped[float] = mapped_column(Double)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"UftpCommitment(id={self.id!r}, congestion_point={self.congestion_point!r})"


class AdmmCheckpoint(Base):
    """A portfolio job's ADMM state (``key``: the job id) or a portfolio's warm-start state
    (``key``: ``warm/<portfolio key>``), as the ``.npz`` bytes of ``vpp.admm.AdmmState``.

    In the database rather than on a node's disk, so a coordinator restarted on any node of
    the cluster resumes the job.
    """

    __tablename__ = "admm_checkpoints"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"AdmmCheckpoint(key={self.key!r}, bytes={len(self.data)!r})"


class Annotation(Base):
    """A dated note on an account, a site (optionally one of its devices) or a sensor:
    a holiday, an outage, a maintenance window or a free label.

    Exactly one of ``site_id`` and ``sensor_id`` is set, or neither (the account itself);
    ``device`` names a device of the site. A job for a stored site treats the site's
    ``outage`` annotations as its devices (or the named device) unavailable.
    """

    __tablename__ = "annotations"
    __table_args__ = (
        CheckConstraint(_in("type", ANNOTATION_TYPES), name="type"),
        CheckConstraint("end_time > start_time", name="period"),
        CheckConstraint("site_id IS NULL OR sensor_id IS NULL", name="one_target"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    site_id: Mapped[int | None] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), index=True
    )
    sensor_id: Mapped[int | None] = mapped_column(
        ForeignKey("sensors.id", ondelete="CASCADE"), index=True
    )
    device: Mapped[str | None] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(16))
    start_time: Mapped[datetime] = mapped_column(UTCDateTime())
    end_time: Mapped[datetime] = mapped_column(UTCDateTime())
    content: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"Annotation(id={self.id!r}, type={self.type!r}, site_id={self.site_id!r})"


__all__ = [
    "ACCOUNT_KINDS",
    "ANNOTATION_TYPES",
    "JOB_KINDS",
    "JOB_STATUSES",
    "UFTP_DIRECTIONS",
    "UFTP_ROLES",
    "UFTP_STATUSES",
    "USER_ROLES",
    "Account",
    "AdmmCheckpoint",
    "Annotation",
    "ApiToken",
    "Base",
    "Device",
    "Portfolio",
    "Schedule",
    "SchedulingJob",
    "Sensor",
    "Site",
    "TimedValue",
    "UTCDateTime",
    "UftpCommitment",
    "UftpFlexOffer",
    "UftpMessage",
    "UftpParticipant",
    "User",
    "portfolio_sites",
    "utcnow",
]
