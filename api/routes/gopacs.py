"""GOPACS redispatch (IDCONS): ``POST /api/v1/gopacs/redispatch-bid``.

A grid operator's congestion announcement (a congestion point or a list of connection EANs,
the direction, the period and the needed volume) becomes the order pair a CSP would place
on a trading platform linked to GOPACS, priced and scheduled by :mod:`vpp.gopacs` on the
caller's stored sites (:func:`api.congestion.portfolio_for_connections`). Nothing is traded
or stored: the answer is the bid and the schedule that delivers it (docs/gopacs.md).

Stored UFTP commitments (ordered FlexOrders) at the congestion point are honoured as hard
limits of the portfolio; for a list of connections they are not (a commitment bounds a
whole congestion point, not a subset of its connections).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body
from sqlalchemy.orm import Session

from actors.job_service import record_bid_job
from api import congestion, schemas
from api.deps import KnownQuery, OperatorDep, SessionDep
from api.fields import reject_nul
from api.problems import errors
from vpp.gopacs import bid_to_json, needed_volume, parse_redispatch, redispatch_bid, schedule_window
from vpp.portfolio import validate_portfolio

__all__ = [
    "Announcement",
    "post_redispatch_bid",
    "router",
]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/gopacs", tags=["gopacs"], dependencies=[KnownQuery])

Announcement = Annotated[
    dict[str, Any],
    Body(
        openapi_examples={
            "consumption congestion": {
                "summary": "sell 2 MW inside the area from 17:00 to 19:00",
                "value": {
                    "congestion-point": "EAN871687110000000001",
                    "direction": "sell",
                    "start": "2026-03-02T17:00:00+01:00",
                    "end": "2026-03-02T19:00:00+01:00",
                    "volume": "2 MW",
                },
            }
        }
    ),
]


@router.post(
    "/redispatch-bid",
    response_model=schemas.RedispatchBid,
    responses=errors(403, e404="no stored site behind the congestion point or EANs"),
)
def post_redispatch_bid(
    body: Announcement, caller: OperatorDep, session: SessionDep
) -> dict[str, Any]:
    """The in-area and out-of-area orders, their price and the schedule delivering them;
    stored as a finished ``redispatch-bid`` job (``job``) with that schedule."""
    reject_nul(body)  # PostgreSQL's jsonb refuses U+0000 (the job stores the announcement)
    announcement = parse_redispatch(body)
    start, duration, first, stop = schedule_window(announcement)
    need = needed_volume(announcement)
    accounts = list(caller.visible)
    commitments = (
        _stored_commitments(session, accounts, announcement.congestion_point, start, duration)
        if announcement.congestion_point is not None
        else []
    )
    request = congestion.portfolio_for_connections(
        session,
        accounts,
        congestion_point=announcement.congestion_point,
        eans=announcement.connections,
        start=start,
        duration=duration,
        resolution=announcement.resolution,
        commitments=commitments,
    )
    portfolio = validate_portfolio(request)
    bid = redispatch_bid(portfolio, announcement.side, first, stop, need)
    logger.info(
        "redispatch bid for %s: %s %.4g MWh at %s EUR/MWh (full: %s)",
        announcement.congestion_point or f"{len(announcement.connections or [])} connections",
        bid.side,
        bid.energy_mwh,
        "-" if bid.price is None else f"{bid.price:.4g}",
        bid.full,
    )
    sites = congestion.matching_sites(
        session,
        accounts,
        congestion_point=announcement.congestion_point,
        eans=announcement.connections,
    )
    ids = [entry["id"] for entry in request["sites"]]
    answer = {
        "congestion-point": announcement.congestion_point,
        "connections": [
            {"site": site.id, "id": entry_id, "ean": site.ean}
            for site, entry_id in zip(sites, ids, strict=True)
        ],
        "commitments": [c.get("id") for c in commitments],
        **bid_to_json(bid),
    }
    # a bid is a job like any other: listed, and its delivering schedule stored by site
    job_id = record_bid_job(session, dict(body), answer, account_id=caller.account_id,
                            sites=dict(zip(ids, sites, strict=True)))
    return {"job": job_id, **answer}


def _stored_commitments(
    session: Session, accounts: list[int], congestion_point: str, start: Any, duration: Any
) -> list[dict[str, Any]]:
    """Ordered FlexOrders at ``congestion_point`` overlapping the horizon, as commitments."""
    from api.uftp.flex import commitment_json
    from store import uftp as uftp_store

    rows = uftp_store.list_commitments(
        session,
        account_ids=accounts,
        congestion_points=[congestion_point],
        overlapping=(start, start + duration),
    )
    return [commitment_json(row) for row in rows]
