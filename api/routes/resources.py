"""Sites (with their devices' flex-models), portfolios and time series (sensors)."""

from __future__ import annotations

import csv
import io
import itertools
import math
from datetime import datetime, timedelta
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request, Response
from pydantic import AfterValidator, AwareDatetime, Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from api import pages, schemas
from api.deps import Caller, CallerDep, KnownQuery, OperatorDep, SessionDep
from api.fields import Id, IdPath, Label, Name, Resolution, Short, no_nul, reject_nul
from api.limits import check_portfolio_sites, check_sensor_read, check_site_devices
from api.problems import errors, link
from api.references import read_covering, resample, visible_sensor, visible_site
from store import Account, Portfolio, Sensor, Site
from store import repository as repo
from vpp.device import Spec
from vpp.errors import ConflictError, FieldIssue, NotFoundError, RequestValidationError
from vpp.request import FlexContext, FlexModel, issues_from_pydantic, validate
from vpp.timeseries import iso_duration

__all__ = [
    "CongestionPoint",
    "PortfolioIn",
    "SensorIn",
    "SeriesIn",
    "SiteIn",
    "caller_account",
    "create_portfolio",
    "create_sensor",
    "create_site",
    "delete_site",
    "get_data",
    "get_portfolio",
    "get_site",
    "list_portfolios",
    "list_sensors",
    "list_sites",
    "portfolio_json",
    "post_data",
    "replace_site",
    "router",
    "sensor_json",
    "site_json",
]

router = APIRouter(
    prefix="/api/v1", tags=["sites, portfolios and time series"], dependencies=[KnownQuery]
)

_FLEX_MODEL = TypeAdapter(FlexModel)


class SiteIn(Spec):
    name: Name
    ean: Short | None = None
    congestion_point: Label | None = None
    flex_model: list[dict[str, Any]] = Field(default_factory=list)
    flex_context: dict[str, Any] = Field(default_factory=dict)


def _check_site(body: SiteIn) -> list[dict[str, Any]]:
    """Validate the devices and context (units, fields) and give each device its name."""
    reject_nul(body.flex_model, "flex-model")  # stored as jsonb, which refuses U+0000
    reject_nul(body.flex_context, "flex-context")
    try:
        devices = _FLEX_MODEL.validate_python(body.flex_model)
    except PydanticValidationError as err:
        raise RequestValidationError(
            [
                FieldIssue(
                    f"flex-model{i.field}" if i.field.startswith("[") else f"flex-model.{i.field}",
                    i.message,
                )
                for i in issues_from_pydantic(err)
            ]
        ) from None
    try:
        FlexContext.model_validate(body.flex_context)
    except PydanticValidationError as err:
        raise RequestValidationError(
            [FieldIssue(f"flex-context.{i.field}", i.message) for i in issues_from_pydantic(err)]
        ) from None
    names = [d.label for d in devices]
    if len(set(names)) != len(names):
        raise RequestValidationError.single("flex-model", "device names must be unique")
    return [
        {
            "name": d.label,
            "type": d.type,
            "flex_model": {k: v for k, v in raw.items() if k not in ("name", "type")},
        }
        for d, raw in zip(devices, body.flex_model, strict=True)
    ]


def site_json(site: Site) -> dict[str, Any]:
    return {
        "id": site.id,
        "name": site.name,
        "account": site.account_id,
        "ean": site.ean,
        "congestion-point": site.congestion_point,
        "flex-model": [{"name": d.name, "type": d.type, **d.flex_model} for d in site.devices],
        "flex-context": site.flex_context,
    }


@router.post(
    "/sites",
    status_code=201,
    response_model=schemas.Site,
    responses=errors(403, e409="your account has a site of that name"),
)
def create_site(
    body: SiteIn, caller: OperatorDep, session: SessionDep, response: Response
) -> dict[str, Any]:
    """Store a site and its devices; ``name`` is unique within the account."""
    check_site_devices(len(body.flex_model))
    devices = _check_site(body)
    account = caller_account(session, caller)
    if any(s.name == body.name for s in repo.list_sites(session, [caller.account_id])):
        raise ConflictError(f"your account already has a site named {body.name!r}")
    site = repo.upsert_site(
        session,
        account,
        body.name,
        body.flex_context,
        devices,
        ean=body.ean,
        congestion_point=body.congestion_point,
    )
    response.headers["Location"] = f"/api/v1/sites/{site.id}"
    return site_json(site)


@router.put(
    "/sites/{site_id}",
    response_model=schemas.Site,
    responses=errors(403, 404, e409="your account has another site of that name"),
)
def replace_site(
    site_id: IdPath, body: SiteIn, caller: OperatorDep, session: SessionDep
) -> dict[str, Any]:
    site = visible_site(session, caller, site_id)
    check_site_devices(len(body.flex_model))
    devices = _check_site(body)
    account = site.account
    if body.name != site.name:
        try:
            repo.rename_site(session, site, body.name)
        except repo.RecordExistsError as err:
            raise ConflictError(str(err)) from None
    site = repo.upsert_site(
        session,
        account,
        body.name,
        body.flex_context,
        devices,
        ean=body.ean,
        congestion_point=body.congestion_point,
    )
    return site_json(site)


CongestionPoint = Annotated[
    Annotated[str, AfterValidator(no_nul)] | None,
    Query(alias="congestion-point", min_length=1, max_length=255),
]


def _id_page(
    name: str,
    request: Request,
    response: Response,
    rows: list[Any],
    limit: int,
) -> list[Any]:
    """The first ``limit`` of ``rows`` (fetched with one more), the next page linked."""
    more, rows = len(rows) > limit, rows[:limit]
    cursor = pages.encode(name, [rows[-1].id]) if more else None
    pages.link_next(request, response, cursor, limit)
    return rows


@router.get("/sites", response_model=list[schemas.Site])
def list_sites(
    request: Request,
    response: Response,
    caller: CallerDep,
    session: SessionDep,
    congestion_point: CongestionPoint = None,
    cursor: pages.Cursor = None,
    limit: pages.Limit = 100,
) -> list[dict[str, Any]]:
    """Sites by id, a page at a time (next page: ``Link`` / ``X-Next-Cursor`` headers);
    filter: ``congestion-point``."""
    key = pages.decode("sites", cursor, (int,))
    limit = min(limit, pages.MAX_LIMIT)
    rows = repo.list_sites(session, caller.visible, after_id=key[0] if key else None,
                           limit=limit + 1, congestion_point=congestion_point)
    return [site_json(s) for s in _id_page("sites", request, response, rows, limit)]


@router.get("/sites/{site_id}", response_model=schemas.Site, responses=errors(404))
def get_site(site_id: IdPath, caller: CallerDep, session: SessionDep) -> dict[str, Any]:
    return site_json(visible_site(session, caller, site_id))


@router.delete("/sites/{site_id}", status_code=204, responses=errors(403, 404))
def delete_site(site_id: IdPath, caller: OperatorDep, session: SessionDep) -> Response:
    visible_site(session, caller, site_id)
    repo.delete_site(session, site_id)
    return Response(status_code=204)


# -- portfolios --------------------------------------------------------------------------
class PortfolioIn(Spec):
    name: Name
    congestion_point: Label | None = None
    sites: list[Id] = Field(min_length=1)


def portfolio_json(p: Portfolio) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "account": p.account_id,
        "congestion-point": p.congestion_point,
        "sites": [s.id for s in p.sites],
    }


@router.post(
    "/portfolios",
    status_code=201,
    response_model=schemas.Portfolio,
    responses=errors(403, e409="your account has a portfolio of that name"),
)
def create_portfolio(body: PortfolioIn, caller: OperatorDep, session: SessionDep) -> dict[str, Any]:
    """A named set of the account's sites, optionally behind one congestion point (EAN)."""
    check_portfolio_sites(len(body.sites))
    for i, site_id in enumerate(body.sites):
        site = session.get(Site, site_id)
        if site is None or site.account_id != caller.account_id:
            raise RequestValidationError.single(f"sites[{i}]", f"you have no site {site_id}")
    account = caller_account(session, caller)
    try:
        portfolio = repo.create_portfolio(
            session, account, body.name, body.sites, congestion_point=body.congestion_point
        )
    except repo.RecordExistsError as err:
        raise ConflictError(str(err)) from None
    return portfolio_json(portfolio)


@router.get("/portfolios", response_model=list[schemas.Portfolio])
def list_portfolios(
    request: Request,
    response: Response,
    caller: CallerDep,
    session: SessionDep,
    congestion_point: CongestionPoint = None,
    cursor: pages.Cursor = None,
    limit: pages.Limit = 100,
) -> list[dict[str, Any]]:
    """Portfolios by id, a page at a time (next page: ``Link`` / ``X-Next-Cursor``
    headers); filter: ``congestion-point``."""
    key = pages.decode("portfolios", cursor, (int,))
    limit = min(limit, pages.MAX_LIMIT)
    rows = repo.list_portfolios(session, caller.visible, after_id=key[0] if key else None,
                                limit=limit + 1, congestion_point=congestion_point)
    return [portfolio_json(p) for p in _id_page("portfolios", request, response, rows, limit)]


@router.get(
    "/portfolios/{portfolio_id}", response_model=schemas.Portfolio, responses=errors(404)
)
def get_portfolio(portfolio_id: IdPath, caller: CallerDep, session: SessionDep) -> dict[str, Any]:
    portfolio = session.get(Portfolio, portfolio_id)
    if portfolio is None or not caller.may_see(portfolio.account_id):
        raise NotFoundError(f"no portfolio {portfolio_id}")
    return portfolio_json(portfolio)


# -- time series ---------------------------------------------------------------------------
class SensorIn(Spec):
    name: Name
    unit: Annotated[str, AfterValidator(no_nul)] = Field(
        min_length=1, max_length=32, examples=["kW", "EUR/MWh"]
    )
    resolution: Resolution = timedelta(minutes=15)
    site: Id | None = None


class SeriesIn(Spec):
    start: AwareDatetime
    values: list[float]
    resolution: Resolution | None = None
    source: Short = "user"


def sensor_json(s: Sensor) -> dict[str, Any]:
    return {
        "id": s.id,
        "name": s.name,
        "unit": s.unit,
        "site": s.site_id,
        "resolution": iso_duration(s.resolution),
    }


@router.post(
    "/sensors",
    status_code=201,
    response_model=schemas.Sensor,
    responses=errors(403, 404, e409="your account has a sensor of that name"),
)
def create_sensor(body: SensorIn, caller: OperatorDep, session: SessionDep) -> dict[str, Any]:
    """A time series (prices, inflexible load, PV forecast...) and its unit."""
    _check_unit(body.unit)
    site = visible_site(session, caller, body.site) if body.site is not None else None
    account = caller_account(session, caller)
    if any(s.name == body.name for s in repo.list_sensors(session, [caller.account_id])):
        raise ConflictError(f"your account already has a sensor named {body.name!r}")
    sensor = repo.get_or_create_sensor(
        session, account, body.name, body.unit, body.resolution, site=site
    )
    return sensor_json(sensor)


def _check_unit(unit: str) -> None:
    from vpp.units import Kind, factor

    kinds: tuple[Kind, ...] = ("power", "price", "energy", "fraction")
    for kind in kinds:
        try:
            factor(unit, kind)
            return
        except ValueError:
            continue
    raise RequestValidationError.single(
        "unit", f"{unit!r} is not a power, energy, price or fraction unit"
    )


@router.get("/sensors", response_model=list[schemas.Sensor])
def list_sensors(
    request: Request,
    response: Response,
    caller: CallerDep,
    session: SessionDep,
    site: Annotated[Id | None, Query(description="only the sensors of this site")] = None,
    cursor: pages.Cursor = None,
    limit: pages.Limit = 100,
) -> list[dict[str, Any]]:
    """Sensors by id, a page at a time (next page: ``Link`` / ``X-Next-Cursor`` headers);
    filter: ``site``."""
    key = pages.decode("sensors", cursor, (int,))
    limit = min(limit, pages.MAX_LIMIT)
    rows = repo.list_sensors(session, caller.visible, after_id=key[0] if key else None,
                             limit=limit + 1, site_id=site)
    return [sensor_json(s) for s in _id_page("sensors", request, response, rows, limit)]


@router.post(
    "/sensors/{sensor_id}/data",
    response_model=schemas.SensorDataStored,
    responses=errors(403, 404),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": SeriesIn.model_json_schema(by_alias=True)},
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "datetime,value\n2026-03-02T00:00:00+01:00,1.5\n",
                },
            },
        }
    },
)
async def post_data(
    sensor_id: IdPath, request: Request, caller: OperatorDep, session: SessionDep
) -> dict[str, Any]:
    """Upload values: JSON ``{"start", "values", "resolution"?, "source"?}`` or CSV
    (``text/csv``: a header, then ``datetime,value`` rows at the sensor's resolution)."""
    sensor = visible_sensor(session, caller, sensor_id)
    raw = await request.body()
    if request.headers.get("content-type", "").startswith("text/csv"):
        start, values = _read_csv(raw.decode("utf-8", errors="replace"), sensor.resolution)
        resolution, source = sensor.resolution, "user"
    else:
        body = validate(SeriesIn, _json(raw))
        start, values, source = body.start, body.values, body.source
        resolution = body.resolution or sensor.resolution
        if resolution != sensor.resolution:
            raise RequestValidationError.single(
                "resolution",
                f"must be the sensor's {iso_duration(sensor.resolution)}; "
                "resample before uploading, or make a sensor of that resolution",
            )
    if not all(np.isfinite(values)):
        raise RequestValidationError.single("values", "must be finite numbers")
    stored = repo.save_time_series(session, sensor, start, resolution, values, source)
    return {"sensor": sensor.id, "stored": stored}


def _json(raw: bytes) -> Any:
    import json

    try:
        return json.loads(raw or b"null")
    except json.JSONDecodeError as err:
        raise RequestValidationError.single("body", f"invalid JSON: {err.msg}") from None
    except UnicodeDecodeError:
        raise RequestValidationError.single("body", "invalid JSON: not UTF-8 text") from None


_AWARE = TypeAdapter(AwareDatetime)


def _read_csv(text: str, resolution: timedelta) -> tuple[datetime, list[float]]:
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if len(rows) < 2:
        raise RequestValidationError.single("csv", "need a header row and at least one value")
    stamps, values = [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) < 2:
            raise RequestValidationError.single(f"csv line {line}", "need datetime,value")
        try:
            stamps.append(_AWARE.validate_python(row[0].strip()))
            values.append(float(row[1]))
        except (PydanticValidationError, ValueError):
            raise RequestValidationError.single(
                f"csv line {line}", "need an ISO datetime with offset and a number"
            ) from None
    for line, (a, b) in enumerate(itertools.pairwise(stamps), start=3):
        if b - a != resolution:
            raise RequestValidationError.single(
                f"csv line {line}", f"rows must be {iso_duration(resolution)} apart"
            )
    return stamps[0], values


@router.get(
    "/sensors/{sensor_id}/data", response_model=schemas.SensorData, responses=errors(404)
)
def get_data(
    sensor_id: IdPath,
    caller: CallerDep,
    session: SessionDep,
    start: Annotated[AwareDatetime, Query()],
    end: Annotated[AwareDatetime, Query()],
    resolution: Annotated[Resolution | None, Query()] = None,
    limit: Annotated[
        int | None, Query(ge=1, description="values per page; the answer's `next` is the "
                          "start of the next page")
    ] = None,
) -> dict[str, Any]:
    """Values on ``[start, end)``, resampled to ``resolution`` (default: the sensor's);
    ``null`` where nothing is stored. With ``limit``, at most that many values from
    ``start``: ``next`` is where the next page starts (``null`` on the last page). A read
    covers at most ``VPP_MAX_SENSOR_POINTS`` points (422 beyond)."""
    sensor = visible_sensor(session, caller, sensor_id)
    step = resolution or sensor.resolution
    if end <= start or step <= timedelta(0) or abs((end - start) / step % 1) > 1e-9:
        raise RequestValidationError.single("end", "end must follow start by whole steps")
    steps = round((end - start) / step)
    page_end = start + min(steps, limit) * step if limit is not None else end
    # what is read from the database counts too: a PT1S sensor read at PT1H reads 3600
    # stored values per answered one
    finest = min(step, sensor.resolution)
    check_sensor_read(math.ceil((page_end - start) / finest), "end" if limit is None else "limit")
    values = resample(
        read_covering(session, sensor, start, page_end),
        sensor.resolution,
        start,
        page_end - start,
        step,
    )
    return {
        "sensor": sensor.id,
        "start": start.isoformat(),
        "end": page_end.isoformat(),
        "resolution": iso_duration(step),
        "unit": sensor.unit,
        "values": [None if np.isnan(v) else float(v) for v in values],
        "next": page_end.isoformat() if page_end < end else None,
    }


def caller_account(session: Any, caller: Caller) -> Account:
    account: Account | None = session.get(Account, caller.account_id)
    assert account is not None
    return account


for _source, _id in ((("POST", "/api/v1/sites", 201), "$response.body#/id"),
                     (("PUT", "/api/v1/sites/{site_id}", 200), "$response.body#/id")):
    link(_source, "GetSite", ("GET", "/api/v1/sites/{site_id}"), site_id=_id)
    link(_source, "ReplaceSite", ("PUT", "/api/v1/sites/{site_id}"), site_id=_id)
    link(_source, "DeleteSite", ("DELETE", "/api/v1/sites/{site_id}"), site_id=_id)
link(("POST", "/api/v1/portfolios", 201), "GetPortfolio",
     ("GET", "/api/v1/portfolios/{portfolio_id}"), portfolio_id="$response.body#/id")
for _name, _target in (("PostData", ("POST", "/api/v1/sensors/{sensor_id}/data")),
                       ("GetData", ("GET", "/api/v1/sensors/{sensor_id}/data"))):
    link(("POST", "/api/v1/sensors", 201), _name, _target, sensor_id="$response.body#/id")
