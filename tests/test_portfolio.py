"""Portfolios scheduled by ADMM in this process (no Ray) against an independent reference.

The reference (``reference.portfolio_reference``) reads the portfolio JSON by hand and solves
all sites and the target as one HiGHS model written from the equations; ADMM schedules are
checked against its optimum, and every returned site schedule against the site's own
constraints re-derived from the JSON (SoC re-simulated from power, process placement, site
balance and capacity). Portfolios are small and hourly so the file runs in seconds.

The request builders here are shared with ``test_actors.py``.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from conftest import price_curve
from reference import (
    Grid,
    portfolio_reference,
    portfolio_sites,
    settle,
    site_violations,
    solve_portfolio_reference,
    solve_site,
)

from vpp.admm import AdmmSettings, LocalPool, Progress, solve_portfolio_admm
from vpp.errors import InfeasibleError, RequestValidationError, VppError
from vpp.examples import mixed_portfolio
from vpp.portfolio import (
    CentralisedPortfolio,
    PortfolioResult,
    build_sites,
    parse_portfolio,
    price_scale,
    resolve_target,
)

START = "2026-03-02T00:00:00+01:00"
HOURS = 24
GAP = 1e-3  # ADMM's cost may exceed the optimum by 0.1%


# -- request builders (hourly, deterministic for a seed) ----------------------------------------


def at(hour: float) -> str:
    return (datetime.fromisoformat(START) + timedelta(hours=hour)).isoformat()


def compact(values: Any, unit: str) -> dict[str, Any]:
    return {"values": [round(float(v), 3) for v in values], "unit": unit}


def house_load(rng: np.random.Generator) -> np.ndarray:
    h = np.arange(HOURS) + 0.5
    shape = 0.4 + 0.5 * np.exp(-((h - 7.5) ** 2)) + 1.3 * np.exp(-((h - 19) ** 2) / 3)
    return np.round(rng.uniform(0.6, 1.4) * shape, 3)


def battery(rng: np.random.Generator) -> dict[str, Any]:
    size = float(rng.choice([5.0, 10.0, 13.5]))
    return {
        "name": "battery",
        "soc-at-start": f"{size * rng.uniform(0.2, 0.8):.2f} kWh",
        "soc-min": "0.5 kWh",
        "soc-max": f"{size} kWh",
        "power-capacity": f"{size / 2.5:.1f} kW",
        "roundtrip-efficiency": f"{rng.uniform(85, 93):.1f}%",
    }


def ev(rng: np.random.Generator) -> dict[str, Any]:
    """Away (unavailable) from ``leave`` to ``back``, driving 1 kW meanwhile."""
    leave, back = int(rng.integers(6, 9)), int(rng.integers(16, 20))
    soc0 = round(float(rng.uniform(15, 35)), 1)
    return {
        "name": "ev",
        "soc-at-start": f"{soc0} kWh",
        "soc-min": "5 kWh",
        "soc-max": "60 kWh",
        "consumption-capacity": f"{rng.choice([3.7, 7.4, 11.0])} kW",
        "production-capacity": "0 kW",
        "charging-efficiency": "92%",
        "availability": [{"start": at(0), "end": at(leave)}, {"start": at(back), "end": at(HOURS)}],
        "soc-usage": [{"start": at(leave), "end": at(back), "value": "1 kW"}],
        "soc-targets": [{"datetime": at(HOURS), "value": f"{soc0 + 10:.1f} kWh"}],
    }


def heat_pump(rng: np.random.Generator) -> dict[str, Any]:
    h = np.arange(HOURS)
    demand = rng.uniform(0.6, 1.2) * (2.2 + 1.3 * np.cos(2 * np.pi * (h - 5) / 24))
    return {
        "name": "heat-pump",
        "type": "heat",
        "soc-at-start": "10 kWh",
        "soc-min": "3 kWh",
        "soc-max": "20 kWh",
        "cop": f"{rng.uniform(3.0, 4.0):.2f}",
        "power-capacity": "3 kW",
        "heat-demand": compact(demand, "kW"),
        "soc-targets": [{"datetime": at(HOURS), "value": "10 kWh"}],
    }


def pv(rng: np.random.Generator) -> dict[str, Any]:
    h = np.arange(HOURS) + 0.5
    production = np.clip(rng.uniform(2, 6) * np.sin(np.pi * (h - 7) / 11.5), 0, None)
    return {
        "name": "pv",
        "type": "generation",
        "curtailable": True,
        "production": compact(production, "kW"),
    }


def washing_machine(first: int = 8, stop: int = 23) -> dict[str, Any]:
    return {
        "name": "washing-machine",
        "type": "shiftable",
        "power": {"values": [2.0, 0.5, 1.8], "unit": "kW"},
        "earliest-start": at(first),
        "latest-end": at(stop),
    }


def portfolio(sites: list[list[dict[str, Any]]], seed: int = 0) -> dict[str, Any]:
    """Hourly day; consumption at the price curve + 30 EUR/MWh, production at the curve
    (below it everywhere, negative around 13:00); each site a house load and 17 kW."""
    rng = np.random.default_rng(seed + 1000)
    prices = np.array(price_curve(HOURS))
    return {
        "start": START,
        "duration": f"PT{HOURS}H",
        "resolution": "PT1H",
        "flex-context": {
            "consumption-price": compact(prices + 30.0, "EUR/MWh"),
            "production-price": compact(prices, "EUR/MWh"),
        },
        "sites": [
            {
                "id": f"site-{i}",
                "flex-model": devices,
                "flex-context": {
                    "inflexible-devices": {"house": compact(house_load(rng), "kW")},
                    "site-power-capacity": "17 kW",
                },
            }
            for i, devices in enumerate(sites)
        ],
        "target": None,
        # the ADMM is what these portfolios exercise: auto would solve them centralised
        "method": "admm",
    }


def batteries(n: int = 4, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return portfolio([[battery(rng)] for _ in range(n)], seed)


def mixed(n: int = 6, seed: int = 0, shiftable: bool = False) -> dict[str, Any]:
    """Sites with a mix of battery, EV, heat pump and PV (every kind in the portfolio);
    with ``shiftable`` every other site also has a washing machine."""
    rng = np.random.default_rng(seed)
    sites = []
    for i in range(n):
        devices = [
            make(rng)
            for k, make in enumerate((battery, ev, heat_pump, pv))
            if (i + k) % 2 == 0 or rng.random() < 0.3
        ]
        if shiftable and i % 2 == 0:
            devices.append(washing_machine())
        sites.append(devices)
    return portfolio(sites, seed)


def congestion(request: dict[str, Any], fraction: float) -> dict[str, Any]:
    """A max-consumption limit at ``fraction`` of the unconstrained peak (from the reference)."""
    alone = portfolio_reference({**request, "target": None})
    out = copy.deepcopy(request)
    out["target"] = {
        "type": "congestion",
        "congestion-point": "EAN871687110000000001",
        "max-consumption": f"{fraction * float(alone.total.max()):.2f} kW",
    }
    return out


def market(request: dict[str, Any], volume: str, price: str) -> dict[str, Any]:
    out = copy.deepcopy(request)
    out["target"] = {"type": "market", "volume": volume, "deviation-price": price}
    return out


# -- running and checking -----------------------------------------------------------------------


def admm(
    request: dict[str, Any], max_iterations: int = 300, **kwargs: Any
) -> tuple[PortfolioResult, list[Progress]]:
    """ADMM over a :class:`LocalPool`; the result and every iteration's progress."""
    parsed = parse_portfolio(request)
    target = resolve_target(parsed)
    pool = LocalPool([s.id for s in parsed.sites], build_sites(parsed))
    seen: list[Progress] = []
    result = solve_portfolio_admm(
        parsed,
        pool,
        target,
        price_scale(parsed),
        AdmmSettings(max_iterations=max_iterations),
        on_progress=seen.append,
        **kwargs,
    )
    return result, seen


def limits(request: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The congestion target's ``[lower, upper]`` per step, read from the JSON."""
    grid = Grid.of(request)
    t = request["target"]
    upper = grid.series(t.get("max-consumption", np.inf), np.inf)
    lower = -grid.series(t.get("max-production", np.inf), np.inf)
    return lower, upper


def check_result(request: dict[str, Any], body: dict[str, Any]) -> float:
    """Assert a portfolio result JSON is feasible and its cost is what its schedules cost;
    returns that cost (recomputed here from the site powers)."""
    grid = Grid.of(request)
    sites = portfolio_sites(request)
    assert [s["id"] for s in body["sites"]] == list(sites)
    for entry in body["sites"]:
        assert site_violations(sites[entry["id"]], entry) == [], entry["id"]
    powers = np.array([s["site"]["power"]["values"] for s in body["sites"]], float)
    total = powers.sum(axis=0)
    target = request.get("target")
    cost = sum(
        settle(p, site.consumption_price, site.production_price, grid.dt)
        for p, site in zip(powers, sites.values(), strict=True)
    )
    if target and target["type"] == "congestion":
        lower, upper = limits(request)
        slack = 1e-6 * len(sites)  # 1e-6 kW per site
        assert (total <= upper + slack).all(), np.max(total - upper)
        assert (total >= lower - slack).all(), np.max(lower - total)
    if target and target["type"] == "market":
        volume = grid.series(target["volume"])
        price = grid.series(target["deviation-price"])
        cost += float(grid.dt / 1000.0 * price @ np.abs(total - volume))
    np.testing.assert_allclose(body["portfolio"]["power"]["values"], total, atol=1e-6)
    assert body["portfolio"]["cost"]["value"] == pytest.approx(cost, rel=1e-7, abs=1e-6)
    return cost


def assert_near_optimum(cost: float, optimum: float, gap: float = GAP) -> None:
    """A feasible schedule costs at least the optimum, and at most ``gap`` more."""
    assert cost >= optimum - 1e-6 * max(1.0, abs(optimum)), (cost, optimum)
    assert cost <= optimum + gap * abs(optimum), (cost, optimum, (cost - optimum) / abs(optimum))


# -- the reference itself -----------------------------------------------------------------------


def test_reference_on_a_hand_computed_portfolio():
    """Two lossless 10 kWh batteries, empty, 5 kW, full after four hours at 10/20/30/40
    EUR/MWh: alone each charges in hours 0 and 1 (0.15 EUR each). A 6 kW congestion limit
    forces 6, 6, 6, 2 kW (0.44 EUR). A 4 kW market volume at 50 EUR/MWh deviation: the
    first 4 kWh of an hour cost price - 50 (they cut the deviation), more cost price + 50,
    so the 20 kWh go 4 to every hour plus 4 more in hour 0: 8, 4, 4, 4 kW, 0.44 EUR energy
    + 4 kWh deviation (0.2 EUR)."""
    fm = {
        "soc-at-start": "0 kWh",
        "soc-max": "10 kWh",
        "power-capacity": "5 kW",
        "soc-targets": [{"datetime": at(4), "value": "10 kWh"}],
    }
    request: dict[str, Any] = {
        "start": START,
        "duration": "PT4H",
        "resolution": "PT1H",
        "flex-context": {"consumption-price": compact([10, 20, 30, 40], "EUR/MWh")},
        "sites": [{"id": "a", "flex-model": fm}, {"id": "b", "flex-model": [fm]}],
        "target": None,
    }
    ref = portfolio_reference(request)
    assert ref.cost == pytest.approx(0.3)
    np.testing.assert_allclose(ref.total, [10, 10, 0, 0], atol=1e-7)
    request["target"] = {"type": "congestion", "max-consumption": "6 kW"}
    ref = portfolio_reference(request)
    assert ref.cost == pytest.approx(0.44)
    np.testing.assert_allclose(ref.total, [6, 6, 6, 2], atol=1e-7)
    request["target"] = {"type": "market", "volume": "4 kW", "deviation-price": "50 EUR/MWh"}
    ref = portfolio_reference(request)
    assert ref.cost == pytest.approx(0.64)
    np.testing.assert_allclose(ref.total, [8, 4, 4, 4], atol=1e-7)


# -- centralised: exact ---------------------------------------------------------------------------


def _cases() -> dict[str, Any]:
    return {
        "batteries-congestion": lambda: congestion(batteries(4, 0), 0.6),
        "mixed-congestion": lambda: congestion(mixed(6, 0), 0.7),
        "mixed-market": lambda: market(mixed(6, 1), "4 kW", "15 EUR/MWh"),
        "mixed-no-target": lambda: mixed(5, 2),
        "shiftable-congestion": lambda: congestion(mixed(6, 3, shiftable=True), 0.7),
        # feed-in above the consumption price at the midday dip: import/export binaries in
        # every site (their columns once shifted later sites' costs by one column each)
        "feed-in-above-price": lambda: _feed_in(batteries(4, 0), "30 EUR/MWh"),
        "feed-in-above-price-congestion": lambda: congestion(
            _feed_in(batteries(4, 1), "30 EUR/MWh"), 0.6
        ),
    }


def _feed_in(request: dict[str, Any], price: str) -> dict[str, Any]:
    request = copy.deepcopy(request)
    request.setdefault("flex-context", {})["production-price"] = price
    for site in request["sites"]:
        (site.get("flex-context") or {}).pop("production-price", None)
    return request


@pytest.mark.parametrize("case", list(_cases()))
def test_centralised_equals_reference(case):
    request = _cases()[case]()
    ref = portfolio_reference(request)
    result = CentralisedPortfolio(request).solve()
    assert result.cost == pytest.approx(ref.cost, rel=1e-6, abs=1e-9)
    assert check_result(request, result.to_json()) == pytest.approx(ref.cost, rel=1e-6)


# -- ADMM against the reference --------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: congestion(batteries(4, 0), 0.6), id="batteries-4"),
        pytest.param(lambda: congestion(batteries(5, 5), 0.5), id="batteries-5"),
        pytest.param(lambda: congestion(mixed(6, 0), 0.7), id="mixed-6"),
        pytest.param(lambda: congestion(mixed(8, 4), 0.6), id="mixed-8"),
    ],
)
def test_admm_congestion_reaches_the_optimum_and_keeps_the_limit(make):
    request = make()
    optimum = solve_portfolio_reference(request)
    free = solve_portfolio_reference({**request, "target": None})
    assert optimum > free + 1e-3  # the limit binds: it costs something
    result, _ = admm(request)
    body = result.to_json()
    cost = check_result(request, body)
    assert_near_optimum(cost, optimum)
    assert body["portfolio"]["degraded-sites"] == []
    assert body["portfolio"]["method"] == "admm"


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: market(mixed(6, 1), "4 kW", "15 EUR/MWh"), id="mixed-4kW"),
        pytest.param(lambda: market(mixed(6, 2), "5 kW", "40 EUR/MWh"), id="mixed-5kW"),
        pytest.param(lambda: market(batteries(4, 2), "3 kW", "15 EUR/MWh"), id="batteries-3kW"),
    ],
)
def test_admm_market_reaches_the_optimum(make):
    request = make()
    optimum = solve_portfolio_reference(request)
    assert optimum > solve_portfolio_reference({**request, "target": None}) + 1e-3
    result, _ = admm(request)
    assert_near_optimum(check_result(request, result.to_json()), optimum)


def test_admm_market_where_consuming_pays():
    # the portfolio is short of an 8 kW volume whose deviation price (150 EUR/MWh) exceeds
    # the consumption price most of the day
    request = market(mixed(6, 1), "8 kW", "150 EUR/MWh")
    optimum = solve_portfolio_reference(request)
    try:
        result, _ = admm(request)
    except VppError as err:
        pytest.fail(f"ADMM failed: {err}")
    assert_near_optimum(check_result(request, result.to_json()), optimum)


def test_shiftable_processes_in_admm(record_property, capsys):
    """Processes are MILP decisions that ADMM's x-update keeps fixed at each site's own
    choice: the result must be feasible (limit kept, each process one contiguous run in
    its window) and close to the reference MILP (the gap is reported)."""
    gaps = {}
    for name, request, iterations in (
        ("hourly", congestion(mixed(6, 3, shiftable=True), 0.6), 200),
        ("hourly-2", congestion(mixed(6, 11, shiftable=True), 0.6), 200),
        ("example-96", mixed_portfolio(4, seed=2, shiftable_share=0.7), 40),
    ):
        processes = sum(
            d.get("type") == "shiftable" for s in request["sites"] for d in s["flex-model"]
        )
        assert processes >= 2
        optimum = solve_portfolio_reference(request)
        result, _ = admm(request, max_iterations=iterations)
        cost = check_result(request, result.to_json())  # includes the process placement
        gaps[name] = (cost - optimum) / abs(optimum)
        with capsys.disabled():  # shown in every run, not only on failure
            print(
                f"\n  shiftable {name}: {processes} processes, ADMM {cost:.6f} vs MILP "
                f"{optimum:.6f} EUR, gap {gaps[name]:.4%}, {result.iterations} iterations"
            )
        record_property(f"gap-{name}", gaps[name])
    assert all(-1e-9 <= g < 0.01 for g in gaps.values()), gaps


def test_no_target_is_every_site_alone():
    request = mixed(5, 2)
    result, progress = admm(request)
    body = result.to_json()
    check_result(request, body)
    assert progress == [] and body["portfolio"]["method"] == "independent"
    for entry, site in zip(body["sites"], portfolio_sites(request).values(), strict=True):
        assert entry["cost"]["value"] == pytest.approx(solve_site(site).cost, rel=1e-6, abs=1e-9)
    assert body["portfolio"]["cost"]["value"] == pytest.approx(
        solve_portfolio_reference(request), rel=1e-6
    )


def test_warm_start_takes_no_more_iterations():
    """Re-running with ``state=`` a converged result's state iterates less than cold."""
    request = congestion(mixed(8, 4), 0.5)
    optimum = solve_portfolio_reference(request)
    cold, cold_progress = admm(request)
    assert cold.converged
    warm, warm_progress = admm(request, state=cold.admm_state)
    print(f"iterations: cold {len(cold_progress)}, warm {len(warm_progress)}")
    assert 1 <= len(warm_progress) <= len(cold_progress)
    assert warm.converged
    assert_near_optimum(check_result(request, warm.to_json()), optimum)


def test_warm_start_from_a_capped_run_still_iterates():
    request = congestion(mixed(6, 0), 0.7)
    first, _ = admm(request, max_iterations=4)  # before the first check of the stopping rule
    assert first.iterations == 4 and not first.converged
    _, progress = admm(request, max_iterations=20, state=first.admm_state)
    assert len(progress) >= 1


# -- validation and infeasibility -----------------------------------------------------------------


def _edit(change: Any) -> dict[str, Any]:
    request = congestion(mixed(4, 0), 0.7)
    change(request)
    return request


def _drop(d: dict[str, Any], key: str) -> None:
    del d[key]


def _heat(request: dict[str, Any], site: int) -> dict[str, Any]:
    return next(d for d in request["sites"][site]["flex-model"] if d.get("type") == "heat")


BAD = {
    "missing-soc-max": (
        lambda r: _drop(r["sites"][1]["flex-model"][0], "soc-max"),
        "sites[1].flex-model[0].soc-max",
    ),
    "energy-in-kw": (
        lambda r: r["sites"][2]["flex-model"][0].update({"soc-max": "13 kW"}),
        "sites[2].flex-model[0].soc-max",
    ),
    "short-site-load": (
        lambda r: r["sites"][1]["flex-context"]["inflexible-devices"]["house"]["values"].pop(),
        "sites[1].flex-context.inflexible-devices.house",
    ),
    "long-heat-demand": (
        lambda r: _heat(r, 1)["heat-demand"]["values"].append(1.0),
        "sites[1].flex-model[1].heat-demand",
    ),
    "short-target": (
        lambda r: r["target"].update({"max-consumption": compact([5.0] * 23, "kW")}),
        "target.max-consumption",
    ),
    "no-sites": (lambda r: r.update({"sites": []}), "sites"),
}
BAD_XFAIL = {
    "duplicate-ids": (
        lambda r: r["sites"][2].update({"id": "site-0"}),
        "sites",
        "bug: PortfolioRequest._unique_ids (vpp/portfolio.py) is a model validator, so the "
        "issue's field is '' instead of 'sites' (or 'sites[2].id')",
    ),
    "congestion-without-limits": (
        lambda r: r.update({"target": {"type": "congestion"}}),
        "target",
        "bug: format_path (vpp/request.py) keeps pydantic's union tag: the field is "
        "'target.congestion', which is no path of the request",
    ),
    "market-without-price": (
        lambda r: r.update({"target": {"type": "market", "volume": "3 kW"}}),
        "target.deviation-price",
        "bug: format_path (vpp/request.py) keeps pydantic's union tag: "
        "'target.market.deviation-price'",
    ),
    "short-portfolio-price": (
        lambda r: r["flex-context"]["consumption-price"]["values"].pop(),
        "flex-context.consumption-price",
        "bug: build_sites (vpp/portfolio.py) renames every flex-context issue to "
        "sites[i].flex-context.*, so a bad portfolio-level price is reported once per site "
        "under fields the request does not have",
    ),
}


def _validation_error(request: dict[str, Any]) -> RequestValidationError:
    with pytest.raises(RequestValidationError) as info:
        parsed = parse_portfolio(request)
        resolve_target(parsed)
        build_sites(parsed)
    return info.value


@pytest.mark.parametrize(
    ("change", "field"),
    [pytest.param(*v, id=k) for k, v in BAD.items()]
    + [
        pytest.param(change, field, id=k) for k, (change, field, _fixed) in BAD_XFAIL.items()
    ],
)
def test_bad_portfolio_names_the_field(change, field):
    err = _validation_error(_edit(change))
    assert [i.field for i in err.issues] == [field], err.issues
    assert err.to_problem()["errors"][0]["field"] == field


def test_duplicate_site_ids_are_rejected():
    err = _validation_error(_edit(lambda r: r["sites"][2].update({"id": "site-0"})))
    assert "site-0" in str(err) and "unique" in str(err)


def _limit_below_the_houses() -> tuple[dict[str, Any], datetime]:
    """Heat pumps and houses only (they cannot produce), a limit 0.3 kW below the houses'
    summed load at 19:00 and generous elsewhere."""
    rng = np.random.default_rng(5)
    request = portfolio([[heat_pump(rng)] for _ in range(3)], seed=5)
    houses = sum(
        np.array(s["flex-context"]["inflexible-devices"]["house"]["values"])
        for s in request["sites"]
    )
    limit = np.full(HOURS, 40.0)
    limit[19] = houses[19] - 0.3
    request["target"] = {"type": "congestion", "max-consumption": compact(limit, "kW")}
    return request, datetime.fromisoformat(at(19))


def test_congestion_limit_below_the_least_consumption_centralised():
    request, when = _limit_below_the_houses()
    assert np.isnan(solve_portfolio_reference(request))
    with pytest.raises(InfeasibleError) as info:
        CentralisedPortfolio(request).solve()
    assert info.value.constraint == "congestion-limit"
    assert info.value.time == when
    assert "max-consumption" in info.value.message


def test_congestion_limit_below_the_least_consumption_admm():
    request, when = _limit_below_the_houses()
    with pytest.raises(InfeasibleError) as info:
        admm(request, max_iterations=10)
    assert info.value.constraint == "congestion-limit"
    assert info.value.time == when


def test_admm_state_round_trips(tmp_path):
    result, _ = admm(congestion(batteries(3, 1), 0.6), max_iterations=4)
    state = result.admm_state
    state.save(tmp_path / "job.npz")
    loaded = type(state).load(tmp_path / "job.npz")
    assert loaded.iteration == state.iteration == 4
    for name in ("x", "zbar", "u"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(state, name))
    assert loaded.rho == state.rho
    assert [h["iteration"] for h in loaded.history] == [1, 2, 3, 4]
    assert dataclasses.asdict(loaded)["history"] == state.history
