"""Annotations: holidays, outages, maintenance windows and labels on the caller's account,
a site (or one of its devices) or a sensor (docs/annotations.md)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query, Request, Response
from pydantic import AwareDatetime, Field

from api import pages, schemas
from api.deps import CallerDep, KnownQuery, OperatorDep, SessionDep
from api.fields import Id, IdPath, IsoDateTime, Name
from api.problems import errors, link
from api.references import visible_sensor, visible_site
from api.routes.resources import caller_account
from store import Account, Annotation
from store import annotations as notes
from vpp.device import Spec
from vpp.errors import FieldIssue, NotFoundError, RequestValidationError

__all__ = ["AnnotationIn", "HolidaysIn", "annotation_json", "router"]

router = APIRouter(prefix="/api/v1", tags=["annotations"], dependencies=[KnownQuery])

AnnotationType = Literal["holiday", "outage", "maintenance", "label"]


class AnnotationIn(Spec):
    type: AnnotationType
    start: AwareDatetime
    end: AwareDatetime
    content: str = Field(default="", max_length=1000)
    site: Id | None = None
    sensor: Id | None = None
    device: Name | None = None


def _check(body: AnnotationIn) -> None:
    """What one field's type cannot say, each problem naming its field."""
    issues = []
    if body.end <= body.start:
        issues.append(FieldIssue("end", "must be after 'start'"))
    if body.site is not None and body.sensor is not None:
        issues.append(FieldIssue("sensor", "give 'site' or 'sensor', not both"))
    if body.device is not None and body.site is None:
        issues.append(FieldIssue("device", "names a device of the given 'site'; give 'site'"))
    if "\x00" in body.content:
        issues.append(FieldIssue("content", "must not contain U+0000"))
    if issues:
        raise RequestValidationError(issues)


def annotation_json(note: Annotation) -> dict[str, Any]:
    return {
        "id": note.id,
        "account": note.account_id,
        "type": note.type,
        "start": note.start_time.astimezone(UTC).isoformat(),
        "end": note.end_time.astimezone(UTC).isoformat(),
        "content": note.content,
        "site": note.site_id,
        "sensor": note.sensor_id,
        "device": note.device,
    }


@router.post(
    "/annotations",
    status_code=201,
    response_model=schemas.AnnotationOut,
    responses=errors(403, 404),
)
def create_annotation(
    body: AnnotationIn, caller: OperatorDep, session: SessionDep, response: Response
) -> dict[str, Any]:
    """Annotate your account, one of its sites (``device``: one device of it) or a sensor.
    A site's ``outage`` makes its devices (or the named device) unavailable in the jobs that
    schedule the stored site over that period."""
    _check(body)
    site = visible_site(session, caller, body.site) if body.site is not None else None
    sensor = visible_sensor(session, caller, body.sensor) if body.sensor is not None else None
    if site is not None and body.device not in (None, *(d.name for d in site.devices)):
        message = f"site {site.id} has no device {body.device!r}"
        raise RequestValidationError.single("device", message)
    owner: Account | None = caller_account(session, caller)
    if site is not None:
        owner = site.account
    elif sensor is not None:
        owner = session.get(Account, sensor.account_id)
    assert owner is not None  # a visible site's or sensor's account exists
    note = notes.create_annotation(
        session,
        owner,
        type=body.type,
        start=body.start,
        end=body.end,
        content=body.content,
        site=site,
        sensor=sensor,
        device=body.device,
    )
    response.headers["Location"] = f"/api/v1/annotations/{note.id}"
    return annotation_json(note)


@router.get("/annotations", response_model=list[schemas.AnnotationOut])
def list_annotations(
    request: Request,
    response: Response,
    caller: CallerDep,
    session: SessionDep,
    site: Annotated[Id | None, Query(description="only this site's")] = None,
    sensor: Annotated[Id | None, Query(description="only this sensor's")] = None,
    type: Annotated[AnnotationType | None, Query(description="only this type")] = None,
    start: Annotated[IsoDateTime | None, Query(description="overlapping [start, end)")] = None,
    end: Annotated[IsoDateTime | None, Query(description="overlapping [start, end)")] = None,
    cursor: pages.Cursor = None,
    limit: pages.Limit = 100,
) -> list[dict[str, Any]]:
    """Annotations you may see, by id, a page at a time; filters: ``site``, ``sensor``,
    ``type`` and overlap with ``[start, end)``."""
    key = pages.decode("annotations", cursor, (int,))
    limit = min(limit, pages.MAX_LIMIT)
    rows = notes.list_annotations(
        session,
        caller.visible,
        site_id=site,
        sensor_id=sensor,
        type=type,
        start=start,
        end=end,
        after_id=key[0] if key else None,
        limit=limit + 1,
    )
    more, rows = len(rows) > limit, rows[:limit]
    cursor = pages.encode("annotations", [rows[-1].id]) if more else None
    pages.link_next(request, response, cursor, limit)
    return [annotation_json(n) for n in rows]


class HolidaysIn(Spec):
    country: str = Field(min_length=2, max_length=3, description="ISO 3166 code, e.g. NL")
    subdivision: str | None = Field(default=None, min_length=1, max_length=10)
    years: list[int] = Field(min_length=1, max_length=5)
    timezone: str = Field(default="UTC", min_length=1, max_length=64)
    site: Id | None = None


@router.post(
    "/holidays",
    status_code=201,
    response_model=list[schemas.AnnotationOut],
    responses=errors(403, 404),
)
def import_holidays(
    body: HolidaysIn, caller: OperatorDep, session: SessionDep
) -> list[dict[str, Any]]:
    """One ``holiday`` annotation per public holiday of ``country`` (and ``subdivision``) in
    ``years``, from local midnight to midnight in ``timezone``, on your account or ``site``
    (from the ``holidays`` package). Holidays already annotated there are not repeated."""
    days = _holidays(body)
    site = visible_site(session, caller, body.site) if body.site is not None else None
    owner = site.account if site is not None else caller_account(session, caller)
    existing = {
        (n.start_time, n.content)
        for n in notes.list_annotations(session, [owner.id], site_id=body.site, type="holiday")
        if body.site is not None or n.site_id is None
    }
    zone = ZoneInfo(body.timezone)
    made = []
    for day, name in days:
        start = datetime.combine(day, time(0), zone)
        end = datetime.combine(day + timedelta(days=1), time(0), zone)
        if (start, name) in existing:
            continue
        made.append(
            notes.create_annotation(
                session, owner, type="holiday", start=start, end=end, content=name, site=site
            )
        )
    return [annotation_json(n) for n in made]


def _holidays(body: HolidaysIn) -> list[tuple[date, str]]:
    import holidays

    try:
        ZoneInfo(body.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        message = f"unknown time zone {body.timezone!r}"
        raise RequestValidationError.single("timezone", message) from None
    if any(not 1900 <= y <= 2100 for y in body.years):
        raise RequestValidationError.single("years", "years from 1900 to 2100")
    try:
        found = holidays.country_holidays(
            body.country.upper(), subdiv=body.subdivision, years=body.years
        )
    except NotImplementedError as err:
        if body.subdivision is not None and "subdivision" in str(err):
            message = f"{body.country!r} has no subdivision {body.subdivision!r}"
            raise RequestValidationError.single("subdivision", message) from None
        raise RequestValidationError.single(
            "country", f"no holidays known for {body.country!r} (ISO 3166 codes, e.g. NL)"
        ) from None
    return sorted(found.items())


def _visible(session: Any, caller: Any, annotation_id: int) -> Annotation:
    note = session.get(Annotation, annotation_id)
    if note is None or not caller.may_see(note.account_id):
        raise NotFoundError(f"no annotation {annotation_id}")
    return note


@router.get(
    "/annotations/{annotation_id}", response_model=schemas.AnnotationOut, responses=errors(404)
)
def get_annotation(annotation_id: IdPath, caller: CallerDep, session: SessionDep) -> dict[str, Any]:
    return annotation_json(_visible(session, caller, annotation_id))


@router.delete("/annotations/{annotation_id}", status_code=204, responses=errors(403, 404))
def delete_annotation(annotation_id: IdPath, caller: OperatorDep, session: SessionDep) -> Response:
    _visible(session, caller, annotation_id)
    notes.delete_annotation(session, annotation_id)
    return Response(status_code=204)


_CREATED = ("POST", "/api/v1/annotations", 201)
link(_CREATED, "GetAnnotation", ("GET", "/api/v1/annotations/{annotation_id}"),
     annotation_id="$response.body#/id")  # fmt: skip
link(_CREATED, "DeleteAnnotation", ("DELETE", "/api/v1/annotations/{annotation_id}"),
     annotation_id="$response.body#/id")  # fmt: skip
