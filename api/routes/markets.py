"""What the portfolio can offer markets: capacity headroom per ISP and day-ahead bid curves
per hour (docs/markets.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from api import schemas
from api.deps import KnownQuery, OperatorDep
from api.limits import check_job
from api.problems import errors
from vpp.bids import DEFAULT_PRICE_STEPS, bid_curves, validate_prices
from vpp.errors import LimitExceededError
from vpp.headroom import headroom
from vpp.portfolio import validate_portfolio

__all__ = [
    "BIDS_MAX_WORK",
    "HEADROOM_MAX_WORK",
    "post_bid_curves",
    "post_headroom",
    "router",
]

router = APIRouter(prefix="/api/v1", tags=["markets"], dependencies=[KnownQuery])

HEADROOM_MAX_WORK = 20_000
"""Steps x sites a synchronous headroom request may ask for (two solves per step)."""


@router.post(
    "/headroom",
    responses={
        200: {
            "description": "The schedule's summed power and its up and down headroom (kW)",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        **errors(403),
    },
)
def post_headroom(body: Annotated[dict[str, Any], Body()], caller: OperatorDep) -> JSONResponse:
    """Up and down capacity (aFRR, mFRR, FCR) the portfolio can hold at each ISP on top of
    its optimal schedule, within its congestion limit and commitments: a portfolio request
    (docs/portfolio.md), answered at once."""
    check_job(body)
    request = validate_portfolio(body)
    work = request.horizon.steps * len(request.sites)
    if work > HEADROOM_MAX_WORK:
        raise LimitExceededError(
            "sites",
            f"{request.horizon.steps} steps x {len(request.sites)} sites = {work}; a headroom "
            f"request has at most {HEADROOM_MAX_WORK} (use vpp.headroom in Python for more)",
            limit="headroom-work",
            maximum=HEADROOM_MAX_WORK,
        )
    return JSONResponse(headroom(request))


BIDS_MAX_WORK = 1_000_000
"""Solves x steps x sites a synchronous bid-curves request may ask for (a solve per hour
and ladder price, each of the whole horizon)."""


@router.post("/bid-curves", response_model=schemas.BidCurves, responses=errors(403))
def post_bid_curves(body: Annotated[dict[str, Any], Body()], caller: OperatorDep) -> dict[str, Any]:
    """Day-ahead step bid curves, price (EUR/MWh) to volume (kW, consumption positive), for
    each market hour of a portfolio request (docs/portfolio.md) from exact solves at a
    ladder of prices: the optional ``prices`` (increasing, EUR/MWh) next to the request's
    fields, else a default ladder over the request's prices (docs/markets.md)."""
    check_job(body)
    prices = validate_prices(body["prices"]) if "prices" in body else None
    request = validate_portfolio({k: v for k, v in body.items() if k != "prices"})
    steps, sites = request.horizon.steps, len(request.sites)
    hours = steps * request.horizon.dt
    ladder = len(prices) if prices is not None else DEFAULT_PRICE_STEPS
    work = round(hours * ladder) * steps * sites
    if work > BIDS_MAX_WORK:
        raise LimitExceededError(
            "sites",
            f"{hours:g} hours x {ladder} prices solves x {steps} steps x {sites} sites = "
            f"{work}; a bid-curves request has at most {BIDS_MAX_WORK} (use vpp.bids in "
            "Python for more)",
            limit="bid-curves-work",
            maximum=BIDS_MAX_WORK,
        )
    return bid_curves(request, prices=prices)
