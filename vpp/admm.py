"""ADMM in exchange (sharing) form: many sites, one portfolio target.

Problem: ``min sum_i f_i(x_i) + g(sum_i x_i)`` with ``x_i`` site ``i``'s net power (kW per
step), ``f_i`` its energy cost over its own feasible set, and ``g`` the target: the indicator
of ``[lower, upper]`` for a congestion limit, ``deviation_price * dt * |s - volume|`` for a
market position, plus (for every kind) the indicator of the hard bounds ``[lower, upper]``
that the congestion limit and the commitments set (:class:`vpp.portfolio.Target`).
Scaled-form sharing ADMM (Boyd et al. 2011, section 7.3) with ``N`` sites, ``xbar`` the
sites' mean and ``u`` the scaled dual:

1. x-update, per site and in parallel:
   ``x_i <- argmin f_i(x) + rho/2 * ||x - (x_i - xbar + zbar - u)||^2``
2. over-relaxation: ``xhat = alpha * xbar + (1 - alpha) * zbar``
3. z-update, the prox of the target cost plus the box indicator (``a = xhat + u``):
   congestion ``zbar <- clip(a, lower/N, upper/N)``;
   market ``zbar <- clip((volume + soft(N*a - volume, N*dt*deviation_price/rho)) / N,
   lower/N, upper/N)``; no target ``zbar <- clip(a, lower/N, upper/N)``.
   The problem separates per step into 1-D convex problems, and for a 1-D convex ``h`` the
   minimiser over an interval is the clip of its unconstrained minimiser (``h`` is
   monotone on either side of it), so clipping the unconstrained prox is the exact prox of
   ``h + indicator``.
4. dual update: ``u <- u + xhat - zbar``

Residuals: primal ``r = sqrt(N) * ||xbar - zbar||``, dual
``s = rho * sqrt(sum_i ||dx_i - dxbar + dzbar||^2)``; stop when both are below their
tolerances ``eps = sqrt(N*T)*eps_abs + eps_rel * scale`` (Boyd 3.3.1). ``rho`` follows residual
balancing (Boyd 3.4.1: x ``tau`` when ``r > mu*s``, / ``tau`` when ``s > mu*r``; ``u`` is
rescaled with it). ``rho * u`` is the portfolio's price signal (EUR/kW per step).

ADMM's ``x_i`` satisfy each site's own constraints but their sum only approaches the limit, so
any finite hard bound (congestion or commitment) ends with a **feasibility step**: the limit is
split among the sites (site ``i`` gets ``z_i = x_i - xbar + zbar``, whose sum meets the limit
exactly, plus an equal share of the slack) and every site re-solves its LP/MILP within its
share. Sites that cannot keep to their share keep the feasible schedule nearest their ADMM
power, and the capacity they take is taken from the unused share of the others; a few such
rounds end either with every step within the limit or with an error, never with a violating
schedule. With a market target (whose
cost lives at every step) each site also stays within a band around its ADMM power, widened per
site only as far as it must, so the split does not undo the market tracking at unbounded steps.

This module is pure: sites are reached through a :class:`SitePool` (in-process here, Ray
actors in ``actors/``).
"""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vpp.errors import InfeasibleError, SiteFailedError, VppError
from vpp.portfolio import (
    CentralisedPortfolio,
    PortfolioRequest,
    PortfolioResult,
    Target,
    certified_gap,
    check_congestion,
)
from vpp.site import SiteProblem, SiteSchedule
from vpp.telemetry import tracer
from vpp.timeseries import Horizon

__all__ = [
    "AdmmSettings",
    "AdmmState",
    "Certifier",
    "Degraded",
    "LocalPool",
    "Outcome",
    "Progress",
    "SitePool",
    "call_site",
    "feasibility_step",
    "initial_rho",
    "run_admm",
    "settings_for",
    "solve_portfolio_admm",
    "to_jsonable",
    "x_accuracy",
    "z_update",
]


logger = logging.getLogger(__name__)


@dataclass
class AdmmSettings:
    rho: float | None = None  # initial rho (EUR/kW^2 per step); None: from the prices
    eps_rel: float = 1e-4
    eps_abs: float = 1e-5  # kW per element
    gap_tolerance: float = 1e-3  # stop once the certified gap is at most this
    # a safety net: the stopping rule (gap or residuals) ends LP portfolios well before it
    max_iterations: int = 100
    time_limit: float | None = None  # seconds of iterations; the final step follows
    bound_every: int = 5  # iterations between Lagrangian bounds (one LP per site each)
    alpha: float = 1.6  # over-relaxation, in (0, 2)
    mu: float = 50.0  # residual balancing threshold (10 in Boyd; LP sites do better with 50)
    tau: float = 2.0  # residual balancing factor
    feasibility_rounds: int = 4


def settings_for(
    request: PortfolioRequest, overrides: dict[str, Any] | None = None
) -> AdmmSettings:
    """The request's own ``gap-tolerance``, ``max-iterations`` and ``time-limit`` over the
    defaults; ``overrides`` (a caller's tuning: tests, benchmarks) over both."""
    given = {
        "gap_tolerance": request.gap_tolerance,
        "max_iterations": request.max_iterations,
        "time_limit": request.time_limit,
    }
    fields = {k: v for k, v in given.items() if v is not None}
    return AdmmSettings(**(fields | (overrides or {})))


@dataclass
class AdmmState:
    """Everything needed to resume (or warm-start) the iterations."""

    iteration: int
    rho: float
    x: np.ndarray  # (N, T)
    zbar: np.ndarray
    u: np.ndarray
    history: list[dict[str, float | None]] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        """The state as an ``.npz`` archive (the one serialisation of files and databases)."""
        buffer = io.BytesIO()
        np.savez(
            buffer,
            iteration=self.iteration,
            rho=self.rho,
            x=self.x,
            zbar=self.zbar,
            u=self.u,
            history=np.array(
                [[math.nan if v is None else v for v in h.values()] for h in self.history]
            ),
            keys=np.array(list(self.history[0]) if self.history else []),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> AdmmState:
        """The state :meth:`to_bytes` wrote (no pickles: ``np.load`` refuses object arrays)."""
        with np.load(io.BytesIO(data)) as archive:
            keys = [str(k) for k in archive["keys"]]
            history = [
                {
                    k: None if math.isnan(v) else v
                    for k, v in zip(keys, map(float, row), strict=True)
                }
                for row in archive["history"]
            ]
            return cls(
                int(archive["iteration"]),
                float(archive["rho"]),
                archive["x"],
                archive["zbar"],
                archive["u"],
                history,
            )

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp.npz")
        tmp.write_bytes(self.to_bytes())
        tmp.replace(path)  # atomic: a crash never leaves half a checkpoint

    @classmethod
    def load(cls, path: Path) -> AdmmState:
        return cls.from_bytes(path.read_bytes())


@dataclass(frozen=True)
class Progress:
    iteration: int
    primal_residual: float
    dual_residual: float
    primal_tolerance: float
    dual_tolerance: float
    rho: float
    objective: float  # sites' energy cost + target cost at the current x (EUR)
    violation: float  # congestion excess of sum x (kW)
    seconds: float
    lower_bound: float | None = None  # best Lagrangian bound so far (EUR), once evaluated
    certified_gap: float | None = None  # of the final step's schedules, when it ran

    def as_dict(self) -> dict[str, float | None]:
        return {k: None if v is None else float(v) for k, v in asdict(self).items()}


Degraded = dict[str, str]
"""Sites a call could not reach, by id, with the reason (missed the deadline, actor died)."""


class SitePool(Protocol):
    """Where the sites live: in this process, or in Ray actors.

    A site whose own code raises fails the call with :class:`vpp.errors.SiteFailedError`
    (naming it); only sites that were slow or whose process died come back as degraded.
    """

    site_ids: list[str]

    def solve_alone(self) -> tuple[np.ndarray, np.ndarray]:
        """Each site's own optimum: powers (N, T) and costs (N)."""
        ...

    def x_update(
        self, rho: float, targets: np.ndarray, accuracy: float
    ) -> tuple[np.ndarray, np.ndarray, Degraded]:
        """Every site's prox step toward ``targets`` (N, T), solved to ``accuracy`` (kW):
        powers, costs, degraded sites."""
        ...

    def solve_within(
        self, lower: np.ndarray, upper: np.ndarray
    ) -> tuple[list[SiteSchedule | None], Degraded]:
        """Every site re-solved with its power in ``[lower_i, upper_i]``: schedules (None
        where infeasible) and degraded sites."""
        ...

    def dual_values(self, price: np.ndarray) -> tuple[np.ndarray, Degraded]:
        """Every site's :meth:`vpp.site.SiteProblem.dual_value` at ``price`` (T): values (N)
        and the sites that did not answer (their value is NaN)."""
        ...

    def power_ranges(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each site's least and most net power per step (for the congestion pre-check)."""
        ...


def call_site(site_id: str, method: str, fn: Callable[[], Any]) -> Any:
    """``fn()`` for one site; whatever its own code raises fails the job naming the site
    (an infeasible share in the final step is the caller's to handle, not a failure)."""
    try:
        return fn()
    except (InfeasibleError, SiteFailedError):
        raise
    except Exception as err:
        raise SiteFailedError(site_id, method, err) from err


class LocalPool:
    """All sites in this process: for tests, small portfolios and the centralised gap."""

    def __init__(self, ids: list[str], sites: list[SiteProblem]) -> None:
        self.site_ids = ids
        self.sites = sites

    def _each(self, method: str, fn: Callable[[SiteProblem, int], Any]) -> list[Any]:
        return [
            call_site(sid, method, partial(fn, p, i))
            for i, (sid, p) in enumerate(zip(self.site_ids, self.sites, strict=True))
        ]

    def solve_alone(self) -> tuple[np.ndarray, np.ndarray]:
        schedules = self._each("solve_alone", lambda p, _i: p.solve())
        return (np.array([s.site_power for s in schedules]), np.array([s.cost for s in schedules]))

    def x_update(
        self, rho: float, targets: np.ndarray, accuracy: float
    ) -> tuple[np.ndarray, np.ndarray, Degraded]:
        x = np.array(
            self._each("x_update", lambda p, i: p.prox(rho, targets[i], accuracy=accuracy))
        )
        costs = np.array([p.schedule_of_last().cost for p in self.sites])
        return x, costs, {}

    def solve_within(
        self, lower: np.ndarray, upper: np.ndarray
    ) -> tuple[list[SiteSchedule | None], Degraded]:
        def within(p: SiteProblem, i: int) -> SiteSchedule | None:
            try:
                return p.solve_within(lower[i], upper[i])
            except InfeasibleError:  # this share cannot be kept: the final step reallocates
                return None

        return self._each("solve_within", within), {}

    def dual_values(self, price: np.ndarray) -> tuple[np.ndarray, Degraded]:
        return np.array(self._each("dual_value", lambda p, _i: p.dual_value(price))), {}

    def power_ranges(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [p.power_range() for p in self.sites]

    def last_schedules(self) -> list[SiteSchedule]:
        return [p.schedule_of_last() for p in self.sites]


def z_update(target: Target, a: np.ndarray, n: int, rho: float) -> np.ndarray:
    """The prox step: ``argmin g(N z) + N*rho/2 * ||z - a||^2`` with ``g`` the target's cost
    plus the indicator of its hard bounds (clip of the unconstrained prox: exact, see the
    module docstring)."""
    z = a
    if target.kind == "market":
        y = n * a - target.volume
        kappa = n * target.dt * target.deviation_price / rho
        z = (target.volume + np.sign(y) * np.maximum(np.abs(y) - kappa, 0.0)) / n
    if target.bounded:
        z = np.clip(z, target.lower / n, target.upper / n)
    return z


def x_accuracy(state: AdmmState) -> float:
    """How exactly the next x-updates are solved (kW per element): a tenth of what the last
    dual residual is per element, within [1e-6, 1e-3]. An inexact x-update's error enters
    the residuals; kept below them it never stalls the iterations (measured: at a fixed 1e-3
    the dual residual of two EV sites stayed at 1.3e-3 for 300 iterations, 25x its
    tolerance), and early iterations, far from the solution, stay cheap."""
    if not state.history:
        return 1e-3
    n, steps = state.x.shape
    s = state.history[-1].get("dual_residual") or 0.0
    per_element = s / (max(state.rho, 1e-12) * math.sqrt(n * steps))
    wanted = float(np.clip(0.1 * per_element, 1e-6, 1e-3))
    # in steps of 10^(1/4): OSQP's settings change (and are passed) only now and then
    return float(10 ** (math.floor(4 * math.log10(wanted)) / 4))


def initial_rho(price_scale: float, x: np.ndarray) -> float:
    """A tenth of price-per-kW over the sites' power scale: small enough that the first
    x-updates still follow prices (measured best on LP sites; residual balancing adapts)."""
    scale = float(np.sqrt(np.mean(x**2))) if x.size else 1.0
    return 0.1 * max(price_scale, 1e-6) / max(scale, 1e-3)


@dataclass
class Outcome:
    """How :func:`run_admm` ended."""

    state: AdmmState
    converged: bool  # the stopping rule held (certified gap, or both residuals)
    stopped_by: str  # "gap" | "residuals" | "iterations" | "time-limit"
    degraded: Degraded
    lower_bound: float | None  # the best Lagrangian bound (EUR); None if none was complete
    bound_iteration: int  # the iteration whose prices gave the best bound
    # the final step's schedules, when the gap check made them at the last state
    schedules: list[SiteSchedule] | None = None


class Certifier:
    """The Lagrangian dual bound of the ADMM's prices and the certified gap of a schedule.

    With ``y = rho * u`` the portfolio's price on every site's power (EUR/kW per step), weak
    duality gives ``L(y) = sum_i min_x (f_i(x) + y @ P_i) + min_S (g(S) - y @ S) <= optimum``
    for any ``y`` (:meth:`vpp.site.SiteProblem.dual_value`, :meth:`Target.dual_term`, which
    first projects ``y`` where the target's term is finite). The best bound seen stays valid.
    """

    def __init__(self, pool: SitePool, target: Target) -> None:
        self.pool, self.target = pool, target
        self.best: float | None = None
        self.best_iteration = 0
        self.shift: float | None = None  # last final step's cost minus the iterate's objective

    def bound(self, state: AdmmState) -> float | None:
        """Evaluate ``L(rho * u)`` (one LP per site); the best bound so far."""
        y, term = self.target.dual_term(state.rho * state.u)
        values, missing = self.pool.dual_values(y)
        if missing or not np.isfinite(values).all():
            logger.warning(
                "no bound at iteration %d: %d sites did not answer", state.iteration, len(missing)
            )
            return self.best
        value = float(values.sum()) + term
        if self.best is None or value > self.best:
            self.best, self.best_iteration = value, state.iteration
        return self.best

    def close(self, objective: float, tolerance: float) -> bool:
        """Whether the final step is worth trying (it costs about one LP per site, more with
        reallocation rounds). Before the first try: when the iterate's objective is within
        five times the tolerance of the bound, since the final step re-optimises every site
        within its share and often ends below that objective (measured: a market target's
        iterates hovered at 2-3x the tolerance while their final schedules were within it).
        After a try: when the objective, corrected by what the last final step changed
        (``shift``), is within the tolerance (measured on 300 homes: 17 final steps before,
        a third of the run, for the same stopping iteration)."""
        if self.best is None:
            return False
        if self.shift is None:
            return certified_gap(objective, self.best) <= 5 * tolerance
        return certified_gap(objective + self.shift, self.best) <= tolerance


def run_admm(
    pool: SitePool,
    target: Target,
    price_scale: float,
    settings: AdmmSettings | None = None,
    *,
    state: AdmmState | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    checkpoint: Callable[[AdmmState], None] | None = None,
) -> Outcome:
    """Iterate until the stopping rule holds (certified gap at most ``gap_tolerance``, or
    both residuals below their tolerances), the iteration cap or the time limit.

    Every ``bound_every`` iterations (and when the residuals hold) the prices are turned
    into a Lagrangian bound; when the iterate's objective is within the tolerance of the
    best bound (five times), the final step runs and the gap of its feasible
    schedules is checked: the iterations stop only on a gap a real schedule has.
    """
    cfg = settings or AdmmSettings()
    degraded: Degraded = {}
    started = time.monotonic()
    if state is None:
        x, _ = pool.solve_alone()
        n = x.shape[0]
        xbar = x.mean(axis=0)
        rho = cfg.rho or initial_rho(price_scale, x)
        state = AdmmState(0, rho, x, z_update(target, xbar, n, rho), np.zeros(x.shape[1]))
    certifier = Certifier(pool, target)
    stopped_by, schedules = "iterations", None
    spans = tracer(__name__)
    first = state.iteration  # a resumed or warm state counts on; the cap is per run
    while state.iteration - first < cfg.max_iterations:
        if cfg.time_limit is not None and time.monotonic() - started >= cfg.time_limit:
            stopped_by = "time-limit"
            break
        with spans.start_as_current_span("admm.iteration") as span:
            span.set_attribute("vpp.iteration", state.iteration + 1)
            state, progress = _iterate(pool, target, cfg, state, degraded, started)
            residuals = (
                progress.primal_residual <= progress.primal_tolerance
                and progress.dual_residual <= progress.dual_tolerance
            )
            schedules = None
            if residuals or (state.iteration - first) % cfg.bound_every == 0:
                progress = replace(progress, lower_bound=certifier.bound(state))
                if certifier.close(progress.objective, cfg.gap_tolerance):
                    schedules, gap = _try_final(
                        pool, target, state, cfg, certifier, degraded, progress.objective
                    )
                    progress = replace(progress, certified_gap=gap)
                    if gap is not None and gap <= cfg.gap_tolerance:
                        stopped_by = "gap"
            if residuals and stopped_by != "gap":
                stopped_by = "residuals"
            span.set_attribute("vpp.primal_residual", progress.primal_residual)
            span.set_attribute("vpp.dual_residual", progress.dual_residual)
            span.set_attribute("vpp.rho", progress.rho)
        state.history.append(progress.as_dict())
        if on_progress is not None:
            on_progress(progress)
        if checkpoint is not None:
            checkpoint(state)
        if stopped_by in ("gap", "residuals"):
            break
    return Outcome(
        state,
        stopped_by in ("gap", "residuals"),
        stopped_by,
        degraded,
        certifier.best,
        certifier.best_iteration,
        schedules,
    )


def _try_final(
    pool: SitePool,
    target: Target,
    state: AdmmState,
    cfg: AdmmSettings,
    certifier: Certifier,
    degraded: Degraded,
    objective: float,
) -> tuple[list[SiteSchedule] | None, float | None]:
    """The final step at this state and its certified gap; ``(None, None)`` when the limit
    cannot be split among the sites yet (the iterations go on: a later state may split)."""
    try:
        schedules, slow = feasibility_step(pool, target, state, cfg)
    except InfeasibleError as err:
        logger.info("iteration %d: no final schedule yet (%s)", state.iteration, err.message)
        return None, None
    _note(degraded, slow, f"final step at iteration {state.iteration}")
    cost = sum(s.cost for s in schedules) + target.cost(
        np.sum([s.site_power for s in schedules], axis=0)
    )
    assert certifier.best is not None  # close() held
    certifier.shift = cost - objective
    return schedules, certified_gap(cost, certifier.best)


def _note(degraded: Degraded, new: Degraded, where: str) -> None:
    """Keep each site's first reason, saying where it happened."""
    for site, reason in new.items():
        degraded.setdefault(site, f"{reason} ({where})")


def _iterate(
    pool: SitePool,
    target: Target,
    cfg: AdmmSettings,
    state: AdmmState,
    degraded: Degraded,
    started: float,
) -> tuple[AdmmState, Progress]:
    """One ADMM iteration: x-update on every site, z-update, dual update, rho balancing."""
    n, steps = state.x.shape
    x_old, xbar_old, z_old = state.x, state.x.mean(axis=0), state.zbar
    x, costs, slow = pool.x_update(state.rho, x_old - xbar_old + z_old - state.u, x_accuracy(state))
    _note(degraded, slow, f"x-update at iteration {state.iteration + 1}")
    xbar = x.mean(axis=0)
    xhat = cfg.alpha * xbar + (1 - cfg.alpha) * z_old
    zbar = z_update(target, xhat + state.u, n, state.rho)
    u = state.u + xhat - zbar
    r = math.sqrt(n) * float(np.linalg.norm(xbar - zbar))
    s = state.rho * float(np.linalg.norm((x - x_old) - (xbar - xbar_old) + (zbar - z_old)))
    root = math.sqrt(n * steps) * cfg.eps_abs
    eps_pri = root + cfg.eps_rel * max(
        float(np.linalg.norm(x)), float(np.linalg.norm(x - xbar + zbar))
    )
    eps_dual = root + cfg.eps_rel * state.rho * math.sqrt(n) * float(np.linalg.norm(u))
    total = x.sum(axis=0)
    progress = Progress(
        state.iteration + 1,
        r,
        s,
        eps_pri,
        eps_dual,
        state.rho,
        float(costs.sum()) + target.cost(total),
        target.violation(total),
        time.monotonic() - started,
    )
    rho = state.rho
    if r > cfg.mu * s:
        rho, u = rho * cfg.tau, u / cfg.tau
    elif s > cfg.mu * r:
        rho, u = rho / cfg.tau, u * cfg.tau
    logger.info(
        "admm %d: r=%.3g (<%.3g) s=%.3g (<%.3g) rho=%.3g objective=%.6g",
        progress.iteration,
        r,
        eps_pri,
        s,
        eps_dual,
        progress.rho,
        progress.objective,
    )
    return AdmmState(state.iteration + 1, rho, x, zbar, u, list(state.history)), progress


def feasibility_step(
    pool: SitePool, target: Target, state: AdmmState, settings: AdmmSettings | None = None
) -> tuple[list[SiteSchedule], Degraded]:
    """Final schedules that keep the hard bounds (congestion limit, commitments) exactly
    (see the module docstring).

    Without hard bounds (or, for a market target, when it already keeps them) each site
    re-solves around its ADMM power (its own constraints enforced exactly, e.g. no
    simultaneous charge and discharge). A site the pool could not reach keeps its fallback
    schedule, whose power the others make room for.
    """
    cfg = settings or AdmmSettings()
    x, n = state.x, state.x.shape[0]
    if not target.bounded:
        return _reproduce(pool, x)
    share = x - x.mean(axis=0) + state.zbar  # sums to n * zbar, within the limit
    total = share.sum(axis=0)
    upper = share + np.where(np.isfinite(target.upper), (target.upper - total) / n, np.inf)
    lower = share - np.where(np.isfinite(target.lower), (total - target.lower) / n, np.inf)
    degraded: Degraded = {}
    for round_ in range(cfg.feasibility_rounds):
        if target.kind == "market":
            # the market's cost lives at every step: a site free to move where no bound is
            # would drift from the traded volume, so each site stays within a band around
            # its ADMM power, intersected with its share of the bounds
            schedules, slow = _near_within(pool, x, lower, upper)
        else:
            schedules, slow = pool.solve_within(lower, upper)
        degraded = slow | degraded
        failed = [i for i, sch in enumerate(schedules) if sch is None]
        fixed = {i for i, sid in enumerate(pool.site_ids) if sid in slow}
        if not failed:
            final = [sch for sch in schedules if sch is not None]
            power = np.sum([sch.site_power for sch in final], axis=0)
            if target.violation(power) <= 1e-6 * n:
                return final, degraded
        logger.info(
            "feasibility round %d: %d sites cannot keep their share, %d unreachable",
            round_ + 1,
            len(failed),
            len(fixed),
        )
        # a site that cannot keep its share keeps the feasible schedule nearest its ADMM
        # power (an inexact x-update's power may itself miss the site's limits slightly)
        nearest, slow = _reproduce(pool, x) if failed else ([], {})
        degraded = slow | degraded
        pinned = {i: nearest[i].site_power for i in failed}
        for i in fixed:
            sch = schedules[i]
            if sch is not None:
                pinned[i] = sch.site_power
        lower, upper = _reallocate(schedules, pinned, lower, upper, target)
    raise InfeasibleError(
        "the congestion limit and commitments could not be split among the sites from the "
        "ADMM solution; run the portfolio centralised (--centralised) for the exact answer",
        constraint="congestion-limit" if target.kind == "congestion" else "commitment-limit",
    )


def _near_within(
    pool: SitePool, x: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> tuple[list[SiteSchedule | None], Degraded]:
    """Each site within ``[lower_i, upper_i]`` and as close to its ADMM power as it can keep
    (the band widens per site, as in :func:`_reproduce`); where the band misses the share,
    the share's bounds hold alone. Sums stay within the shares' bounds whatever the band."""
    schedules: list[SiteSchedule | None] = [None] * x.shape[0]
    width = np.zeros(x.shape)
    slow: Degraded = {}
    for band in (1e-3, 0.05, 0.25, 1.0, 5.0, np.inf):
        missing = [i for i, sch in enumerate(schedules) if sch is None]
        if not missing:
            break
        width[missing] = band
        lo, hi = np.maximum(lower, x - width - 1e-6), np.minimum(upper, x + width + 1e-6)
        apart = lo > hi
        lo[apart], hi[apart] = lower[apart], upper[apart]
        tries, late = pool.solve_within(lo, hi)
        slow = late | slow
        schedules = [sch if sch is not None else tries[i] for i, sch in enumerate(schedules)]
    return schedules, slow


def _reproduce(pool: SitePool, x: np.ndarray) -> tuple[list[SiteSchedule], Degraded]:
    """Each site re-solves within a band around its ADMM power, exactly feasible for itself.

    The band starts at solver tolerance and widens only for the sites that cannot keep it:
    the x-update relaxes no-simultaneous-charge-discharge, so where ADMM's power wastes
    energy (charging and discharging at once, when consuming pays) the site must move away
    from it; it moves as little as the band allows.
    """
    schedules: list[SiteSchedule | None] = [None] * x.shape[0]
    slow: Degraded = {}
    for band in (1e-6, 1e-3, 0.05, 0.25, 1.0, 5.0, np.inf):
        missing = [i for i, sch in enumerate(schedules) if sch is None]
        if not missing:
            break
        width = np.zeros(x.shape)
        width[missing] = band  # sites already done re-solve in place (zero width is cheap)
        tries, late = pool.solve_within(x - width - 1e-6, x + width + 1e-6)
        slow = late | slow
        schedules = [sch if sch is not None else tries[i] for i, sch in enumerate(schedules)]
    if any(sch is None for sch in schedules):
        raise VppError("sites could not reproduce their ADMM schedules")
    return [sch for sch in schedules if sch is not None], slow


def _reallocate(
    schedules: list[SiteSchedule | None],
    pinned: dict[int, np.ndarray],
    lower: np.ndarray,
    upper: np.ndarray,
    target: Target,
) -> tuple[np.ndarray, np.ndarray]:
    """Pinned sites get exactly their power; the others give up the excess, first from the
    share they left unused."""
    lower, upper = lower.copy(), upper.copy()
    for i, power in pinned.items():
        lower[i], upper[i] = power - 1e-7, power + 1e-7
    ok = [i for i in range(len(schedules)) if i not in pinned and schedules[i] is not None]
    if not ok:
        return lower, upper
    power = np.array([schedules[i].site_power for i in ok])  # type: ignore[union-attr]
    for bound, limit, sign in ((upper, target.upper, 1.0), (lower, target.lower, -1.0)):
        finite = np.isfinite(limit)  # steps without a bound need no reallocation
        if not finite.any():
            continue
        with np.errstate(invalid="ignore"):  # inf - inf at the free steps, masked out
            excess = np.where(finite, np.maximum(sign * (bound.sum(axis=0) - limit), 0.0), 0.0)
            room = np.where(finite, np.maximum(sign * (bound[ok] - power), 0.0), 0.0)
        available = room.sum(axis=0)
        cut = room * np.minimum(
            np.divide(excess, available, out=np.zeros_like(excess), where=available > 0), 1.0
        )
        short = np.maximum(excess - cut.sum(axis=0), 0.0)  # beyond the slack: all ok sites move
        bound[ok] -= sign * (cut + short / len(ok))
    return lower, upper


def solve_portfolio_admm(
    request: PortfolioRequest,
    pool: SitePool,
    target: Target,
    price_scale: float,
    settings: AdmmSettings | None = None,
    *,
    state: AdmmState | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    checkpoint: Callable[[AdmmState], None] | None = None,
) -> PortfolioResult:
    """ADMM, then the feasibility step and the certified gap: the result every entry point
    returns."""
    cfg = settings or AdmmSettings()
    horizon: Horizon = request.horizon
    ids = [s.id for s in request.sites]
    if target.kind == "none" and not target.bounded:
        return _independent(pool, target, horizon, ids, cfg)
    if target.bounded:
        check_congestion(horizon, pool.power_ranges(), target)
    outcome = run_admm(
        pool,
        target,
        price_scale,
        cfg,
        state=state,
        on_progress=on_progress,
        checkpoint=checkpoint,
    )
    state, degraded = outcome.state, dict(outcome.degraded)
    schedules = outcome.schedules
    if schedules is None:
        try:
            schedules, slow = feasibility_step(pool, target, state, cfg)
        except InfeasibleError as err:
            return _recover_centralised(request, outcome, cfg, err)
        _note(degraded, slow, "final step")
    bound = outcome.lower_bound
    if outcome.bound_iteration != state.iteration or bound is None:
        bound = Certifier(pool, target).bound(state)
        if outcome.lower_bound is not None and (bound is None or bound < outcome.lower_bound):
            bound = outcome.lower_bound
    last = state.history[-1] if state.history else {}
    result = PortfolioResult(
        horizon,
        ids,
        schedules,
        target,
        iterations=state.iteration,
        converged=outcome.converged,
        primal_residual=float(last.get("primal_residual") or 0.0),
        dual_residual=float(last.get("dual_residual") or 0.0),
        degraded_sites=sorted(degraded),
        degraded_reasons=dict(sorted(degraded.items())),
    )
    result.extra["method"] = "admm"
    result.extra["stopped-by"] = outcome.stopped_by
    result.extra["gap-tolerance"] = cfg.gap_tolerance
    admm_objective = float(last.get("objective") or math.nan)
    result.extra["admm-objective"] = round(admm_objective, 9)
    result.extra["feasibility-cost"] = round(result.cost - admm_objective, 9)
    result.certify(bound)
    result.admm_state = state
    return result


def _recover_centralised(
    request: PortfolioRequest, outcome: Outcome, cfg: AdmmSettings, err: InfeasibleError
) -> PortfolioResult:
    """The ADMM's final step could not split the hard limit among the sites (a combination
    of process starts, say, that no share-by-share split finds): the exact centralised
    optimum instead, the recovery stated in ``recovered-by`` and ``recovery-reason``. A
    portfolio that is infeasible as a whole still fails, with the centralised model's
    error."""
    logger.warning("ADMM final step failed (%s); solving centralised", err.message)
    result = CentralisedPortfolio(request).solve(cfg.time_limit)
    result.iterations = outcome.state.iteration
    result.converged = outcome.converged
    result.extra |= {
        "recovered-by": "centralised",
        "recovery-reason": err.message,
        "stopped-by": outcome.stopped_by,
        "gap-tolerance": cfg.gap_tolerance,
    }
    return result


def _independent(
    pool: SitePool, target: Target, horizon: Horizon, ids: list[str], cfg: AdmmSettings
) -> PortfolioResult:
    """No target and no hard bound: every site alone, in parallel; the bound is the sum of
    the sites' own bounds."""
    x, _ = pool.solve_alone()
    state = AdmmState(0, 0.0, x, x.mean(axis=0), np.zeros(horizon.steps))
    schedules, degraded = feasibility_step(pool, target, state, cfg)
    result = PortfolioResult(
        horizon,
        ids,
        schedules,
        target,
        degraded_sites=sorted(degraded),
        degraded_reasons=dict(sorted(degraded.items())),
        extra={"method": "independent", "stopped-by": "independent"},
    )
    result.certify(Certifier(pool, target).bound(state))
    return result


def to_jsonable(obj: Any) -> Any:
    """Progress history and settings as plain JSON types."""
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.floating | np.integer):
        return obj.item()
    return obj
