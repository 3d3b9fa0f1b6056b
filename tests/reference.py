"""An independent reference optimiser for small sites, written from the equations.

Nothing here imports vpp: the linear program is built directly with ``highspy`` from plain
numpy inputs, so that its optimum can be compared with what ``vpp.site`` returns.

Units: power kW, energy kWh, prices EUR/MWh (as in a request), ``dt`` in hours.

Model (``t`` a step, ``s`` an instant, sign convention: consumption positive):

* storage ``d``: ``0 <= ch[d,t] <= charge_max``, ``0 <= dis[d,t] <= discharge_max``,
  ``soc[d,t+1] = keep[t]*soc[d,t] + dt*(eta_c[t]*ch - dis/eta_d[t]) - dt*usage[t]``,
  ``lower[s] <= soc[d,s] <= upper[s]``, ``soc[d,0] = soc0``, ``p[d,t] = ch - dis`` with
  optional ``net_lower <= p <= net_upper`` (power-fixed). A heat pump is a storage with
  ``eta_c = COP``, ``discharge_max = 0`` and ``usage = heat demand``.
* generation ``g``: ``p = -gen``, ``gen = forecast`` or ``0 <= gen <= forecast`` (curtailable).
* fixed loads: a constant power, optionally settled at its own prices.
* shiftable process ``k`` (one block): binaries ``start[j]`` over the admissible starts,
  ``sum_j start[j] = 1``, ``p[t] = sum_j profile[t - j] * start[j]``.
* site: ``P[t] = inflexible[t] + sum_d p[d,t]``, ``-production_capacity <= P <=
  consumption_capacity``; ``imp - exp = P - sum_{own-priced d} p[d,t]``, ``imp, exp >= 0``.
* cost (EUR) ``= dt/1000 * sum_t (cp[t]*imp[t] - pp[t]*exp[t])`` plus, for a device with its
  own prices, ``dt/1000 * sum_t (cp_d[t]*consumption[t] - pp_d[t]*production[t])``.

With ``exclusive=True`` binaries forbid charging and discharging in the same step
(``ch <= charge_max*z``, ``dis <= discharge_max*(1-z)``) and importing and exporting in the
same step. Without them the LP may "waste" energy when prices are negative or when the
production price exceeds the consumption price.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

import highspy
import numpy as np
import scipy.sparse as sp


def _arr(value: float | np.ndarray | list[float] | None, n: int, default: float) -> np.ndarray:
    if value is None:
        return np.full(n, float(default))
    out = np.broadcast_to(np.asarray(value, dtype=float), (n,)).copy()
    return out


@dataclass
class Storage:
    """A storage device (or, with ``discharge_max=0`` and ``eta_c=COP``, a heat buffer)."""

    name: str
    soc0: float
    lower: float | np.ndarray  # kWh, scalar or per instant (T+1)
    upper: float | np.ndarray
    charge_max: float | np.ndarray  # kW, scalar or per step
    discharge_max: float | np.ndarray
    eta_c: float | np.ndarray = 1.0
    eta_d: float | np.ndarray = 1.0
    keep: float | np.ndarray = 1.0
    usage: float | np.ndarray = 0.0  # kW drawn from the store (minus any gain)
    net_lower: np.ndarray | None = None  # power-fixed bounds on ch - dis (nan = free)
    net_upper: np.ndarray | None = None
    consumption_price: np.ndarray | None = None  # own prices, EUR/MWh
    production_price: np.ndarray | None = None


@dataclass
class Generation:
    name: str
    forecast: np.ndarray  # kW >= 0
    curtailable: bool = False
    consumption_price: np.ndarray | None = None
    production_price: np.ndarray | None = None


@dataclass
class FixedLoad:
    """A constant power series (consumption positive), optionally at its own prices."""

    name: str
    power: np.ndarray
    consumption_price: np.ndarray | None = None
    production_price: np.ndarray | None = None


@dataclass
class Process:
    """A shiftable process run as one block: ``profile`` (kW per step of the run) starts at
    one step ``j`` with ``first <= j``, ``j + len(profile) <= stop`` and every step of the
    run available."""

    name: str
    profile: np.ndarray
    first: int
    stop: int  # latest end step (exclusive)
    available: np.ndarray | None = None
    consumption_price: np.ndarray | None = None
    production_price: np.ndarray | None = None


@dataclass
class Group:
    """A shared limit inside a site: ``-production_capacity[t] <= sum_{d in members} p_d[t] +
    fixed[t] <= consumption_capacity[t]``. ``members`` are device names with nested groups
    already expanded; ``fixed`` the summed power of member inflexible loads (kW)."""

    name: str
    members: list[str]
    consumption_capacity: float | np.ndarray = np.inf
    production_capacity: float | np.ndarray = np.inf
    fixed: float | np.ndarray = 0.0


@dataclass
class Site:
    dt: float  # hours per step
    consumption_price: np.ndarray  # EUR/MWh per step
    production_price: np.ndarray | None = None  # defaults to the consumption price
    consumption_capacity: float | np.ndarray = np.inf  # kW
    production_capacity: float | np.ndarray = np.inf
    inflexible: float | np.ndarray = 0.0  # kW
    devices: list[Storage | Generation | FixedLoad | Process] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.consumption_price)


@dataclass
class Result:
    cost: float
    power: dict[str, np.ndarray]
    soc: dict[str, np.ndarray]
    site_power: np.ndarray
    status: str


class _Builder:
    """Columns and rows as python lists of triplets; good enough for a few thousand."""

    def __init__(self) -> None:
        self.lb: list[float] = []
        self.ub: list[float] = []
        self.cost: list[float] = []
        self.integer: list[bool] = []
        self.rows: list[tuple[list[int], list[float], float, float]] = []

    def var(
        self,
        n: int,
        lb: np.ndarray | float,
        ub: np.ndarray | float,
        cost: np.ndarray | float = 0.0,
        integer: bool = False,
    ) -> np.ndarray:
        start = len(self.lb)
        self.lb += list(_arr(lb, n, 0.0))
        self.ub += list(_arr(ub, n, 0.0))
        self.cost += list(_arr(cost, n, 0.0))
        self.integer += [integer] * n
        return np.arange(start, start + n)

    def row(self, cols: list[int], vals: list[float], lo: float, hi: float) -> None:
        self.rows.append((list(cols), [float(v) for v in vals], float(lo), float(hi)))

    def solve(self) -> tuple[str, np.ndarray, float]:
        inf = highspy.kHighsInf
        n = len(self.lb)
        r, c, v = [], [], []
        for i, (cols, vals, _, _) in enumerate(self.rows):
            r += [i] * len(cols)
            c += cols
            v += vals
        a = sp.csc_array((v, (r, c)), shape=(len(self.rows), n))
        a.sum_duplicates()
        lp = highspy.HighsLp()
        lp.num_col_ = n
        lp.num_row_ = len(self.rows)
        lp.col_cost_ = np.array(self.cost)
        lp.col_lower_ = np.clip(np.array(self.lb), -inf, inf)
        lp.col_upper_ = np.clip(np.array(self.ub), -inf, inf)
        lp.row_lower_ = np.clip(np.array([x[2] for x in self.rows]), -inf, inf)
        lp.row_upper_ = np.clip(np.array([x[3] for x in self.rows]), -inf, inf)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = a.indptr.astype(np.int32)
        lp.a_matrix_.index_ = a.indices.astype(np.int32)
        lp.a_matrix_.value_ = a.data.astype(float)
        if any(self.integer):
            lp.integrality_ = [
                highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
                for i in self.integer
            ]
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("mip_rel_gap", 1e-9)
        h.setOptionValue("mip_abs_gap", 1e-9)
        h.passModel(lp)
        h.run()
        status = h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            return h.modelStatusToString(status), np.full(n, np.nan), np.nan
        x = np.array(h.getSolution().col_value)
        return "optimal", x, float(np.dot(self.cost, x))


def solve_site(site: Site, *, exclusive: bool | None = None) -> Result:
    """Minimum-cost schedule of ``site``; ``Result.cost`` is ``nan`` when infeasible.

    ``exclusive``: ``True`` adds the binaries everywhere, ``False`` never; ``None`` (default)
    first solves the LP relaxation and re-solves with all binaries only if that optimum
    charges and discharges (or imports and exports) at once.
    """
    relax_first = exclusive is None
    b = _Builder()
    cols = add_site(b, site, exclusive=bool(exclusive))
    status, x, _objective = b.solve()
    if status == "optimal" and relax_first and cols.simultaneous(x):
        return solve_site(site, exclusive=True)
    if status != "optimal":
        return Result(np.nan, {}, {}, np.full(site.steps, np.nan), status)
    return cols.result(b, x)


@dataclass
class SiteColumns:
    """Where one site's variables sit in a :class:`_Builder` (see :func:`add_site`)."""

    site: Site
    first: int  # the site's columns are first..last-1
    last: int
    site_power: np.ndarray
    imp: np.ndarray
    exp: np.ndarray
    pairs: list[tuple[np.ndarray, np.ndarray]]
    power_terms: dict[str, list[tuple[float, np.ndarray]]]
    constant: dict[str, np.ndarray]
    own: set[str]
    soc: dict[str, np.ndarray]

    def simultaneous(self, x: np.ndarray) -> bool:
        """Whether ``x`` charges and discharges, or imports and exports, at once."""
        return bool(self.simultaneous_at(x))

    def simultaneous_at(self, x: np.ndarray) -> set[tuple[int, int]]:
        """``(k, t)`` where storage ``k`` (``-1``: the grid connection) does both at step
        ``t`` (the keys of :func:`add_site`'s ``only``)."""
        out = set()
        for k, (p, q) in [*enumerate(self.pairs), (-1, (self.imp, self.exp))]:
            out |= {(k, int(t)) for t in np.flatnonzero(np.minimum(x[p], x[q]) > 1e-7)}
        return out

    def result(self, b: _Builder, x: np.ndarray) -> Result:
        """The site's schedule and energy cost (EUR) in the solution ``x``."""
        n, dt = self.site.steps, self.site.dt
        sl = slice(self.first, self.last)
        cost = float(np.dot(b.cost[sl], x[sl]))
        power = {}
        for name, terms in self.power_terms.items():
            p = self.constant.get(name, np.zeros(n)).copy()
            for coef, c in terms:
                p += coef * x[c]
            power[name] = p
        for name in self.own:  # constants settled at their own prices are not in the objective
            if name in self.constant:
                dev = next(d for d in self.site.devices if d.name == name)
                cost += settle(
                    self.constant[name],
                    dev.consumption_price
                    if dev.consumption_price is not None
                    else dev.production_price,
                    dev.production_price
                    if dev.production_price is not None
                    else dev.consumption_price,
                    dt,
                )
        soc = {k: x[v] for k, v in self.soc.items()}
        return Result(cost, power, soc, x[self.site_power], "optimal")


def add_site(
    b: _Builder, site: Site, *, exclusive: bool, only: set[tuple[int, int]] | None = None
) -> SiteColumns:
    """Add one site's columns and rows (model in the module docstring) to ``b``.

    ``exclusive`` adds the exclusivity binaries at every step; ``only`` at the listed
    ``(k, t)``: storage ``k`` (in device order, counting storages only) or ``k = -1`` for
    import/export, at step ``t``.

    The site's energy cost is the builder's cost over the columns it adds (plus the
    settlement of own-priced constants, which :meth:`SiteColumns.result` adds).
    """
    first = len(b.lb)
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    n, dt = site.steps, site.dt
    cp = np.asarray(site.consumption_price, float)
    pp = cp if site.production_price is None else _arr(site.production_price, n, 0.0)
    inflexible = _arr(site.inflexible, n, 0.0)
    # per device: list of (coef, columns) making up its power, and its own-price columns
    power_terms: dict[str, list[tuple[float, np.ndarray]]] = {}
    constant: dict[str, np.ndarray] = {}
    own: set[str] = set()
    soc_cols: dict[str, np.ndarray] = {}
    bound = np.abs(inflexible).copy()  # big-M for import/export exclusivity
    for dev in site.devices:
        has_own = dev.consumption_price is not None or dev.production_price is not None
        dcp = dpp = np.zeros(n)
        if has_own:
            own.add(dev.name)
            dcp = _arr(
                dev.consumption_price
                if dev.consumption_price is not None
                else dev.production_price,
                n,
                0.0,
            )
            dpp = _arr(
                dev.production_price if dev.production_price is not None else dev.consumption_price,
                n,
                0.0,
            )
        k = dt / 1000.0
        if isinstance(dev, Storage):
            cmax, dmax = _arr(dev.charge_max, n, 0.0), _arr(dev.discharge_max, n, 0.0)
            ch = b.var(n, 0.0, cmax, k * dcp)
            dis = b.var(n, 0.0, dmax, -k * dpp)
            lower = _arr(dev.lower, n + 1, 0.0)
            upper = _arr(dev.upper, n + 1, 0.0)
            lower[0] = upper[0] = dev.soc0
            soc = b.var(n + 1, lower, upper)
            eta_c, eta_d = _arr(dev.eta_c, n, 1.0), _arr(dev.eta_d, n, 1.0)
            keep, usage = _arr(dev.keep, n, 1.0), _arr(dev.usage, n, 0.0)
            for t in range(n):
                b.row(
                    [soc[t + 1], soc[t], ch[t], dis[t]],
                    [1.0, -keep[t], -dt * eta_c[t], dt / eta_d[t]],
                    -dt * usage[t],
                    -dt * usage[t],
                )
            steps = _binary_steps(exclusive, only, len(pairs), n)
            if steps and (cmax > 0).any() and (dmax > 0).any():
                z = b.var(len(steps), 0.0, 1.0, integer=True)
                for zt, t in zip(z, steps, strict=True):
                    b.row([ch[t], zt], [1.0, -cmax[t]], -np.inf, 0.0)
                    b.row([dis[t], zt], [1.0, dmax[t]], -np.inf, dmax[t])
            for t in range(n):
                lo = -np.inf if dev.net_lower is None else dev.net_lower[t]
                hi = np.inf if dev.net_upper is None else dev.net_upper[t]
                lo = -np.inf if np.isnan(lo) else lo
                hi = np.inf if np.isnan(hi) else hi
                if np.isfinite(lo) or np.isfinite(hi):
                    b.row([ch[t], dis[t]], [1.0, -1.0], lo, hi)
            power_terms[dev.name] = [(1.0, ch), (-1.0, dis)]
            pairs.append((ch, dis))
            soc_cols[dev.name] = soc
            bound = bound + np.maximum(cmax, dmax)
        elif isinstance(dev, Generation):
            fc = np.asarray(dev.forecast, float)
            gen = b.var(n, 0.0 if dev.curtailable else fc, fc, -k * dpp)
            power_terms[dev.name] = [(-1.0, gen)]
            bound = bound + fc
        elif isinstance(dev, Process):
            p = add_process(b, dev, n, k * dcp)
            power_terms[dev.name] = [(1.0, p)]
            bound = bound + float(np.max(np.abs(dev.profile)))
        else:
            constant[dev.name] = np.asarray(dev.power, float)
            power_terms[dev.name] = []
            bound = bound + np.abs(dev.power)
    own_constant = sum((constant[d] for d in own if d in constant), np.zeros(n))
    fixed = inflexible + sum(constant.values(), np.zeros(n))
    site_p = b.var(
        n, -_arr(site.production_capacity, n, np.inf), _arr(site.consumption_capacity, n, np.inf)
    )
    # |imp - exp| never exceeds the sum of all powers: bound both (the LP would be unbounded
    # where exporting pays more than importing costs)
    imp = b.var(n, 0.0, bound + 1.0, dt / 1000.0 * cp)
    exp = b.var(n, 0.0, bound + 1.0, -dt / 1000.0 * pp)
    for t in range(n):
        cols, vals = [site_p[t]], [1.0]
        for terms in power_terms.values():
            for coef, c in terms:
                cols.append(c[t])
                vals.append(-coef)
        b.row(cols, vals, fixed[t], fixed[t])  # P - sum p_d = inflexible + constants
        cols, vals = [imp[t], exp[t], site_p[t]], [1.0, -1.0, -1.0]
        for name in own:
            for coef, c in power_terms[name]:
                cols.append(c[t])
                vals.append(coef)
        b.row(cols, vals, -own_constant[t], -own_constant[t])
    for g in site.groups:  # -prod <= sum of members' power <= cons, where finite
        cons = _arr(g.consumption_capacity, n, np.inf)
        prod = _arr(g.production_capacity, n, np.inf)
        const = _arr(g.fixed, n, 0.0) + sum(
            (constant[m] for m in g.members if m in constant), np.zeros(n)
        )
        for t in range(n):
            cols = [c[t] for m in g.members for _, c in power_terms[m]]
            vals = [coef for m in g.members for coef, _ in power_terms[m]]
            if np.isfinite(cons[t]) or np.isfinite(prod[t]):
                b.row(cols, vals, -prod[t] - const[t], cons[t] - const[t])
    steps = _binary_steps(exclusive, only, -1, n)
    if steps:
        w = b.var(len(steps), 0.0, 1.0, integer=True)
        m = bound + 1.0
        for wt, t in zip(w, steps, strict=True):
            b.row([imp[t], wt], [1.0, -m[t]], -np.inf, 0.0)
            b.row([exp[t], wt], [1.0, m[t]], -np.inf, m[t])
    return SiteColumns(
        site, first, len(b.lb), site_p, imp, exp, pairs, power_terms, constant, own, soc_cols
    )


def _binary_steps(exclusive: bool, only: set[tuple[int, int]] | None, k: int, n: int) -> list[int]:
    if exclusive:
        return list(range(n))
    return sorted(t for kk, t in only or () if kk == k)


def add_process(b: _Builder, proc: Process, n: int, price: np.ndarray) -> np.ndarray:
    """A shiftable process run as one block (``p[t] = sum_k profile[k] * start[t-k]``, one
    binary per admissible start); its power columns, costed at ``price`` (EUR/kW per step,
    zero unless the process has its own prices)."""
    m = len(proc.profile)
    available = np.ones(n, bool) if proc.available is None else np.asarray(proc.available, bool)
    starts = [j for j in range(proc.first, proc.stop - m + 1) if available[j : j + m].all()]
    if not starts:
        raise ValueError(f"process {proc.name}: no admissible start")
    lo, hi = min(0.0, float(proc.profile.min())), max(0.0, float(proc.profile.max()))
    start = b.var(len(starts), 0.0, 1.0, integer=True)
    b.row(list(start), [1.0] * len(starts), 1.0, 1.0)
    p = b.var(n, lo, hi)
    for t in range(n):
        cols, vals = [p[t]], [1.0]
        for s, j in zip(start, starts, strict=True):
            if 0 <= t - j < m:
                cols.append(s)
                vals.append(-float(proc.profile[t - j]))
        b.row(cols, vals, 0.0, 0.0)
    if np.any(price):
        if lo < 0:  # would need the power split into consumption and production
            raise NotImplementedError("own-priced generating processes")
        b.cost[p[0] : p[-1] + 1] = list(np.asarray(price, float))
    return p


def settle(
    power: np.ndarray,
    consumption_price: np.ndarray | float,
    production_price: np.ndarray | float | None,
    dt: float,
) -> float:
    """EUR for a net power series (kW, consumption positive) at prices in EUR/MWh."""
    power = np.asarray(power, float)
    n = len(power)
    cp = _arr(consumption_price, n, 0.0)
    pp = cp if production_price is None else _arr(production_price, n, 0.0)
    return float(dt / 1000.0 * (cp @ np.maximum(power, 0.0) - pp @ np.maximum(-power, 0.0)))


def simulate_soc(
    power: np.ndarray,
    soc0: float,
    eta_c: float | np.ndarray,
    eta_d: float | np.ndarray,
    keep: float | np.ndarray,
    usage: float | np.ndarray,
    dt: float,
) -> np.ndarray:
    """Re-simulate a store from its net power: charge ``max(p, 0)``, discharge ``max(-p, 0)``.

    ``soc[t+1] = keep*soc[t] + dt*(eta_c*charge - discharge/eta_d) - dt*usage``; T+1 values.
    """
    power = np.asarray(power, float)
    n = len(power)
    eta_c, eta_d = _arr(eta_c, n, 1.0), _arr(eta_d, n, 1.0)
    keep, usage = _arr(keep, n, 1.0), _arr(usage, n, 0.0)
    soc = np.empty(n + 1)
    soc[0] = soc0
    for t in range(n):
        charge, discharge = max(power[t], 0.0), max(-power[t], 0.0)
        soc[t + 1] = (
            keep[t] * soc[t] + dt * (eta_c[t] * charge - discharge / eta_d[t]) - dt * usage[t]
        )
    return soc


# -- result JSON ------------------------------------------------------------------------


def device_arrays(result: dict) -> dict[str, dict[str, np.ndarray]]:
    """``{name: {"power": array, "soc": array (if any), "type": str}}`` from a result JSON."""
    out = {}
    for d in result["devices"]:
        entry = {"power": np.array(d["power"]["values"], float), "type": d["type"]}
        if "soc" in d:
            entry["soc"] = np.array(d["soc"]["values"], float)
        out[d["name"]] = entry
    return out


# -- random feasible storage sites ------------------------------------------------------------


def _q(value: float, unit: str) -> str:
    return f"{float(value)!r} {unit}"


@dataclass
class StorageCase:
    """One random storage device: request fields and the arrays they mean."""

    name: str
    soc0: float
    soc_min: float
    soc_max: float
    charge_max: np.ndarray
    discharge_max: np.ndarray
    eta_c: np.ndarray
    eta_d: np.ndarray
    keep: np.ndarray
    usage: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    targets: dict[int, float]
    net_lower: np.ndarray
    net_upper: np.ndarray
    trajectory: np.ndarray  # a feasible power series the case was built around
    flex_model: dict


@dataclass
class SiteCase:
    request: dict
    site: Site
    storages: list[StorageCase]
    dt: float


def _instant(start: str, k: int, minutes: int) -> str:
    from datetime import datetime, timedelta

    return (datetime.fromisoformat(start) + k * timedelta(minutes=minutes)).isoformat()


def random_storage(
    rng: np.random.Generator,
    name: str,
    steps: int,
    minutes: int,
    start: str,
    *,
    efficiency: str = "split",
    keep: bool = False,
    usage: bool = False,
    targets: int = 0,
    bounds: int = 0,
    availability: bool = False,
    fixed: bool = False,
) -> StorageCase:
    """A storage device with a feasible power trajectory; targets, minima and maxima are
    read off (or around) that trajectory, so the case is feasible by construction."""
    dt = minutes / 60.0
    for _attempt in range(50):
        soc_min = float(rng.choice([0.0, rng.uniform(0, 10)]))
        soc_max = soc_min + float(rng.uniform(5, 60))
        soc0 = float(rng.uniform(soc_min, soc_max))
        cap_c = float(rng.uniform(2, 20))
        cap_d = float(rng.choice([cap_c, rng.uniform(2, 20)]))
        fields: dict = {
            "type": "storage",
            "name": name,
            "soc-at-start": _q(soc0, "kWh"),
            "soc-min": _q(soc_min, "kWh"),
            "soc-max": _q(soc_max, "kWh"),
        }
        if cap_d == cap_c:
            fields["power-capacity"] = _q(cap_c, "kW")
        else:
            fields["consumption-capacity"] = _q(cap_c, "kW")
            fields["production-capacity"] = _q(cap_d, "kW")
        if efficiency == "split":
            ec, ed = float(rng.uniform(0.8, 1.0)), float(rng.uniform(0.8, 1.0))
            fields["charging-efficiency"] = ec
            fields["discharging-efficiency"] = ed
        elif efficiency == "roundtrip":
            rt = float(rng.uniform(0.7, 1.0))
            fields["roundtrip-efficiency"] = rt
            ec = ed = float(np.sqrt(rt))
        elif efficiency == "series":
            ec_s = rng.uniform(0.85, 1.0, steps)
            ed = float(rng.uniform(0.85, 1.0))
            fields["charging-efficiency"] = {"values": [float(v) for v in ec_s], "unit": ""}
            fields["discharging-efficiency"] = ed
        else:
            ec = ed = 1.0
        eta_c = ec_s if efficiency == "series" else np.full(steps, ec)
        eta_d = np.full(steps, ed)
        kp = np.ones(steps)
        if keep:
            kp = np.full(steps, float(rng.uniform(0.98, 1.0)))
            fields["storage-efficiency"] = float(kp[0])
        use = np.zeros(steps)
        if usage:
            raw_use = rng.uniform(0, 0.4 * min(cap_c, cap_d), steps) * (rng.random(steps) < 0.5)
            raw_gain = rng.uniform(0, 0.3 * min(cap_c, cap_d), steps) * (rng.random(steps) < 0.3)
            use = raw_use - raw_gain
            fields["soc-usage"] = [{"values": [float(v) for v in raw_use], "unit": "kW"}]
            fields["soc-gain"] = {"values": [float(v) for v in raw_gain], "unit": "kW"}
        available = np.ones(steps, bool)
        if availability:
            a = int(rng.integers(0, steps // 2))
            b = int(rng.integers(a + 1, steps + 1))
            available[:] = False
            available[a:b] = True
            fields["availability"] = [
                {"start": _instant(start, a, minutes), "end": _instant(start, b, minutes)}
            ]
        cmax = np.where(available, cap_c, 0.0)
        dmax = np.where(available, cap_d, 0.0)
        # a feasible trajectory: random wishes, clipped so the SoC stays in bounds
        traj = np.zeros(steps)
        soc = np.empty(steps + 1)
        soc[0] = soc0
        ok = True
        for t in range(steps):
            lo_s = kp[t] * soc[t] + dt * (-dmax[t] / eta_d[t] - use[t])
            hi_s = kp[t] * soc[t] + dt * (eta_c[t] * cmax[t] - use[t])
            lo, hi = max(lo_s, soc_min), min(hi_s, soc_max)
            if lo > hi:
                ok = False
                break
            nxt = float(np.clip(kp[t] * soc[t] + dt * (rng.uniform(-1, 1) * 10 - use[t]), lo, hi))
            gain = (nxt - kp[t] * soc[t]) / dt + use[t]
            traj[t] = gain / eta_c[t] if gain >= 0 else gain * eta_d[t]
            traj[t] = float(np.clip(traj[t], -dmax[t], cmax[t]))
            charge, discharge = max(traj[t], 0.0), max(-traj[t], 0.0)
            soc[t + 1] = kp[t] * soc[t] + dt * (eta_c[t] * charge - discharge / eta_d[t] - use[t])
            if not soc_min - 1e-9 <= soc[t + 1] <= soc_max + 1e-9:
                ok = False
                break
        if ok:
            break
        usage = availability = False  # simplify and retry
    else:  # pragma: no cover - the last attempts have no usage, always feasible
        raise RuntimeError("no feasible random storage")
    net_lower, net_upper = np.full(steps, np.nan), np.full(steps, np.nan)
    if fixed:
        a = int(rng.integers(0, steps))
        b = int(min(steps, a + rng.integers(1, 5)))
        if rng.random() < 0.5:
            value = float(traj[a])
            fixed_traj = traj.copy()
            fixed_traj[a:b] = value
            fixed_soc = simulate_soc(fixed_traj, soc0, eta_c, eta_d, kp, use, dt)
            if ((fixed_soc >= soc_min - 1e-9) & (fixed_soc <= soc_max + 1e-9)).all():
                traj, soc = fixed_traj, fixed_soc
                fields["power-fixed"] = [
                    {
                        "start": _instant(start, a, minutes),
                        "end": _instant(start, b, minutes),
                        "value": _q(value, "kW"),
                    }
                ]
                net_lower[a:b] = net_upper[a:b] = value
        else:
            lo_v = float(traj[a:b].min() - rng.uniform(0, 2))
            hi_v = float(traj[a:b].max() + rng.uniform(0, 2))
            fields["power-fixed"] = [
                {
                    "start": _instant(start, a, minutes),
                    "duration": f"PT{(b - a) * minutes}M",
                    "min": _q(lo_v, "kW"),
                    "max": _q(hi_v, "kW"),
                }
            ]
            net_lower[a:b], net_upper[a:b] = lo_v, hi_v
    lower = np.full(steps + 1, soc_min)
    upper = np.full(steps + 1, soc_max)
    target_map: dict[int, float] = {}
    if targets:
        chosen = rng.choice(np.arange(1, steps + 1), size=min(targets, steps), replace=False)
        for k in sorted(int(c) for c in chosen):
            target_map[k] = float(np.clip(soc[k], soc_min, soc_max))
        fields["soc-targets"] = [
            {"datetime": _instant(start, k, minutes), "value": _q(v, "kWh")}
            for k, v in target_map.items()
        ]
        for k, v in target_map.items():
            lower[k] = upper[k] = v
    if bounds:
        minima, maxima = [], []
        for _ in range(bounds):
            a = int(rng.integers(1, steps + 1))
            b = int(min(steps, a + rng.integers(0, 4)))
            lo_v = float(max(soc_min, soc[a : b + 1].min() - rng.uniform(0, 3)))
            hi_v = float(min(soc_max, soc[a : b + 1].max() + rng.uniform(0, 3)))
            minima.append(
                {
                    "start": _instant(start, a, minutes),
                    "end": _instant(start, b, minutes),
                    "value": _q(lo_v, "kWh"),
                }
            )
            maxima.append({"datetime": _instant(start, a, minutes), "value": _q(hi_v, "kWh")})
            lower[a : b + 1] = np.maximum(lower[a : b + 1], lo_v)
            upper[a] = min(upper[a], hi_v)
        fields["soc-minima"] = minima
        fields["soc-maxima"] = maxima
    return StorageCase(
        name,
        soc0,
        soc_min,
        soc_max,
        cmax,
        dmax,
        eta_c,
        eta_d,
        kp,
        use,
        lower,
        upper,
        target_map,
        net_lower,
        net_upper,
        traj,
        fields,
    )


def random_site(
    rng: np.random.Generator,
    *,
    steps: int = 96,
    minutes: int = 15,
    start: str = "2026-03-02T00:00:00+01:00",
    n_storage: int = 1,
    capacity: bool = True,
    load: bool = True,
    spread: str = "lower",
    negative_prices: bool = False,
    **storage_options: object,
) -> SiteCase:
    """A feasible random site of ``n_storage`` storages (see :func:`random_storage`) with an
    inflexible load, a site capacity that the built-in trajectories respect, and prices.

    ``spread``: ``"equal"`` (production = consumption price), ``"lower"`` (production price
    below) or ``"higher"`` (above at some steps).
    """
    dt = minutes / 60.0
    storages = [
        random_storage(rng, f"battery-{i}", steps, minutes, start, **storage_options)  # type: ignore[arg-type]
        for i in range(n_storage)
    ]
    house = np.round(rng.uniform(0, 6, steps), 3) if load else np.zeros(steps)
    net = house + sum((s.trajectory for s in storages), np.zeros(steps))
    cp = rng.uniform(10, 200, steps)
    if negative_prices:
        cp -= rng.uniform(0, 120) * (rng.random(steps) < 0.3)
    cp = np.round(cp, 2)
    context: dict = {"consumption-price": {"values": [float(v) for v in cp], "unit": "EUR/MWh"}}
    pp = cp.copy()
    if spread == "lower":
        pp = np.round(cp - rng.uniform(0, 60, steps), 2)
    elif spread == "higher":
        pp = np.round(cp + rng.uniform(-30, 30, steps), 2)
    if spread != "equal":
        context["production-price"] = {"values": [float(v) for v in pp], "unit": "EUR/MWh"}
    cons_cap = prod_cap = np.inf
    if capacity:
        cons_cap = float(max(net.max(), 0.0) + rng.uniform(0, 3))
        prod_cap = float(max(-net.min(), 0.0) + rng.uniform(0, 3))
        if rng.random() < 0.5:
            cons_cap = prod_cap = max(cons_cap, prod_cap)
            context["site-power-capacity"] = _q(cons_cap, "kW")
        else:
            context["site-consumption-capacity"] = _q(cons_cap, "kW")
            context["site-production-capacity"] = _q(prod_cap, "kW")
    if load:
        context["inflexible-devices"] = {
            "house": {"values": [float(v) for v in house], "unit": "kW"}
        }
    request = {
        "start": start,
        "duration": f"PT{steps * minutes}M",
        "resolution": f"PT{minutes}M",
        "flex-model": [s.flex_model for s in storages],
        "flex-context": context,
    }
    site = Site(
        dt,
        cp,
        pp,
        cons_cap,
        prod_cap,
        house,
        [
            Storage(
                s.name,
                s.soc0,
                s.lower,
                s.upper,
                s.charge_max,
                s.discharge_max,
                s.eta_c,
                s.eta_d,
                s.keep,
                s.usage,
                s.net_lower,
                s.net_upper,
            )
            for s in storages
        ],
    )
    return SiteCase(request, site, storages, dt)


# -- portfolios: JSON read by hand, all sites and the target in one model ----------------------
#
# The request format is read here without vpp (README, docs/flex-model.md), for the subset of
# fields the portfolio tests use; an unknown field raises NotImplementedError rather than
# being ignored. Prices stay in EUR/MWh, power in kW, energy in kWh.

_UNITS: dict[str, float] = {
    "kw": 1.0,
    "w": 1e-3,
    "mw": 1e3,
    "kwh": 1.0,
    "wh": 1e-3,
    "mwh": 1e3,
    "eur/mwh": 1.0,
    "eur/kwh": 1e3,
    # a CO2 intensity as a "price" (vpp/co2.py): kg/MWh, on the EUR/MWh scale, so a cost
    # read in EUR is kg
    "kg/mwh": 1.0,
    "g/kwh": 1.0,
    "kg/kwh": 1e3,
    "%": 1e-2,
    "": 1.0,
}


def quantity(value: str | float) -> float:
    """``"10 kWh"`` -> 10.0, ``"95%"`` -> 0.95, ``"0.05 EUR/kWh"`` -> 50.0 (EUR/MWh)."""
    if isinstance(value, int | float):
        return float(value)
    m = re.fullmatch(r"\s*([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)\s*(\S*)\s*", value)
    if m is None or m.group(2).lower() not in _UNITS:
        raise NotImplementedError(f"quantity {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


def iso_hours(text: str) -> float:
    """``"PT24H"``, ``"PT15M"``, ``"PT1H30M"`` in hours."""
    m = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?", text)
    if m is None:
        raise NotImplementedError(f"duration {text!r}")
    h, mi, s = (int(g) if g else 0 for g in m.groups())
    return h + mi / 60 + s / 3600


@dataclass
class Grid:
    """A request's time grid: ``steps`` steps of ``dt`` hours from ``start``."""

    start: datetime
    dt: float
    steps: int

    @classmethod
    def of(cls, request: dict) -> Grid:
        dt = iso_hours(request["resolution"])
        return cls(
            datetime.fromisoformat(request["start"]), dt, round(iso_hours(request["duration"]) / dt)
        )

    def index(self, when: str) -> int:
        """The instant index of an ISO datetime (clipped to ``[0, steps]``)."""
        k = (datetime.fromisoformat(when) - self.start).total_seconds() / 3600 / self.dt
        if abs(k - round(k)) > 1e-9:
            raise ValueError(f"{when} is not on the grid")
        return min(max(round(k), 0), self.steps)

    def span(self, entry: dict) -> tuple[int, int]:
        """Steps ``[a, b)`` of a ``{"start", "end" | "duration"}`` period."""
        a = self.index(entry["start"])
        if "end" in entry:
            return a, self.index(entry["end"])
        k = (datetime.fromisoformat(entry["start"]) - self.start).total_seconds() / 3600
        return a, min(max(round((k + iso_hours(entry["duration"])) / self.dt), 0), self.steps)

    def series(self, raw: object, default: float = np.nan) -> np.ndarray:
        """A constant, ``{"values", "unit"}`` or a list of segments, one value per step."""
        if isinstance(raw, str | int | float):
            return np.full(self.steps, quantity(raw))
        if isinstance(raw, dict):
            values = np.asarray(raw["values"], float) * _UNITS[raw.get("unit", "").lower()]
            if len(values) != self.steps:
                raise ValueError(f"{len(values)} values for {self.steps} steps")
            return values
        out = np.full(self.steps, default)
        for seg in raw:  # type: ignore[attr-defined]
            a, b = self.span(seg)
            out[a:b] = quantity(seg["value"])
        return out

    def summed(self, raw: object) -> np.ndarray:
        """``soc-usage``/``soc-gain``: one series, or a list of series (summed)."""
        if raw is None:
            return np.zeros(self.steps)
        if isinstance(raw, list) and raw and not (isinstance(raw[0], dict) and "start" in raw[0]):
            return sum((self.series(r, 0.0) for r in raw), np.zeros(self.steps))
        return self.series(raw, 0.0)

    def available(self, windows: list[dict] | None) -> np.ndarray:
        out = np.ones(self.steps, bool)
        if windows is not None:
            out[:] = False
            for w in windows:
                a, b = self.span(w)
                out[a:b] = True
        return out

    def soc_bounds(self, dev: dict) -> tuple[np.ndarray, np.ndarray]:
        """Per-instant SoC bounds from soc-min/max, -minima/-maxima and -targets."""
        lower = np.full(self.steps + 1, quantity(dev.get("soc-min", "0 kWh")))
        upper = np.full(self.steps + 1, quantity(dev["soc-max"]))
        for key, which in (("soc-minima", "lo"), ("soc-maxima", "hi"), ("soc-targets", "both")):
            for e in dev.get(key, []):
                a = self.index(e.get("datetime", e.get("start")))
                b = self.index(e.get("end", e.get("datetime", e.get("start"))))
                v = quantity(e["value"])
                if which in ("lo", "both"):
                    lower[a : b + 1] = np.maximum(lower[a : b + 1], v)
                if which in ("hi", "both"):
                    upper[a : b + 1] = np.minimum(upper[a : b + 1], v)
        return lower, upper


_COMMON = "name type availability consumption-price production-price "
_SOC = "soc-at-start soc-min soc-max soc-minima soc-maxima soc-targets storage-efficiency "
_FIELDS = {
    kind: set(fields.split())
    for kind, fields in {
        "storage": _COMMON
        + _SOC
        + "charging-efficiency discharging-efficiency roundtrip-efficiency power-capacity "
        "consumption-capacity production-capacity soc-usage soc-gain",
        "heat": _COMMON + _SOC + "cop heat-demand power-capacity",
        "generation": _COMMON + "production curtailable",
        "inflexible": _COMMON + "power",
        "shiftable": _COMMON + "power duration process-type earliest-start latest-end",
    }.items()
}
_CONTEXT_FIELDS = {
    "consumption-price",
    "production-price",
    "site-power-capacity",
    "site-consumption-capacity",
    "site-production-capacity",
    "inflexible-devices",
    "groups",
}
_DEFAULT_NAMES = {
    "storage": "battery",
    "heat": "heat-pump",
    "generation": "pv",
    "inflexible": "load",
    "shiftable": "process",
}


def _own_prices(raw: dict, grid: Grid) -> dict[str, np.ndarray | None]:
    """A device's own ``consumption-price`` / ``production-price`` (EUR/MWh per step); either
    defaults to the other, both ``None`` when the device is settled at the site's prices.
    Such a device is costed at these prices in :func:`add_site` and left out of the site's
    import/export settlement (docs/flex-model.md)."""
    cp = grid.series(raw["consumption-price"]) if "consumption-price" in raw else None
    pp = grid.series(raw["production-price"]) if "production-price" in raw else None
    return {
        "consumption_price": cp if cp is not None else pp,
        "production_price": pp if pp is not None else cp,
    }


def device_from_json(raw: dict, grid: Grid) -> Storage | Generation | FixedLoad | Process:
    """One flex-model device, read by hand (see docs/flex-model.md)."""
    kind = raw.get("type", "storage")
    unknown = set(raw) - _FIELDS[kind]
    if unknown:
        raise NotImplementedError(f"{kind} fields {sorted(unknown)}")
    name = raw.get("name", _DEFAULT_NAMES[kind])
    n = grid.steps
    prices = _own_prices(raw, grid)
    on = grid.available(raw.get("availability"))
    keep = grid.series(raw.get("storage-efficiency", 1.0))
    if kind == "storage":
        lower, upper = grid.soc_bounds(raw)
        # each of consumption-/production-capacity defaults to power-capacity; given both, the
        # tighter holds (as site-power-capacity with site-consumption-capacity)
        cap = grid.series(raw.get("power-capacity", np.inf))
        cmax = np.minimum(grid.series(raw.get("consumption-capacity", np.inf)), cap)
        dmax = np.minimum(grid.series(raw.get("production-capacity", np.inf)), cap)
        if "roundtrip-efficiency" in raw:
            eta_c = eta_d = np.full(n, np.sqrt(quantity(raw["roundtrip-efficiency"])))
        else:
            eta_c = grid.series(raw.get("charging-efficiency", 1.0))
            eta_d = grid.series(raw.get("discharging-efficiency", 1.0))
        usage = grid.summed(raw.get("soc-usage")) - grid.summed(raw.get("soc-gain"))
        soc0 = quantity(raw["soc-at-start"])
        return Storage(
            name, soc0, lower, upper, cmax * on, dmax * on, eta_c, eta_d, keep, usage, **prices
        )
    if kind == "heat":
        lower, upper = grid.soc_bounds(raw)
        cap = grid.series(raw["power-capacity"]) * on
        demand = grid.series(raw.get("heat-demand", "0 kW"), 0.0)
        cop = grid.series(raw["cop"])
        soc0 = quantity(raw["soc-at-start"])
        return Storage(name, soc0, lower, upper, cap, np.zeros(n), cop, 1.0, keep, demand, **prices)
    if kind == "generation":
        forecast = grid.series(raw["production"]) * on
        return Generation(name, forecast, bool(raw.get("curtailable")), **prices)
    if kind == "inflexible":
        return FixedLoad(name, grid.series(raw["power"]) * on, **prices)
    if raw.get("process-type", "SHIFTABLE") != "SHIFTABLE":
        raise NotImplementedError("only SHIFTABLE processes")
    power = raw["power"]
    if isinstance(power, dict):
        profile = np.asarray(power["values"], float) * _UNITS[power["unit"].lower()]
    else:
        profile = np.full(round(iso_hours(raw["duration"]) / grid.dt), quantity(power))
    first = grid.index(raw["earliest-start"]) if "earliest-start" in raw else 0
    stop = grid.index(raw["latest-end"]) if "latest-end" in raw else n
    return Process(name, profile, first, stop, on, **prices)


def site_from_json(grid: Grid, flex_model: dict | list[dict], context: dict) -> Site:
    """A reference :class:`Site` from a flex-model and a (merged) flex-context."""
    unknown = set(context) - _CONTEXT_FIELDS
    if unknown:
        raise NotImplementedError(f"flex-context fields {sorted(unknown)}")
    cp = grid.series(context["consumption-price"])
    pp = grid.series(context["production-price"]) if "production-price" in context else cp
    cap = grid.series(context.get("site-power-capacity", np.inf))
    cons = np.minimum(grid.series(context.get("site-consumption-capacity", np.inf)), cap)
    prod = np.minimum(grid.series(context.get("site-production-capacity", np.inf)), cap)
    load = sum(
        (grid.series(s, 0.0) for s in context.get("inflexible-devices", {}).values()),
        np.zeros(grid.steps),
    )
    devices = [flex_model] if isinstance(flex_model, dict) else flex_model
    site = Site(grid.dt, cp, pp, cons, prod, load, [device_from_json(d, grid) for d in devices])
    site.groups = groups_from_json(grid, context)
    return site


def groups_from_json(grid: Grid, context: dict) -> list[Group]:
    """The flex-context's ``groups``, nested groups expanded by hand; each capacity defaults
    to ``power-capacity`` (the tighter holds when both are given)."""
    raw = {g["name"]: g for g in context.get("groups", [])}
    inflexible = context.get("inflexible-devices", {})

    def expand(name: str) -> list[str]:
        if name not in raw:
            return [name]
        return [d for entry in raw[name]["devices"] for d in expand(entry)]

    out = []
    for name, g in raw.items():
        cap = grid.series(g.get("power-capacity", np.inf), np.inf)
        members = expand(name)
        fixed = [grid.series(inflexible[m], 0.0) for m in members if m in inflexible]
        out.append(
            Group(
                name,
                [m for m in members if m not in inflexible],
                np.minimum(grid.series(g.get("consumption-capacity", np.inf), np.inf), cap),
                np.minimum(grid.series(g.get("production-capacity", np.inf), np.inf), cap),
                sum(fixed, np.zeros(grid.steps)),
            )
        )
    return out


def portfolio_sites(request: dict) -> dict[str, Site]:
    """Every site of a portfolio request by id; a site's flex-context fields replace the
    portfolio's (field by field)."""
    grid = Grid.of(request)
    base = request.get("flex-context", {})
    return {
        s["id"]: site_from_json(grid, s["flex-model"], {**base, **s.get("flex-context", {})})
        for s in request["sites"]
    }


@dataclass
class PortfolioOptimum:
    cost: float  # sites' energy cost + the market target's deviation cost (EUR); nan: infeasible
    sites: dict[str, Result]
    total: np.ndarray  # summed site power (kW)
    status: str


def portfolio_reference(request: dict, *, exclusive: bool | None = None) -> PortfolioOptimum:
    """All sites and the target of a portfolio request in one HiGHS model.

    Coupling on the summed site power ``S[t] = sum_i P_i[t]``:

    * congestion: ``-max_production[t] <= S[t] <= max_consumption[t]``;
    * market: ``S[t] - volume[t] = over[t] - under[t]``, ``over, under >= 0``, costing
      ``deviation_price[t] * dt / 1000 * (over[t] + under[t])``.
    * every commitment (``request["commitments"]``, with any target):
      ``-max_production[t] <= S[t] <= max_consumption[t]`` where its series give a value.

    ``exclusive``: ``True`` adds every exclusivity binary, ``False`` none; ``None`` (default)
    adds them where the optimum charges and discharges (or imports and exports) at once and
    re-solves until it does neither anywhere. That optimum of a relaxation is feasible for
    the full model, hence its optimum (binaries everywhere make MILPs that HiGHS may take
    minutes to close).
    """
    sites = portfolio_sites(request)
    only: dict[str, set[tuple[int, int]]] = {sid: set() for sid in sites}
    for _round in range(100):
        result, x, cols = _portfolio_model(request, sites, bool(exclusive), only)
        if result.status != "optimal" or exclusive is not None:
            return result
        more = {sid: c.simultaneous_at(x) - only[sid] for sid, c in cols.items()}
        if not any(more.values()):
            return result
        for sid, keys in more.items():
            only[sid] |= keys
    raise RuntimeError("exclusivity did not settle")


def _portfolio_model(
    request: dict, sites: dict[str, Site], exclusive: bool, only: dict[str, set[tuple[int, int]]]
) -> tuple[PortfolioOptimum, np.ndarray, dict[str, SiteColumns]]:
    grid = Grid.of(request)
    n, dt = grid.steps, grid.dt
    b = _Builder()
    cols = {
        sid: add_site(b, site, exclusive=exclusive, only=only[sid]) for sid, site in sites.items()
    }
    target = request.get("target")
    over = under = np.array([], int)
    if target is not None:
        if target["type"] == "congestion":
            upper = grid.series(target.get("max-consumption", np.inf), np.inf)
            lower = -grid.series(target.get("max-production", np.inf), np.inf)
            for t in range(n):
                b.row(
                    [c.site_power[t] for c in cols.values()], [1.0] * len(cols), lower[t], upper[t]
                )
        elif target["type"] == "market":
            volume = grid.series(target["volume"])
            price = grid.series(target["deviation-price"]) * dt / 1000.0
            over, under = b.var(n, 0.0, np.inf, price), b.var(n, 0.0, np.inf, price)
            for t in range(n):
                b.row(
                    [*(c.site_power[t] for c in cols.values()), over[t], under[t]],
                    [1.0] * len(cols) + [-1.0, 1.0],
                    volume[t],
                    volume[t],
                )
        else:
            raise NotImplementedError(f"target {target['type']}")
    for commitment in request.get("commitments", []):  # hard limits on S, with any target
        upper = grid.series(commitment.get("max-consumption", np.inf), np.inf)
        lower = -grid.series(commitment.get("max-production", np.inf), np.inf)
        for t in range(n):
            if np.isfinite(lower[t]) or np.isfinite(upper[t]):
                b.row(
                    [c.site_power[t] for c in cols.values()], [1.0] * len(cols), lower[t], upper[t]
                )
    status, x, _objective = b.solve()
    if status != "optimal":
        return PortfolioOptimum(np.nan, {}, np.full(n, np.nan), status), x, cols
    results = {sid: c.result(b, x) for sid, c in cols.items()}
    total = np.sum([r.site_power for r in results.values()], axis=0)
    cost = sum(r.cost for r in results.values())
    deviation = np.concatenate([over, under])
    cost += float(np.dot(np.asarray(b.cost)[deviation], x[deviation]))
    return PortfolioOptimum(cost, results, total, status), x, cols


def solve_portfolio_reference(request: dict) -> float:
    """The optimal total cost (EUR) of a portfolio request; ``nan`` when infeasible."""
    return portfolio_reference(request).cost


# -- checking a returned schedule against a site's own constraints -----------------------------


def site_violations(site: Site, result: dict, tol: float = 1e-6) -> list[str]:
    """What in a site's result JSON (``devices``, ``site``) breaks the site's own constraints:
    device power limits, SoC re-simulated from power within its bounds (and equal to the
    returned SoC), processes run as one block inside their window, the site balance and
    the connection capacity. Empty when the schedule is feasible."""
    out: list[str] = []
    dt, n = site.dt, site.steps
    dev = device_arrays(result)
    net = np.array(result["site"]["power"]["values"], float)
    total = _arr(site.inflexible, n, 0.0).copy()
    for d in site.devices:
        if d.name not in dev:
            out.append(f"{d.name}: missing")
            continue
        p = dev[d.name]["power"]
        total += p
        if isinstance(d, Storage):
            cmax, dmax = _arr(d.charge_max, n, 0.0), _arr(d.discharge_max, n, 0.0)
            if (p > cmax + tol).any() or (p < -dmax - tol).any():
                out.append(f"{d.name}: power outside [-discharge_max, charge_max]")
            soc = simulate_soc(p, d.soc0, d.eta_c, d.eta_d, d.keep, d.usage, dt)
            lo, hi = _arr(d.lower, n + 1, 0.0), _arr(d.upper, n + 1, 0.0)
            if (soc < lo - 1e-5).any() or (soc > hi + 1e-5).any():
                t = int(np.argmax(np.maximum(lo - soc, soc - hi)))
                out.append(f"{d.name}: re-simulated soc {soc[t]:.6g} outside bounds at {t}")
            if "soc" in dev[d.name] and np.abs(dev[d.name]["soc"] - soc).max() > 1e-5:
                out.append(f"{d.name}: returned soc differs from the re-simulated one")
        elif isinstance(d, Generation):
            lo = -np.asarray(d.forecast, float)
            hi = np.zeros(n) if d.curtailable else lo
            if (p < lo - tol).any() or (p > hi + tol).any():
                out.append(f"{d.name}: generation outside its forecast")
        elif isinstance(d, Process):
            if not process_ok(d, p, tol):
                out.append(f"{d.name}: not its profile run once inside its window")
        elif np.abs(p - np.asarray(d.power, float)).max() > tol:
            out.append(f"{d.name}: fixed power changed")
    if np.abs(net - total).max() > 1e-5:
        out.append("site power is not the sum of device powers and inflexible load")
    cons = _arr(site.consumption_capacity, n, np.inf)
    prod = _arr(site.production_capacity, n, np.inf)
    if (net > cons + tol).any() or (net < -prod - tol).any():
        out.append("site power outside the connection capacity")
    for g in site.groups:
        fixed = _arr(g.fixed, n, 0.0)
        summed = fixed + sum((dev[m]["power"] for m in g.members if m in dev), np.zeros(n))
        if (summed > _arr(g.consumption_capacity, n, np.inf) + tol).any() or (
            summed < -_arr(g.production_capacity, n, np.inf) - tol
        ).any():
            out.append(f"group {g.name}: summed power outside its capacity")
    return out


def process_ok(proc: Process, power: np.ndarray, tol: float = 1e-6) -> bool:
    """Whether ``power`` is the process's profile run once, contiguously, at an admissible
    start."""
    m, n = len(proc.profile), len(power)
    available = np.ones(n, bool) if proc.available is None else np.asarray(proc.available, bool)
    for j in range(proc.first, proc.stop - m + 1):
        if available[j : j + m].all():
            placed = np.zeros(n)
            placed[j : j + m] = proc.profile
            if np.abs(power - placed).max() <= tol:
                return True
    return False
