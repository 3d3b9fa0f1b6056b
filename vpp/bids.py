"""Day-ahead step bid curves: per market hour, the portfolio's volume at a ladder of prices.

For each market hour ``h`` (the day-ahead product: the request's steps grouped per hour) and
each ladder price ``p`` (EUR/MWh), the portfolio is solved exactly
(:class:`vpp.portfolio.CentralisedPortfolio`, with its targets, congestion limit and
commitments) with **every energy price of hour h set to p**: every site's consumption and
production price, and those of devices with their own prices. The other hours keep the
request's own prices. The point's volume ``V_h(p)`` is the portfolio's summed power in hour
``h`` in kW, consumption positive, production negative, as everywhere in vpp. The hour's
power is held flat in the ladder solves (one row per extra step of the hour): a day-ahead
hour is delivered as constant power, and an imbalance settled per ISP would charge any
profile within the hour. So ``V_h(p)`` kW is also the hour's energy in kWh.

**Reading a curve.** At a clearing price ``c`` the accepted volume is that of the lowest
ladder price ``>= c`` (the last one's above the ladder): a buy (or sell) order of each step
``V_k - V_{k+1}`` with limit price ``p_k``, and ``V_N`` at any price.

**Why exact solves give monotone curves.** Write the objective at price ``p`` as
``g(x) + p * dt * m * V(x)``, ``g`` everything else (other hours' energy, peaks, deviation
and breach costs), ``V`` the hour's flat power, ``m`` its steps. Let ``x1`` be optimal at
``p1`` and ``x2`` at ``p2 > p1``. Optimality of each against the other gives
``g1 + p1 V1 <= g2 + p1 V2`` and ``g2 + p2 V2 <= g1 + p2 V1``; adding them,
``(p2 - p1) (V2 - V1) <= 0``: ``V2 <= V1``. Nothing there needs convexity: it holds for every
*exact* global optimum, LP or MILP, whichever of several optima the solver returns. An LP is
solved exactly (to HiGHS' 1e-7 feasibility tolerance). A MILP (charge/discharge or
import/export binaries, shiftable loads, modes) is solved to a relative MIP gap of 1e-7, or
stops at the time limit with an incumbent: there a point can come out non-monotone.

**What is done with a non-monotone point** (volume above a lower price's by more than
1e-6 kW, the solver's tolerance; smaller differences are rounding and are clipped): it is
lowered to the monotone envelope, ``min_{j <= k} V(p_j)``, a volume a lower price's solution
delivers, so it is feasible; this is *checked* by re-solving the request with the hour's
power fixed to it as a commitment. The point is then listed under the hour's ``repaired``
(price, solved volume, bid volume). Should the check fail, the solved volume stays and the
point is listed under ``non-monotone``: never silently.

**Feasible for every accepted price.** Every volume on a curve is that of an optimal
schedule with the hour flat at it, so accepting the curve at any clearing price, i.e. fixing
the hour's power to that volume (a commitment ``max-consumption = V``,
``max-production = -V`` over the hour), leaves a feasible schedule; tests/test_bids.py
re-solves every (hour, price) point so.

**The simplification.** Each hour's curve is computed with the other hours at the request's
prices, free to re-plan around it. So one hour's curve is exact for that hour alone; two
hours accepted at once are each feasible on their own, not necessarily together (a battery
can fill up at a low price in one hour or the next, not in both). Bidding whole-day curves
jointly (linked or block orders) is not done here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np

from vpp.errors import FieldIssue, InfeasibleError, RequestValidationError
from vpp.linear import Term
from vpp.portfolio import CentralisedPortfolio, PortfolioRequest, parse_portfolio
from vpp.settings import get_settings
from vpp.site import SiteProblem
from vpp.solver import HighsSolver, Solution
from vpp.timeseries import iso_duration
from vpp.units import is_finite

__all__ = [
    "DEFAULT_PRICE_STEPS",
    "MAX_PRICES",
    "MONOTONE_TOLERANCE",
    "bid_curves",
    "default_ladder",
    "monotone_envelope",
    "validate_prices",
]

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
DEFAULT_PRICE_STEPS = 21
"""Points of the default ladder."""
MAX_PRICES = 200
"""The most ladder prices a request may give."""
MONOTONE_TOLERANCE = 1e-6
"""kW: a volume above a lower price's by more is a non-monotone point; by less, rounding."""


def bid_curves(
    request: PortfolioRequest | dict[str, Any], *, prices: Sequence[float] | None = None
) -> dict[str, Any]:
    """Per market hour, the step bid curve price (EUR/MWh) -> volume (kW, consumption
    positive) from exact solves at the ladder ``prices`` (increasing; by default
    :func:`default_ladder`). See the module's docstring for what the curves promise."""
    parsed = parse_portfolio(request)
    hours = _market_hours(parsed)
    reference = CentralisedPortfolio(parsed)
    ladder = validate_prices(prices) if prices is not None else default_ladder(reference)
    scheduled = reference.solve().power
    curves, solves, limited = [], 0, 0
    for steps in hours:
        volumes, exact = _ladder_volumes(parsed, steps, ladder)
        solves += len(ladder)
        limited += len(ladder) - sum(exact)
        curves.append(_curve(parsed, steps, ladder, volumes, float(scheduled[steps].mean())))
    horizon = parsed.horizon
    return {
        "start": horizon.start.isoformat(),
        "duration": iso_duration(horizon.steps * horizon.resolution),
        "resolution": iso_duration(horizon.resolution),
        "product": "PT1H",
        "prices": {"values": [float(p) for p in ladder], "unit": "EUR/MWh"},
        "hours": curves,
        "solves": solves,
        "time-limited-solves": limited,
    }


def validate_prices(prices: Any) -> list[float]:
    """A ladder as given: a non-empty list of finite numbers (EUR/MWh), strictly
    increasing, at most :data:`MAX_PRICES`; errors name ``prices`` (and the entry)."""
    if not isinstance(prices, list | tuple) or not prices:
        raise RequestValidationError.single("prices", "give a non-empty list of prices (EUR/MWh)")
    if len(prices) > MAX_PRICES:
        raise RequestValidationError.single("prices", f"{len(prices)} prices; at most {MAX_PRICES}")
    issues = [
        FieldIssue(f"prices[{i}]", "must be a finite number (EUR/MWh)")
        for i, p in enumerate(prices)
        if isinstance(p, bool) or not isinstance(p, int | float) or not is_finite(p)
    ]
    if issues:
        raise RequestValidationError(issues)
    ladder = [float(p) for p in prices]
    for i in range(1, len(ladder)):
        if ladder[i] <= ladder[i - 1]:
            raise RequestValidationError.single(
                f"prices[{i}]",
                f"prices must increase strictly: {ladder[i]:g} follows {ladder[i - 1]:g}",
            )
    return ladder


def default_ladder(central: CentralisedPortfolio) -> list[float]:
    """:data:`DEFAULT_PRICE_STEPS` prices evenly from ``lo - margin`` to ``hi + margin``,
    ``lo``/``hi`` the least and most energy price anywhere in the request (sites' and
    devices' own consumption and production prices, EUR/MWh), the margin a tenth of the
    spread but at least 10 EUR/MWh: the volumes change where a price crosses the other
    hours' prices, and beyond them the curve is flat but for the margins' steps."""
    found = [np.asarray(a) * 1000.0 for a in _price_arrays(central.sites)]
    lo = min(float(np.min(a)) for a in found)
    hi = max(float(np.max(a)) for a in found)
    margin = max(0.1 * (hi - lo), 10.0)
    values = np.linspace(lo - margin, hi + margin, DEFAULT_PRICE_STEPS)
    return [round(float(v), 6) for v in values]


def monotone_envelope(volumes: Sequence[float]) -> tuple[list[float], list[int]]:
    """The running minimum of ``volumes`` (non-increasing as price rises) and the indices
    of the points it lowered by more than :data:`MONOTONE_TOLERANCE`."""
    out: list[float] = []
    lowered: list[int] = []
    for k, v in enumerate(volumes):
        if out and v > out[-1]:
            if v - out[-1] > MONOTONE_TOLERANCE:
                lowered.append(k)
            out.append(out[-1])
        else:
            out.append(float(v))
    return out, lowered


# -- the hours ---------------------------------------------------------------------------
def _market_hours(request: PortfolioRequest) -> list[np.ndarray]:
    """The steps of each market hour; the horizon must be whole hours from a whole hour."""
    horizon = request.horizon
    if HOUR % horizon.resolution:
        raise RequestValidationError.single(
            "resolution",
            f"{iso_duration(horizon.resolution)} does not divide the day-ahead product's "
            "hour; bid curves need a resolution of PT1H or a divisor of it",
        )
    start = horizon.start
    if start.minute or start.second or start.microsecond:
        raise RequestValidationError.single(
            "start", f"{start.isoformat()} is not on the hour a day-ahead product starts at"
        )
    per_hour = int(HOUR / horizon.resolution)
    if horizon.steps % per_hour:
        raise RequestValidationError.single(
            "duration", "must be whole hours: bid curves are per day-ahead hour"
        )
    return [np.arange(k, k + per_hour) for k in range(0, horizon.steps, per_hour)]


def _ladder_volumes(
    request: PortfolioRequest, steps: np.ndarray, ladder: list[float]
) -> tuple[list[float], list[bool]]:
    """The hour's flat power at each ladder price, and whether each solve was exact."""
    central = CentralisedPortfolio(request)
    _hold_flat(central, steps)
    base = central.cost.copy()
    limit = request.time_limit or get_settings().solve_time_limit  # per solve, seconds
    solver = HighsSolver(central.model, time_limit=limit)
    volumes, exact = [], []
    for price in ladder:
        solution = _solve(central, solver, _priced(central, base, steps, price / 1000.0))
        if solution.status == "infeasible":
            raise InfeasibleError(
                f"the portfolio cannot hold its power flat over the hour from "
                f"{request.horizon.at(int(steps[0])).isoformat()} (a day-ahead hour is "
                "delivered as constant power)",
                constraint="bid-flat-delivery",
                time=request.horizon.at(int(steps[0])),
            )
        total = sum(solution.x[p.power + o] for p, o in _sites(central))
        volumes.append(float(np.mean(total[steps])))
        exact.append(solution.status == "optimal")
    return volumes, exact


def _sites(central: CentralisedPortfolio) -> list[tuple[SiteProblem, int]]:
    return list(zip(central.sites, central.offsets, strict=True))


def _hold_flat(central: CentralisedPortfolio, steps: np.ndarray) -> None:
    """Rows ``S[t] - S[t0] = 0`` for the hour's other steps ``t`` (none at PT1H)."""
    if steps.size < 2:
        return
    terms: list[Term] = []
    for p, o in _sites(central):
        terms += [
            (1.0, p.power[steps[1:]] + o),
            (-1.0, np.full(steps.size - 1, p.power[steps[0]] + o)),
        ]
    central.model.add_rows("bid-flat-delivery", terms, 0.0, 0.0, offset=int(steps[1]))


def _priced(
    central: CentralisedPortfolio, base: np.ndarray, steps: np.ndarray, price: float
) -> np.ndarray:
    """``base`` with every energy price of ``steps`` replaced by ``price`` (EUR/kWh).

    A site's energy cost at a step is on its import and export columns and on its
    own-priced devices' columns; those are taken off, and ``price * dt`` put on the site's
    power, which is their sum (site-settlement). Other costs (peaks, CO2, breaches, running
    costs, a market target's deviation) stay."""
    cost = base.copy()
    dt = central.request.horizon.dt
    for p, o in _sites(central):
        cost[p.imports[steps] + o] = 0.0
        cost[p.exports[steps] + o] = 0.0
        for dv, common in p.devices:
            if common.consumption_price is not None:
                for cols in dv.consumption:
                    cost[cols[steps] + o] -= dt * common.consumption_price[steps]
            if common.production_price is not None:
                for cols in dv.production:
                    cost[cols[steps] + o] += dt * common.production_price[steps]
        cost[p.power[steps] + o] += dt * price
    return cost


def _solve(central: CentralisedPortfolio, solver: HighsSolver, cost: np.ndarray) -> Solution:
    """The model's optimum at ``cost``, charge/discharge binaries added where needed."""
    solution = Solution(np.zeros(0), float("nan"), "infeasible")
    for _ in range(central.request.horizon.steps + 1):
        padded = np.zeros(central.model.n_cols)
        padded[: cost.size] = cost
        solver.set_cost(padded)
        solution = solver.solve()
        if solution.status != "optimal":
            break
        if not central.exclusive.enforce(central.model, solution.x):
            break
    if solution.status == "feasible":
        logger.warning("a bid-curve solve hit the time limit; its point may not be exact")
    return solution


def _price_arrays(sites: list[SiteProblem]) -> list[np.ndarray]:
    out = []
    for p in sites:
        out += [p.inputs.consumption_price, p.inputs.production_price]
        for _, common in p.devices:
            out += [a for a in (common.consumption_price, common.production_price) if a is not None]
    return out


# -- the curve ---------------------------------------------------------------------------
def _curve(
    request: PortfolioRequest,
    steps: np.ndarray,
    ladder: list[float],
    solved: list[float],
    scheduled: float,
) -> dict[str, Any]:
    """One hour's curve: the solved volumes, lowered to their monotone envelope where a
    re-solve confirms the lower volume is feasible."""
    envelope, lowered = monotone_envelope(solved)
    volumes = list(envelope)
    repaired, non_monotone = [], []
    for k in lowered:
        point = {
            "price": ladder[k],
            "solved": round(solved[k], 9),
            "volume": round(envelope[k], 9),
        }
        if _accepted_is_feasible(request, steps, envelope[k]):
            repaired.append(point)
            logger.warning("bid curve: non-monotone point lowered to its envelope: %s", point)
        else:
            volumes[k] = solved[k]
            non_monotone.append({**point, "volume": round(solved[k], 9)})
            logger.warning("bid curve: a non-monotone point stays, its envelope is infeasible")
    return {
        "start": request.horizon.at(int(steps[0])).isoformat(),
        "scheduled": {"value": round(scheduled, 9), "unit": "kW"},
        "volumes": {"values": [round(v, 9) for v in volumes], "unit": "kW"},
        "repaired": repaired,
        "non-monotone": non_monotone,
    }


def _accepted_is_feasible(request: PortfolioRequest, steps: np.ndarray, volume: float) -> bool:
    """Whether the request solves with the hour's summed power fixed to ``volume`` kW (the
    bid accepted: a commitment ``max-consumption = volume = -max-production`` there)."""
    central = CentralisedPortfolio(request)
    terms: list[Term] = [(1.0, p.power[steps] + o) for p, o in _sites(central)]
    central.model.add_rows("accepted-bid", terms, volume, volume, offset=int(steps[0]))
    try:
        central.solve()
    except InfeasibleError:
        return False
    return True
