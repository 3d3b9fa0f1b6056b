"""What flexibility a portfolio can sell a grid operator, and at what price.

A DSO asks for the portfolio's summed power ``S[t]`` to stay within limits at some steps
(:class:`PowerLimits`: ``-max_production[t] <= S[t] <= max_consumption[t]``, ``inf`` free).
The quote compares two exact optima of :class:`vpp.portfolio.CentralisedPortfolio`:

* **baseline**: the portfolio as requested (its target and its existing commitments);
* **flexed**: the same with the requested limits as one more commitment
  (family ``commitment-limit``).

``change[t] = S_flexed[t] - S_baseline[t]`` (kW) is the flexibility delivered and
``price = cost(flexed) - cost(baseline) + margin`` (EUR). ``cost`` is
:attr:`vpp.portfolio.PortfolioResult.cost`: every site's energy cost at its own prices
(``dt * (consumption_price @ max(P, 0) - production_price @ max(-P, 0))`` on the site's
grid power, devices with their own prices settled at those) plus, when the portfolio has a
market target, its deviation cost ``deviation_price * dt * |S - volume|``. Both solves are
exact optima, so the difference is the true cost of the flexibility (>= 0 up to solver
tolerance).

"Cannot deliver" is an answer, not an exception: the quote says ``deliverable=False`` with
the first ISP (step) where the limits cannot be met and by how many kW. When each step alone
could be met but the energy over the day cannot (a battery cannot stay empty all evening),
the shortfall comes from an LP that minimises the limits' total excess (slack on the new
rows only, sites' constraints exact, no-simultaneous-charge-discharge relaxed: the excess is
a lower bound then).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from vpp.errors import FieldIssue, InfeasibleError, RequestValidationError
from vpp.linear import INF
from vpp.portfolio import (
    CentralisedPortfolio,
    Commitment,
    PortfolioRequest,
    PortfolioResult,
    parse_portfolio,
)
from vpp.solver import HighsSolver
from vpp.timeseries import Horizon

__all__ = [
    "LIMITS_ID",
    "FlexQuote",
    "PowerLimits",
    "baseline",
    "check_limits",
    "describe_shortfall",
    "least_excess",
    "limits_commitment",
    "quote",
    "with_commitment",
]


logger = logging.getLogger(__name__)

LIMITS_ID = "requested-limits"


@dataclass(frozen=True)
class PowerLimits:
    """Limits a DSO requests on the portfolio's summed power, on the request's horizon."""

    max_consumption: np.ndarray  # kW per step, np.inf = free
    max_production: np.ndarray  # kW per step (>= 0; the limit is -max_production), np.inf = free

    @classmethod
    def free(cls, steps: int) -> PowerLimits:
        return cls(np.full(steps, np.inf), np.full(steps, np.inf))


@dataclass(frozen=True)
class FlexQuote:
    """The flexibility a portfolio can deliver under :class:`PowerLimits` and its price."""

    deliverable: bool
    reason: str | None
    baseline: PortfolioResult
    flexed: PortfolioResult | None
    baseline_power: np.ndarray  # summed kW per step
    flexed_power: np.ndarray | None
    change: np.ndarray | None  # flexed - baseline, kW per step
    baseline_cost: float  # EUR (PortfolioResult.cost)
    flexed_cost: float | None
    price: float | None  # EUR: flexed_cost - baseline_cost + margin
    commitment: dict[str, Any] | None = None  # the limits as a request commitment (JSON)
    shortfall: np.ndarray | None = None  # not deliverable: least kW off the limits per step


def baseline(request: PortfolioRequest | dict[str, Any]) -> PortfolioResult:
    """The portfolio with its target and commitments, no new limits: the exact optimum."""
    return CentralisedPortfolio(request).solve()


def limits_commitment(
    limits: PowerLimits, horizon: Horizon, commitment_id: str | None = LIMITS_ID
) -> dict[str, Any]:
    """``limits`` as a commitment of a portfolio request (JSON, segments with absolute
    ``start``/``end``; free steps are left out, so they stay free)."""
    out: dict[str, Any] = {} if commitment_id is None else {"id": commitment_id}
    for key, values in (
        ("max-consumption", limits.max_consumption),
        ("max-production", limits.max_production),
    ):
        segments = _segments(np.asarray(values, float), horizon)
        if segments:
            out[key] = segments
    return out


def _segments(values: np.ndarray, horizon: Horizon) -> list[dict[str, str]]:
    """Runs of equal finite values as ``{"start", "end", "value"}`` segments."""
    out: list[dict[str, str]] = []
    t, n = 0, len(values)
    while t < n:
        if not np.isfinite(values[t]):
            t += 1
            continue
        end = t + 1
        while end < n and values[end] == values[t]:
            end += 1
        out.append(
            {
                "start": horizon.at(t).isoformat(),
                "end": horizon.at(end).isoformat(),
                "value": f"{float(values[t])!r} kW",
            }
        )
        t = end
    return out


def check_limits(limits: PowerLimits, steps: int) -> None:
    """One value per step on both sides; NaN is not a limit (use inf for free)."""
    issues = []
    for name, values in (
        ("max-consumption", limits.max_consumption),
        ("max-production", limits.max_production),
    ):
        arr = np.asarray(values, float)
        if arr.shape != (steps,):
            issues.append((name, f"has {arr.size} values, expected {steps}"))
        elif np.isnan(arr).any():
            issues.append((name, "must be a number or inf (free) at every step"))
    if issues:
        raise RequestValidationError([FieldIssue(f"limits.{n}", m) for n, m in issues])


def with_commitment(request: PortfolioRequest, commitment: dict[str, Any]) -> PortfolioRequest:
    """``request`` with one more commitment (validated)."""
    extra = Commitment.model_validate(commitment)
    return request.model_copy(update={"commitments": [*request.commitments, extra]})


def quote(
    request: PortfolioRequest | dict[str, Any],
    limits: PowerLimits,
    margin: float = 0.0,
    *,
    base: PortfolioResult | None = None,
) -> FlexQuote:
    """Price the flexibility that keeps the portfolio within ``limits`` (module docstring).

    ``base``: the portfolio's :func:`baseline`, when the caller solved it already (it is not
    solved again). Raises only for a bad request or a baseline that is itself infeasible;
    limits the portfolio cannot keep give ``deliverable=False`` with the reason.
    """
    parsed = parse_portfolio(request)
    horizon = parsed.horizon
    check_limits(limits, horizon.steps)
    if base is None:
        base = baseline(parsed)
    elif base.power.shape != (horizon.steps,):
        raise ValueError(
            f"the given baseline has {base.power.size} steps, the portfolio {horizon.steps}"
        )
    base_power, base_cost = base.power, base.cost
    commitment = limits_commitment(limits, horizon)

    def refuse(reason: str | None) -> FlexQuote:
        off = least_excess(parsed, limits)
        reason = reason or describe_shortfall(parsed, limits, off)
        logger.info("flexibility not deliverable: %s", reason)
        return FlexQuote(
            False,
            reason,
            base,
            None,
            base_power,
            None,
            None,
            base_cost,
            None,
            None,
            commitment,
            off,
        )

    # nothing requested (every step free): the baseline is the answer
    free = set(commitment) == {"id"}
    flexed_request = parsed if free else with_commitment(parsed, commitment)
    try:
        flexed = CentralisedPortfolio(flexed_request).solve()
    except RequestValidationError as err:
        # the limits contradict the target or an existing commitment at some step
        return refuse(f"the requested limits contradict the portfolio's own: {err.message}")
    except InfeasibleError as err:
        # a step no combination of site powers can meet is named by the pre-check; else
        # the energy over the day does not fit and the least-excess LP says where and how much
        if err.time is None:
            return refuse(None)
        # the pre-check names the family the limits became (commitment-limit); a DSO asked
        # for limits, so say that first
        return refuse(f"the requested limits cannot be met: {err.message}")
    flexed_power = flexed.power
    flexed_cost = flexed.cost
    return FlexQuote(
        True,
        None,
        base,
        flexed,
        base_power,
        flexed_power,
        flexed_power - base_power,
        base_cost,
        flexed_cost,
        flexed_cost - base_cost + margin,
        commitment,
    )


def least_excess(request: PortfolioRequest, limits: PowerLimits) -> np.ndarray | None:
    """The least total excess over ``limits`` (kW per step) the portfolio can reach: an LP
    (sites' own constraints exact, no-simultaneous-charge-discharge relaxed) minimising
    ``sum_t over[t] + under[t]`` with ``S[t] - over[t] <= max_consumption[t]`` and
    ``S[t] + under[t] >= -max_production[t]``. ``None`` if even that has no solution (the
    portfolio's own limits conflict with each other)."""
    portfolio = CentralisedPortfolio(request)
    model, n = portfolio.model, request.horizon.steps
    over = model.add_vars("limit-excess-consumption", n)
    under = model.add_vars("limit-excess-production", n)
    upper = np.where(np.isfinite(limits.max_consumption), limits.max_consumption, INF)
    lower = np.where(np.isfinite(limits.max_production), -limits.max_production, -INF)
    terms = portfolio.power_terms()
    model.add_rows("requested-max-consumption", [*terms, (-1.0, over)], -INF, upper)
    model.add_rows("requested-max-production", [*terms, (1.0, under)], lower, INF)
    cost = np.zeros(model.n_cols)
    cost[over], cost[under] = 1.0, 1.0
    solver = HighsSolver(model)
    solver.set_cost(cost)
    solution = solver.solve()
    if solution.status not in ("optimal", "feasible"):
        return None
    return np.asarray(solution.x[over] - solution.x[under])


def describe_shortfall(
    request: PortfolioRequest, limits: PowerLimits, excess: np.ndarray | None
) -> str:
    """The first step ``excess`` (from :func:`least_excess`, positive: too much consumption,
    negative: too much production) is off the limits, by how much, and the total."""
    generic = "the requested limits cannot be kept together with the portfolio's own limits"
    if excess is None:
        return generic
    bad = np.flatnonzero(np.abs(excess) > 1e-6)
    if not bad.size:
        return generic
    t = int(bad[0])
    side = "max-consumption" if excess[t] > 0 else "max-production"
    limit = limits.max_consumption[t] if excess[t] > 0 else limits.max_production[t]
    return (
        f"the requested {side} = {float(limit):g} kW at {request.horizon.at(t).isoformat()} "
        f"cannot be met: with its energy needs over the day the portfolio stays at least "
        f"{abs(float(excess[t])):.4g} kW off then ({int(bad.size)} ISPs off in all, "
        f"{float(np.abs(excess).sum() * request.horizon.dt):.4g} kWh)"
    )
