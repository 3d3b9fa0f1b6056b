"""What the portfolio can offer markets: capacity headroom per ISP (docs/markets.md)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from api.deps import KnownQuery, OperatorDep
from api.limits import check_job
from api.problems import errors
from vpp.errors import LimitExceededError
from vpp.headroom import headroom
from vpp.portfolio import validate_portfolio

__all__ = ["HEADROOM_MAX_WORK", "post_headroom", "router"]

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
