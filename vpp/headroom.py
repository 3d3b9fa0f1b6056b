"""Capacity headroom: how much up and down regulation (aFRR, mFRR, FCR capacity) a
portfolio can hold at each ISP on top of its schedule.

The schedule is :class:`vpp.portfolio.CentralisedPortfolio`'s optimum, ``S*[t]`` the
portfolio's summed power (consumption positive). For each step ``t`` two LPs (MILPs where
binaries are needed) on the same model, the target's congestion limit and commitments
included, every site's grid power before ``t`` held at its schedule (what has been
delivered stays delivered; after ``t`` the sites may re-plan to recover)::

    up[t]   = max S[t] - S*[t]     (the portfolio can consume this much more)
    down[t] = S*[t] - min S[t]     (the portfolio can consume this much less / produce more)

Both are >= 0 (the schedule itself is feasible). Accepting a capacity bid of ``up[t]`` at
``t`` and being activated for the whole step is feasible by construction; more is not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vpp.errors import SolverError
from vpp.portfolio import CentralisedPortfolio, PortfolioRequest
from vpp.solver import HighsSolver
from vpp.timeseries import iso_duration

__all__ = ["headroom"]


def headroom(request: PortfolioRequest | dict[str, Any]) -> dict[str, Any]:
    """The schedule's summed power and its up and down headroom per step (kW)."""
    central = CentralisedPortfolio(request)
    plan = central.solve()
    powers = [p.power + o for p, o in zip(central.sites, central.offsets, strict=True)]
    scheduled = [s.site_power for s in plan.schedules]
    total = np.sum(scheduled, axis=0)
    n = central.request.horizon.steps
    solver = HighsSolver(central.model)
    up, down = np.zeros(n), np.zeros(n)
    lo, hi = central.model.bounds()
    saved = [(lo[c].copy(), hi[c].copy()) for c in powers]
    try:
        for t in range(n):
            if t:
                for cols, p in zip(powers, scheduled, strict=True):
                    central.model.set_bounds(cols[t - 1 : t], p[t - 1], p[t - 1])
            up[t] = _extreme(central, solver, powers, t, -1.0) - total[t]
            down[t] = total[t] - _extreme(central, solver, powers, t, 1.0)
    finally:
        for cols, (a, b) in zip(powers, saved, strict=True):
            central.model.set_bounds(cols, a, b)
    horizon = central.request.horizon

    def series(values: np.ndarray) -> dict[str, Any]:
        return {"values": [round(float(max(v, 0.0)), 9) for v in values], "unit": "kW"}

    return {
        "start": horizon.start.isoformat(),
        "resolution": iso_duration(horizon.resolution),
        "scheduled": {"values": [round(float(v), 9) for v in total], "unit": "kW"},
        "up": series(up),
        "down": series(down),
    }


def _extreme(
    central: CentralisedPortfolio,
    solver: HighsSolver,
    powers: list[np.ndarray],
    t: int,
    sign: float,
) -> float:
    """``min sign * S[t]`` over the model (exclusivity binaries added where used), as
    ``S[t]``."""
    for _ in range(central.request.horizon.steps + 1):
        cost = np.zeros(central.model.n_cols)
        for cols in powers:
            cost[cols[t]] = sign
        solver.set_cost(cost)
        solution = solver.solve()
        if solution.status != "optimal":
            raise SolverError(f"headroom at step {t}: HiGHS ended {solution.status}")
        if not central.exclusive.enforce(central.model, solution.x):
            break
    return float(sum(solution.x[cols[t]] for cols in powers))
