"""Property test: ADMM over random portfolios, judged against an independent optimum.

Every optional field of a portfolio request may be present or absent, each switched by its
own hypothesis boolean (so a shrunk failure names the field that breaks it); a drawn seed
fills in the values. Feasibility is built in: every device follows a random trajectory that
respects its own limits, SoC targets, minima and maxima are read off (or placed around) that
trajectory, and site capacities are chosen above the trajectories' net power. A congestion
limit is cut below the sites' unconstrained peak and loosened (checked with the reference)
until the portfolio is feasible.

Each portfolio runs through the ADMM in this process (``LocalPool``) and is judged against
``reference.portfolio_reference``, which reads the JSON by hand and solves all sites and the
target as one HiGHS model (it never uses vpp's model code): the run never raises, the
certified lower bound is never above the optimum, no schedule beats it, the hard limit
holds, every site keeps its own flex-model, an LP portfolio that reports ``converged`` is
within 0.2 % of the optimum, a stop on the gap has that gap, and a portfolio without a
target is solved exactly. Reaching the stopping rule within the cap is not asked of these
tiny portfolios: two sites share little, and ADMM can crawl there for hundreds of
iterations (it then says ``converged: false``); the benchmarks measure the iterations on
real portfolios.

The explicit examples are failures this test found in vpp, kept as regressions: a
lossless-battery market portfolio that stopped "converged" 2.6 % above the optimum (the
x-update held columns at 0 for good; now only for the step that needs it); a two-site EV
congestion portfolio whose certified gap stays above the tolerance (it must then not claim
convergence); and a portfolio of processes and PV under a congestion limit whose final step
raised InfeasibleError (sites that cannot keep their share now keep the feasible schedule
nearest their ADMM power).
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, note, settings
from hypothesis import strategies as st
from reference import (
    Grid,
    portfolio_reference,
    portfolio_sites,
    settle,
    site_violations,
)

from vpp.admm import AdmmSettings, LocalPool, solve_portfolio_admm
from vpp.portfolio import (
    PortfolioResult,
    build_sites,
    parse_portfolio,
    price_scale,
    resolve_target,
)

START = "2026-03-02T00:00:00+01:00"
GAP = 2e-3  # an LP portfolio's converged ADMM cost may exceed the optimum by this (relative)

PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

# one boolean per optional field (``False`` = absent everywhere; shrinking turns them off)
FIELDS = (
    # portfolio and site flex-context
    "production_price",
    "site_flex_context",
    "site_power_capacity",
    "site_consumption_capacity",
    "site_production_capacity",
    "inflexible_devices",
    "max_production",
    # device kinds (none drawn: batteries only)
    "battery",
    "ev",
    "heat",
    "pv",
    "shiftable",
    # device fields
    "curtailable",
    "power_capacity",  # also where both consumption- and production-capacity are given
    "consumption_capacity",
    "production_capacity",
    "soc_min",
    "split_efficiency",
    "roundtrip_efficiency",
    "storage_efficiency",
    "soc_targets",
    "soc_minima",
    "soc_maxima",
    "process_window",
    "own_prices",
)

portfolio_options = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32 - 1),
        "steps": st.sampled_from([8, 12, 16, 24]),
        "sites": st.integers(2, 5),
        "target": st.sampled_from(["congestion", "market", "none"]),
        **{name: st.booleans() for name in FIELDS},
    }
)


# -- random feasible portfolios -------------------------------------------------------------------


def at(k: int) -> str:
    return (datetime.fromisoformat(START) + timedelta(hours=k)).isoformat()


def kw(value: float) -> str:
    return f"{float(value)!r} kW"


def kwh(value: float) -> str:
    return f"{float(value)!r} kWh"


def series(values: np.ndarray, unit: str) -> dict[str, Any]:
    return {"values": [float(v) for v in values], "unit": unit}


class Draw:
    """The options of one example and the seeded generator that fills in the values."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.o = options
        self.rng = np.random.default_rng(options["seed"])
        self.steps: int = options["steps"]

    def has(self, name: str, share: float = 0.75) -> bool:
        """Whether an optional field is present here: never when its option is off, else
        on most devices/sites (so portfolios mix present and absent)."""
        return bool(self.o[name]) and bool(self.rng.random() < share)

    def uniform(self, lo: float, hi: float, size: int | None = None) -> Any:
        out = self.rng.uniform(lo, hi, size)
        return np.round(out, 3) if size else round(float(out), 3)

    def price(self, lo: float, hi: float) -> str | dict[str, Any]:
        """A price in EUR/MWh: a constant or a series, within ``[lo, hi]``."""
        if self.rng.random() < 0.4:
            return f"{self.uniform(lo, hi)} EUR/MWh"
        return series(self.uniform(lo, hi, self.steps), "EUR/MWh")


def trajectory(
    d: Draw,
    soc0: float,
    soc_min: float,
    soc_max: float,
    cmax: np.ndarray,
    dmax: np.ndarray,
    eta_c: np.ndarray,
    eta_d: np.ndarray,
    keep: np.ndarray,
    usage: np.ndarray,
) -> tuple[np.ndarray, np.ndarray] | None:
    """A feasible power series (random wishes clipped to the store's limits) and its SoC,
    or ``None`` when the store cannot stay within its SoC bounds."""
    n = d.steps
    power, soc = np.zeros(n), np.empty(n + 1)
    soc[0] = soc0
    for t in range(n):
        base = keep[t] * soc[t] - usage[t]
        lo = max(base - dmax[t] / eta_d[t], soc_min)
        hi = min(base + eta_c[t] * cmax[t], soc_max)
        if lo > hi + 1e-9:
            return None
        wish = base + d.rng.uniform(-1, 1) * max(cmax[t], dmax[t])
        nxt = float(np.clip(wish, lo, hi))
        gain = nxt - base
        power[t] = gain / eta_c[t] if gain >= 0 else gain * eta_d[t]
        power[t] = float(np.clip(power[t], -dmax[t], cmax[t]))
        charge, discharge = max(power[t], 0.0), max(-power[t], 0.0)
        soc[t + 1] = base + eta_c[t] * charge - discharge / eta_d[t]
        if not soc_min - 1e-9 <= soc[t + 1] <= soc_max + 1e-9:
            return None
    return power, soc


def soc_fields(d: Draw, soc: np.ndarray, soc_min: float, soc_max: float) -> dict[str, Any]:
    """``soc-targets`` / ``soc-minima`` / ``soc-maxima`` that the trajectory's SoC meets."""
    n, out = d.steps, {}
    if d.has("soc_targets"):
        ks = sorted({int(k) for k in d.rng.integers(1, n + 1, size=d.rng.integers(1, 3))})
        out["soc-targets"] = [{"datetime": at(k), "value": kwh(soc[k])} for k in ks]
    if d.has("soc_minima"):
        a = int(d.rng.integers(1, n + 1))
        b = int(min(n, a + d.rng.integers(0, 4)))
        low = max(soc_min, float(soc[a : b + 1].min()) - d.uniform(0, 2))
        out["soc-minima"] = [{"datetime": at(k), "value": kwh(low)} for k in range(a, b + 1)]
    if d.has("soc_maxima"):
        a = int(d.rng.integers(1, n + 1))
        high = min(soc_max, float(soc[a]) + d.uniform(0, 2))
        out["soc-maxima"] = [{"datetime": at(a), "value": kwh(high)}]
    return out


def efficiency_fields(d: Draw) -> tuple[dict[str, Any], float, float]:
    split, roundtrip = d.has("split_efficiency"), d.has("roundtrip_efficiency")
    if split and roundtrip:  # the two are exclusive: one of them per device
        split = bool(d.rng.random() < 0.5)
        roundtrip = not split
    if split:  # one of the two, or both; the other defaults to 1
        ec, ed = d.uniform(0.85, 1.0), d.uniform(0.85, 1.0)
        which = d.rng.choice(["both", "charging", "discharging"])
        fields: dict[str, Any] = {}
        if which == "discharging":
            ec = 1.0
        else:
            fields["charging-efficiency"] = ec if d.rng.random() < 0.5 else f"{ec * 100:.1f}%"
        if which == "charging":
            ed = 1.0
        else:
            fields["discharging-efficiency"] = ed
        return fields, ec, ed
    if roundtrip:
        rt = d.uniform(0.75, 0.98)
        return {"roundtrip-efficiency": f"{rt * 100:.1f}%"}, np.sqrt(rt), np.sqrt(rt)
    return {}, 1.0, 1.0


def own_prices(d: Draw, consumes: bool = True) -> dict[str, Any]:
    """A device's own prices (production at most consumption, so no arbitrage pays)."""
    if not d.has("own_prices", 0.5):
        return {}
    which = d.rng.choice(["consumption", "production", "both"] if consumes else ["production"])
    if which == "both":
        return {"consumption-price": "150 EUR/MWh", "production-price": d.price(10, 150)}
    return {f"{which}-price": d.price(20, 180)}


def storage(d: Draw, name: str, ev: bool) -> tuple[dict[str, Any], np.ndarray]:
    n = d.steps
    for _attempt in range(50):
        soc_max = d.uniform(30, 60) if ev else d.uniform(5, 40)
        soc_min = d.uniform(0, 0.2 * soc_max) if d.has("soc_min") else 0.0
        soc0 = d.uniform(soc_min, soc_max)
        cap = d.uniform(1, soc_max / 2)
        fields: dict[str, Any] = {"name": name, "soc-at-start": kwh(soc0), "soc-max": kwh(soc_max)}
        if soc_min or d.has("soc_min", 0.3):
            fields["soc-min"] = kwh(soc_min)
        cap_c = cap_d = cap
        cons, prod = d.has("consumption_capacity"), d.has("production_capacity")
        if cons:
            cap_c = d.uniform(0.5, 1.5) * cap
            fields["consumption-capacity"] = kw(cap_c)
        if prod:
            cap_d = 0.0 if ev and d.rng.random() < 0.5 else d.uniform(0.5, 1.5) * cap
            fields["production-capacity"] = kw(cap_d)
        if not (cons and prod) or d.has("power_capacity"):
            fields["power-capacity"] = kw(cap)  # given with the others, the tighter holds
            cap_c, cap_d = min(cap_c, cap), min(cap_d, cap)
        eff, ec, ed = efficiency_fields(d)
        fields |= eff
        keep = 1.0
        if d.has("storage_efficiency"):
            keep = d.uniform(0.97, 1.0)
            fields["storage-efficiency"] = keep
        on = np.ones(n, bool)
        usage = np.zeros(n)
        if ev:  # away (unavailable, driving) from ``leave`` to ``back``
            leave = int(d.rng.integers(1, n // 2))
            back = int(d.rng.integers(leave + 1, n))
            on[leave:back] = False
            drive = d.uniform(0.3, 1.5)
            usage[leave:back] = drive
            fields["availability"] = [
                {"start": at(0), "end": at(leave)},
                {"start": at(back), "end": at(n)},
            ]
            fields["soc-usage"] = [{"start": at(leave), "end": at(back), "value": kw(drive)}]
        path = trajectory(
            d,
            soc0,
            soc_min,
            soc_max,
            np.where(on, cap_c, 0.0),
            np.where(on, cap_d, 0.0),
            np.full(n, ec),
            np.full(n, ed),
            np.full(n, keep),
            usage,
        )
        if path is not None:
            power, soc = path
            return fields | soc_fields(d, soc, soc_min, soc_max) | own_prices(d), power
    raise RuntimeError("no feasible random storage")  # pragma: no cover


def heat(d: Draw, name: str) -> tuple[dict[str, Any], np.ndarray]:
    n = d.steps
    for _attempt in range(50):
        soc_max = d.uniform(10, 30)
        soc_min = d.uniform(0, 0.2 * soc_max) if d.has("soc_min") else 0.0
        soc0 = d.uniform(soc_min, soc_max)
        cap, cop = d.uniform(1, 5), d.uniform(2.5, 4.0)
        demand = d.uniform(0.1, 0.7, n) * cop * cap
        fields: dict[str, Any] = {
            "name": name,
            "type": "heat",
            "soc-at-start": kwh(soc0),
            "soc-max": kwh(soc_max),
            "cop": f"{cop}",
            "power-capacity": kw(cap),
            "heat-demand": series(demand, "kW"),
        }
        if soc_min or d.has("soc_min", 0.3):
            fields["soc-min"] = kwh(soc_min)
        keep = 1.0
        if d.has("storage_efficiency"):
            keep = d.uniform(0.97, 1.0)
            fields["storage-efficiency"] = keep
        path = trajectory(
            d,
            soc0,
            soc_min,
            soc_max,
            np.full(n, cap),
            np.zeros(n),
            np.full(n, cop),
            np.ones(n),
            np.full(n, keep),
            demand,
        )
        if path is not None:
            power, soc = path
            return fields | soc_fields(d, soc, soc_min, soc_max) | own_prices(d), power
    raise RuntimeError("no feasible random heat pump")  # pragma: no cover


def pv(d: Draw, name: str) -> tuple[dict[str, Any], np.ndarray]:
    n = d.steps
    shape = np.clip(np.sin(np.pi * (np.arange(n) + 0.5 - n / 6) / (2 * n / 3)), 0, None)
    production = np.round(d.uniform(1, 6) * shape, 3)
    fields: dict[str, Any] = {
        "name": name,
        "type": "generation",
        "production": series(production, "kW"),
    }
    if d.has("curtailable"):
        fields["curtailable"] = bool(d.rng.random() < 0.7)
    return fields | own_prices(d, consumes=False), -production


def process(d: Draw, name: str) -> tuple[dict[str, Any], np.ndarray]:
    n = d.steps
    profile = d.uniform(0.5, 2.5, int(d.rng.integers(1, 4)))
    fields: dict[str, Any] = {
        "name": name,
        "type": "shiftable",
        "power": series(profile, "kW"),
    }
    first, stop = 0, n
    if d.has("process_window"):
        first = int(d.rng.integers(0, n - len(profile)))
        stop = int(d.rng.integers(first + len(profile), n + 1))
        fields["earliest-start"] = at(first)
        fields["latest-end"] = at(stop)
    power = np.zeros(n)
    power[first : first + len(profile)] = profile
    return fields | own_prices(d), power


KINDS = {
    "battery": lambda d, name: storage(d, name, ev=False),
    "ev": lambda d, name: storage(d, name, ev=True),
    "heat": heat,
    "pv": pv,
    "shiftable": process,
}


def site(d: Draw, index: int, consumption_price: np.ndarray) -> dict[str, Any]:
    n = d.steps
    kinds = [k for k in KINDS if d.o[k]] or ["battery"]
    devices, net = [], np.zeros(n)
    for k in range(int(d.rng.integers(1, 4))):
        kind = str(d.rng.choice(kinds))
        fields, power = KINDS[kind](d, f"{kind}-{k}")
        devices.append(fields)
        net += power
    context: dict[str, Any] = {}
    if d.has("inflexible_devices"):
        h = np.arange(n) + 0.5
        house = d.uniform(0.3, 1.5) * (0.5 + 0.8 * np.exp(-((h - 0.75 * n) ** 2) / 8))
        house = np.round(house, 3)
        context["inflexible-devices"] = {"house": series(house, "kW")}
        net += house
    cons_need, prod_need = max(float(net.max()), 0.0), max(float(-net.min()), 0.0)
    if d.has("site_power_capacity"):
        context["site-power-capacity"] = kw(max(cons_need, prod_need) + d.uniform(0.5, 3))
    if d.has("site_consumption_capacity"):
        context["site-consumption-capacity"] = kw(cons_need + d.uniform(0.2, 3))
    if d.has("site_production_capacity"):
        context["site-production-capacity"] = kw(prod_need + d.uniform(0.2, 3))
    if d.has("site_flex_context", 0.5):  # the site's own prices override the portfolio's
        own_cp = consumption_price + d.uniform(0, 30, n)
        context["consumption-price"] = series(own_cp, "EUR/MWh")
        if d.rng.random() < 0.5:
            context["production-price"] = series(own_cp - d.uniform(0, 40, n), "EUR/MWh")
    entry: dict[str, Any] = {"id": f"site-{index}", "flex-model": devices}
    if context:
        entry["flex-context"] = context
    return entry


def random_portfolio(options: dict[str, Any]) -> dict[str, Any]:
    d = Draw(options)
    n = d.steps
    cp = d.uniform(30, 200, n)
    context: dict[str, Any] = {"consumption-price": series(cp, "EUR/MWh")}
    if d.o["production_price"]:  # below the consumption price: no import/export binaries
        if d.rng.random() < 0.4:
            context["production-price"] = f"{round(float(cp.min()) - 10, 3)} EUR/MWh"
        else:
            context["production-price"] = series(cp - d.uniform(5, 60, n), "EUR/MWh")
    request: dict[str, Any] = {
        "start": START,
        "duration": f"PT{n}H",
        "resolution": "PT1H",
        "flex-context": context,
        "sites": [site(d, i, cp) for i in range(options["sites"])],
        "target": None,
        "method": "admm",
    }
    if options["target"] == "congestion":
        return congestion(d, request)
    if options["target"] == "market":
        alone = portfolio_reference(request)
        volume = alone.total.mean() + d.uniform(-2, 2)
        request["target"] = {
            "type": "market",
            "volume": kw(volume)
            if d.rng.random() < 0.5
            else series(volume + d.uniform(-1, 1, n), "kW"),
            "deviation-price": f"{d.uniform(10, 150)} EUR/MWh",
        }
    return request


def congestion(d: Draw, request: dict[str, Any]) -> dict[str, Any]:
    """A ``max-consumption`` below the sites' unconstrained peak (and a ``max-production``
    above their least power), loosened until the reference finds the portfolio feasible."""
    alone = portfolio_reference(request)
    peak, least = float(alone.total.max()), float(alone.total.min())
    cut = d.uniform(0.1, 0.4)
    out = copy.deepcopy(request)
    for _attempt in range(6):
        target: dict[str, Any] = {
            "type": "congestion",
            "congestion-point": "EAN871687110000000001",
            "max-consumption": kw(peak - cut * max(abs(peak), 1.0)),
        }
        if d.o["max_production"]:
            target["max-production"] = kw(max(-least, 0.0) - cut * max(abs(least), 1.0) + 1.0)
        out["target"] = target
        if np.isfinite(portfolio_reference(out).cost):
            return out
        cut /= 2
    out["target"]["max-consumption"] = kw(peak)
    out["target"].pop("max-production", None)
    return out


# -- running and judging --------------------------------------------------------------------------


def run_admm(request: dict[str, Any], max_iterations: int = 300) -> PortfolioResult:
    parsed = parse_portfolio(request)
    target = resolve_target(parsed)
    pool = LocalPool([s.id for s in parsed.sites], build_sites(parsed))
    return solve_portfolio_admm(
        parsed, pool, target, price_scale(parsed), AdmmSettings(max_iterations=max_iterations)
    )


def schedule_cost(request: dict[str, Any], body: dict[str, Any]) -> float:
    """What the returned schedules cost, from the JSON alone: each site's net power minus its
    own-priced devices at the site's prices, those devices at their own, plus a market
    target's deviation."""
    grid = Grid.of(request)
    sites = portfolio_sites(request)
    total, cost = np.zeros(grid.steps), 0.0
    for entry in body["sites"]:
        s = sites[entry["id"]]
        power = np.array(entry["site"]["power"]["values"], float)
        total += power
        devices = {d["name"]: d for d in entry["devices"]}
        settled = power.copy()
        for dev in s.devices:
            if dev.consumption_price is None:
                continue
            p = np.array(devices[dev.name]["power"]["values"], float)
            settled -= p
            cost += settle(p, dev.consumption_price, dev.production_price, grid.dt)
        cost += settle(settled, s.consumption_price, s.production_price, grid.dt)
    target = request.get("target")
    if target and target["type"] == "market":
        volume, price = grid.series(target["volume"]), grid.series(target["deviation-price"])
        cost += float(grid.dt / 1000.0 * price @ np.abs(total - volume))
    return cost


def congestion_excess(request: dict[str, Any], total: np.ndarray) -> float:
    """How far (kW) the summed power goes beyond a congestion target's limits."""
    target = request.get("target")
    if not target or target["type"] != "congestion":
        return 0.0
    grid = Grid.of(request)
    upper = grid.series(target.get("max-consumption", np.inf), np.inf)
    lower = -grid.series(target.get("max-production", np.inf), np.inf)
    return float(max(np.max(total - upper), np.max(lower - total), 0.0))


def failing(seed: int, steps: int, sites: int, target: str, *on: str) -> dict[str, Any]:
    """An example's options: the listed fields on, every other off."""
    return {"seed": seed, "steps": steps, "sites": sites, "target": target} | {
        name: name in on for name in FIELDS
    }


@PROPERTY_SETTINGS
@given(options=portfolio_options)
# found by this test (shrunk), kept so CI replays them: see the module docstring
@example(options=failing(0, 8, 2, "market", "storage_efficiency"))
@example(options=failing(0, 8, 2, "congestion", "ev", "storage_efficiency", "soc_minima"))
@example(
    options=failing(
        679495568,
        16,
        3,
        "congestion",
        "site_consumption_capacity",
        "inflexible_devices",
        "pv",
        "shiftable",
        "curtailable",
        "soc_min",
        "roundtrip_efficiency",
        "soc_targets",
        "soc_maxima",
        "process_window",
        "own_prices",
    )
)
def test_admm_on_random_portfolios(options):
    request = random_portfolio(options)
    note(f"request: {json.dumps(request)}")
    optimum = portfolio_reference(request).cost
    assert np.isfinite(optimum), "the generator made an infeasible portfolio"
    tol = 1e-6 * max(1.0, abs(optimum))
    milp = any(d.get("type") == "shiftable" for s in request["sites"] for d in s["flex-model"])
    # 1. a valid request never raises
    result = run_admm(request)  # any exception fails the example (with its traceback)
    body = result.to_json()
    p = body["portfolio"]
    cost = p["cost"]["value"]
    note(f"optimum {optimum}, cost {cost}, bound {p['lower-bound']}, converged {p['converged']}")
    # 6. every site keeps its own flex-model, and the reported cost is the schedules' cost
    sites = portfolio_sites(request)
    assert [s["id"] for s in body["sites"]] == list(sites)
    for entry in body["sites"]:
        # 1e-5 kW: HiGHS' MIP feasibility tolerance (1e-6) on a start binary times a
        # profile of a few kW (measured: a 2.36 kW process ran 2.359998 then 2e-06 kW)
        assert site_violations(sites[entry["id"]], entry, tol=1e-5) == [], entry["id"]
    assert cost == pytest.approx(schedule_cost(request, body), rel=1e-7, abs=1e-6)
    # 2. the certified lower bound is never above the optimum
    assert p["lower-bound"] is not None
    assert p["lower-bound"]["value"] <= optimum + tol, (p["lower-bound"], optimum)
    # 3. no feasible schedule beats the optimum, and the hard limit holds
    assert cost >= optimum - tol, (cost, optimum)
    total = np.array([s["site"]["power"]["values"] for s in body["sites"]], float).sum(axis=0)
    assert congestion_excess(request, total) <= 1e-6 * len(sites)
    # 4. "converged" is earned: an LP portfolio that claims it is near the optimum, and a
    # stop on the gap is a gap the schedules have (a run that hits the cap says so instead:
    # two-site portfolios can crawl for hundreds of iterations, see the module docstring)
    if p["converged"] and request["target"] is not None and not milp:
        assert (cost - optimum) / max(abs(optimum), 1.0) <= GAP, (cost, optimum)
    if p["stopped-by"] == "gap":
        assert p["certified-gap"] <= p["gap-tolerance"]
        assert (cost - optimum) / max(abs(cost), 1e-6) <= p["gap-tolerance"] + 1e-9
    # 5. no target: every site alone, exactly
    if request["target"] is None:
        assert cost == pytest.approx(optimum, rel=1e-6, abs=1e-6)


# -- the reference's own prices, by hand ----------------------------------------------------------


def test_reference_settles_own_prices_apart():
    """Two hours, site prices 100 then 300 EUR/MWh to buy, 20 to sell; a 3 kW house; 4 kW of
    PV in hour 0 paid its own 150 EUR/MWh (a subsidy), curtailable; a lossless 4 kWh battery
    (4 kW), empty. The PV earns 4 kWh * 150 = 0.60 EUR wherever its power goes (curtailing
    only loses), and the site settles house + battery alone: 3 + c at 100 in hour 0 and
    3 - d at 300 in hour 1. Each kWh moved saves 300 - 100 until the house is covered
    (d = 3; a fourth would be sold at 20 < 100), so c = d = 3: hour 0 imports 6 kWh
    (0.60 EUR), hour 1 nothing, total 0.60 - 0.60 = 0.00 EUR, site power 3 + 3 - 4 = 2 then
    0 kW. (Settled at the site's prices instead, the PV would cover the house in hour 0 and
    the optimum would be c = d = 3 importing 3 + 3 - 4 = 2 kWh: 0.20 EUR.)"""
    request: dict[str, Any] = {
        "start": START,
        "duration": "PT2H",
        "resolution": "PT1H",
        "flex-context": {
            "consumption-price": series(np.array([100.0, 300.0]), "EUR/MWh"),
            "production-price": "20 EUR/MWh",
        },
        "sites": [
            {
                "id": "home",
                "flex-model": [
                    {
                        "name": "battery",
                        "soc-at-start": "0 kWh",
                        "soc-max": "4 kWh",
                        "power-capacity": "4 kW",
                    },
                    {
                        "name": "pv",
                        "type": "generation",
                        "curtailable": True,
                        "production": series(np.array([4.0, 0.0]), "kW"),
                        "production-price": "150 EUR/MWh",
                    },
                ],
                "flex-context": {"inflexible-devices": {"house": "3 kW"}},
            }
        ],
        "target": None,
        "method": "admm",
    }
    ref = portfolio_reference(request)
    assert ref.cost == pytest.approx(0.0, abs=1e-9)
    home = ref.sites["home"]
    np.testing.assert_allclose(home.power["battery"], [3.0, -3.0], atol=1e-7)
    np.testing.assert_allclose(home.power["pv"], [-4.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(home.site_power, [2.0, 0.0], atol=1e-7)
    # vpp agrees, and reports the same cost for its schedule
    body = run_admm(request).to_json()
    assert body["portfolio"]["cost"]["value"] == pytest.approx(0.0, abs=1e-7)
    assert schedule_cost(request, body) == pytest.approx(0.0, abs=1e-7)
