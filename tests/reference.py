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

from dataclasses import dataclass, field

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
class Site:
    dt: float  # hours per step
    consumption_price: np.ndarray  # EUR/MWh per step
    production_price: np.ndarray | None = None  # defaults to the consumption price
    consumption_capacity: float | np.ndarray = np.inf  # kW
    production_capacity: float | np.ndarray = np.inf
    inflexible: float | np.ndarray = 0.0  # kW
    devices: list[Storage | Generation | FixedLoad] = field(default_factory=list)

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
    exclusive = bool(exclusive)
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    n, dt = site.steps, site.dt
    b = _Builder()
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
            if exclusive and (cmax > 0).any() and (dmax > 0).any():
                z = b.var(n, 0.0, 1.0, integer=True)
                for t in range(n):
                    b.row([ch[t], z[t]], [1.0, -cmax[t]], -np.inf, 0.0)
                    b.row([dis[t], z[t]], [1.0, dmax[t]], -np.inf, dmax[t])
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
    if exclusive:
        w = b.var(n, 0.0, 1.0, integer=True)
        m = bound + 1.0
        for t in range(n):
            b.row([imp[t], w[t]], [1.0, -m[t]], -np.inf, 0.0)
            b.row([exp[t], w[t]], [1.0, m[t]], -np.inf, m[t])
    status, x, objective = b.solve()
    if status == "optimal" and relax_first:
        # the relaxation's optimum is the MILP's when it does nothing simultaneous
        both = [np.minimum(x[p], x[q]) for p, q in pairs] + [np.minimum(x[imp], x[exp])]
        if max(float(v.max(initial=0.0)) for v in both) > 1e-7:
            return solve_site(site, exclusive=True)
    if status != "optimal":
        return Result(np.nan, {}, {}, np.full(n, np.nan), status)
    power = {}
    for name, terms in power_terms.items():
        p = constant.get(name, np.zeros(n)).copy()
        for coef, c in terms:
            p += coef * x[c]
        power[name] = p
    cost = objective
    for name in own:  # constants settled at their own prices do not enter the objective
        if name in constant:
            dev = next(d for d in site.devices if d.name == name)
            cost += settle(
                constant[name],
                dev.consumption_price
                if dev.consumption_price is not None
                else dev.production_price,
                dev.production_price if dev.production_price is not None else dev.consumption_price,
                dt,
            )
    return Result(cost, power, {k: x[v] for k, v in soc_cols.items()}, x[site_p], status)


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
