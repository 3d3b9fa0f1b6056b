"""Response models: what each route answers, declared in the OpenAPI spec.

The routes build their answers as before (dicts keyed as the JSON is); FastAPI validates
them against these models and writes them by alias, so the public JSON keeps its hyphenated
names. ``extra="forbid"``: a key a route sends that its model does not declare is a bug the
tests see (the spec would not tell callers about it), not a key silently dropped.

Free-form parts stay free-form: a job's request-shaped ``result`` and ``progress``, a
device's flex-model fields, a flex-context, a chart spec.

Times are ISO 8601 text with an offset, as the routes write them (``isoformat()``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Account",
    "AnnotationOut",
    "BidCurves",
    "BidHour",
    "BidPoint",
    "Commitment",
    "Connection",
    "Duration",
    "FlexOffer",
    "Forecast",
    "ForecastingJob",
    "Health",
    "Job",
    "JobAccepted",
    "JobKind",
    "JobStatus",
    "JobSummary",
    "Me",
    "Metered",
    "Order",
    "Out",
    "Participant",
    "PeriodKpis",
    "PeriodReport",
    "PeriodSite",
    "Portfolio",
    "PortfolioUpdateSent",
    "Profile",
    "Quantity",
    "Queued",
    "Ready",
    "RedispatchBid",
    "RevokedOffer",
    "Sensor",
    "SensorData",
    "SensorDataStored",
    "Site",
    "Time",
    "ToCro",
    "ToDso",
    "Token",
    "UftpMessage",
    "User",
]


def _hyphen(name: str) -> str:
    return name.replace("_", "-")


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=_hyphen, populate_by_name=True)


Time = str
"""An ISO 8601 date-time with an offset."""

Duration = str
"""An ISO 8601 duration, e.g. ``PT15M``."""


# --------------------------------------------------------------------------- operations
class Health(Out):
    status: Literal["ok"]


class Ready(Out):
    status: Literal["ready"]
    checks: dict[str, str] = Field(description="each check: `ok` or `not used`")


# --------------------------------------------------------------------------- jobs
JobStatus = Literal["queued", "running", "finished", "failed", "cancelled"]
JobKind = Literal["storage", "shifting", "portfolio", "redispatch-bid", "forecasting"]


class JobAccepted(Out):
    job: str = Field(description="the job's id (a UUID); its URL is in `Location`")
    status: Literal["queued"]


class JobSummary(Out):
    job: str
    kind: JobKind
    status: JobStatus
    created: Time
    started: Time | None
    finished: Time | None


class Job(JobSummary):
    """A job; ``progress``, ``result`` and ``error`` are present only when they apply."""

    progress: dict[str, Any] | None = Field(
        None, description="while queued (portfolio jobs) or running: the phase and figures"
    )
    result: dict[str, Any] | None = Field(None, description="when finished: the schedules")
    error: dict[str, Any] | None = Field(None, description="when failed: a problem body")


# --------------------------------------------------------------------------- sites
class Site(Out):
    id: int
    name: str
    account: int
    ean: str | None
    congestion_point: str | None
    flex_model: list[dict[str, Any]] = Field(
        description="the devices: `name`, `type` and their flex-model fields"
    )
    flex_context: dict[str, Any]


class Portfolio(Out):
    id: int
    name: str
    account: int
    congestion_point: str | None
    sites: list[int]


class Sensor(Out):
    id: int
    name: str
    unit: str
    site: int | None
    resolution: Duration


class AnnotationOut(Out):
    """A holiday, outage, maintenance window or label; ``site``/``sensor`` null on the
    account itself, ``device`` a device of the site."""

    id: int
    account: int
    type: Literal["holiday", "outage", "maintenance", "label"]
    start: Time
    end: Time
    content: str
    site: int | None
    sensor: int | None
    device: str | None


class SensorDataStored(Out):
    sensor: int
    stored: int = Field(description="how many values were stored")


class SensorData(Out):
    sensor: int
    start: Time
    end: Time
    resolution: Duration
    unit: str
    values: list[float | None] = Field(description="one per step; `null` where none is stored")
    next: Time | None = Field(description="the next page's `start`; `null` on the last page")


# --------------------------------------------------------------------------- accounts
class Account(Out):
    id: int
    name: str
    kind: Literal["aggregator", "consultancy", "dso"]
    parent: int | None


class Me(Out):
    user: str
    role: Literal["admin", "operator", "viewer"]
    platform_admin: bool
    account: Account
    visible_accounts: list[int]


class User(Out):
    id: int
    name: str
    role: Literal["admin", "operator", "viewer"]
    account: int


class Token(Out):
    id: int
    name: str
    user: int
    token: str = Field(description="the token's text: shown in this response only")


# --------------------------------------------------------------------------- GOPACS
class Quantity(Out):
    value: float | None
    unit: str


class Profile(Out):
    values: list[float | None]
    unit: str


class Order(Out):
    side: Literal["buy", "sell"]
    start: Time
    end: Time
    resolution: Duration
    volume: Profile
    price: Quantity | None


class Connection(Out):
    site: int
    id: str
    ean: str | None


class RedispatchBid(Out):
    job: str = Field(description="the finished redispatch-bid job that stores this bid")
    congestion_point: str | None
    connections: list[Connection]
    commitments: list[Any] = Field(description="the ids of the honoured UFTP commitments")
    direction: Literal["buy", "sell"]
    deliverable: bool
    full: bool
    reason: str | None
    start: Time
    end: Time
    resolution: Duration
    needed: Profile
    volume: Profile
    energy: Quantity
    in_area_order: Order
    out_of_area_order: Order
    price: Quantity | None
    cost_increase: Quantity | None
    baseline: dict[str, Any]
    schedule: dict[str, Any] | None


# --------------------------------------------------------------------------- UFTP
class Participant(Out):
    domain: str
    role: Literal["DSO", "CRO"]
    public_key: str
    endpoint: str
    account: int | None
    created: Time


class UftpMessage(Out):
    id: int
    direction: Literal["in", "out"]
    type: str
    message_id: str | None
    conversation_id: str | None
    reference_message_id: str | None
    sender_domain: str | None
    recipient_domain: str | None
    congestion_point: str | None
    status: str
    rejection_reason: str | None
    duplicate: int = Field(description="1 if this message repeated an earlier one")
    attempts: int
    next_attempt: Time | None
    last_error: str | None
    created: Time
    done: Time | None
    xml: str | None


class FlexOffer(Out):
    id: int
    message_id: str
    flex_request_message_id: str | None
    dso: str
    congestion_point: str
    period: str
    start: Time
    resolution: Duration
    isps: list[dict[str, Any]]
    baseline: Profile
    price: float
    currency: str
    expires: Time
    revoked: Time | None
    state: Literal["open", "ordered", "revoked", "expired"]


class RevokedOffer(FlexOffer):
    revocation_message_id: str


class Commitment(Out):
    id: int
    order_message_id: str
    order_reference: str
    offer: int | None
    dso: str
    congestion_point: str
    period: str
    start: Time
    end: Time
    resolution: Duration
    isps: list[dict[str, Any]]
    min_power: Profile
    max_power: Profile
    price: float
    currency: str
    created: Time


class Queued(Out):
    """A UFTP message queued for sending."""

    message_id: str
    status: Literal["queued"]


class ToDso(Queued):
    dso: str


class Metered(ToDso):
    revision: int


class ToCro(Queued):
    cro: str


class PortfolioUpdateSent(ToCro):
    connections: list[str]


# --------------------------------------------------------------------------- forecasting
class Forecast(Out):
    sensor: int
    start: Time = Field(description="the first forecast step")
    resolution: Duration
    belief_time: Time = Field(description="when the forecast was made: its beliefs' time")
    model: str
    coverage: float = Field(description="the probability the interval is meant to hold")
    unit: str
    values: list[float] = Field(description="the point forecast (median), stored as beliefs")
    lower: list[float]
    upper: list[float]
    history_values: int = Field(description="measured values learnt from")


class ForecastingJob(Out):
    forecasting_job: str = Field(description="the finished forecasting job's id")
    status: Literal["finished"]
    result: Forecast


# --------------------------------------------------------------------------- day-ahead bids
class BidPoint(Out):
    """A ladder point whose solved volume was above a lower price's (docs/markets.md)."""

    price: float = Field(description="the ladder price, EUR/MWh")
    solved: float = Field(description="the volume the solve gave, kW")
    volume: float = Field(description="the volume on the curve, kW")


class BidHour(Out):
    start: Time
    scheduled: Quantity = Field(description="the hour's mean power at the request's prices")
    volumes: Profile = Field(description="per ladder price, the hour's flat power (kW)")
    repaired: list[BidPoint] = Field(description="points lowered to the monotone envelope")
    non_monotone: list[BidPoint] = Field(description="points left non-monotone (infeasible)")


class BidCurves(Out):
    """Day-ahead step bid curves, one per market hour (docs/markets.md)."""

    start: Time
    duration: Duration
    resolution: Duration
    product: Duration
    prices: Profile = Field(description="the ladder, EUR/MWh, increasing")
    hours: list[BidHour]
    solves: int
    time_limited_solves: int


# --------------------------------------------------------------------------- period reports
class PeriodKpis(Out):
    """KPIs over a period (docs/reports.md); the CO2 keys only when a counted schedule had a
    ``co2-intensity``."""

    energy_cost: Quantity
    baseline_cost: Quantity
    savings: Quantity
    import_: Quantity = Field(alias="import")
    export: Quantity
    production: Quantity
    consumption: Quantity
    self_consumption: float | None
    self_sufficiency: float | None
    peak_import: Quantity
    peak_export: Quantity
    penalties: dict[str, float] = Field(description="EUR per cost key, pro rata by steps")
    emissions: Quantity | None = None
    baseline_emissions: Quantity | None = None
    emissions_savings: Quantity | None = None
    co2_steps: int | None = Field(None, description="counted steps that had a CO2 intensity")


class PeriodSite(Out):
    site: int | None = Field(description="the stored site's id; null for an inline site")
    key: str = Field(description="`site:<id>`, or `job:<job id>[/<entry>]` for an inline site")
    name: str
    label: str = Field(description="the name, with the key where two sites share a name")
    jobs: list[str] = Field(description="the jobs whose steps count, newest first")
    hours: float = Field(description="the hours of counted steps")
    kpis: PeriodKpis


class PeriodReport(Out):
    start: Time
    end: Time
    sites: list[PeriodSite]
    total: PeriodKpis
