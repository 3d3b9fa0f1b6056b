"""UFTP (ShapeShifter) as the aggregator: the message endpoint and its admin API.

* ``POST /shapeshifter/api/v3/message``: a peer's ``SignedMessage`` (XML). The answer is
  the synchronous receipt (HTTP 200, or the transport error's status, see
  :mod:`api.uftp.verify`); functional responses follow asynchronously to the peer's
  registered endpoint.
* ``/api/v1/uftp/...`` (admin): participants, messages, flex offers (and their revocation),
  commitments, D-Prognosis on request, Metering from a stored sensor, AGRPortfolioUpdate/Query
  toward a CRO.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import APIRouter, FastAPI, Query, Request, Response
from pydantic import AfterValidator, AwareDatetime, Field, field_validator
from shapeshifter_uftp.uftp import (
    AgrPortfolioQuery,
    AgrPortfolioUpdate,
    AgrPortfolioUpdateConnection,
    FlexOfferRevocation,
    Metering,
    MeteringISP,
    MeteringProfile,
    MeteringProfileEnum,
    MeteringUnit,
)
from sqlalchemy.orm import Session

from api import pages, schemas
from api.deps import AdminDep, Caller, KnownQuery, SessionDep
from api.fields import Id, IdPath, Label, no_nul
from api.problems import errors, link
from api.references import visible_sensor, visible_site
from api.uftp import flex, protocol
from api.uftp.protocol import RejectionError, UftpConfig
from api.uftp.verify import enqueue, receive
from api.uftp.worker import UftpWorker, count
from store import Site
from store import repository as repo
from store import uftp as store
from store.tables import (
    UftpCommitment,
    UftpFlexOffer,
    UftpMessage,
    UftpParticipant,
    utcnow,
)
from vpp.device import Spec
from vpp.errors import ConflictError, NotFoundError, RequestValidationError

__all__ = [
    "DOMAIN",
    "ENDPOINT",
    "ENTITY",
    "Clean",
    "MessageStatus",
    "MeteringIn",
    "ParticipantIn",
    "PortfolioQueryIn",
    "PortfolioUpdateIn",
    "PrognosisIn",
    "add_participant",
    "admin",
    "commitment_json",
    "delete_participant",
    "install",
    "list_commitments",
    "list_messages",
    "list_offers",
    "list_participants",
    "message",
    "message_json",
    "metered_means",
    "offer_json",
    "participant_json",
    "post_agr_portfolio_query",
    "post_agr_portfolio_update",
    "post_d_prognosis",
    "post_metering",
    "revoke_offer",
    "router",
]

router = APIRouter(tags=["UFTP"])
admin = APIRouter(prefix="/api/v1/uftp", tags=["UFTP"], dependencies=[KnownQuery])

DOMAIN = re.compile(r"([a-z0-9]+(-[a-z0-9]+)*\.)+[a-z]{2,}")
ENDPOINT = r"^https?://[^\s/\x00]+(/[^\s\x00]*)?$"
ENTITY = re.compile(r"(ea1\.[0-9]{4}-[0-9]{2}\..{1,244}:.{1,244}|ean\.[0-9]{12,34})")


def install(app: FastAPI) -> None:
    """Add the routes and the worker (started now if UFTP is configured, else on first use)."""
    app.include_router(router)
    app.include_router(admin)
    app.state.uftp_worker = UftpWorker(app.state.sessions)
    if protocol.is_configured():
        app.state.uftp_worker.start()


def _worker(request: Request) -> UftpWorker:
    worker: UftpWorker = request.app.state.uftp_worker
    return worker.start()


def _config() -> UftpConfig:
    """Our UFTP settings; :class:`UftpNotConfiguredError` (a 503) names what is missing."""
    return protocol.config()


# --------------------------------------------------------------------------- the endpoint
@router.post(
    "/shapeshifter/api/v3/message",
    response_class=Response,
    responses={
        200: {"description": "accepted for processing (or functionally rejected: the "
              "rejection follows to the sender's endpoint)", "content": {}},
        **{status: {"description": why, "content": {"text/plain": {"schema": {"type": "string"}}}}
           for status, why in ((400, "not a SignedMessage, or not UFTP XML"),
                               (401, "the signature does not verify with the sender's key"),
                               (419, "the sender's domain is not known here"))},
        **errors(413, 503),
    },
    openapi_extra={"requestBody": {"required": True, "content": {
        "text/xml": {"schema": {"type": "string"}}}}},
)
async def message(request: Request) -> Response:
    """Receive a UFTP ``SignedMessage``: 200 when accepted for processing (or functionally
    rejected, the rejection following asynchronously), 400/401/419 for transport errors."""
    cfg = _config()
    body = await request.body()
    sessions = request.app.state.sessions
    from starlette.concurrency import run_in_threadpool

    def store_it() -> Any:
        with sessions.begin() as session:
            return receive(session, body, cfg)

    receipt, _ = await run_in_threadpool(store_it)
    count("in", receipt.message_type, receipt.outcome)
    _worker(request).kick()
    if receipt.http_status != 200:
        return Response(receipt.reason or "", status_code=receipt.http_status,
                        media_type="text/plain")
    return Response(status_code=200)


# --------------------------------------------------------------------------- participants
class ParticipantIn(Spec):
    # the patterns are declared for callers (and generated tests); the validators below
    # check the same with messages that say what is expected
    domain: str = Field(
        min_length=4, max_length=253, json_schema_extra={"pattern": f"^{DOMAIN.pattern}$"}
    )
    role: Literal["DSO", "CRO"]
    public_key: str = Field(
        description="an Ed25519 public key, base64 (32 bytes)",
        json_schema_extra={"pattern": "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$"},
    )
    endpoint: str = Field(
        max_length=2048, json_schema_extra={"pattern": ENDPOINT}
    )

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if not DOMAIN.fullmatch(value):
            raise ValueError("must be a lower-case internet domain, e.g. dso.example.com")
        return value

    @field_validator("public_key")
    @classmethod
    def _key(cls, value: str) -> str:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("must be base64 (as `vpp uftp keygen` prints it)") from None
        if len(raw) != 32:
            raise ValueError(f"must be a 32-byte Ed25519 public key, got {len(raw)} bytes")
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not re.fullmatch(ENDPOINT, value):
            raise ValueError("must be an http(s) URL, e.g. https://dso.example.com/shapeshifter/api/v3/message")
        return value


def participant_json(p: UftpParticipant) -> dict[str, Any]:
    return {"domain": p.domain, "role": p.role, "public-key": p.public_key,
            "endpoint": p.endpoint, "account": p.account_id, "created": p.created_at.isoformat()}


@admin.post(
    "/participants",
    status_code=201,
    response_model=schemas.Participant,
    responses=errors(403, e409="the domain is registered already"),
)
def add_participant(body: ParticipantIn, caller: AdminDep, session: SessionDep) -> dict[str, Any]:
    """Register a DSO (GOPACS too) or CRO; our offers to it are built from the sites of the
    caller's account (and its clients). A domain is held by one account: 409 if it is
    registered already, by this account or another."""
    try:
        row = store.add_participant(session, body.domain, body.role, body.public_key,
                                    body.endpoint, caller.account_id)
    except repo.RecordExistsError as err:
        raise ConflictError(str(err)) from None
    return participant_json(row)


@admin.get("/participants", response_model=list[schemas.Participant], responses=errors(403))
def list_participants(caller: AdminDep, session: SessionDep) -> list[dict[str, Any]]:
    """The peers of your account (and its clients); a platform admin sees every peer."""
    return [participant_json(p) for p in store.list_participants(session, caller.platform_scope)]


@admin.delete("/participants/{domain}", status_code=204, responses=errors(403, 404))
def delete_participant(domain: str, caller: AdminDep, session: SessionDep) -> Response:
    """Forget a peer of your account (its messages stay); another account's is 404."""
    if not DOMAIN.fullmatch(domain):  # no peer has such a domain (and PostgreSQL may refuse it)
        raise NotFoundError(f"no participant {domain!r}")
    try:
        store.delete_participant(session, domain, caller.platform_scope)
    except repo.RecordNotFoundError as err:
        raise NotFoundError(str(err)) from None
    return Response(status_code=204)


# --------------------------------------------------------------------------- messages
def message_json(m: UftpMessage) -> dict[str, Any]:
    return {
        "id": m.id,
        "direction": m.direction,
        "type": m.type,
        "message-id": m.message_id,
        "conversation-id": m.conversation_id,
        "reference-message-id": m.reference_message_id,
        "sender-domain": m.sender_domain,
        "recipient-domain": m.recipient_domain,
        "congestion-point": m.congestion_point,
        "status": m.status,
        "rejection-reason": m.rejection_reason,
        "duplicate": m.duplicate,
        "attempts": m.attempts,
        "next-attempt": m.next_attempt_at.isoformat() if m.next_attempt_at else None,
        "last-error": m.last_error,
        "created": m.created_at.isoformat(),
        "done": m.done_at.isoformat() if m.done_at else None,
        "xml": m.xml,
    }


Clean = Annotated[str, AfterValidator(no_nul)]
MessageStatus = Literal[
    "received", "processing", "processed", "rejected", "failed", "queued", "sending", "sent"
]


@admin.get("/messages", response_model=list[schemas.UftpMessage], responses=errors(403))
def list_messages(
    request: Request,
    response: Response,
    caller: AdminDep,
    session: SessionDep,
    type: Annotated[Clean | None, Query(max_length=64)] = None,
    conversation_id: Annotated[Clean | None, Query(alias="conversation-id", max_length=36)] = None,
    direction: Literal["in", "out"] | None = None,
    status: MessageStatus | None = None,
    created_after: Annotated[AwareDatetime | None, Query(alias="created-after")] = None,
    created_before: Annotated[AwareDatetime | None, Query(alias="created-before")] = None,
    cursor: pages.Cursor = None,
    limit: pages.Limit = 200,
) -> list[dict[str, Any]]:
    """Stored messages of your account's peers, newest first, a page at a time (next page:
    ``Link`` / ``X-Next-Cursor`` headers; filters ``?type=&conversation-id=&direction=
    &status=&created-after=&created-before=``); a platform admin sees every message, also
    those of unknown senders."""
    pages.check_range(created_after, created_before, ("created-after", "created-before"))
    key = pages.decode("uftp-messages", cursor, (int,))
    limit = min(limit, pages.MAX_LIMIT)
    rows = store.list_messages(session, message_type=type, conversation_id=conversation_id,
                               direction=direction, status=status,
                               account_ids=caller.platform_scope, limit=limit + 1,
                               before_id=key[0] if key else None,
                               created_after=created_after, created_before=created_before)
    more, rows = len(rows) > limit, rows[:limit]
    pages.link_next(
        request, response, pages.encode("uftp-messages", [rows[-1].id]) if more else None, limit
    )
    return [message_json(m) for m in rows]


# --------------------------------------------------------------------------- offers
def offer_json(o: UftpFlexOffer, session: Session) -> dict[str, Any]:
    ordered = store.commitment_for_offer(session, o.id) is not None
    now = utcnow()
    state = ("ordered" if ordered else "revoked" if o.revoked_at
             else "expired" if o.expires_at <= now else "open")
    return {
        "id": o.id,
        "message-id": o.message_id,
        "flex-request-message-id": o.flex_request_message_id,
        "dso": o.dso_domain,
        "congestion-point": o.congestion_point,
        "period": o.period,
        "start": o.start.isoformat(),
        "resolution": f"PT{o.resolution_seconds // 60}M",
        "isps": o.isps,
        "baseline": {"values": o.baseline, "unit": "kW"},
        "price": o.price,
        "currency": o.currency,
        "expires": o.expires_at.isoformat(),
        "revoked": o.revoked_at.isoformat() if o.revoked_at else None,
        "state": state,
    }


@admin.get("/flex-offers", response_model=list[schemas.FlexOffer], responses=errors(403))
def list_offers(caller: AdminDep, session: SessionDep) -> list[dict[str, Any]]:
    """Our FlexOffers to your account's peers, newest first (a platform admin: all)."""
    return [offer_json(o, session) for o in store.list_offers(session, caller.platform_scope)]


@admin.post(
    "/flex-offers/{offer_id}/revoke",
    response_model=schemas.RevokedOffer,
    responses=errors(403, 404, 503, e409="the offer is ordered, revoked or expired"),
)
def revoke_offer(
    offer_id: IdPath, request: Request, caller: AdminDep, session: SessionDep
) -> dict[str, Any]:
    """Revoke an open offer of ours: it is void from now on, and a FlexOfferRevocation goes
    to the DSO. 409 once it is ordered, revoked or expired."""
    try:
        offer = store.get_offer_by_id(session, offer_id)
    except repo.RecordNotFoundError:
        raise NotFoundError(f"no flex offer {offer_id}") from None
    if not caller.may_operate(offer.account_id):
        raise NotFoundError(f"no flex offer {offer_id}")
    state = offer_json(offer, session)["state"]
    if state != "open":
        raise ConflictError(f"flex offer {offer_id} is {state}; only open offers are revoked")
    cfg = _config()
    offer.revoked_at = utcnow()
    revocation = FlexOfferRevocation(flex_offer_message_id=offer.message_id)
    message_id = enqueue(session, revocation, offer.dso_domain, cfg, None,
                         congestion_point=offer.congestion_point)
    session.flush()
    body = {**offer_json(offer, session), "revocation-message-id": message_id}
    session.commit()  # the worker must find the revocation when kicked
    _worker(request).kick()
    return body


@admin.get("/commitments", response_model=list[schemas.Commitment], responses=errors(403))
def list_commitments(caller: AdminDep, session: SessionDep) -> list[dict[str, Any]]:
    """The orders your account's peers placed, oldest first (a platform admin: all)."""
    return [commitment_json(c)
            for c in store.list_commitments(session, account_ids=caller.platform_scope)]


def commitment_json(c: UftpCommitment) -> dict[str, Any]:
    return {
        "id": c.id,
        "order-message-id": c.order_message_id,
        "order-reference": c.order_reference,
        "offer": c.offer_id,
        "dso": c.dso_domain,
        "congestion-point": c.congestion_point,
        "period": c.period,
        "start": c.start.isoformat(),
        "end": c.end.isoformat(),
        "resolution": f"PT{c.resolution_seconds // 60}M",
        "isps": c.isps,
        "min-power": {"values": c.lower, "unit": "kW"},
        "max-power": {"values": c.upper, "unit": "kW"},
        "price": c.price,
        "currency": c.currency,
        "created": c.created_at.isoformat(),
    }


# --------------------------------------------------------------------------- D-Prognosis
class PrognosisIn(Spec):
    congestion_point: Label
    date: date
    dso: str | None = None
    time_zone: str = "Europe/Amsterdam"
    isp_duration: Literal["PT15M", "PT30M", "PT60M"] = "PT15M"


def _peer(
    session: Session, caller: Caller, domain: str | None, role: str, field: str
) -> UftpParticipant:
    """The caller's peer of ``role`` (named ``domain``, or the only one): messages go only
    to peers of the caller's account and its clients, never to another account's."""
    peers = [p for p in store.list_participants(session, list(caller.visible)) if p.role == role]
    if domain is not None:
        peers = [p for p in peers if p.domain == domain]
        if not peers:
            raise RequestValidationError.single(field, f"no registered {role} {domain!r}")
    if len(peers) != 1:
        raise RequestValidationError.single(
            field, f"name the {role}: {len(peers)} {role}s are registered"
        )
    return peers[0]


@admin.post(
    "/d-prognosis", status_code=202, response_model=schemas.ToDso, responses=errors(403, 503)
)
def post_d_prognosis(
    body: PrognosisIn, request: Request, caller: AdminDep, session: SessionDep
) -> dict[str, Any]:
    """Send the congestion point's D-Prognosis for ``date`` (its current schedule, with the
    commitments) to the DSO."""
    cfg = _config()
    dso = _peer(session, caller, body.dso, "DSO", "dso")
    if not ENTITY.fullmatch(body.congestion_point):
        raise RequestValidationError.single(
            "congestion-point", "must be a UFTP entity address, e.g. ean.871685900000000001"
        )
    try:
        day = protocol.isp_day(body.date, body.time_zone, body.isp_duration)
        message_id = flex.prognosis_on_request(session, dso, body.congestion_point, day, cfg)
    except RejectionError as err:
        raise RequestValidationError.single("congestion-point", err.reason) from None
    session.commit()
    _worker(request).kick()
    return {"message-id": message_id, "dso": dso.domain, "status": "queued"}


# --------------------------------------------------------------------------- CRO
class PortfolioUpdateIn(Spec):
    cro: str | None = None
    start_period: date
    end_period: date | None = None


class PortfolioQueryIn(Spec):
    cro: str | None = None
    period: date


def _connections(session: Session, caller: Any) -> list[str]:
    """Our connections' entity addresses (``ean.<EAN>``) from the stored sites' EANs."""
    out = []
    for site in session.query(Site).filter(Site.account_id.in_(list(caller.visible))):
        if site.ean:
            address = site.ean if site.ean.startswith(("ean.", "ea1.")) else f"ean.{site.ean}"
            if ENTITY.fullmatch(address):
                out.append(address)
    return sorted(set(out))


@admin.post(
    "/agr-portfolio-update",
    status_code=202,
    response_model=schemas.PortfolioUpdateSent,
    responses=errors(403, 503),
)
def post_agr_portfolio_update(
    body: PortfolioUpdateIn, request: Request, caller: AdminDep, session: SessionDep
) -> dict[str, Any]:
    """Tell the CRO the connections we represent (every stored site with an EAN)."""
    cfg = _config()
    cro = _peer(session, caller, body.cro, "CRO", "cro")
    addresses = _connections(session, caller)
    if not addresses:
        raise RequestValidationError.single("cro", "no site of yours has a connection EAN")
    end = protocol.xml_date(body.end_period) if body.end_period else None
    update = AgrPortfolioUpdate(connections=[
        AgrPortfolioUpdateConnection(entity_address=a, start_period=protocol.xml_date(
            body.start_period), end_period=end) for a in addresses])
    message_id = enqueue(session, update, cro.domain, cfg, None)
    session.commit()
    _worker(request).kick()
    return {"message-id": message_id, "cro": cro.domain, "connections": addresses,
            "status": "queued"}


@admin.post(
    "/agr-portfolio-query",
    status_code=202,
    response_model=schemas.ToCro,
    responses=errors(403, 503),
)
def post_agr_portfolio_query(
    body: PortfolioQueryIn, request: Request, caller: AdminDep, session: SessionDep
) -> dict[str, Any]:
    """Ask the CRO which DSOs and congestion points our connections are at on ``period``;
    its AGRPortfolioQueryResponse is stored (``GET /messages?type=AGRPortfolioQueryResponse``)."""
    cfg = _config()
    cro = _peer(session, caller, body.cro, "CRO", "cro")
    query = AgrPortfolioQuery(period=protocol.xml_date(body.period))
    message_id = enqueue(session, query, cro.domain, cfg, None)
    session.commit()
    _worker(request).kick()
    return {"message-id": message_id, "cro": cro.domain, "status": "queued"}


# --------------------------------------------------------------------------- Metering
class MeteringIn(Spec):
    site: Id
    sensor: Id
    date: date
    dso: str | None = None
    time_zone: str = "Europe/Amsterdam"
    isp_duration: Literal["PT15M", "PT30M", "PT60M"] = "PT15M"


@admin.post(
    "/metering", status_code=202, response_model=schemas.Metered, responses=errors(403, 404, 503)
)
def post_metering(
    body: MeteringIn, request: Request, caller: AdminDep, session: SessionDep
) -> dict[str, Any]:
    """Send a connection's metered power for ``date`` to the DSO (UFTP Metering, a Power
    profile in kW per ISP): the mean of the stored ``sensor`` (kW) over each ISP; the site's
    EAN is the meter's. Every ISP needs values."""
    cfg = _config()
    dso = _peer(session, caller, body.dso, "DSO", "dso")
    site = visible_site(session, caller, body.site)
    sensor = visible_sensor(session, caller, body.sensor)
    digits = (site.ean or "").removeprefix("ean.")
    if not re.fullmatch(r"[0-9]{18}", digits):
        raise RequestValidationError.single("site", "the site needs an 18-digit connection EAN")
    try:
        day = protocol.isp_day(body.date, body.time_zone, body.isp_duration)
    except RejectionError as err:
        raise RequestValidationError.single("time-zone", err.reason) from None
    values = metered_means(session, sensor, day)
    missing = [k + 1 for k, v in enumerate(values) if v is None]
    if missing:
        raise RequestValidationError.single(
            "sensor", f"no values for {len(missing)} ISPs (first: ISP {missing[0]})"
        )
    revision = store.count_outbound(session, "Metering", digits, day.period.isoformat()) + 1
    metering = Metering(
        profiles=[MeteringProfile(
            profile_type=MeteringProfileEnum.POWER, unit=MeteringUnit.K_W,
            isps=[MeteringISP(start=k + 1, value=Decimal(f"{v:.3f}"))
                  for k, v in enumerate(values)])],
        revision=revision,
        isp_duration=protocol.xml_duration(day.resolution),
        time_zone=day.time_zone,
        period=protocol.xml_date(day.period),
        ean=f"E{digits}",
    )
    message_id = enqueue(session, metering, dso.domain, cfg, None, congestion_point=digits)
    session.commit()
    _worker(request).kick()
    return {"message-id": message_id, "dso": dso.domain, "revision": revision, "status": "queued"}


link(("POST", "/api/v1/uftp/participants", 201), "DeleteParticipant",
     ("DELETE", "/api/v1/uftp/participants/{domain}"), domain="$response.body#/domain")


def metered_means(session: Session, sensor: Any, day: protocol.IspDay) -> list[float | None]:
    """The mean of the sensor's latest values within each ISP of ``day`` (None: no value)."""
    series = repo.read_time_series(session, sensor, day.start, day.end)
    sums = [0.0] * day.count
    counts = [0] * day.count
    instants = pd.DatetimeIndex(series.index).to_pydatetime()
    for when, value in zip(instants, series.to_numpy(), strict=True):
        k = int((when - day.start) / day.resolution)
        if 0 <= k < day.count:
            sums[k] += float(value)
            counts[k] += 1
    return [s / n if n else None for s, n in zip(sums, counts, strict=True)]
