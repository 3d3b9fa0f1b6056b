"""A GOPACS redispatch (IDCONS) bid from a portfolio: the order pair and its schedule.

GOPACS redispatch, as the Dutch grid operators describe it: a grid operator announces
congestion in an area for some ISPs; a congestion service provider (CSP, here vpp) with
flexible connections inside the area places an order on an intraday trading platform
linked to GOPACS, with the connections as its location; GOPACS matches it with an opposite
order from outside the area, so the national balance is kept, and the grid operator pays
the spread between the two orders' prices.

* **consumption congestion** (too little power can enter the area): inside, the CSP
  **sells** (consumes less / produces more); the mirrored order outside **buys**.
  ``direction = "sell"`` (alias ``"reduce-consumption"``).
* **generation congestion** (too much power must leave the area): inside, the CSP **buys**
  (consumes more / produces less); outside, a **sell**. ``direction = "buy"`` (alias
  ``"reduce-production"``).

What the portfolio can shift, with ``B[t]`` the baseline summed power (the portfolio's exact
optimum, :func:`vpp.flexibility.baseline`), ``need[t]`` the announced volume (kW per ISP
of the period ``P``, 0 elsewhere) and ``v[t]`` the bid volume, ``0 <= v[t] <= need[t]``:

* sell: ``S[t] <= B[t] - v[t]`` for ``t`` in ``P``; buy: ``S[t] >= B[t] + v[t]``.

Two solves of the centralised portfolio (sites, target and commitments exact;
lexicographic): (1) maximise ``sum_t v[t]``, giving ``V*``; (2) minimise the portfolio's
cost (:attr:`vpp.portfolio.PortfolioResult.cost`: the sites' energy at their own prices
plus a market target's deviation cost) subject to ``sum_t v[t] >= V*``. When ``V*`` is
below ``sum need`` the bid is the largest deliverable volume and says so (``full=False``).

Prices, with ``E = dt * sum_t v[t] / 1000`` the bid energy (MWh) and ``dC`` the cost
increase of (2) over the baseline (EUR):

* ``price = dC / E`` (EUR/MWh): the spread the pair must earn so that the portfolio is
  indifferent; ``price * E == dC``.
* the **out-of-area order** is the opposite side, same volume per ISP, at the *reference
  price* ``p_ref``: the energy-weighted mean over the period of the sites' mean
  consumption price (sell) or production price (buy) from the request's flex-contexts.
  It leaves our energy position as scheduled: the energy moved out of (into) the area in
  the period is bought (sold) back outside, where it is valued at what our own tariffs say
  it is worth.
* the **in-area order** is at ``p_ref + price`` (sell) or ``p_ref - price`` (buy), so its
  spread to the out-of-area order is exactly ``price``: the grid operator paying the spread
  pays ``dC`` for ``E``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from pydantic import AwareDatetime, Field, field_validator, model_validator

from vpp.device import PowerSeries, Spec
from vpp.errors import InfeasibleError, RequestValidationError
from vpp.linear import INF, Term
from vpp.portfolio import CentralisedPortfolio, PortfolioRequest, PortfolioResult, parse_portfolio
from vpp.request import validate
from vpp.timeseries import Horizon, iso_duration

__all__ = [
    "Period",
    "RedispatchBid",
    "RedispatchRequest",
    "Side",
    "bid_to_json",
    "needed_volume",
    "parse_redispatch",
    "redispatch_bid",
    "reference_price",
    "schedule_window",
]


logger = logging.getLogger(__name__)

Side = Literal["sell", "buy"]
_ALIASES: dict[str, Side] = {
    "sell": "sell",
    "reduce-consumption": "sell",
    "buy": "buy",
    "reduce-production": "buy",
}


class Period(Spec):
    start: AwareDatetime
    end: AwareDatetime


class RedispatchRequest(Spec):
    """The body of ``POST /api/v1/gopacs/redispatch-bid`` (see docs/gopacs.md)."""

    congestion_point: str | None = Field(default=None, min_length=1)
    connections: list[str] | None = Field(default=None, min_length=1)
    direction: str
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    period: Period | None = None
    volume: PowerSeries
    resolution: timedelta = timedelta(minutes=15)
    horizon: Period | None = None

    @field_validator("direction")
    @classmethod
    def _side(cls, value: str) -> str:
        if value not in _ALIASES:
            raise ValueError(f"must be one of {sorted(_ALIASES)}")
        return _ALIASES[value]

    @field_validator("resolution")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be positive")
        return value

    @model_validator(mode="after")
    def _one_selector(self) -> RedispatchRequest:
        if (self.congestion_point is None) == (self.connections is None):
            raise ValueError("give 'congestion-point' or 'connections' (a list of EANs)")
        if self.period is None and (self.start is None or self.end is None):
            raise ValueError("give 'start' and 'end', or 'period'")
        if self.period is not None and (self.start is not None or self.end is not None):
            raise ValueError("give 'start' and 'end', or 'period', not both")
        return self

    @property
    def side(self) -> Side:
        return _ALIASES[self.direction]

    @property
    def window(self) -> tuple[datetime, datetime]:
        if self.period is not None:
            return self.period.start, self.period.end
        assert self.start is not None and self.end is not None
        return self.start, self.end


def parse_redispatch(raw: Any) -> RedispatchRequest:
    return validate(RedispatchRequest, raw)


def schedule_window(request: RedispatchRequest) -> tuple[datetime, timedelta, int, int]:
    """The portfolio's horizon ``(start, duration)`` and the period's steps ``[first, stop)``.

    The horizon is ``horizon`` if given, else the whole days (in the period start's UTC
    offset) around the period: energy moved out of the period needs room on either side.
    """
    start, end = request.window
    res = request.resolution
    path_end = "period.end" if request.period is not None else "end"
    if end <= start:
        raise RequestValidationError.single(path_end, "must be after the start")
    if request.horizon is not None:
        h_start, h_end = request.horizon.start, request.horizon.end
        if not (h_start <= start and end <= h_end):
            raise RequestValidationError.single("horizon", "must contain the period")
    else:
        h_start = start.replace(hour=0, minute=0, second=0, microsecond=0)
        h_end = end.replace(hour=0, minute=0, second=0, microsecond=0)
        if h_end < end:
            h_end += timedelta(days=1)
    for name, when in (("start", start), ("end", end), ("horizon", h_end)):
        offset = (when - h_start) / res
        if abs(offset - round(offset)) > 1e-9:
            field = f"period.{name}" if request.period is not None and name != "horizon" else name
            raise RequestValidationError.single(
                field, f"must fall on the {iso_duration(res)} ISP grid"
            )
    first = round((start - h_start) / res)
    stop = round((end - h_start) / res)
    return h_start, h_end - h_start, first, stop


def needed_volume(request: RedispatchRequest) -> np.ndarray:
    """The announced volume (kW) per ISP of the period; a compact series has one value per
    ISP of the period, segments hold at their absolute times."""
    start, end = request.window
    period = Horizon(start, end - start, request.resolution)
    values = request.volume.resolve(period, "volume", np.nan)
    if np.isnan(values).any():
        t = int(np.flatnonzero(np.isnan(values))[0])
        raise RequestValidationError.single(
            "volume", f"no value for the ISP at {period.at(t).isoformat()}"
        )
    if (values < 0).any():
        raise RequestValidationError.single("volume", "must not be negative")
    if not (values > 0).any():
        raise RequestValidationError.single("volume", "must be positive in some ISP")
    return np.asarray(values, float)


@dataclass(frozen=True)
class RedispatchBid:
    """The bid a portfolio can place for a redispatch call (module docstring)."""

    side: Side  # the in-area order's side
    first: int  # the period's steps [first, stop) on the portfolio horizon
    stop: int
    needed: np.ndarray  # kW per ISP of the period
    volume: np.ndarray  # kW per ISP of the period: the bid (<= needed)
    full: bool  # the whole needed volume is deliverable
    baseline: PortfolioResult
    flexed: PortfolioResult | None  # the schedule that delivers the bid
    cost_increase: float | None  # EUR, flexed.cost - baseline.cost
    energy_mwh: float  # dt * sum(volume) / 1000
    price: float | None  # EUR/MWh, cost_increase / energy_mwh
    reference_price: float | None  # EUR/MWh, the out-of-area order's price
    reason: str | None  # why the bid is partial or empty

    @property
    def deliverable(self) -> bool:
        return self.flexed is not None and self.energy_mwh > 0

    @property
    def in_area_price(self) -> float | None:
        if self.price is None or self.reference_price is None:
            return None
        sign = 1.0 if self.side == "sell" else -1.0
        return self.reference_price + sign * self.price


def redispatch_bid(
    request: PortfolioRequest | dict[str, Any],
    side: Side,
    first: int,
    stop: int,
    needed: np.ndarray | float,
) -> RedispatchBid:
    """The largest deliverable shift (up to ``needed`` kW per ISP of steps ``[first, stop)``)
    in direction ``side``, at least cost, and its prices (module docstring).

    Raises for a bad request or an infeasible baseline; a portfolio that can shift nothing
    gives a bid with zero volume, ``flexed=None`` and the reason.
    """
    portfolio_request = parse_portfolio(request)
    horizon = portfolio_request.horizon
    if not 0 <= first < stop <= horizon.steps:
        raise RequestValidationError.single("period", "must lie inside the portfolio's horizon")
    need = np.broadcast_to(np.asarray(needed, float), (stop - first,)).copy()
    base = CentralisedPortfolio(portfolio_request).solve()
    b = base.power[first:stop]
    best = _max_volume(portfolio_request, side, first, b, need)
    total = float(best.sum())
    empty = np.zeros(stop - first)
    if total <= 1e-6:
        reason = _nothing(side, horizon, first)
        logger.info("redispatch bid: %s", reason)
        return RedispatchBid(
            side, first, stop, need, empty, False, base, None, None, 0.0, None, None, reason
        )
    full = bool(total >= float(need.sum()) - 1e-6 * max(1.0, float(need.sum())))
    flexed, volume = _cheapest(portfolio_request, side, first, b, need, total, full)
    energy = float(volume.sum()) * horizon.dt / 1000.0
    increase = flexed.cost - base.cost
    partial = None if full else _partial(need, volume, horizon, first)
    return RedispatchBid(
        side,
        first,
        stop,
        need,
        volume,
        full,
        base,
        flexed,
        increase,
        energy,
        increase / energy,
        reference_price(portfolio_request, side, first, stop, volume),
        partial,
    )


def _shift_model(
    request: PortfolioRequest, side: Side, first: int, b: np.ndarray, need: np.ndarray
) -> tuple[CentralisedPortfolio, np.ndarray]:
    """The centralised portfolio plus the bid volume columns ``v`` (``[0, need]``) and the
    rows ``S[t] + v[t] <= B[t]`` (sell) or ``S[t] - v[t] >= B[t]`` (buy) on the period."""
    portfolio = CentralisedPortfolio(request)
    model, m = portfolio.model, len(need)
    v = model.add_vars("redispatch-volume", m, 0.0, need)
    # every power term has coefficient 1 (S is the plain sum of the sites' powers)
    terms: list[Term] = [(1.0, cols[first : first + m]) for _, cols in portfolio.power_terms()]
    if side == "sell":
        model.add_rows("redispatch-shift", [*terms, (1.0, v)], -INF, b, offset=first)
    else:
        model.add_rows("redispatch-shift", [*terms, (-1.0, v)], b, INF, offset=first)
    portfolio.cost = np.concatenate([portfolio.cost, np.zeros(m)])
    return portfolio, v


def _max_volume(
    request: PortfolioRequest, side: Side, first: int, b: np.ndarray, need: np.ndarray
) -> np.ndarray:
    """Solve (1): the most volume per ISP the portfolio can shift (kW)."""
    portfolio, v = _shift_model(request, side, first, b, need)
    portfolio.cost = np.zeros(portfolio.model.n_cols)
    portfolio.cost[v] = -1.0
    portfolio.constant = 0.0
    try:
        portfolio.solve()
    except InfeasibleError:  # v = 0 is the baseline, which is feasible: solver trouble only
        logger.warning("redispatch volume model infeasible; bidding nothing")
        return np.zeros(len(need))
    assert portfolio.last_solution is not None
    volume: np.ndarray = np.clip(portfolio.last_solution.x[v], 0.0, need)
    return volume


def _cheapest(
    request: PortfolioRequest,
    side: Side,
    first: int,
    b: np.ndarray,
    need: np.ndarray,
    total: float,
    full: bool,
) -> tuple[PortfolioResult, np.ndarray]:
    """Solve (2): least cost shifting the whole ``need`` (``full``), or else at least
    ``total`` kW summed over the ISPs, rounded down to 1 W so that solver tolerance in (1)
    cannot make (2) infeasible."""
    portfolio, v = _shift_model(request, side, first, b, need)
    if full:
        portfolio.model.tighten(v, need, need)
    else:
        floor = np.floor(total * 1000.0) / 1000.0
        portfolio.model.add_rows("redispatch-volume-total", [(1.0, v.reshape(1, -1))], floor, INF)
    result = portfolio.solve()
    assert portfolio.last_solution is not None
    volume = np.clip(portfolio.last_solution.x[v], 0.0, need)
    return result, volume


def reference_price(
    request: PortfolioRequest, side: Side, first: int, stop: int, volume: np.ndarray
) -> float:
    """EUR/MWh: the volume-weighted mean over the period of the sites' mean consumption
    price (sell) or production price (buy), from their merged flex-contexts."""
    from vpp.site import resolve_site

    prices = []
    for i in range(len(request.sites)):
        inputs = resolve_site(request.site_request(i))
        price = inputs.consumption_price if side == "sell" else inputs.production_price
        prices.append(np.asarray(price, float)[first:stop])
    mean = np.mean(prices, axis=0)  # EUR/kWh per ISP
    weights = volume / volume.sum()
    return float(weights @ mean) * 1000.0


def _nothing(side: Side, horizon: Horizon, first: int) -> str:
    what = "lower its consumption" if side == "sell" else "raise its consumption"
    return (
        f"the portfolio cannot {what} below (above) its baseline in any ISP of the period "
        f"from {horizon.at(first).isoformat()}: its own limits and energy needs leave no room"
    )


def _partial(need: np.ndarray, volume: np.ndarray, horizon: Horizon, first: int) -> str:
    short = np.flatnonzero(volume < need - 1e-6)
    t = int(short[0])
    dt = horizon.dt
    return (
        f"only {float(volume.sum()) * dt:.4g} kWh of the needed {float(need.sum()) * dt:.4g} "
        f"kWh are deliverable: the first short ISP is {horizon.at(first + t).isoformat()} "
        f"({float(volume[t]):.4g} of {float(need[t]):.4g} kW); the bid is the largest "
        "deliverable volume"
    )


def bid_to_json(bid: RedispatchBid) -> dict[str, Any]:
    """The response of ``POST /api/v1/gopacs/redispatch-bid`` (see docs/gopacs.md)."""
    horizon = bid.baseline.horizon
    start, end = horizon.at(bid.first), horizon.at(bid.stop)
    res = iso_duration(horizon.resolution)

    def kw(values: np.ndarray) -> dict[str, Any]:
        return {"values": [_round(v) for v in values], "unit": "kW"}

    def order(side: str, price: float | None) -> dict[str, Any]:
        return {
            "side": side,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "resolution": res,
            "volume": kw(bid.volume),
            "price": None if price is None else {"value": _round(price), "unit": "EUR/MWh"},
        }

    opposite = "buy" if bid.side == "sell" else "sell"
    body: dict[str, Any] = {
        "direction": bid.side,
        "deliverable": bid.deliverable,
        "full": bid.full,
        "reason": bid.reason,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "resolution": res,
        "needed": kw(bid.needed),
        "volume": kw(bid.volume),
        "energy": {"value": _round(bid.energy_mwh), "unit": "MWh"},
        "in-area-order": order(bid.side, bid.in_area_price),
        "out-of-area-order": order(opposite, bid.reference_price),
        "price": None if bid.price is None else {"value": _round(bid.price), "unit": "EUR/MWh"},
        "cost-increase": None
        if bid.cost_increase is None
        else {"value": _round(bid.cost_increase), "unit": "EUR"},
        "baseline": _schedule_json(bid.baseline),
        "schedule": None if bid.flexed is None else _schedule_json(bid.flexed),
    }
    return body


def _schedule_json(result: PortfolioResult) -> dict[str, Any]:
    body = result.to_json()
    keep = {k: body[k] for k in ("start", "duration", "resolution", "sites")}
    return keep | {"power": body["portfolio"]["power"], "cost": body["portfolio"]["cost"]}


def _round(value: float) -> float:
    """Prices and costs at full precision (a bid is compared at 1e-6 relative); powers to
    1e-9 kW, as in every schedule."""
    return round(float(value), 9) if abs(value) >= 1e-3 else float(value)
