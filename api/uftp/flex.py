"""Flexibility as the aggregator: FlexRequest → FlexOffer, FlexOrder → commitment, D-Prognosis.

The portfolio of a congestion point is the set of sites (of the accounts the DSO's
registration serves) whose ``congestion-point`` is the message's ``CongestionPoint``,
scheduled for the whole ``Period`` on the ISP grid
(:func:`api.congestion.portfolio_for_connections`), with the commitments made there.

FlexRequest (UFTP semantics: MinPower/MaxPower of a ``Requested`` ISP bound the *change* of
the congestion point's power, W, positive = more consumption; ``Available`` ISPs are free):

* ``baseline[k]``: the portfolio's exact optimum (kW per ISP, :func:`vpp.flexibility.baseline`);
* limits on the summed power ``S[k]``: ``baseline[k] + MinPower/1000 <= S[k] <=
  baseline[k] + MaxPower/1000`` at Requested ISPs, free elsewhere
  (:class:`vpp.flexibility.PowerLimits`);
* :func:`vpp.flexibility.quote` → the flexed optimum; the offer's ISP ``Power`` is the change
  ``S_flexed - baseline`` in W (rounded to whole W, kept inside the requested range), at
  every ISP where it is not zero and at every Requested ISP;
* ``Price`` = the portfolio's extra cost ``cost(flexed) - cost(baseline)`` (EUR) plus the
  margin ``VPP_UFTP_MARGIN`` (EUR per MWh of offered flexibility energy,
  ``sum_k |Power_k| * dt``).

Not deliverable (or nothing to change) → ``FlexRequestResponse`` Rejected with the reason,
no FlexOffer.

FlexOrder → accepted only if it refers to our FlexOffer to that DSO which is neither expired,
revoked nor ordered already, for the same congestion point and period, with exactly the
offered ISPs (expanded per ISP) and price. Its commitment bounds the summed power on the
side of each ordered change: ``S[k] <= baseline[k] + Power_k/1000`` where ``Power_k < 0``,
``S[k] >= baseline[k] + Power_k/1000`` where ``Power_k > 0`` (delivering at least the
ordered flexibility); the congestion point's portfolio is rescheduled with all its
commitments, the new schedules stored as a finished portfolio job, and a D-Prognosis of the
new schedule follows the ``FlexOrderResponse``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from shapeshifter_uftp.uftp import (
    AvailableRequested,
    DPrognosis,
    DPrognosisISP,
    FlexOffer,
    FlexOfferOption,
    FlexOfferOptionISP,
    FlexOrder,
    FlexRequest,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from actors.job_service import record_portfolio_job
from api.uftp import protocol
from api.uftp.protocol import IspDay, RejectionError, UftpConfig
from api.uftp.verify import enqueue, queue_response
from store import repository as repo
from store import uftp as store
from store.tables import Account, Site, UftpCommitment, UftpFlexOffer, UftpParticipant, utcnow
from vpp.errors import InfeasibleError, NotFoundError, RequestValidationError, VppError
from vpp.flexibility import PowerLimits, baseline, limits_commitment, quote
from vpp.portfolio import PortfolioRequest, PortfolioResult, parse_portfolio
from vpp.timeseries import Horizon

__all__ = [
    "OPTION",
    "CongestionPortfolio",
    "account_ids",
    "add_commitments",
    "commitment_json",
    "congestion_portfolio",
    "handle_flex_order",
    "handle_flex_request",
    "prognosis_on_request",
    "send_d_prognosis",
    "store_schedules",
    "stored_commitments",
]


logger = logging.getLogger(__name__)

OPTION = "A"


# --------------------------------------------------------------------------- portfolios
@dataclass
class CongestionPortfolio:
    """A congestion point's portfolio request for one ISP day, and its sites."""

    congestion_point: str
    day: IspDay
    request: dict[str, Any]
    sites: list[Site]
    account_ids: list[int]


def account_ids(session: Session, participant: UftpParticipant) -> list[int]:
    """The accounts whose sites we offer to ``participant``: the registering account's."""
    if participant.account_id is None:
        return []
    account = session.get(Account, participant.account_id)
    return repo.visible_account_ids(session, account) if account is not None else []


def congestion_portfolio(
    session: Session, accounts: list[int], congestion_point: str, day: IspDay
) -> CongestionPortfolio:
    """The portfolio behind ``congestion_point`` with its stored commitments on ``day``;
    ``RejectionError("Invalid Congestion Point")`` if no site of ours is behind it."""
    from api import congestion

    commitments = [
        commitment_json(c)
        for c in stored_commitments(session, accounts, congestion_point, day.start, day.end)
    ]
    try:
        sites = congestion.matching_sites(session, accounts, congestion_point=congestion_point)
    except (NotFoundError, RequestValidationError):
        raise RejectionError("Invalid Congestion Point") from None
    try:
        request = congestion.portfolio_for_connections(
            session,
            accounts,
            congestion_point=congestion_point,
            start=day.start,
            duration=day.count * day.resolution,
            resolution=day.resolution,
            commitments=commitments,
        )
    except VppError as err:
        raise RejectionError(f"the portfolio's data are incomplete: {err.message}") from None
    return CongestionPortfolio(congestion_point, day, request, list(sites), accounts)


def stored_commitments(
    session: Session, accounts: list[int], congestion_point: str, start: datetime, end: datetime
) -> list[UftpCommitment]:
    return store.list_commitments(
        session,
        account_ids=accounts,
        congestion_points=[congestion_point],
        overlapping=(start, end),
    )


def commitment_json(row: UftpCommitment) -> dict[str, Any]:
    """A stored commitment as a portfolio request's commitment (``id`` = the FlexOrder's
    MessageID); ISPs it does not bound stay free."""
    horizon = Horizon(row.start, row.end - row.start, timedelta(seconds=row.resolution_seconds))
    upper = np.array([np.inf if v is None else v for v in row.upper], float)
    lower = np.array([-np.inf if v is None else v for v in row.lower], float)
    return limits_commitment(PowerLimits(upper, -lower), horizon, row.order_message_id)


def _solve(portfolio: CongestionPortfolio) -> tuple[PortfolioRequest, PortfolioResult]:
    """The portfolio parsed once, and its baseline."""
    try:
        parsed = parse_portfolio(portfolio.request)
        return parsed, baseline(parsed)
    except InfeasibleError as err:
        raise RejectionError(f"the portfolio cannot be scheduled: {err.message}") from None
    except RequestValidationError as err:
        raise RejectionError(f"the portfolio's data are incomplete: {err.message}") from None


# --------------------------------------------------------------------------- FlexRequest
def handle_flex_request(
    session: Session, message: FlexRequest, participant: UftpParticipant, cfg: UftpConfig
) -> str:
    """Answer a FlexRequest: its response, then a FlexOffer when we can deliver."""
    day = protocol.isp_day(message.period, message.time_zone, message.isp_duration)
    now = utcnow()
    if day.end <= now:
        raise RejectionError("Period Out Of Bounds")
    try:
        expires = protocol.parse_time(message.expiration_date_time)
    except ValueError:
        raise RejectionError("Invalid Message: ExpirationDateTime") from None
    if expires <= now:
        raise RejectionError("Expiration DateTime Out Of Bounds")
    requested = {
        k: isp
        for k, isp in protocol.expand(message.isps, day.count, "*").items()
        if isp.disposition == AvailableRequested.REQUESTED
    }
    for isp in requested.values():
        if isp.min_power > isp.max_power:
            raise RejectionError("Invalid Message: MinPower is above MaxPower")
    portfolio = congestion_portfolio(
        session, account_ids(session, participant), message.congestion_point, day
    )
    parsed, solved = _solve(portfolio)
    limits = _requested_limits(solved.power, requested, day.count)
    try:
        result = quote(parsed, limits, 0.0, base=solved)  # not parsed or solved twice
    except VppError as err:
        raise RejectionError(f"the portfolio cannot be quoted: {err.message}") from None
    if not result.deliverable or result.change is None or result.price is None:
        queue_response(session, message, participant.domain,
                       f"no flexibility offered: {result.reason}", cfg)
        return "not deliverable"
    base = result.baseline_power
    powers = _offer_powers(result.change, requested)
    if not any(powers.values()):
        queue_response(session, message, participant.domain,
                       "no flexibility offered: the baseline already keeps the requested limits",
                       cfg)
        return "nothing to change"
    energy_mwh = sum(abs(p) for p in powers.values()) / 1e6 * day.resolution.total_seconds() / 3600
    price = round(max(result.price, 0.0) + cfg.margin * energy_mwh, 4)
    queue_response(session, message, participant.domain, None, cfg)
    offer_expiry = min(expires, now + cfg.offer_validity)
    offer = FlexOffer(
        isp_duration=message.isp_duration,
        time_zone=message.time_zone,
        period=message.period,
        congestion_point=message.congestion_point,
        expiration_date_time=protocol.now_text(offer_expiry),
        flex_request_message_id=message.message_id,
        currency="EUR",
        offer_options=[
            FlexOfferOption(
                option_reference=OPTION,
                price=Decimal(f"{price:.4f}"),
                isps=[FlexOfferOptionISP(power=p, start=k, duration=1)
                      for k, p in sorted(powers.items())],
            )
        ],
    )
    offer_id = enqueue(session, offer, participant.domain, cfg, message.conversation_id)
    store.save_offer(
        session,
        message_id=offer_id,
        flex_request_message_id=message.message_id,
        dso_domain=participant.domain,
        congestion_point=message.congestion_point,
        account_id=participant.account_id,
        period=day.period.isoformat(),
        time_zone=day.time_zone,
        start=day.start,
        resolution_seconds=int(day.resolution.total_seconds()),
        isps=[{"start": k, "duration": 1, "power": p} for k, p in sorted(powers.items())],
        baseline=[float(v) for v in base],
        option_reference=OPTION,
        price=price,
        currency="EUR",
        expires_at=offer_expiry,
    )
    logger.info("offered %d ISPs at %s for %.4f EUR (%d sites)", len(powers),
                message.congestion_point, price, len(portfolio.sites))
    return "offered"


def _requested_limits(base: np.ndarray, requested: dict[int, Any], count: int) -> PowerLimits:
    upper, production = np.full(count, np.inf), np.full(count, np.inf)
    for k, isp in requested.items():
        upper[k - 1] = base[k - 1] + isp.max_power / 1000.0
        production[k - 1] = -(base[k - 1] + isp.min_power / 1000.0)
    return PowerLimits(upper, production)


def _offer_powers(change: np.ndarray, requested: dict[int, Any]) -> dict[int, int]:
    """Offered change per ISP (W): rounded, inside the requested range at Requested ISPs."""
    out: dict[int, int] = {}
    for index, value in enumerate(change):
        k = index + 1
        watts = round(float(value) * 1000.0)
        if k in requested:
            watts = int(min(max(watts, requested[k].min_power), requested[k].max_power))
        if watts or k in requested:
            out[k] = int(watts)
    return out


# --------------------------------------------------------------------------- FlexOrder
def handle_flex_order(
    session: Session, message: FlexOrder, participant: UftpParticipant, cfg: UftpConfig
) -> str:
    """Accept an order of one of our valid offers: commit, reschedule, respond, prognose."""
    offer = _ordered_offer(session, message, participant)
    day = protocol.isp_day(message.period, message.time_zone, message.isp_duration)
    ordered = protocol.expand(message.isps, day.count)
    offered = {int(i["start"]) + j: int(i["power"]) for i in offer.isps
               for j in range(int(i.get("duration", 1)))}
    if ordered != offered:
        raise RejectionError("Invalid Message: the ISPs differ from the FlexOffer's")
    if abs(float(message.price) - offer.price) > 1e-4 or message.currency != offer.currency:
        raise RejectionError("Invalid Message: the price differs from the FlexOffer's")
    if message.activation_factor is not None and Decimal(message.activation_factor) != 1:
        raise RejectionError("Invalid Message: only ActivationFactor 1.00 is offered")
    lower, upper = _order_bounds(offer, ordered, day.count)
    commitment = {
        "order_message_id": str(message.message_id),
        "offer_id": offer.id,
        "dso_domain": participant.domain,
        "congestion_point": offer.congestion_point,
        "account_id": offer.account_id,
        "order_reference": message.order_reference,
        "period": offer.period,
        "start": day.start,
        "end": day.end,
        "resolution_seconds": int(day.resolution.total_seconds()),
        "isps": [{"start": k, "duration": 1, "power": p} for k, p in sorted(ordered.items())],
        "lower": lower,
        "upper": upper,
        "price": float(message.price),
        "currency": message.currency,
    }
    accounts = account_ids(session, participant)
    try:
        with session.begin_nested():
            row = store.save_commitment(session, **commitment)
    except IntegrityError:  # another worker committed an order of this offer just now
        raise RejectionError(
            "Reference Message Expired: the FlexOffer was ordered already"
        ) from None
    portfolio = congestion_portfolio(session, accounts, offer.congestion_point, day)
    _, result = _solve(portfolio)  # RejectionError rolls the commitment back with the transaction
    job_id = store_schedules(session, portfolio, result, offer.account_id)
    queue_response(session, message, participant.domain, None, cfg)
    send_d_prognosis(session, participant, portfolio, result, cfg, message.conversation_id)
    logger.info("order %s committed at %s (commitment %d, job %s)", message.message_id,
                offer.congestion_point, row.id, job_id)
    return "committed"


def _ordered_offer(
    session: Session, message: FlexOrder, participant: UftpParticipant
) -> UftpFlexOffer:
    offer = store.get_offer(session, message.flex_offer_message_id)
    # the account too: a domain re-registered by another account must not order the first
    # account's offers
    if (
        offer is None
        or offer.dso_domain != participant.domain
        or offer.account_id != participant.account_id
    ):
        raise RejectionError("Unknown Reference: FlexOfferMessageID")
    if offer.revoked_at is not None:
        raise RejectionError("Reference Message Revoked")
    if offer.expires_at <= utcnow():
        raise RejectionError("Reference Message Expired")
    if store.commitment_for_offer(session, offer.id) is not None:
        raise RejectionError("Reference Message Expired: the FlexOffer was ordered already")
    if message.congestion_point != offer.congestion_point:
        raise RejectionError("Invalid Congestion Point")
    if protocol.to_date(message.period).isoformat() != offer.period:
        raise RejectionError("Reference Period Mismatch")
    return offer


def _order_bounds(
    offer: UftpFlexOffer, ordered: dict[int, int], count: int
) -> tuple[list[float | None], list[float | None]]:
    lower: list[float | None] = [None] * count
    upper: list[float | None] = [None] * count
    for k, watts in ordered.items():
        limit = offer.baseline[k - 1] + watts / 1000.0
        if watts < 0:
            upper[k - 1] = limit
        elif watts > 0:
            lower[k - 1] = limit
    return lower, upper


def store_schedules(
    session: Session, portfolio: CongestionPortfolio, result: PortfolioResult,
    account_id: int | None,
) -> str:
    """The rescheduled portfolio as a finished portfolio job with one schedule per device
    and per site, stored by the job service as a REST portfolio job's are."""
    from api.congestion import entry_ids

    body = result.to_json()
    body["portfolio"]["congestion-point"] = portfolio.congestion_point
    return record_portfolio_job(
        session, portfolio.request, body, account_id=account_id,
        sites=entry_ids(portfolio.sites),
    )


# --------------------------------------------------------------------------- D-Prognosis
def send_d_prognosis(
    session: Session,
    participant: UftpParticipant,
    portfolio: CongestionPortfolio,
    result: PortfolioResult,
    cfg: UftpConfig,
    conversation_id: str | None = None,
) -> str:
    """Queue the D-Prognosis of ``result``: the summed power per ISP in W."""
    day = portfolio.day
    revision = store.count_outbound(
        session, "D-Prognosis", portfolio.congestion_point, day.period.isoformat()
    ) + 1
    message = DPrognosis(
        isp_duration=protocol.xml_duration(day.resolution),
        time_zone=day.time_zone,
        period=protocol.xml_date(day.period),
        congestion_point=portfolio.congestion_point,
        revision=revision,
        isps=[DPrognosisISP(power=round(float(v) * 1000.0), start=k + 1, duration=1)
              for k, v in enumerate(result.power)],
    )
    return enqueue(session, message, participant.domain, cfg, conversation_id)


def prognosis_on_request(
    session: Session, participant: UftpParticipant, congestion_point: str, day: IspDay,
    cfg: UftpConfig,
) -> str:
    """``POST /api/v1/uftp/d-prognosis``: the current schedule (with commitments) of the
    congestion point for ``day``, sent to ``participant``."""
    portfolio = congestion_portfolio(session, account_ids(session, participant),
                                     congestion_point, day)
    _, result = _solve(portfolio)
    return send_d_prognosis(session, participant, portfolio, result, cfg)


# --------------------------------------------------------------------------- portfolio jobs
def add_commitments(
    session: Session, accounts: list[int], body: dict[str, Any], congestion_points: set[str]
) -> dict[str, Any]:
    """A portfolio job's request with the stored commitments at its congestion points (the
    stored sites', and the target's ``congestion-point``) that overlap its window added to its
    ``commitments``: later jobs keep honouring accepted FlexOrders. A commitment bounds the
    summed power of the job's sites. A body whose window does not parse is returned as is
    (its validation reports that)."""
    target = body.get("target")
    points = set(congestion_points)
    if isinstance(target, dict) and isinstance(target.get("congestion-point"), str):
        points.add(target["congestion-point"])
    points.discard("")
    if not points:
        return body
    try:
        start = datetime.fromisoformat(str(body["start"]))
        end = start + _iso_timedelta(str(body["duration"]))
    except (KeyError, ValueError):
        return body
    if start.tzinfo is None:
        return body
    rows = store.list_commitments(session, account_ids=accounts,
                                  congestion_points=sorted(points), overlapping=(start, end))
    if not rows:
        return body
    given = body.get("commitments")
    existing = list(given) if isinstance(given, list) else []
    return {**body, "commitments": [*existing, *(commitment_json(r) for r in rows)]}


def _iso_timedelta(text: str) -> timedelta:
    from pydantic import TypeAdapter

    return TypeAdapter(timedelta).validate_python(text)
