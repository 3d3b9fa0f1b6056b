"""A portfolio of sites scheduled toward one target, and its centralised reference.

Request::

    {"start", "duration", "resolution",
     "flex-context": {...portfolio defaults...},
     "sites": [{"id": "site-17", "flex-model": [...], "flex-context": {...overrides...}}],
     "target": {"type": "congestion", "congestion-point": "EAN...",
                "max-consumption": <power series>, "max-production": <power series>}
            | {"type": "market", "volume": <power series>, "deviation-price": <price series>}
            | null,
     "commitments": [{"id": "order-7", "max-consumption": <power series>,
                      "max-production": <power series>}]}

A commitment is a limit the aggregator has promised (e.g. an ordered UFTP FlexOrder); steps
its series do not cover are free. Commitments hold on top of any target.

Portfolio constraint families (``S[t] = sum_i P_i[t]``, the sites' summed net power):

``congestion-limit``
    ``-max_production[t] <= S[t] <= max_consumption[t]`` (hard).
``market-deviation``
    ``S[t] - volume[t] = over[t] - under[t]``, ``over, under >= 0``, costing
    ``deviation_price[t] * dt * (over[t] + under[t])``.
``commitment-limit``
    ``max_k(-max_production_k[t]) <= S[t] <= min_k max_consumption_k[t]`` over the
    commitments ``k`` (hard, with any target; a step no commitment bounds is free).

:class:`Target` carries the intersection of the target's own bounds and the commitments'
(``lower``/``upper``, ``-inf``/``inf`` where free): the bounds every solver keeps.

:class:`CentralisedPortfolio` solves all sites and the target as one HiGHS model: the
reference the distributed ADMM (:mod:`vpp.admm`) is measured against.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, PrivateAttr, field_validator, model_validator

from vpp.device import PowerSeries, PriceSeries, Spec
from vpp.errors import FieldIssue, InfeasibleError, RequestValidationError, SolverError
from vpp.exclusive import Exclusivity, WarmStart, warm_point
from vpp.linear import INF, LinearModel, Term
from vpp.request import (
    FlexContext,
    FlexModel,
    ScheduleRequest,
    TimeWindow,
    parse_window,
    validate,
)
from vpp.s2_request import S2Source, expand_s2_devices, has_s2_devices
from vpp.settings import get_settings
from vpp.site import SiteProblem, SiteSchedule
from vpp.solver import HighsSolver, Solution
from vpp.timeseries import Horizon

__all__ = [
    "AUTO_ADMM_MIN_SITES",
    "CentralisedPortfolio",
    "Commitment",
    "CongestionTarget",
    "MarketTarget",
    "PortfolioRequest",
    "PortfolioResult",
    "SiteEntry",
    "Target",
    "build_sites",
    "certified_gap",
    "check_congestion",
    "choose_method",
    "compare_with_centralised",
    "parse_portfolio",
    "price_scale",
    "resolve_target",
    "validate_portfolio",
]


logger = logging.getLogger(__name__)


class SiteEntry(Spec):
    id: str = Field(min_length=1)
    flex_model: FlexModel
    flex_context: FlexContext | None = None


class CongestionTarget(Spec):
    """A DSO's hard limit on the portfolio's summed power at a congestion point."""

    type: Literal["congestion"]
    congestion_point: str | None = None
    max_consumption: PowerSeries | None = None
    max_production: PowerSeries | None = None

    @model_validator(mode="after")
    def _some_limit(self) -> CongestionTarget:
        if self.max_consumption is None and self.max_production is None:
            raise ValueError("give max-consumption and/or max-production")
        return self


class MarketTarget(Spec):
    """A traded volume the portfolio's net power should follow."""

    type: Literal["market"]
    volume: PowerSeries
    deviation_price: PriceSeries


class Commitment(Spec):
    """A promised hard limit on the portfolio's summed power (e.g. an ordered FlexOrder)."""

    id: str | None = None
    max_consumption: PowerSeries | None = None
    max_production: PowerSeries | None = None

    @model_validator(mode="after")
    def _some_limit(self) -> Commitment:
        if self.max_consumption is None and self.max_production is None:
            raise ValueError("give max-consumption and/or max-production")
        return self


class PortfolioRequest(TimeWindow):
    flex_context: FlexContext = Field(default_factory=FlexContext)
    sites: list[SiteEntry] = Field(min_length=1)
    target: Annotated[CongestionTarget | MarketTarget, Field(discriminator="type")] | None = None
    commitments: list[Commitment] = Field(default_factory=list)
    # how to solve it (docs/portfolio.md, "Methods and the stopping rule")
    method: Literal["auto", "admm", "centralised"] = "auto"
    gap_tolerance: float | None = Field(default=None, gt=0, lt=1)
    max_iterations: int | None = Field(default=None, ge=1, le=100_000)
    time_limit: float | None = Field(default=None, gt=0)
    compare: bool = False

    @field_validator("sites")
    @classmethod
    def _unique_ids(cls, sites: list[SiteEntry]) -> list[SiteEntry]:
        ids = [s.id for s in sites]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"site ids must be unique; repeated: {repeated}")
        return sites

    # per site id, the S2 messages of its devices given as "type": "s2" (vpp.s2_request)
    _s2_sources: dict[str, dict[str, S2Source]] = PrivateAttr(default_factory=dict)

    def site_request(self, index: int) -> ScheduleRequest:
        """Site ``index`` as a single-site request; its flex-context overrides ours."""
        site = self.sites[index]
        request = ScheduleRequest.model_construct(
            start=self.start,
            duration=self.duration,
            resolution=self.resolution,
            flex_model=site.flex_model,
            flex_context=self.flex_context.merged(site.flex_context),
        )
        request._s2_sources = self._s2_sources.get(site.id, {})
        return request


def parse_portfolio(raw: Any) -> PortfolioRequest:
    """Validate a portfolio request; its sites' S2 devices become the devices they map onto,
    as in :func:`vpp.request.parse_request`."""
    sites = raw.get("sites") if isinstance(raw, dict) else None
    if not isinstance(sites, list) or not any(has_s2_devices(s) for s in sites):
        return validate(PortfolioRequest, raw)
    window = parse_window(raw)
    expanded: list[Any] = []
    sources: dict[str, dict[str, S2Source]] = {}
    issues: list[FieldIssue] = []
    for i, site in enumerate(sites):
        if not has_s2_devices(site):
            expanded.append(site)
            continue
        try:
            entry, found = expand_s2_devices(
                site, window.start, window.resolution, window.horizon.steps
            )
        except RequestValidationError as err:
            issues += [FieldIssue(f"sites[{i}].{x.field}", x.message) for x in err.issues]
            continue
        expanded.append(entry)
        sources[str(site.get("id"))] = found
    if issues:
        raise RequestValidationError(issues)
    request = validate(PortfolioRequest, {**raw, "sites": expanded})
    request._s2_sources = sources
    return request


@dataclass(frozen=True)
class Target:
    """A portfolio target resolved on the horizon (kW, EUR/kWh), with the commitments.

    ``lower``/``upper`` are the hard bounds on the summed power of every kind: the
    congestion limit (if any) intersected with the commitments; ``-inf``/``inf`` where free.
    ``lower_from``/``upper_from`` name the constraint family that sets each step's bound
    (``congestion-limit`` or ``commitment-limit``), for error messages.
    """

    kind: Literal["none", "congestion", "market"]
    lower: np.ndarray  # -max production (or -inf)
    upper: np.ndarray  # max consumption (or inf)
    volume: np.ndarray  # market
    deviation_price: np.ndarray  # market, EUR/kWh
    dt: float
    lower_from: tuple[str, ...] = ()
    upper_from: tuple[str, ...] = ()
    commitment_lower: np.ndarray | None = None  # the commitments' own bounds (None: none)
    commitment_upper: np.ndarray | None = None

    @property
    def bounded(self) -> bool:
        """Whether any step has a finite hard bound (congestion limit or commitment)."""
        return bool(np.isfinite(self.lower).any() or np.isfinite(self.upper).any())

    def source(self, side: Literal["lower", "upper"], t: int) -> str:
        names = self.lower_from if side == "lower" else self.upper_from
        if names:
            return names[t]
        return "congestion-limit" if self.kind == "congestion" else "commitment-limit"

    def violation(self, total: np.ndarray) -> float:
        """Largest excess over the hard bounds (kW); 0 when unbounded."""
        if not self.bounded:
            return 0.0
        return float(max(0.0, np.max(total - self.upper), np.max(self.lower - total)))

    def cost(self, total: np.ndarray) -> float:
        """Deviation cost of a market target (EUR); 0 for other targets."""
        if self.kind != "market":
            return 0.0
        return float(self.dt * self.deviation_price @ np.abs(total - self.volume))

    def dual_term(self, price: np.ndarray) -> tuple[np.ndarray, float]:
        """The target's term of the Lagrangian dual: ``min_S g(S) - price @ S``, with ``g``
        the target's cost plus the indicator of its hard bounds, and the price projected
        first onto where that minimum is finite. Returns ``(projected price, term)``.

        Per step ``g`` is ``c*|S - volume|`` on ``[lower, upper]`` (``c = dt *
        deviation_price`` for a market target, 0 otherwise). Toward an infinite bound the
        term stays finite only while the price does not exceed the slope ``c`` there, so the
        price is clipped to ``[-c, c]`` on the sides without a bound; the minimum of the
        convex piecewise-linear ``g - price * S`` is then at a finite bound or at the
        breakpoint ``volume`` (clipped into the bounds).
        """
        c = self.dt * self.deviation_price if self.kind == "market" else np.zeros_like(price)
        high = np.where(np.isfinite(self.upper), np.inf, c)
        low = np.where(np.isfinite(self.lower), -np.inf, -c)
        y = np.clip(price, low, high)
        breakpoint = np.clip(self.volume, self.lower, self.upper)
        best = c * np.abs(breakpoint - self.volume) - y * breakpoint
        for bound in (self.lower, self.upper):
            finite = np.isfinite(bound)
            at = np.where(finite, bound, 0.0)
            value = c * np.abs(at - self.volume) - y * at
            best = np.where(finite, np.minimum(best, value), best)
        return y, float(best.sum())


def resolve_target(request: PortfolioRequest) -> Target:
    """The target on the horizon, its bounds intersected with the commitments'."""
    target = _resolve_own_target(request)
    if not request.commitments:
        return target
    horizon = request.horizon
    n = horizon.steps
    own_name = "congestion-limit" if target.kind == "congestion" else "target"
    c_lower, c_upper = np.full(n, -INF), np.full(n, INF)
    lower_from, upper_from = [own_name] * n, [own_name] * n
    lower, upper = target.lower.copy(), target.upper.copy()
    issues: list[FieldIssue] = []
    for i, c in enumerate(request.commitments):
        where = f"commitments[{i}]"
        try:
            hi = _series(c.max_consumption, horizon, f"{where}.max-consumption", INF)
            lo = -_series(c.max_production, horizon, f"{where}.max-production", INF)
        except RequestValidationError as err:
            issues += err.issues
            continue
        c_lower, c_upper = np.maximum(c_lower, lo), np.minimum(c_upper, hi)
        for k in np.flatnonzero(hi < upper):
            upper[k], upper_from[k] = hi[k], f"{where}.max-consumption"
        for k in np.flatnonzero(lo > lower):
            lower[k], lower_from[k] = lo[k], f"{where}.max-production"
        bad = np.flatnonzero(lower > upper)
        if bad.size and not issues:
            t = int(bad[0])
            issues.append(
                FieldIssue(
                    where,
                    f"contradicts {_side_name(upper_from[t], lower_from[t], where)} at "
                    f"{horizon.at(t).isoformat()}: max-consumption {upper[t]:g} kW is below "
                    f"-max-production {lower[t]:g} kW",
                )
            )
    if issues:
        raise RequestValidationError(issues)
    return Target(
        target.kind,
        lower,
        upper,
        target.volume,
        target.deviation_price,
        target.dt,
        tuple("commitment-limit" if s.startswith("commitments") else s for s in lower_from),
        tuple("commitment-limit" if s.startswith("commitments") else s for s in upper_from),
        c_lower,
        c_upper,
    )


def _side_name(upper_from: str, lower_from: str, where: str) -> str:
    """What a commitment contradicts: the other bound's source (itself when both are its)."""
    other = lower_from if upper_from.startswith(where) else upper_from
    if other.startswith(where):
        return "itself"
    return other.split(".")[0] if other.startswith("commitments") else f"the {other}"


def _resolve_own_target(request: PortfolioRequest) -> Target:
    horizon = request.horizon
    n = horizon.steps
    t = request.target
    none = np.zeros(n)
    if t is None:
        return Target("none", np.full(n, -INF), np.full(n, INF), none, none, horizon.dt)
    if isinstance(t, CongestionTarget):
        upper = _series(t.max_consumption, horizon, "target.max-consumption", INF)
        lower = -_series(t.max_production, horizon, "target.max-production", INF)
        bad = np.flatnonzero(lower > upper)
        if bad.size:
            raise RequestValidationError.single(
                "target", f"max-consumption is below -max-production at step {int(bad[0])}"
            )
        return Target("congestion", lower, upper, none, none, horizon.dt)
    volume = _series(t.volume, horizon, "target.volume", math.nan)
    price = _series(t.deviation_price, horizon, "target.deviation-price", math.nan)
    for name, arr in (("volume", volume), ("deviation-price", price)):
        if np.isnan(arr).any():
            raise RequestValidationError.single(f"target.{name}", "segments leave steps empty")
    if (price < 0).any():
        raise RequestValidationError.single("target.deviation-price", "must not be negative")
    if t.deviation_price.unit not in ("EUR", ""):  # a price may count kg (vpp/co2.py)
        raise RequestValidationError.single("target.deviation-price", "must be in EUR per energy")
    return Target("market", np.full(n, -INF), np.full(n, INF), volume, price, horizon.dt)


def _series(s: Any, horizon: Horizon, field: str, default: float) -> np.ndarray:
    if s is None:
        return np.full(horizon.steps, default)
    values = s.resolve(horizon, field, default)
    return np.where(np.isnan(values), default, values)


def validate_portfolio(raw: Any) -> PortfolioRequest:
    """Fields, units, series lengths of the portfolio and all its sites, without a solver."""
    from vpp.site import resolve_site

    request = parse_portfolio(raw)
    resolve_target(request)
    issues = []
    for i in range(len(request.sites)):
        try:
            resolve_site(request.site_request(i))
        except RequestValidationError as err:
            issues += _site_issues(request, i, err)
    if issues:
        raise RequestValidationError(issues)
    return request


def _site_issues(
    request: PortfolioRequest, index: int, err: RequestValidationError
) -> list[FieldIssue]:
    """A site's issues at their place in the portfolio request: the site's own flex-model or
    flex-context override, or the portfolio's flex-context (then reported once, not per site).
    """
    override = request.sites[index].flex_context
    own = override.model_fields_set if override is not None else set()
    out = []
    for issue in err.issues:
        field = issue.field
        name = field.removeprefix("flex-context.").split(".")[0].split("[")[0]
        if field.startswith("flex-model"):
            field = f"sites[{index}].{field}"
        elif name.replace("-", "_") in own:
            field = field.replace("flex-context", f"sites[{index}].flex-context", 1)
        out.append(FieldIssue(field, issue.message))
    return out


def build_sites(request: PortfolioRequest) -> list[SiteProblem]:
    """Every site's problem, reporting all sites' field errors at once."""
    problems, issues = [], []
    for i in range(len(request.sites)):
        try:
            problems.append(SiteProblem(request.site_request(i), break_ties=False))
            if problems[-1].inputs.cost_unit != "EUR":  # the target and sites add up in EUR
                unit = f"prices in {problems[-1].inputs.cost_unit} per energy"
                why = f"{unit}; a portfolio's sites and target share one objective, in EUR"
                raise RequestValidationError.single("flex-context.consumption-price", why)
        except RequestValidationError as err:
            issues += _site_issues(request, i, err)
        except InfeasibleError as err:
            raise InfeasibleError(
                f"site {request.sites[i].id}: {err.message}",
                constraint=err.constraint,
                time=err.time,
                device=f"{request.sites[i].id}/{err.device or ''}".rstrip("/"),
            ) from None
    if issues:
        raise RequestValidationError(issues)
    return problems


@dataclass
class PortfolioResult:
    """Schedules per site plus the portfolio's totals and how they were reached."""

    horizon: Horizon
    site_ids: list[str]
    schedules: list[SiteSchedule]
    target: Target
    iterations: int = 0
    converged: bool = True
    primal_residual: float = 0.0
    dual_residual: float = 0.0
    degraded_sites: list[str] = field(default_factory=list)
    degraded_reasons: dict[str, str] = field(default_factory=dict)  # site id -> why
    time_limited: bool = False  # a centralised MILP's incumbent at the time limit
    extra: dict[str, Any] = field(default_factory=dict)  # more "portfolio" entries in JSON
    admm_state: Any = None  # vpp.admm.AdmmState, to warm-start a later run

    @property
    def power(self) -> np.ndarray:
        total: np.ndarray = np.sum([s.site_power for s in self.schedules], axis=0)
        return total

    @property
    def status(self) -> str:
        """``finished`` only when every site was really optimised (docs/portfolio.md)."""
        if self.degraded_sites:
            return "degraded"
        return "time-limited" if self.time_limited else "finished"

    def certify(self, lower_bound: float | None) -> None:
        """Report ``lower-bound`` and ``certified-gap`` (None where no valid bound exists)."""
        self.extra["lower-bound"] = (
            None if lower_bound is None else {"value": round(lower_bound, 9), "unit": "EUR"}
        )
        self.extra["certified-gap"] = (
            None if lower_bound is None else certified_gap(self.cost, lower_bound)
        )

    @property
    def cost(self) -> float:
        """Sites' energy cost plus a market target's deviation cost (EUR)."""
        return sum(s.cost for s in self.schedules) + self.target.cost(self.power)

    def to_json(self) -> dict[str, Any]:
        sites = []
        for site_id, schedule in zip(self.site_ids, self.schedules, strict=True):
            body = schedule.to_json()
            keys = ("devices", "site", "cost", "emissions")  # emissions: vpp/co2.py
            sites.append({"id": site_id, **{k: body[k] for k in keys if k in body}})
        first = self.schedules[0].to_json()
        return {
            "status": self.status,
            **{k: first[k] for k in ("start", "duration", "resolution")},
            "sites": sites,
            "portfolio": {
                "power": {"values": [round(float(v), 9) for v in self.power], "unit": "kW"},
                "cost": {"value": round(self.cost, 9), "unit": "EUR"},
                "target-violation-kw": round(self.target.violation(self.power), 9),
                "iterations": self.iterations,
                "converged": self.converged,
                "primal-residual": self.primal_residual,
                "dual-residual": self.dual_residual,
                "degraded-sites": self.degraded_sites,
                "degraded-reasons": self.degraded_reasons,
                **self.extra,
            },
        }


class CentralisedPortfolio:
    """All sites and the target in one model, solved by HiGHS: the exact reference."""

    def __init__(self, request: PortfolioRequest | dict[str, Any]) -> None:
        self.request = parse_portfolio(request)
        self.target = resolve_target(self.request)
        self.sites = build_sites(self.request)
        self.model = LinearModel()
        self.offsets = [
            self.model.append(p.model, prefix=s.id)
            for p, s in zip(self.sites, self.request.sites, strict=True)
        ]
        self.exclusive = Exclusivity("no-simultaneous-charge-discharge")
        for offset, site in zip(self.offsets, self.sites, strict=True):
            self.exclusive.pairs += [
                (a + offset, b + offset, dev) for a, b, dev in site.charge_discharge.pairs
            ]
            self.exclusive.done |= {(a + offset, t) for a, t in site.charge_discharge.done}
        self.cost = np.concatenate([p.base_cost for p in self.sites])
        self.constant = sum(p.cost_constant for p in self.sites)
        check_congestion(self.request.horizon, [p.power_range() for p in self.sites], self.target)
        self._add_target()
        self.last_solution: Solution | None = None
        self._warm: WarmStart | None = None  # see warm_start

    def power_terms(self) -> list[Term]:
        """The summed site power ``S[t]`` as row terms (one row per step)."""
        return [(1.0, p.power + o) for p, o in zip(self.sites, self.offsets, strict=True)]

    def _add_target(self) -> None:
        t, n = self.target, self.request.horizon.steps
        if t.commitment_lower is not None and t.commitment_upper is not None:
            self.model.add_rows(
                "commitment-limit", self.power_terms(), t.commitment_lower, t.commitment_upper
            )
        if t.kind == "congestion":
            self.model.add_rows("congestion-limit", self.power_terms(), t.lower, t.upper)
        elif t.kind == "market":
            over = self.model.add_vars("market-over", n)
            under = self.model.add_vars("market-under", n)
            self.model.add_rows(
                "market-deviation",
                [*self.power_terms(), (-1.0, over), (1.0, under)],
                t.volume,
                t.volume,
            )
            self.cost = np.concatenate(
                [self.cost, t.dt * t.deviation_price, t.dt * t.deviation_price]
            )

    def warm_start(self, previous: CentralisedPortfolio, steps: int) -> None:
        """Start from ``previous``'s solution ``steps`` later (rolling-horizon re-planning,
        :mod:`api.replanning`): its charge/discharge binaries up front, its shifted solution
        as HiGHS' start where the model has integer columns (as
        :meth:`vpp.site.SiteProblem.warm_start`)."""
        if previous.last_solution is None:
            return
        n = self.request.horizon.steps
        self.exclusive.carry_over(self.model, previous.exclusive, steps, n)
        self._warm = (previous.model, previous.last_solution.x, steps)

    def solve(self, time_limit: float | None = None) -> PortfolioResult:
        """The exact optimum; with ``time_limit`` (seconds) a MILP that hits it returns its
        incumbent (status ``time-limited``, its MIP gap reported), and a solve with no
        schedule by then fails naming the limit."""
        integer = self.model.integrality().any()
        options = "ipm" if self.model.n_cols > 100_000 and not integer else "choose"
        limit = get_settings().solve_time_limit if time_limit is None else time_limit
        solver = HighsSolver(self.model, time_limit=limit)
        solver.highs.setOptionValue("solver", options)
        solver.set_cost(self.cost)
        started = time.monotonic()
        for _ in range(self.request.horizon.steps + 1):
            left = limit - (time.monotonic() - started)
            solver.highs.setOptionValue("time_limit", max(left, 1e-3))
            if self._warm is not None and self.model.integrality().any():
                solver.set_start(warm_point(self.model, self._warm, self.exclusive))
            try:
                solution = solver.solve()
            except SolverError as err:
                if time.monotonic() - started < limit:
                    raise
                raise SolverError(
                    f"the centralised solve found no schedule within its time limit of "
                    f"{limit:g} s ({err.message}); give a larger time-limit or method admm"
                ) from None
            if solution.status == "infeasible":
                raise self._infeasible()
            if solution.status == "feasible" or not self.exclusive.enforce(self.model, solution.x):
                break
        bound = solution.objective
        if integer or self.model.integrality().any():
            bound = min(bound, float(solver.highs.getInfo().mip_dual_bound))
        schedules = []
        for p, offset in zip(self.sites, self.offsets, strict=True):
            x = solution.x[offset : offset + p.model.n_cols]
            p.last_x = x
            schedules.append(p.schedule_of_last())
        result = PortfolioResult(
            self.request.horizon, [s.id for s in self.request.sites], schedules, self.target
        )
        result.extra["method"] = "centralised"
        result.extra["objective"] = solution.objective + self.constant
        result.time_limited = solution.status == "feasible"
        if result.time_limited:
            result.extra["mip-gap"] = solution.mip_gap
        result.certify(bound + self.constant)
        self.last_solution = solution  # extra columns a caller added (vpp.gopacs) live here
        return result

    def _infeasible(self) -> InfeasibleError:
        t = self.target
        if t.commitment_lower is not None:
            what, name = "the congestion limit and the commitments", "commitment-limit"
            if t.kind != "congestion":
                what = "the commitments"
        elif t.kind == "congestion":
            what, name = "the congestion limit", "congestion-limit"
        else:
            what, name = "their own limits", "unknown"
        return InfeasibleError(
            f"the sites cannot together keep to {what} at every step (their energy needs "
            "over the day do not fit, though each step alone could)",
            constraint=name,
        )


AUTO_ADMM_MIN_SITES = 400
"""``method: auto`` runs ADMM from this many sites on, centralised below: the crossover
measured in docs/benchmarks.md (section "Choosing the method")."""


def choose_method(request: PortfolioRequest) -> Literal["admm", "centralised"]:
    """The method a request asks for; ``auto`` picks the faster one by portfolio size."""
    if request.method != "auto":
        return request.method
    return "admm" if len(request.sites) >= AUTO_ADMM_MIN_SITES else "centralised"


def compare_with_centralised(result: dict[str, Any], request: PortfolioRequest) -> None:
    """Add the exact optimum (``centralised-cost``) and the result's ``gap`` to it,
    ``(cost - optimum) / |optimum|``, to a result's ``portfolio``."""
    reference = CentralisedPortfolio(request).solve(request.time_limit)
    cost = result["portfolio"]["cost"]["value"]
    result["portfolio"]["centralised-cost"] = round(reference.cost, 9)
    result["portfolio"]["centralised-status"] = reference.status
    result["portfolio"]["gap"] = (cost - reference.cost) / abs(reference.cost or 1.0)


def price_scale(portfolio: PortfolioRequest) -> float:
    """Typical EUR per kW and step of the portfolio's consumption price (for the first rho)."""
    horizon = portfolio.horizon
    price = portfolio.flex_context.consumption_price
    if price is None:
        price = next(
            (
                s.flex_context.consumption_price
                for s in portfolio.sites
                if s.flex_context and s.flex_context.consumption_price
            ),
            None,
        )
    if price is None:
        return 0.1 * horizon.dt
    values = price.resolve(horizon, "flex-context.consumption-price", 0.0)
    return float(np.mean(np.abs(np.nan_to_num(values)))) * horizon.dt


def certified_gap(cost: float, lower_bound: float) -> float:
    """``(cost - lower_bound) / |cost|``: how far, at most, a cost is above the optimum,
    relative to the cost (the denominator never below 1e-6 EUR). Never negative: a bound
    above the cost by solver tolerance counts as 0."""
    return max(0.0, (cost - lower_bound) / max(abs(cost), 1e-6))


def check_congestion(
    horizon: Horizon, ranges: list[tuple[np.ndarray, np.ndarray]], target: Target
) -> None:
    """The sites' least (most) summed power, from each site's ``(least, most)`` power per
    step, must fit under (over) the hard bounds (congestion limit and commitments) at every
    step; the error names the first step, its bound's family and how far off it is."""
    if not target.bounded:
        return
    least = np.sum([r[0] for r in ranges], axis=0)
    most = np.sum([r[1] for r in ranges], axis=0)
    for name, bad, value, limit in (
        ("max-consumption", np.flatnonzero(least > target.upper + 1e-6), least, target.upper),
        ("max-production", np.flatnonzero(most < target.lower - 1e-6), most, -target.lower),
    ):
        if bad.size:
            t = int(bad[0])
            verb = "consume at least" if name == "max-consumption" else "produce at least"
            amount = value[t] if name == "max-consumption" else -value[t]
            family = target.source("upper" if name == "max-consumption" else "lower", t)
            raise InfeasibleError(
                f"{family} {name} = {limit[t]:g} kW at {horizon.at(t).isoformat()} "
                f"cannot be met: the sites together {verb} {amount:.4g} kW then "
                f"({abs(amount - limit[t]):.4g} kW too much)",
                constraint=family,
                time=horizon.at(t),
            )
