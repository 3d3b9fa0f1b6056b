"""One site: all its devices in one optimisation model, built once, re-solvable.

Site-level constraint families (``P`` the site's net power, consumption positive):

``site-balance``
    ``P[t] = sum_d p_d[t] + inflexible[t]``
``site-consumption-capacity`` / ``site-production-capacity``
    ``-site-production-capacity[t] <= P[t] <= site-consumption-capacity[t]`` (each defaults to
    ``site-power-capacity``; unlimited when neither is given).
``site-settlement``
    ``import[t] - export[t] = P[t] - sum_{d with own prices} p_d[t]``, ``import, export >= 0``
``no-simultaneous-import-export``
    a binary per step where the production price exceeds the consumption price (otherwise
    buying and selling at once would pay); elsewhere the optimum never does both.

Objective (EUR), minimised:
    ``sum_t dt * (consumption_price[t]*import[t] - production_price[t]*export[t])``
    plus, for each device with its own prices, the same expression over its own
    consumption and production. The ADMM coordinator adds ``y[t]*P[t]`` and
    ``rho/2 * (P[t] - v[t])**2`` through :meth:`SiteProblem.solve`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from vpp import assets
from vpp.breach import (
    Softening,
    add_breaches,
    breach_costs,
    read_breaches,
    soften,
    with_hint,
)
from vpp.co2 import Co2, add_co2, objective_unit, resolve_co2
from vpp.device import Common, DeviceSpec, DeviceVars, apply_common, resolve_common
from vpp.errors import (
    FieldIssue,
    InfeasibleError,
    RequestValidationError,
    SolverError,
    VppError,
)
from vpp.exclusive import TOLERANCE, Exclusivity, WarmStart, warm_point
from vpp.groups import ResolvedGroup, add_groups, device_room, resolve_groups
from vpp.linear import INF, LinearModel, Term
from vpp.peaks import Peak, add_peaks, resolve_peaks
from vpp.qp import OsqpProx
from vpp.request import FlexContext, ScheduleRequest, parse_request
from vpp.s2_request import S2Source, s2_instructions
from vpp.settings import get_settings
from vpp.solver import HighsSolver, Solution
from vpp.timeseries import Horizon, Series, iso_duration

__all__ = [
    "DeviceSeries",
    "SiteInputs",
    "SiteProblem",
    "SiteSchedule",
    "energy_cost",
    "energy_costs",
    "resolve_site",
    "schedule",
    "validate_site_request",
]

logger = logging.getLogger(__name__)


@dataclass
class SiteInputs:
    """A validated site request resolved on its horizon."""

    horizon: Horizon
    consumption_price: np.ndarray  # EUR/kWh per step
    production_price: np.ndarray
    consumption_capacity: np.ndarray  # kW, inf when unlimited
    production_capacity: np.ndarray
    inflexible: np.ndarray  # kW, sum of flex-context inflexible-devices
    devices: Sequence[tuple[DeviceSpec, Common, Any]]  # spec, shared fields, the kind's params
    capacity_source: tuple[str, str] = ("site-consumption-capacity", "site-production-capacity")
    groups: Sequence[ResolvedGroup] = ()  # flex-context groups (vpp/groups.py)
    peaks: tuple[Peak, ...] = ()  # flex-context site-peak-* (vpp/peaks.py)
    co2: Co2 | None = None  # flex-context co2-intensity / co2-price (vpp/co2.py)
    cost_unit: str = "EUR"  # what the prices count: "kg" when steering on CO2 intensity
    softening: Softening = field(default_factory=Softening)  # breach prices (vpp/breach.py)


def resolve_site(request: ScheduleRequest) -> SiteInputs:
    """Resolve every series on the horizon; report all field problems at once."""
    horizon = request.horizon
    issues: list[FieldIssue] = []
    ctx = request.flex_context
    cp, pp, cons_cap, prod_cap, inflexible, power_cap = _resolve_context(ctx, horizon, issues)
    devices = []
    for i, spec in enumerate(request.flex_model):
        path = f"flex-model[{i}]"
        try:
            common = resolve_common(spec, horizon, path)
            params = assets.get(spec.type).resolve(spec, horizon, common, path)
        except RequestValidationError as err:
            issues.extend(err.issues)
            continue
        devices.append((spec, common, params))
    names = [spec.label for spec in request.flex_model]
    groups = resolve_groups(ctx.groups, names, ctx.inflexible_devices, horizon, issues)
    unit = objective_unit(request, issues)
    peaks = resolve_peaks(ctx, horizon, unit, issues)
    co2 = resolve_co2(ctx, horizon, unit, issues)
    softening, site_soft = soften(ctx, horizon, devices, issues)
    softening.requested |= any(g.soft for g in groups)
    if issues:
        raise RequestValidationError(issues)
    if site_soft:  # the soft site capacities leave site-power-capacity as the hard one
        cons_cap = power_cap if "consumption" in site_soft else cons_cap
        prod_cap = power_cap if "production" in site_soft else prod_cap
    sources = (
        "site-consumption-capacity" if ctx.site_consumption_capacity else "site-power-capacity",
        "site-production-capacity" if ctx.site_production_capacity else "site-power-capacity",
    )
    return SiteInputs(
        horizon,
        cp,
        pp,
        cons_cap,
        prod_cap,
        inflexible,
        devices,
        sources,
        groups,
        peaks,
        co2,
        unit,
        softening,
    )


def _resolve_context(
    ctx: FlexContext, horizon: Horizon, issues: list[FieldIssue]
) -> tuple[np.ndarray, ...]:
    n = horizon.steps

    def series(name: str, default: float) -> np.ndarray:
        value: Series | None = getattr(ctx, name.replace("-", "_"))
        if value is None:
            return np.full(n, default)
        try:
            return value.resolve(horizon, f"flex-context.{name}", default)
        except RequestValidationError as err:
            issues.extend(err.issues)
            return np.full(n, default)

    before = len(issues)
    cp = series("consumption-price", math.nan)
    if ctx.consumption_price is None:
        issues.append(FieldIssue("flex-context.consumption-price", "required"))
    elif np.isnan(cp).any() and len(issues) == before:
        issues.append(
            FieldIssue(
                "flex-context.consumption-price", "segments leave time steps without a price"
            )
        )
    before = len(issues)
    pp = series("production-price", math.nan) if ctx.production_price else cp.copy()
    if ctx.production_price is not None and np.isnan(pp).any() and len(issues) == before:
        issues.append(
            FieldIssue("flex-context.production-price", "segments leave time steps without a price")
        )
    power_cap = series("site-power-capacity", INF)
    cons_cap = np.minimum(series("site-consumption-capacity", INF), power_cap)
    prod_cap = np.minimum(series("site-production-capacity", INF), power_cap)
    for name, arr in (
        ("site-power-capacity", power_cap),
        ("site-consumption-capacity", cons_cap),
        ("site-production-capacity", prod_cap),
    ):
        if (np.nan_to_num(arr, nan=0.0) < 0).any():
            issues.append(FieldIssue(f"flex-context.{name}", "must not be negative"))
    inflexible = np.zeros(n)
    for name, s in ctx.inflexible_devices.items():
        try:
            inflexible += s.resolve(horizon, f"flex-context.inflexible-devices.{name}", 0.0)
        except RequestValidationError as err:
            issues.extend(err.issues)
    # posinf too: nan_to_num's default maps inf to the largest float (1.8e308), a finite bound
    # that solvers treat as a real row (Clarabel's presolve dropped it, then refused updates)
    return (
        cp,
        pp,
        np.nan_to_num(cons_cap, nan=INF, posinf=INF),
        np.nan_to_num(prod_cap, nan=INF, posinf=INF),
        inflexible,
        np.nan_to_num(power_cap, nan=INF, posinf=INF),  # what stays hard under breach prices
    )


@dataclass(frozen=True)
class DeviceSeries:
    """A result series of a device besides its power (its kind's result fields)."""

    values: np.ndarray
    unit: str


@dataclass
class SiteSchedule:
    """A solved schedule: per-device power and result fields (SoC), site power, cost."""

    horizon: Horizon
    device_power: dict[str, np.ndarray]
    device_results: dict[str, dict[str, DeviceSeries]]  # device -> key ("soc") -> series
    device_kind: dict[str, str]
    site_power: np.ndarray
    cost: float  # EUR, energy cost as defined in the module docstring
    objective: float  # solver objective incl. any ADMM terms
    extra: dict[str, Any] = field(default_factory=dict)
    s2_sources: dict[str, S2Source] = field(default_factory=dict)  # devices given as S2
    cost_parts: dict[str, float] = field(default_factory=dict)  # breakdown of cost, EUR
    cost_unit: str = "EUR"  # "kg" when the prices are a CO2 intensity (vpp/co2.py)
    site_results: dict[str, Any] = field(default_factory=dict)  # peaks (vpp/peaks.py)

    @property
    def device_soc(self) -> dict[str, np.ndarray]:
        """The ``soc`` result of every device that has one (kWh per instant)."""
        return {
            name: results["soc"].values
            for name, results in self.device_results.items()
            if "soc" in results
        }

    def to_json(self) -> dict[str, Any]:
        def series(values: np.ndarray, unit: str) -> dict[str, Any]:
            return {"values": [_clean(v) for v in values], "unit": unit}

        devices = []
        for name, power in self.device_power.items():
            entry: dict[str, Any] = {
                "name": name,
                "type": self.device_kind[name],
                "power": series(power, "kW"),
            }
            for key, result in self.device_results.get(name, {}).items():
                entry[key] = series(result.values, result.unit)
            if name in self.s2_sources:
                entry["s2-instructions"] = s2_instructions(
                    entry, self.s2_sources[name], self.horizon
                )
            devices.append(entry)
        return {
            "status": "time-limited" if "mip-gap" in self.extra else "finished",
            "start": self.horizon.start.isoformat(),
            "duration": iso_duration(self.horizon.duration),
            "resolution": iso_duration(self.horizon.resolution),
            "devices": devices,
            "site": {"power": series(self.site_power, "kW")} | self.site_results,
            "cost": {"value": round(self.cost, 9), "unit": self.cost_unit}
            | {k: round(v, 9) for k, v in self.cost_parts.items()},
        } | {k: v for k, v in self.extra.items() if k in ("mip-gap", "emissions", "breaches")}


def _clean(v: float) -> float:
    """Round solver noise (1e-12) away so results read cleanly; 1e-9 kW is far below meters."""
    r = round(float(v), 9)
    return 0.0 if r == 0 else r


class SiteProblem:
    """A site's model: validated, pre-checked and built once; :meth:`solve` re-solves warm."""

    def __init__(
        self, request: ScheduleRequest | dict[str, Any], *, break_ties: bool = True
    ) -> None:
        # A portfolio's sites (break_ties=False) keep the first optimum: the ADMM's final
        # step and its certificate compare site solves, and a second, tie-breaking solve per
        # site changed which of equal-cost schedules they split the target into.
        self.break_ties = break_ties
        self.request = parse_request(request)
        self.inputs = resolve_site(self.request)
        self.horizon = self.inputs.horizon
        self.model = LinearModel()
        self.devices: list[tuple[DeviceVars, Common]] = []
        self._device_ranges: list[tuple[np.ndarray, np.ndarray]] | None = None
        self.import_export = Exclusivity("no-simultaneous-import-export")
        self.charge_discharge = Exclusivity("no-simultaneous-charge-discharge")
        try:
            self._build()
            self._precheck()
        except InfeasibleError as err:
            raise with_hint(err) from None
        limit = self.request.time_limit
        self.time_limit = get_settings().solve_time_limit if limit is None else limit
        self.solver = HighsSolver(self.model, time_limit=self.time_limit)
        self.solver.set_cost(self.base_cost)
        self.last_x: np.ndarray | None = None
        self._warm: WarmStart | None = None  # see warm_start
        self._prox: OsqpProx | None = None
        self._prox_fixed: dict[int, float] = {}  # columns the x-update keeps fixed
        self._padded = self.base_cost

    # -- building --------------------------------------------------------------------
    def _precheck(self) -> None:
        """Device pre-checks, each device bounded by what the site leaves it."""
        inp = self.inputs
        ranges = self._ranges()
        least = inp.inflexible + sum((r[0] for r in ranges), 0.0)
        most = inp.inflexible + sum((r[1] for r in ranges), 0.0)
        names = [dv.name for dv, _ in self.devices]
        room = device_room(inp.groups, dict(zip(names, ranges, strict=True)), self.horizon.steps)
        for (spec, _common, params), (d_least, d_most), name in zip(
            inp.devices, ranges, names, strict=True
        ):
            check = assets.get(spec.type).precheck
            if check is not None:
                site_upper = inp.consumption_capacity - (least - d_least)
                site_lower = -inp.production_capacity - (most - d_most)
                if name in room:  # what the device's groups leave it, too
                    site_lower = np.maximum(site_lower, room[name][0])
                    site_upper = np.minimum(site_upper, room[name][1])
                check(params, self.horizon, site_lower, site_upper)

    def _build(self) -> None:
        inp, lm, n, dt = self.inputs, self.model, self.horizon.steps, self.horizon.dt
        for spec, common, params in inp.devices:
            dv = assets.get(spec.type).formulate(params, lm, self.horizon)
            apply_common(lm, dv, common)
            self.devices.append((dv, common))
            self.charge_discharge.pairs += [(a, b, dv.name) for a, b in dv.exclusive]
        self._check_site_capacity()
        constant = inp.inflexible + sum(
            (dv.constant for dv, _ in self.devices if dv.constant is not None), np.zeros(n)
        )
        self.power = lm.add_vars(
            "site-power", n, -inp.production_capacity, inp.consumption_capacity
        )
        terms: list[Term] = [(1.0, self.power)]
        for dv, _ in self.devices:
            terms += dv.power_terms(-1.0)
        lm.add_rows("site-balance", terms, constant, constant)
        own = [(dv, c) for dv, c in self.devices if c.own_prices]
        own_constant = sum((dv.constant for dv, _ in own if dv.constant is not None), np.zeros(n))
        # the columns keep the loose bound: tighter column bounds changed the ADMM's path
        # (the market case of tests/test_admm_trust.py took 320 iterations instead of 230);
        # only the exclusivity rows' big-M, where the MILP relaxation needs it, is tight
        bound = self._power_bound()
        # where buying and selling cost the same, the settled power is one signed column
        # (import, export held at 0): the same cost, and no import/export pair that can rise
        # together at no cost (a tie the tie-break would have to explore)
        flat = np.abs(inp.consumption_price - inp.production_price) <= 1e-12
        self.imports = lm.add_vars("import", n, np.where(flat, -bound, 0.0), bound)
        self.exports = lm.add_vars("export", n, 0.0, np.where(flat, 0.0, bound))
        settle: list[Term] = [(1.0, self.imports), (-1.0, self.exports), (-1.0, self.power)]
        for dv, _ in own:
            settle += dv.power_terms(1.0)
        lm.add_rows("site-settlement", settle, -own_constant, -own_constant)
        devices = [dv for dv, _ in self.devices]
        group_breaches = add_groups(lm, inp.groups, devices, self._ranges(), self.horizon)
        self.peaks = add_peaks(lm, self.power, inp.peaks)
        self.co2 = add_co2(lm, self.power, inp.co2, dt)
        self.breaches = group_breaches + add_breaches(
            lm, inp.softening, self.power, devices, self.horizon
        )
        cost = breach_costs(self.breaches, lm.n_cols)
        self.peaks.add_cost(cost)
        self.co2.add_cost(cost)
        cost[self.imports] = dt * inp.consumption_price
        cost[self.exports] = -dt * inp.production_price
        self.cost_constant = 0.0
        for dv, c in own:
            for cols in dv.consumption:
                cost[cols] += dt * c.consumption_price  # type: ignore[operator]
            for cols in dv.production:
                cost[cols] -= dt * c.production_price  # type: ignore[operator]
            if dv.constant is not None:
                self.cost_constant += _energy_cost(
                    dv.constant, c.consumption_price, c.production_price, dt
                )
        for dv, _ in self.devices:  # running and transition costs (vpp/assets/modes.py)
            for cols, coefs in dv.extra.get("column-cost", ()):
                cost[cols] += coefs
        spread = np.flatnonzero(inp.production_price > inp.consumption_price + 1e-12)
        if spread.size:
            self.import_export.add_binaries(
                lm, self.imports, self.exports, spread, None, big_m=self._settlement_bounds()
            )
        # one cost per column, binaries included: a portfolio concatenates sites' costs
        self.base_cost = np.pad(cost, (0, self.model.n_cols - cost.size))

    def _ranges(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Least and most power of every device per step, from its column bounds (cached:
        device bounds are final once the devices are built)."""
        if self._device_ranges is not None:
            return self._device_ranges
        lo, hi = self.model.bounds()
        out = []
        for dv, _ in self.devices:
            least = np.zeros(self.horizon.steps) if dv.constant is None else dv.constant.copy()
            most = least.copy()
            for cols in dv.consumption:
                least, most = least + lo[cols], most + hi[cols]
            for cols in dv.production:
                least, most = least - hi[cols], most - lo[cols]
            out.append((least, most))
        self._device_ranges = out
        return out

    def power_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Least and most net power of the site per step, within its connection capacity."""
        ranges = self._ranges()
        least = self.inputs.inflexible + sum((r[0] for r in ranges), np.zeros(self.horizon.steps))
        most = self.inputs.inflexible + sum((r[1] for r in ranges), np.zeros(self.horizon.steps))
        return (
            np.maximum(least, -self.inputs.production_capacity),
            np.minimum(most, self.inputs.consumption_capacity),
        )

    def _power_bound(self) -> np.ndarray:
        """A finite bound on |import| and |export|: the columns' upper bound."""
        bound: np.ndarray = np.abs(self.inputs.inflexible)
        for least, most in self._ranges():
            bound = bound + np.maximum(np.abs(least), np.abs(most))
        return bound

    def _settlement_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The most the site can import and export per step: the big-M of the exclusivity
        rows. Settled power is the site's power minus its own-priced devices', so it lies
        within the other devices' range (plus inflexible load) and within the connection's
        capacity less the own-priced devices' range. The tighter the bound, the tighter
        the LP relaxation of the import/export binaries (the sum of all devices' ranges
        was used before)."""
        n = self.horizon.steps
        least, most = self.inputs.inflexible.copy(), self.inputs.inflexible.copy()
        own_least, own_most = np.zeros(n), np.zeros(n)
        for (lo, hi), (_, common) in zip(self._ranges(), self.devices, strict=True):
            if common.own_prices:
                own_least, own_most = own_least + lo, own_most + hi
            else:
                least, most = least + lo, most + hi
        most = np.minimum(most, self.inputs.consumption_capacity - own_least)
        least = np.maximum(least, -self.inputs.production_capacity - own_most)
        return np.maximum(most, 0.0), np.maximum(-least, 0.0)

    def _check_site_capacity(self) -> None:
        """Fixed load alone above the connection's capacity is named before solving."""
        ranges = self._ranges()
        least = self.inputs.inflexible + sum((r[0] for r in ranges), 0.0)
        most = self.inputs.inflexible + sum((r[1] for r in ranges), 0.0)
        cap_c, cap_p = self.inputs.consumption_capacity, self.inputs.production_capacity
        over = np.flatnonzero(least > cap_c + 1e-6)
        if over.size:
            t = int(over[0])
            raise InfeasibleError(
                f"{self.inputs.capacity_source[0]} = {cap_c[t]:g} kW at "
                f"{self.horizon.at(t).isoformat()} is exceeded: the site consumes at least "
                f"{least[t]:.4g} kW then (inflexible load and fixed device power)",
                constraint=self.inputs.capacity_source[0],
                time=self.horizon.at(t),
            )
        under = np.flatnonzero(most < -cap_p - 1e-6)
        if under.size:
            t = int(under[0])
            raise InfeasibleError(
                f"{self.inputs.capacity_source[1]} = {cap_p[t]:g} kW at "
                f"{self.horizon.at(t).isoformat()} is exceeded: the site produces at least "
                f"{-most[t]:.4g} kW then (inflexible generation and fixed device power)",
                constraint=self.inputs.capacity_source[1],
                time=self.horizon.at(t),
            )

    def to_pyomo(self) -> Any:
        """The site model as a Pyomo ``ConcreteModel`` (same optimum, minus a constant)."""
        from vpp.pyomo_export import to_pyomo

        return to_pyomo(self.model, self.base_cost)

    # -- solving ---------------------------------------------------------------------
    def solve(
        self,
        power_price: np.ndarray | None = None,
        power_penalty: tuple[float, np.ndarray] | None = None,
        *,
        explain: bool = True,
    ) -> SiteSchedule:
        """Solve with the site's prices plus optional terms on its net power ``P``:

        ``power_price[t] * P[t]`` (EUR/kW per step, e.g. an ADMM dual) and
        ``rho/2 * (P[t] - v[t])**2`` for ``power_penalty = (rho, v)``.

        An infeasible model raises :class:`InfeasibleError` naming the conflicting
        constraints (an IIS, ~0.1 s); with ``explain=False`` without them, for callers that
        expect infeasibility and only need to know (the ADMM's final step).
        """
        cost = self._cost(power_price)
        constant = self.cost_constant
        hessian = None
        if power_penalty is not None:
            rho, target = power_penalty
            cost[self.power] -= rho * target
            hessian = np.zeros(self.model.n_cols)
            hessian[self.power] = rho
            constant += 0.5 * rho * float(target @ target)
        self.solver.set_cost(cost)
        self.solver.set_quadratic(hessian)
        started = time.monotonic()
        for _ in range(self.horizon.steps + 1):
            self._pass_warm_start()
            solution = self._solve_in_time(started)
            if solution.status == "infeasible":
                if not explain:
                    raise InfeasibleError(
                        "no schedule of this site keeps its power within the given bounds",
                        constraint="site-power",
                    )
                raise self._explain_infeasible()
            # a QP cannot take binaries (HiGHS has no MIQP): the penalised solve relaxes them
            if solution.status == "feasible":  # the incumbent at the time limit: no more rounds
                break
            if hessian is not None or not self.charge_discharge.enforce(self.model, solution.x):
                break
        # only on the site's own prices: with an ADMM price or penalty the second solve would
        # keep that objective, not the energy cost the schedule reports
        own_prices_only = power_price is None and hessian is None
        if self.break_ties and own_prices_only and solution.status == "optimal":
            solution = self._break_ties(solution)
        self.last_x = solution.x
        result = self._schedule(solution.x, solution.objective + constant)
        if solution.status == "feasible":
            result.extra["mip-gap"] = solution.mip_gap
        return result

    def warm_start(self, previous: SiteProblem, steps: int) -> None:
        """Start from ``previous``'s last solution, ``steps`` later (rolling-horizon
        re-planning, :mod:`vpp.mpc`): the binaries it needed (charge/discharge, and
        import/export where those are lazy) are added at the same times up front, saving
        the LP rounds that would find them again, and its shifted solution is HiGHS' start
        where the model has integer columns. The same devices, by name, are assumed; a
        device ``previous`` lacks starts from 0."""
        if previous.last_x is None:
            return
        self.charge_discharge.carry_over(
            self.model, previous.charge_discharge, steps, self.horizon.steps
        )
        self._warm = (previous.model, previous.last_x, steps)

    def _pass_warm_start(self) -> None:
        if self._warm is None or not self.model.integrality().any():
            return
        self.solver.set_start(
            warm_point(self.model, self._warm, self.charge_discharge, self.import_export)
        )

    def _break_ties(self, solution: Solution) -> Solution:
        """Among the optima, the one the storages' ``prefer-charging-sooner`` and
        ``prefer-curtailing-later`` pick: a second solve on the optimal face
        (:meth:`HighsSolver.break_ties`), so the cost cannot change. The first optimum when
        it is unique, when that solve does not end optimal, or when its schedule would
        charge and discharge (or import and export) at once where the first needed no
        binary; a re-read cost above the optimum's (beyond 1e-9 relative) keeps the first
        optimum too."""
        ties = [dv.extra["tie-break"] for dv, _ in self.devices if "tie-break" in dv.extra]
        if not ties:
            return solution
        secondary = np.zeros(self.model.n_cols)
        for cols, weights in ties:
            secondary[cols] += weights
        held: set[int] = set()
        for _ in range(3):
            x = self.solver.break_ties(secondary, zero=sorted(held))
            wasted = None if x is None else self._flows_at_once(x, solution.x)
            if not wasted:
                break
            held |= wasted
        if x is None or wasted:
            return solution
        cost = self._cost()  # the site's own prices on every column, binaries included
        first, second = float(cost @ solution.x), float(cost @ x)
        if second > first + 1e-9 * max(1.0, abs(first)):
            logger.warning("tie-break moved the cost from %r to %r; kept the first", first, second)
            return solution
        return dataclasses.replace(solution, x=x, objective=solution.objective - first + second)

    def _flows_at_once(self, x: np.ndarray, first: np.ndarray) -> set[int]:
        """Where ``x`` charges and discharges (or imports and exports) at once: of each such
        pair, the column that is 0 in ``first`` (the optimum without such flows), to hold
        at 0 in the next tie-break solve; ``first`` stays on the face that way."""
        pairs = [*self.charge_discharge.pairs, (self.imports, self.exports, None)]
        held: set[int] = set()
        for a, b, _ in pairs:
            both = np.flatnonzero(np.minimum(x[a], x[b]) > TOLERANCE)
            held |= {int(c) for c in np.where(first[a[both]] <= TOLERANCE, a[both], b[both])}
        return held

    def _solve_in_time(self, started: float) -> Solution:
        """One HiGHS run within what is left of the request's ``time-limit``; no schedule by
        then fails naming the limit."""
        left = self.time_limit - (time.monotonic() - started)
        self.solver.highs.setOptionValue("time_limit", max(left, 1e-3))
        try:
            return self.solver.solve()
        except SolverError as err:
            if time.monotonic() - started < self.time_limit:
                raise
            raise SolverError(
                f"the solver found no schedule within the time-limit of {self.time_limit:g} s "
                f"({err.message}); give a larger time-limit"
            ) from None

    # -- ADMM ------------------------------------------------------------------------
    def prox(
        self,
        rho: float,
        target: np.ndarray,
        power_price: np.ndarray | None = None,
        *,
        accuracy: float = 1e-3,
    ) -> np.ndarray:
        """ADMM x-update: the site power minimising
        ``cost + power_price @ P + rho/2 * ||P - target||^2`` (see :mod:`vpp.qp`).

        Integer decisions (process starts, exclusivity binaries) stay as the last
        :meth:`solve` chose them; the first call solves the site alone to choose them.
        The QP cannot forbid charging and discharging at once; where its solution does both
        (wasting energy pays when the portfolio's price signal rewards consumption, or a
        lossless storage is indifferent), the smaller of the two is held at 0 and this step
        is solved again. Only for this step: a column held at 0 for good would cut the
        optimum out of later steps (measured: a market portfolio of lossless batteries then
        converged 2.6 % above its optimum).
        """
        if self._prox is None:
            if self.last_x is None:
                self.solve(power_price)
            assert self.last_x is not None
            integer = np.flatnonzero(self.model.integrality())
            self._prox_fixed.update({int(c): float(round(self.last_x[c])) for c in integer})
            self._prox = OsqpProx(self.model, self.power, self._prox_fixed)
        cost = self._cost(power_price)
        x = self._prox.solve(cost, rho, target, eps=accuracy)
        held: set[int] = set()
        for _ in range(3):
            wasted = self._simultaneous(x, self._prox.waste_tolerance)
            if not wasted:
                break
            held |= set(wasted)
            x = self._prox.solve(cost, rho, target, zero=held, eps=accuracy)
        self.last_x = x
        return np.asarray(x[self.power])

    def _cost(self, power_price: np.ndarray | None = None) -> np.ndarray:
        """The linear cost of every column, with ``power_price`` on the site's power: the
        base cost padded with zeros for columns added since the build (binaries)."""
        if self._padded.size != self.model.n_cols:  # x-updates ask thousands of times
            self._padded = np.pad(self.base_cost, (0, self.model.n_cols - self.base_cost.size))
        cost = self._padded.copy()
        if power_price is not None:
            cost[self.power] += power_price
        return cost

    def dual_value(self, power_price: np.ndarray) -> float:
        """A lower bound on ``min cost + power_price @ P`` over this site's schedules: the
        site's term of the portfolio's Lagrangian dual bound (:mod:`vpp.admm`).

        An LP site's value is its exact optimum with the price on its power. A site with
        integer columns (process starts, exclusivity binaries) solves its MILP and reports
        HiGHS' dual bound of it (the best proven lower bound, equal to the optimum within
        ``mip_rel_gap``); exclusivity rows not yet added only relax the model further, so
        the bound stays valid.
        """
        self.solver.set_cost(self._cost(power_price))
        self.solver.set_quadratic(None)
        solution = self.solver.solve()
        if solution.status == "infeasible":
            raise self._explain_infeasible()
        value = solution.objective
        if self.model.integrality().any():
            value = min(value, float(self.solver.highs.getInfo().mip_dual_bound))
        return value + self.cost_constant

    def _simultaneous(self, x: np.ndarray, tolerance: float) -> dict[int, float]:
        """Columns to fix at 0 where a pair charges and discharges at once in ``x``."""
        fixes: dict[int, float] = {}
        for a, b, _device in self.charge_discharge.pairs:
            both = np.flatnonzero(np.minimum(x[a], x[b]) > tolerance)
            smaller = np.where(x[a[both]] < x[b[both]], a[both], b[both])
            fixes.update({int(c): 0.0 for c in smaller})
        return fixes

    def solve_within(
        self, lower: np.ndarray, upper: np.ndarray, power_price: np.ndarray | None = None
    ) -> SiteSchedule:
        """Solve (LP or MILP) with the site's net power kept in ``[lower, upper]``.

        The ADMM's final feasibility step: each site's share of a hard portfolio limit.
        """
        lo, hi = self.model.bounds()
        saved = lo[self.power].copy(), hi[self.power].copy()
        # the x-update's solver keeps its own copy of the model's bounds, restored below
        self.model.tighten(self.power, lower, upper)
        try:
            return self.solve(power_price, explain=False)
        finally:
            self.model.set_bounds(self.power, *saved)

    def schedule_of_last(self) -> SiteSchedule:
        """The schedule of the last solve or x-update."""
        if self.last_x is None:
            return self.solve()
        return self._schedule(self.last_x, float("nan"))

    def _schedule(self, x: np.ndarray, objective: float) -> SiteSchedule:
        inp = self.inputs
        powers: dict[str, np.ndarray] = {}
        results: dict[str, dict[str, DeviceSeries]] = {}
        kinds: dict[str, str] = {}
        for dv, _common in self.devices:
            p = dv.power(x)
            powers[dv.name], kinds[dv.name] = p, dv.kind
            results[dv.name] = {}
            for result_field in assets.get(dv.kind).result_fields:
                values = result_field.read(dv, x)
                if values is not None:
                    results[dv.name][result_field.key] = DeviceSeries(values, result_field.unit)
        cost = energy_cost(inp, powers, x[self.power])
        parts: dict[str, float] = {}
        device_costs = [
            float(coefs @ x[cols])
            for dv, _ in self.devices
            for cols, coefs in dv.extra.get("column-cost", ())
        ]
        if device_costs:  # operation modes' running and transition costs
            parts = {"energy": cost, "operation-modes": sum(device_costs)}
            cost += parts["operation-modes"]
        power = x[self.power]
        added = {  # peak charges and CO2 cost, in the objective (vpp/peaks.py, vpp/co2.py)
            k: v
            for k, v in (("peak-charges", self.peaks.charges(power)), ("co2", self.co2.cost(power)))
            if v is not None
        }
        if added:
            parts = {"energy": cost} | parts | added
            cost += sum(added.values())
        breaches, penalty = read_breaches(self.breaches, x, self.horizon)
        if inp.softening.requested:  # soft constraints: their penalties, apart from energy
            parts = {"energy": cost} | parts | {"breaches": penalty}
            cost += penalty
        emissions = self.co2.emissions(power)
        listed = {"breaches": breaches} if inp.softening.requested else {}
        return SiteSchedule(
            self.horizon,
            powers,
            results,
            kinds,
            x[self.power].copy(),
            cost,
            objective,
            s2_sources=self.request.s2_sources,
            cost_parts=parts,
            cost_unit=inp.cost_unit,
            site_results=self.peaks.report(power),
            extra=listed
            | (
                {}
                if emissions is None
                else {"emissions": {"value": round(emissions, 9), "unit": "kg"}}
            ),
        )

    # -- diagnosis -------------------------------------------------------------------
    def _explain_infeasible(self) -> VppError:
        rows, cols = self.solver.irreducible_infeasible_set()
        parts: list[tuple[int, str, str, datetime | None, str | None]] = []
        for r in rows:
            fam = self.model.family_of_row(r)
            t = fam.time_of(r)
            rank = 2 if fam.name in _STRUCTURAL else 0
            parts.append((rank, fam.name, "", self.horizon.at(t), fam.device))
        for c in cols:
            block = self.model.block_of_col(c)
            t = block.time_of(c)
            name = self._bound_name(block.name, block.device, t)
            parts.append((1, name, "", self.horizon.at(t), block.device))
        if not parts:
            return InfeasibleError(
                "no schedule satisfies all constraints of this site", constraint="unknown"
            )
        parts.sort(key=lambda p: (p[0], p[3] or self.horizon.start))
        listed = ", ".join(
            f"{name}{_of(name, dev)} at {when.isoformat() if when else '?'}"
            for _, name, _, when, dev in parts[:8]
        )
        _, name, _, when, device = parts[0]
        return with_hint(
            InfeasibleError(
                f"no schedule satisfies all constraints; these conflict: {listed}",
                constraint=name.split("[")[0],
                time=when,
                device=device,
            )
        )

    def _bound_name(self, block: str, device: str | None, t: int) -> str:
        if block == "site-power":
            return "/".join(dict.fromkeys(self.inputs.capacity_source))
        if block == "soc":
            for dv, _ in self.devices:
                if dv.name == device and "bound_source" in dv.extra:
                    lower, upper = dv.extra["bound_source"]
                    return f"{lower[t]}" if lower[t] == upper[t] else f"{lower[t]}/{upper[t]}"
        return {"charge": "consumption-capacity", "discharge": "production-capacity"}.get(
            block, block
        )


# families that only describe how a device or the site works: an infeasibility report names
# the requirement they conflict with first (the power-fixed or minimum on time, not the mode)
_STRUCTURAL = frozenset(
    {
        "soc-dynamics",
        "site-balance",
        "site-settlement",
        "operation-mode-choice",
        "operation-mode-power",
        "operation-mode-switch",
    }
)


def _of(family: str, device: str | None) -> str:
    """`` of <device>`` in an infeasibility report; `` of group <name>`` for a group's rows."""
    if not device:
        return ""
    return f" of group {device}" if family.startswith("group-") else f" of {device}"


def energy_cost(inputs: SiteInputs, powers: dict[str, np.ndarray], site_power: np.ndarray) -> float:
    """The energy cost of a schedule (EUR, or kg when steering on CO2): devices with their own
    prices settled at those, the rest of the site's power at the site's prices."""
    return float(energy_costs(inputs, powers, site_power).sum())


def energy_costs(
    inputs: SiteInputs, powers: dict[str, np.ndarray], site_power: np.ndarray
) -> np.ndarray:
    """:func:`energy_cost` per step: what each step of the schedule costs (a period report
    counts only some steps of a schedule, vpp/reports.py)."""
    dt = inputs.horizon.dt
    settled = site_power.copy()
    cost = np.zeros_like(settled, dtype=float)
    for spec, common, _ in inputs.devices:
        if common.own_prices:
            p = powers[spec.label]
            settled -= p
            cost += _energy_costs(p, common.consumption_price, common.production_price, dt)
    cost += _energy_costs(settled, inputs.consumption_price, inputs.production_price, dt)
    return cost


def _energy_cost(
    power: np.ndarray,
    consumption_price: np.ndarray | None,
    production_price: np.ndarray | None,
    dt: float,
) -> float:
    return float(_energy_costs(power, consumption_price, production_price, dt).sum())


def _energy_costs(
    power: np.ndarray,
    consumption_price: np.ndarray | None,
    production_price: np.ndarray | None,
    dt: float,
) -> np.ndarray:
    cp = np.zeros_like(power) if consumption_price is None else consumption_price
    pp = cp if production_price is None else production_price
    result: np.ndarray = dt * (cp * np.maximum(power, 0.0) - pp * np.maximum(-power, 0.0))
    return result


def validate_site_request(request: ScheduleRequest | dict[str, Any]) -> SiteInputs:
    """Everything a request can be checked for without a solver: fields, units, series
    lengths and alignment (what an API checks before it accepts a job)."""
    return resolve_site(parse_request(request))


def schedule(request: ScheduleRequest | dict[str, Any]) -> dict[str, Any]:
    """Validate, build and solve one site's request; the result JSON (see README)."""
    return SiteProblem(request).solve().to_json()
