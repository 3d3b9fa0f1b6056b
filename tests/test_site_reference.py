"""vpp's site schedules against hand-derived optima and an independent reference LP.

Tiny cases (2-4 hourly steps) have their optimum derived by hand in the comments; every one
is also checked against ``reference.solve_site`` (which validates the reference itself).
Random 96-step cases compare the cost with the reference optimum, re-simulate the returned
power into SoC and check bounds and targets.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from reference import (
    FixedLoad,
    Generation,
    Site,
    Storage,
    device_arrays,
    random_site,
    settle,
    simulate_soc,
    solve_site,
)

from vpp.site import SiteProblem, schedule

REL, ABS = 1e-6, 1e-9


def approx(value: float) -> Any:
    return pytest.approx(value, rel=REL, abs=ABS)


def battery(**fields: Any) -> dict[str, Any]:
    """A lossless 10 kW / 0..10 kWh battery starting empty, with ``fields`` replaced."""
    base = {"soc-at-start": "0 kWh", "soc-max": "10 kWh", "power-capacity": "10 kW"}
    return {**base, **fields}


def compact(values: list[float], unit: str) -> dict[str, Any]:
    return {"values": [float(v) for v in values], "unit": unit}


def prices(values: list[float]) -> dict[str, Any]:
    return compact(values, "EUR/MWh")


def solve(request: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    result = schedule(request)
    assert result["status"] == "finished"
    return result, device_arrays(result)


# -- hand-derived tiny cases ---------------------------------------------------------------


def test_lossless_arbitrage(make_request):
    # 20 then 100 EUR/MWh, 10 kWh store: buy 10 kWh (0.20 EUR), sell 10 kWh (1.00 EUR)
    req = make_request(battery(), {"consumption-price": prices([20, 100])}, steps=2, minutes=60)
    result, dev = solve(req)
    assert result["cost"]["value"] == approx(-0.8)
    np.testing.assert_allclose(dev["battery"]["power"], [10, -10], atol=1e-6)
    np.testing.assert_allclose(dev["battery"]["soc"], [0, 10, 0], atol=1e-6)
    assert solve_site(
        Site(1.0, np.array([20.0, 100.0]), devices=[Storage("b", 0, 0, 10, 10, 10)])
    ).cost == approx(-0.8)


@pytest.mark.parametrize(
    "efficiency",
    [
        {"charging-efficiency": "90%", "discharging-efficiency": "90%"},
        {"roundtrip-efficiency": "81%"},  # split as sqrt(0.81) = 0.9 each way
        {"charging-efficiency": 0.9, "discharging-efficiency": {"values": [0.9, 0.9], "unit": ""}},
    ],
    ids=["split", "roundtrip", "numbers-and-series"],
)
def test_efficiencies(make_request, efficiency):
    # charge 10 kW for 1 h -> 9 kWh stored (0.20 EUR); discharge all: 9*0.9 = 8.1 kWh sold
    # at 100 EUR/MWh (0.81 EUR). Every kWh bought at 20 returns 0.81 kWh worth 0.081 > 0.02,
    # so charging fully is optimal: cost 0.20 - 0.81 = -0.61 EUR.
    req = make_request(
        battery(**efficiency), {"consumption-price": prices([20, 100])}, steps=2, minutes=60
    )
    result, dev = solve(req)
    assert result["cost"]["value"] == approx(-0.61)
    np.testing.assert_allclose(dev["battery"]["power"], [10, -8.1], atol=1e-6)
    np.testing.assert_allclose(dev["battery"]["soc"], [0, 9, 0], atol=1e-6)
    ref = solve_site(
        Site(
            1.0,
            np.array([20.0, 100.0]),
            devices=[Storage("b", 0, 0, 10, 10, 10, eta_c=0.9, eta_d=0.9)],
        )
    )
    assert ref.cost == approx(-0.61)


def test_production_price_below_consumption_price_with_load(make_request):
    # buy 100 then 300, sell at 50; house needs 5 kW in hour 2. Charge 5 kWh at 100 (0.50)
    # to cover the house; charging more to export at 50 loses 0.05/kWh. Cost 0.50 (vs 1.50).
    ctx = {
        "consumption-price": prices([100, 300]),
        "production-price": "50 EUR/MWh",
        "inflexible-devices": {"house": compact([0, 5], "kW")},
    }
    result, dev = solve(make_request(battery(**{"soc-max": "20 kWh"}), ctx, steps=2, minutes=60))
    assert result["cost"]["value"] == approx(0.5)
    np.testing.assert_allclose(dev["battery"]["power"], [5, -5], atol=1e-6)
    np.testing.assert_allclose(result["site"]["power"]["values"], [5, 0], atol=1e-6)


def test_production_price_below_consumption_price_no_load(make_request):
    # buy 10 kWh at 10 (0.10), sell them at 50 (0.50): -0.40 (selling at 100 is not offered)
    ctx = {"consumption-price": prices([10, 100]), "production-price": "50 EUR/MWh"}
    result, _ = solve(make_request(battery(), ctx, steps=2, minutes=60))
    assert result["cost"]["value"] == approx(-0.4)


def test_storage_efficiency(make_request):
    # keep 50 %/step: charge 10 at 10 EUR/MWh (0.10) -> soc1 = 10; soc2 = 0.5*10 - d1 >= 0,
    # so sell 5 at 100 (0.50). 1 kWh at 0.01 returns 0.5 kWh worth 0.05: charge fully. -0.40
    req = make_request(
        battery(**{"soc-max": "100 kWh", "storage-efficiency": "50%"}),
        {"consumption-price": prices([10, 100, 100])},
        steps=3,
        minutes=60,
    )
    result, dev = solve(req)
    assert result["cost"]["value"] == approx(-0.4)
    np.testing.assert_allclose(dev["battery"]["power"], [10, -5, 0], atol=1e-6)
    np.testing.assert_allclose(dev["battery"]["soc"], [0, 10, 0, 0], atol=1e-6)


def test_soc_usage_with_soc_max_and_target(make_request, at):
    # usage 3 kW, start full (10 kWh), target full again after 2 h: charge 6 kWh net.
    # soc1 = 10 + c0 - 3 <= 10 -> c0 <= 3, so c0 = 3 at 20 and c1 = 3 at 80: 0.06 + 0.24
    fm = battery(
        **{
            "soc-at-start": "10 kWh",
            "power-capacity": "5 kW",
            "soc-usage": "3 kW",
            "soc-targets": [{"datetime": at(2, 60), "value": "10 kWh"}],
        }
    )
    result, dev = solve(
        make_request(fm, {"consumption-price": prices([20, 80])}, steps=2, minutes=60)
    )
    assert result["cost"]["value"] == approx(0.3)
    np.testing.assert_allclose(dev["battery"]["power"], [3, 3], atol=1e-6)
    np.testing.assert_allclose(dev["battery"]["soc"], [10, 10, 10], atol=1e-6)


def test_soc_gain_and_usage_list(make_request):
    # gain 5 kW minus usage 1 + 2 kW = +2 kWh/h for free. At 100 EUR/MWh throughout,
    # cycling gains nothing and every free kWh is worth 0.10: sell all 4 kWh by the end: -0.40
    fm = battery(**{"soc-gain": ["5 kW"], "soc-usage": ["1 kW", "2 kW"]})
    result, dev = solve(
        make_request(fm, {"consumption-price": prices([100, 100])}, steps=2, minutes=60)
    )
    assert result["cost"]["value"] == approx(-0.4)
    assert dev["battery"]["power"].sum() == pytest.approx(-4, abs=1e-6)
    assert dev["battery"]["soc"][-1] == pytest.approx(0, abs=1e-6)
    np.testing.assert_allclose(
        dev["battery"]["soc"],
        simulate_soc(dev["battery"]["power"], 0, 1, 1, 1, -2.0, 1.0),
        atol=1e-6,
    )


def test_soc_minima_and_maxima(make_request, at):
    # prices 10/100/10/100, 20 kWh store. soc1 <= 5 (maxima) and soc4 >= 5 (minima):
    # charges c0 <= 5, c2 <= 10; sales d1 + d3 <= c0 + c2 - 5 = 10.
    # cost = 15 kWh * 0.01 - 10 kWh * 0.10 = -0.85
    fm = battery(
        **{
            "soc-max": "20 kWh",
            "soc-maxima": [{"datetime": at(1, 60), "value": "5 kWh"}],
            "soc-minima": [{"start": at(4, 60), "end": at(4, 60), "value": "5 kWh"}],
        }
    )
    req = make_request(fm, {"consumption-price": prices([10, 100, 10, 100])}, steps=4, minutes=60)
    result, dev = solve(req)
    assert result["cost"]["value"] == approx(-0.85)
    soc = dev["battery"]["soc"]
    assert soc[1] <= 5 + 1e-6 and soc[4] >= 5 - 1e-6


def test_soc_target(make_request, at):
    # no value in storing energy, but 5 kWh wanted after hour 1: buy at 100 (0.50), then
    # the target is met and the 5 kWh are sold at 10 (0.05): 0.45
    fm = battery(**{"soc-targets": [{"datetime": at(1, 60), "value": "5 kWh"}]})
    result, dev = solve(
        make_request(fm, {"consumption-price": prices([100, 10])}, steps=2, minutes=60)
    )
    assert result["cost"]["value"] == approx(0.45)
    np.testing.assert_allclose(dev["battery"]["soc"], [0, 5, 0], atol=1e-6)


def test_soc_target_segment_holds_at_every_instant(make_request, at):
    # 5 kWh wanted at instants 1, 2 and 3 (start..end inclusive), prices 10/100/100/200:
    # charge 5 at 10 (0.05), hold, sell 5 at 200 (1.00): -0.95. (Were instant 3 free, the
    # battery would top up at 100 and sell 10 kWh at 200: -1.45.)
    fm = battery(**{"soc-targets": [{"start": at(1, 60), "end": at(3, 60), "value": "5 kWh"}]})
    req = make_request(fm, {"consumption-price": prices([10, 100, 100, 200])}, steps=4, minutes=60)
    result, dev = solve(req)
    assert result["cost"]["value"] == approx(-0.95)
    np.testing.assert_allclose(dev["battery"]["soc"], [0, 5, 5, 5, 0], atol=1e-6)


def test_site_capacity_with_inflexible_load(make_request):
    # 12 kW connection, house 8 kW: charging is limited to 4 kW in the cheap hour; those
    # 4 kWh cover half of the house in the dear hour. 12*0.01 + 4*0.10 = 0.52
    ctx = {
        "consumption-price": prices([10, 100]),
        "site-power-capacity": "12 kW",
        "inflexible-devices": {"house": "8 kW"},
    }
    result, dev = solve(make_request(battery(**{"soc-max": "20 kWh"}), ctx, steps=2, minutes=60))
    assert result["cost"]["value"] == approx(0.52)
    np.testing.assert_allclose(dev["battery"]["power"], [4, -4], atol=1e-6)
    np.testing.assert_allclose(result["site"]["power"]["values"], [12, 4], atol=1e-6)


def test_site_production_capacity(make_request):
    # export limited to 3 kW: buy 10 kWh at 10 (0.10), sell only 3 kWh at 100 (0.30)
    ctx = {"consumption-price": prices([10, 100]), "site-production-capacity": "3 kW"}
    result, dev = solve(make_request(battery(), ctx, steps=2, minutes=60))
    assert result["cost"]["value"] == approx(0.03 - 0.3)
    np.testing.assert_allclose(dev["battery"]["power"], [3, -3], atol=1e-6)


def test_ev_availability_window(make_request, at):
    # plugged in from 01:00 to 03:00 only; 15 kWh wanted at 04:00: 10 kWh at 20 and 5 kWh at
    # 30 (0.20 + 0.15); the power is 0 while away
    fm = battery(
        **{
            "soc-max": "60 kWh",
            "availability": [{"start": at(1, 60), "end": at(3, 60)}],
            "soc-targets": [{"datetime": at(4, 60), "value": "15 kWh"}],
        }
    )
    req = make_request(fm, {"consumption-price": prices([10, 20, 30, 40])}, steps=4, minutes=60)
    result, dev = solve(req)
    assert result["cost"]["value"] == approx(0.35)
    np.testing.assert_allclose(dev["battery"]["power"], [0, 10, 5, 0], atol=1e-6)


@pytest.mark.parametrize(
    ("fixed", "cost", "power"),
    [
        # forced to discharge 5 kW in hour 1 (0.50), the other 5 kWh go at 10 (0.05)
        ({"value": "-5 kW"}, -0.55, [-5, -5]),
        # at most 2 kW out in hour 1 (0.20), 8 kWh at 10 (0.08)
        ({"min": "-2 kW", "max": "3 kW"}, -0.28, [-2, -8]),
    ],
    ids=["value", "min-max"],
)
def test_power_fixed(make_request, at, fixed, cost, power):
    fm = battery(
        **{
            "soc-at-start": "10 kWh",
            "power-fixed": [{"start": at(0, 60), "duration": "PT1H", **fixed}],
        }
    )
    result, dev = solve(
        make_request(fm, {"consumption-price": prices([100, 10])}, steps=2, minutes=60)
    )
    assert result["cost"]["value"] == approx(cost)
    np.testing.assert_allclose(dev["battery"]["power"], power, atol=1e-6)


def test_generation_availability(make_request, at):
    # PV available for the first two hours only: 2 kW sold at 100 twice: -0.40
    pv = {
        "type": "generation",
        "name": "pv",
        "production": "2 kW",
        "availability": [{"start": at(0, 60), "end": at(2, 60)}],
    }
    result, dev = solve(
        make_request([pv], {"consumption-price": "100 EUR/MWh"}, steps=4, minutes=60)
    )
    np.testing.assert_allclose(dev["pv"]["power"], [-2, -2, 0, 0], atol=1e-6)
    assert result["cost"]["value"] == approx(-0.4)


def test_inflexible_device_availability(make_request, at):
    # apply_common: "outside its windows a device's power is 0", for any device kind
    heater = {
        "type": "inflexible",
        "name": "heater",
        "power": "2 kW",
        "availability": [{"start": at(0, 60), "end": at(2, 60)}],
    }
    result, dev = solve(
        make_request([heater], {"consumption-price": "100 EUR/MWh"}, steps=4, minutes=60)
    )
    np.testing.assert_allclose(dev["heater"]["power"], [2, 2, 0, 0], atol=1e-6)
    assert result["cost"]["value"] == approx(0.4)


def test_pv_with_own_production_price(make_request):
    # house 3 kW at 100 EUR/MWh; PV makes 5 kW in hour 1 under a feed-in tariff of 80: all PV
    # is settled at 80 (earns 0.40) and the house is bought in full (0.60): 0.20.
    # Without its own price the site nets: -2 kW sold at 20 (-0.04) + 3 kW at 100: 0.26.
    ctx = {
        "consumption-price": "100 EUR/MWh",
        "production-price": "20 EUR/MWh",
        "inflexible-devices": {"house": "3 kW"},
    }
    pv = {
        "type": "generation",
        "name": "pv",
        "production": compact([5, 0], "kW"),
        "production-price": "80 EUR/MWh",
    }
    result, dev = solve(make_request([pv], ctx, steps=2, minutes=60))
    assert result["cost"]["value"] == approx(0.2)
    np.testing.assert_allclose(dev["pv"]["power"], [-5, 0], atol=1e-6)
    np.testing.assert_allclose(result["site"]["power"]["values"], [-2, 3], atol=1e-6)
    pv.pop("production-price")
    result, _ = solve(make_request([pv], ctx, steps=2, minutes=60))
    assert result["cost"]["value"] == approx(0.26)


@pytest.mark.parametrize(("curtailable", "cost"), [(True, 0.3), (False, 0.65)])
def test_curtailable_generation(make_request, curtailable, cost):
    # exporting costs 50 EUR/MWh. PV 10 kW in hour 1, house 3 kW: curtailed to 3 kW the
    # site nets 0 (then 3 kW bought at 100: 0.30); uncurtailed, 7 kW exported cost 0.35 more
    ctx = {
        "consumption-price": "100 EUR/MWh",
        "production-price": "-50 EUR/MWh",
        "inflexible-devices": {"house": "3 kW"},
    }
    pv = {
        "type": "generation",
        "name": "pv",
        "production": compact([10, 0], "kW"),
        "curtailable": curtailable,
    }
    result, dev = solve(make_request([pv], ctx, steps=2, minutes=60))
    assert result["cost"]["value"] == approx(cost)
    np.testing.assert_allclose(dev["pv"]["power"], [-3 if curtailable else -10, 0], atol=1e-6)


def test_heat_pump(make_request):
    # heat demand 6 kW; COP 3 then 2; heat costs 100/3 EUR/MWh_th in hour 1 and 20/2 in
    # hour 2, so buy only the minimum first: soc1 = 3*p0 - 6 >= 0 -> p0 = 2, then p1 = 3.
    # cost 2*0.10 + 3*0.02 = 0.26
    hp = {
        "type": "heat",
        "name": "hp",
        "soc-at-start": "0 kWh",
        "soc-max": "20 kWh",
        "power-capacity": "5 kW",
        "cop": compact([3, 2], ""),
        "heat-demand": "6 kW",
    }
    result, dev = solve(
        make_request([hp], {"consumption-price": prices([100, 20])}, steps=2, minutes=60)
    )
    assert result["cost"]["value"] == approx(0.26)
    np.testing.assert_allclose(dev["hp"]["power"], [2, 3], atol=1e-6)
    np.testing.assert_allclose(dev["hp"]["soc"], [0, 0, 0], atol=1e-6)
    assert dev["hp"]["type"] == "heat"


def test_simultaneous_charge_discharge_is_not_used_to_waste_energy(make_request):
    # at -100 EUR/MWh consuming pays. The lossy battery (90 % each way) is full at 5 kWh:
    # charging 10 kW while discharging 8.1 kW keeps the SoC and burns 1.9 kWh (-0.19 EUR),
    # but a battery cannot do both at once. It can neither charge (full) nor profit from
    # discharging (exporting costs), so the optimum is to idle: 0 EUR.
    fm = battery(**{"soc-at-start": "5 kWh", "soc-max": "5 kWh", "roundtrip-efficiency": "81%"})
    result, dev = solve(
        make_request(fm, {"consumption-price": prices([-100, 0])}, steps=2, minutes=60)
    )
    assert result["cost"]["value"] == approx(0.0)
    assert dev["battery"]["power"][0] == pytest.approx(0, abs=1e-6)
    site = Site(
        1.0, np.array([-100.0, 0.0]), devices=[Storage("b", 5, 0, 5, 10, 10, eta_c=0.9, eta_d=0.9)]
    )
    assert solve_site(site, exclusive=False).cost == approx(-0.19)  # the case needs binaries
    assert solve_site(site).cost == approx(0.0)


def test_negative_prices_need_no_simultaneous_rows(make_request, prices):
    # a day with many negative prices: the LP relaxation burns energy in a full lossy
    # battery; vpp's optimum must equal the reference MILP (binaries at every step)
    cp = np.round(np.array(prices) - 60, 2)
    assert (cp < 0).sum() > 20
    for soc0, soc_max, rt, house in [(5, 10, 0.81, 0), (2, 6, 0.7, 1)]:
        fm = {
            "soc-at-start": f"{soc0} kWh",
            "soc-max": f"{soc_max} kWh",
            "power-capacity": "4 kW",
            "roundtrip-efficiency": rt,
        }
        ctx = {
            "consumption-price": prices_dict(cp),
            "production-price": prices_dict(cp - 5),
            "inflexible-devices": {"h": f"{house} kW"},
        }
        result, dev = solve(make_request(fm, ctx))
        eta = float(np.sqrt(rt))
        site = Site(
            0.25,
            cp,
            cp - 5,
            inflexible=house,
            devices=[Storage("battery", soc0, 0, soc_max, 4, 4, eta, eta)],
        )
        ref = solve_site(site, exclusive=True)
        assert solve_site(site, exclusive=False).cost < ref.cost - 1e-3
        assert result["cost"]["value"] == approx(ref.cost)
        sim = simulate_soc(dev["battery"]["power"], soc0, eta, eta, 1.0, 0.0, 0.25)
        np.testing.assert_allclose(dev["battery"]["soc"], sim, atol=1e-6)


def test_no_simultaneous_import_export(make_request):
    # production price 100 above consumption price 10: importing and exporting at once
    # would be free money, and must not happen. House 1 kW both hours; the battery buys
    # c <= 10 kWh in hour 1 and sells d <= c in hour 2. Site power [1 + c, 1 - d]:
    # cost 0.01*(1 + c) - 0.10*(d - 1) for d > 1, minimal at c = d = 10: 0.11 - 0.90 = -0.79
    ctx = {
        "consumption-price": "10 EUR/MWh",
        "production-price": "100 EUR/MWh",
        "inflexible-devices": {"house": "1 kW"},
    }
    result, _ = solve(make_request(battery(), ctx, steps=2, minutes=60))
    np.testing.assert_allclose(result["site"]["power"]["values"], [11, -9], atol=1e-6)
    assert result["cost"]["value"] == approx(-0.79)


# -- the reference checks itself on the hand cases -----------------------------------------


def test_reference_agrees_with_hand_cases():
    one = np.ones(2)
    assert solve_site(
        Site(
            1.0,
            np.array([100.0, 300.0]),
            50 * one,
            inflexible=np.array([0, 5.0]),
            devices=[Storage("b", 0, 0, 20, 10, 10)],
        )
    ).cost == approx(0.5)
    assert solve_site(
        Site(
            1.0, np.array([10.0, 100.0, 100.0]), devices=[Storage("b", 0, 0, 100, 10, 10, keep=0.5)]
        )
    ).cost == approx(-0.4)
    assert solve_site(
        Site(
            1.0,
            100 * one,
            20 * one,
            inflexible=3 * one,
            devices=[Generation("pv", np.array([5.0, 0]), production_price=80 * one)],
        )
    ).cost == approx(0.2)
    assert solve_site(
        Site(
            1.0,
            100 * one,
            -50 * one,
            inflexible=3 * one,
            devices=[Generation("pv", np.array([10.0, 0]), curtailable=True)],
        )
    ).cost == approx(0.3)
    assert solve_site(
        Site(
            1.0,
            np.array([100.0, 20.0]),
            devices=[Storage("hp", 0, 0, 20, 5, 0, eta_c=np.array([3.0, 2.0]), usage=6.0)],
        )
    ).cost == approx(0.26)
    assert solve_site(
        Site(
            1.0,
            np.array([-100.0, 0.0]),
            devices=[Storage("b", 0, 0, 100, 10, 10, eta_c=0.9, eta_d=0.9)],
        )
    ).cost == approx(-1.0)
    assert solve_site(
        Site(1.0, 10 * one, 100 * one, inflexible=one, devices=[Storage("b", 0, 0, 10, 10, 10)])
    ).cost == approx(-0.79)


# -- random 96-step storage sites ------------------------------------------------------------

CASES = {
    # seed: options of reference.random_site
    1: {"efficiency": "split", "targets": 2},
    2: {"efficiency": "roundtrip", "keep": True, "usage": True, "targets": 1},
    3: {"efficiency": "series", "bounds": 2, "spread": "equal"},
    4: {"efficiency": "split", "availability": True, "usage": True, "targets": 1},
    5: {"efficiency": "split", "fixed": True, "targets": 1},
    6: {"efficiency": "none", "n_storage": 2, "targets": 1, "capacity": True},
    7: {"efficiency": "split", "n_storage": 2, "keep": True, "bounds": 1, "fixed": True},
    8: {"efficiency": "roundtrip", "negative_prices": True, "targets": 1},
    9: {"efficiency": "split", "negative_prices": True, "usage": True, "spread": "equal"},
    10: {"efficiency": "split", "spread": "higher", "steps": 24, "minutes": 60},
    11: {"efficiency": "roundtrip", "load": False, "capacity": False, "targets": 3},
    12: {
        "efficiency": "split",
        "availability": True,
        "keep": True,
        "fixed": True,
        "n_storage": 2,
        "minutes": 30,
        "steps": 48,
    },
}


def check_storage_result(case: Any, result: dict[str, Any]) -> None:
    """Returned SoC = re-simulated power; SoC, power and site power within limits."""
    dev = device_arrays(result)
    site = case.site
    for s in case.storages:
        p, soc = dev[s.name]["power"], dev[s.name]["soc"]
        sim = simulate_soc(p, s.soc0, s.eta_c, s.eta_d, s.keep, s.usage, case.dt)
        np.testing.assert_allclose(soc, sim, atol=1e-6, err_msg=f"{s.name}: soc != simulated")
        assert (soc >= s.lower - 1e-6).all() and (soc <= s.upper + 1e-6).all()
        for k, v in s.targets.items():
            assert soc[k] == pytest.approx(v, abs=1e-6)
        assert (p <= s.charge_max + 1e-6).all() and (p >= -s.discharge_max - 1e-6).all()
        free = np.isnan(s.net_lower)
        assert (p[~free] >= s.net_lower[~free] - 1e-6).all()
        assert (p[~free] <= s.net_upper[~free] + 1e-6).all()
    total = np.asarray(site.inflexible) + sum(dev[s.name]["power"] for s in case.storages)
    sp = np.array(result["site"]["power"]["values"])
    np.testing.assert_allclose(sp, total, atol=1e-6)
    assert (sp <= np.asarray(site.consumption_capacity) + 1e-6).all()
    assert (sp >= -np.asarray(site.production_capacity) - 1e-6).all()
    # the reported cost is the price times the reported net power
    cost = settle(sp, site.consumption_price, site.production_price, case.dt)
    assert result["cost"]["value"] == approx(cost)


@pytest.mark.parametrize("seed", sorted(CASES))
def test_random_site_matches_reference(seed):
    options = dict(CASES[seed])
    case = random_site(np.random.default_rng(seed), **options)
    result = schedule(case.request)
    check_storage_result(case, result)
    ref = solve_site(case.site)
    assert ref.status == "optimal"
    assert result["cost"]["value"] == approx(ref.cost)


def test_site_problem_matches_schedule():
    case = random_site(np.random.default_rng(21), n_storage=2, targets=1)
    solved = SiteProblem(case.request).solve()
    ref = solve_site(case.site)
    assert solved.cost == approx(ref.cost)
    for s in case.storages:
        assert len(solved.device_soc[s.name]) == len(case.site.consumption_price) + 1
        assert solved.device_soc[s.name][0] == pytest.approx(s.soc0)
        sim = simulate_soc(
            solved.device_power[s.name], s.soc0, s.eta_c, s.eta_d, s.keep, s.usage, case.dt
        )
        np.testing.assert_allclose(solved.device_soc[s.name], sim, atol=1e-6)
    np.testing.assert_allclose(
        solved.site_power,
        case.site.inflexible + sum(solved.device_power[s.name] for s in case.storages),
        atol=1e-6,
    )


# -- mixed sites: heat pump, PV at own prices, fixed devices ----------------------------------


def test_mixed_site_matches_reference(make_request, prices):
    rng = np.random.default_rng(7)
    n, dt = 96, 0.25
    cp = np.array(prices)
    pp = np.round(cp - 25, 2)
    house = np.round(rng.uniform(0.3, 4, n), 3)
    sun = np.clip(np.sin((np.arange(n) / n * 24 - 6) / 12 * np.pi), 0, None)
    pv1 = np.round(8 * sun, 3)
    pv2 = np.round(5 * sun * rng.uniform(0.6, 1, n), 3)
    cop = np.round(3.5 + 0.8 * np.cos(np.arange(n) / n * 2 * np.pi), 3)
    demand = np.round(rng.uniform(1, 5, n), 3)
    fit = np.full(n, 70.0)  # feed-in tariff of the first PV
    fridge = np.round(rng.uniform(0, 0.5, n), 3)
    flex_model = [
        {
            "name": "bat",
            "soc-at-start": "5 kWh",
            "soc-min": "1 kWh",
            "soc-max": "13.5 kWh",
            "power-capacity": "5 kW",
            "roundtrip-efficiency": "90%",
            "storage-efficiency": 0.999,
        },
        {
            "type": "heat",
            "name": "hp",
            "soc-at-start": "10 kWh",
            "soc-min": "2 kWh",
            "soc-max": "30 kWh",
            "power-capacity": "3 kW",
            "cop": compact(list(cop), ""),
            "heat-demand": compact(list(demand), "kW"),
            "storage-efficiency": "99.5%",
        },
        {
            "type": "generation",
            "name": "pv-fit",
            "production": compact(list(pv1), "kW"),
            "production-price": "70 EUR/MWh",
        },
        {
            "type": "generation",
            "name": "pv-roof",
            "production": compact(list(pv2), "kW"),
            "curtailable": True,
        },
        {
            "type": "inflexible",
            "name": "fridge",
            "power": compact(list(fridge), "kW"),
            "consumption-price": "120 EUR/MWh",
        },
    ]
    ctx = {
        "consumption-price": prices_dict(cp),
        "production-price": prices_dict(pp),
        "site-power-capacity": "17 kW",
        "inflexible-devices": {"house": compact(list(house), "kW")},
    }
    result, dev = solve(make_request(flex_model, ctx))
    eta = np.sqrt(0.9)
    site = Site(
        dt,
        cp,
        pp,
        17.0,
        17.0,
        house,
        [
            Storage("bat", 5, 1, 13.5, 5, 5, eta_c=eta, eta_d=eta, keep=0.999),
            Storage("hp", 10, 2, 30, 3, 0, eta_c=cop, keep=0.995, usage=demand),
            Generation("pv-fit", pv1, production_price=fit),
            Generation("pv-roof", pv2, curtailable=True),
            FixedLoad("fridge", fridge, consumption_price=np.full(n, 120.0)),
        ],
    )
    ref = solve_site(site)
    assert result["cost"]["value"] == approx(ref.cost)
    # independent recomputation from the returned series: own-priced devices at their prices
    settled = np.array(result["site"]["power"]["values"]) - dev["pv-fit"]["power"] - fridge
    cost = (
        settle(settled, cp, pp, dt)
        + settle(dev["pv-fit"]["power"], fit, fit, dt)
        + settle(fridge, np.full(n, 120.0), None, dt)
    )
    assert result["cost"]["value"] == approx(cost)
    np.testing.assert_allclose(dev["pv-fit"]["power"], -pv1, atol=1e-6)
    roof = dev["pv-roof"]["power"]
    assert (roof <= 1e-6).all() and (roof >= -pv2 - 1e-6).all()
    np.testing.assert_allclose(dev["fridge"]["power"], fridge, atol=1e-9)
    hp = dev["hp"]
    assert (hp["power"] >= -1e-6).all() and (hp["power"] <= 3 + 1e-6).all()
    sim = simulate_soc(hp["power"], 10, cop, 1.0, 0.995, demand, dt)
    np.testing.assert_allclose(hp["soc"], sim, atol=1e-6)
    assert (hp["soc"] >= 2 - 1e-6).all() and (hp["soc"] <= 30 + 1e-6).all()
    sim = simulate_soc(dev["bat"]["power"], 5, eta, eta, 0.999, 0.0, dt)
    np.testing.assert_allclose(dev["bat"]["soc"], sim, atol=1e-6)


def prices_dict(values: np.ndarray) -> dict[str, Any]:
    return compact(list(values), "EUR/MWh")


def test_own_priced_battery_matches_reference(make_request, prices):
    # a battery behind its own meter (dynamic tariff) next to a house at the site's prices
    cp = np.array(prices)
    own = np.round(cp[::-1] * 0.8 + 10, 2)
    house = np.round(2 + np.sin(np.arange(96) / 7), 3)
    fm = {
        "name": "bat",
        "soc-at-start": "20 kWh",
        "soc-max": "40 kWh",
        "power-capacity": "11 kW",
        "charging-efficiency": "92%",
        "discharging-efficiency": "96%",
        "consumption-price": prices_dict(own),
        "production-price": prices_dict(own - 5),
    }
    ctx = {
        "consumption-price": prices_dict(cp),
        "production-price": "20 EUR/MWh",
        "inflexible-devices": {"house": compact(list(house), "kW")},
    }
    result, dev = solve(make_request(fm, ctx))
    ref = solve_site(
        Site(
            0.25,
            cp,
            np.full(96, 20.0),
            inflexible=house,
            devices=[
                Storage(
                    "bat",
                    20,
                    0,
                    40,
                    11,
                    11,
                    eta_c=0.92,
                    eta_d=0.96,
                    consumption_price=own,
                    production_price=own - 5,
                )
            ],
        )
    )
    assert result["cost"]["value"] == approx(ref.cost)
    p = dev["bat"]["power"]
    expected = settle(house, cp, 20.0, 0.25) + settle(p, own, own - 5, 0.25)
    assert result["cost"]["value"] == approx(expected)


# -- units ------------------------------------------------------------------------------------


def in_other_units(request: dict[str, Any]) -> dict[str, Any]:
    """The same request in W, MWh and EUR/kWh (numbers converted here, not by vpp)."""

    def quantity(text: str) -> str:
        number, unit = text.rsplit(" ", 1)
        x = float(number)
        return {
            "kWh": f"{x / 1000!r} MWh",
            "kW": f"{x * 1000!r} W",
            "EUR/MWh": f"{x / 1000!r} EUR/kWh",
        }.get(unit, text)

    def convert(value: Any) -> Any:
        if isinstance(value, str):
            return quantity(value)
        if isinstance(value, list):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            if "values" in value and value.get("unit") in ("kW", "EUR/MWh"):
                f = 1000.0 if value["unit"] == "kW" else 0.001
                unit = "W" if value["unit"] == "kW" else "EUR/kWh"
                return {"values": [v * f for v in value["values"]], "unit": unit}
            return {
                k: v
                if k in ("start", "end", "datetime", "duration", "name", "type")
                else convert(v)
                for k, v in value.items()
            }
        return value

    out = dict(request)
    out["flex-model"] = convert(request["flex-model"])
    out["flex-context"] = convert(request["flex-context"])
    return out


@pytest.mark.parametrize("seed", [31, 32])
def test_units_are_converted(seed):
    case = random_site(
        np.random.default_rng(seed), usage=True, targets=2, bounds=1, fixed=True, n_storage=2
    )
    other = in_other_units(case.request)
    assert "MWh" in str(other["flex-model"]) and " W" in str(other["flex-model"])
    assert "EUR/kWh" in str(other["flex-context"])
    a, b = schedule(case.request), schedule(other)
    assert b["cost"]["value"] == approx(a["cost"]["value"])
    ref = solve_site(case.site)
    assert b["cost"]["value"] == approx(ref.cost)
    check_storage_result(case, b)
    for entry in b["devices"]:  # results are always in kW / kWh
        assert entry["power"]["unit"] == "kW" and entry["soc"]["unit"] == "kWh"


# -- request forms, result shape, re-solving --------------------------------------------------


def test_consumption_capacity_below_power_capacity(make_request):
    # charging limited to 4 kW, discharging to 10 kW: buy 4 kWh at 20, sell them at 100
    fm = battery(**{"consumption-capacity": "4 kW"})
    result, dev = solve(
        make_request(fm, {"consumption-price": prices([20, 100])}, steps=2, minutes=60)
    )
    assert result["cost"]["value"] == approx(4 * (0.02 - 0.1))
    np.testing.assert_allclose(dev["battery"]["power"], [4, -4], atol=1e-6)


def test_series_forms_are_equivalent(make_request, prices, at):
    """Constant, compact and segment forms of the same series give the same optimum."""
    cp = np.array(prices)
    segments = [
        {"start": at(k), "end": at(k + 1), "value": f"{v!r} EUR/MWh"} for k, v in enumerate(prices)
    ]
    house_segments = [
        {"start": at(0), "duration": "PT12H", "value": "2 kW"},
        {"start": at(48), "end": at(96), "value": "2000 W"},
    ]
    fm = {
        "soc-at-start": "10 kWh",
        "soc-max": "40 kWh",
        "power-capacity": "10 kW",
        "roundtrip-efficiency": "90%",
    }
    costs = []
    for price, house in [
        (prices_dict(cp), "2 kW"),
        (segments, house_segments),
        (segments, compact([2.0] * 96, "kW")),
    ]:
        ctx = {
            "consumption-price": price,
            "production-price": "10 EUR/MWh",
            "inflexible-devices": {"house": house},
        }
        costs.append(schedule(make_request(fm, ctx))["cost"]["value"])
    eta = np.sqrt(0.9)
    ref = solve_site(
        Site(
            0.25,
            cp,
            np.full(96, 10.0),
            inflexible=2.0,
            devices=[Storage("b", 10, 0, 40, 10, 10, eta, eta)],
        )
    )
    assert costs == [approx(ref.cost)] * 3


def test_target_in_another_utc_offset(make_request):
    # 05:00Z is 06:00+01:00, instant 24 of the 15-minute schedule
    fm = battery(
        **{
            "soc-max": "40 kWh",
            "soc-targets": [{"datetime": "2026-03-02T05:00:00Z", "value": "33 kWh"}],
        }
    )
    _, dev = solve(make_request(fm))
    assert dev["battery"]["soc"][24] == pytest.approx(33, abs=1e-6)


def test_result_shape(make_request, prices):
    req = make_request()
    result = schedule(req)
    assert result["status"] == "finished"
    assert (result["start"], result["duration"], result["resolution"]) == (
        "2026-03-02T00:00:00+01:00",
        "PT24H",
        "PT15M",
    )
    (entry,) = result["devices"]
    assert entry["name"] == "battery" and entry["type"] == "storage"
    assert entry["power"]["unit"] == "kW" and len(entry["power"]["values"]) == 96
    assert entry["soc"]["unit"] == "kWh" and len(entry["soc"]["values"]) == 97
    assert entry["soc"]["values"][0] == pytest.approx(10)
    assert result["site"]["power"]["unit"] == "kW"
    assert result["cost"]["unit"] == "EUR"
    json.dumps(result)  # plain JSON
    ref = solve_site(
        Site(0.25, np.array(prices), devices=[Storage("b", 10, 0, 40, 10, 10, 0.95, 0.95)])
    )
    assert result["cost"]["value"] == approx(ref.cost)


def test_resolving_gives_the_same_schedule(prices):
    case = random_site(np.random.default_rng(5), negative_prices=True, targets=1)
    problem = SiteProblem(case.request)
    first, second = problem.solve(), problem.solve()
    assert second.cost == approx(first.cost)
    np.testing.assert_allclose(second.site_power, first.site_power, atol=1e-6)


def test_solves_after_another_highs_user_in_the_process(make_request):
    # in a subprocess: the HiGHS thread scheduler is global to the process
    code = (
        "import json, sys\n"
        "import highspy, numpy as np\n"
        "h = highspy.Highs()\n"
        "h.setOptionValue('output_flag', False)\n"
        "h.setOptionValue('threads', 2)\n"
        "h.addVars(1, np.array([0.0]), np.array([1.0]))\n"
        "h.run()\n"
        "from vpp.site import schedule\n"
        "print(json.dumps(schedule(json.loads(sys.stdin.read()))['cost']))\n"
    )
    request = make_request(battery(), {"consumption-price": prices([20, 100])}, steps=2, minutes=60)
    run = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-400:]
    assert json.loads(run.stdout.strip().splitlines()[-1])["value"] == approx(-0.8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_heat_pump_matches_reference(make_request, prices, at, seed):
    """A heat buffer with time-varying COP, heat demand, storage losses, comfort minima and
    targets read off a feasible random trajectory; vs the reference LP."""
    rng = np.random.default_rng(seed)
    n, dt = 96, 0.25
    cop = np.round(rng.uniform(2.0, 4.5, n), 3)
    demand = np.round(rng.uniform(0.5, 6.0, n), 3)
    cap = 3.0
    keep = 0.995
    trajectory = rng.uniform(0, cap, n)
    soc = simulate_soc(trajectory, 20.0, cop, 1.0, keep, demand, dt)
    soc_min = float(max(0.0, soc.min() - 2))
    soc_max = float(soc.max() + 5)
    targets = sorted(int(k) for k in rng.choice(np.arange(8, 97), 2, replace=False))
    lower, upper = np.full(n + 1, soc_min), np.full(n + 1, soc_max)
    for k in targets:
        lower[k] = upper[k] = soc[k]
    comfort = int(rng.integers(30, 60))  # a comfort band over 2 h
    band = float(soc[comfort : comfort + 9].min())
    lower[comfort : comfort + 9] = np.maximum(lower[comfort : comfort + 9], band)
    hp = {
        "type": "heat",
        "name": "hp",
        "soc-at-start": "20 kWh",
        "soc-min": f"{soc_min!r} kWh",
        "soc-max": f"{soc_max!r} kWh",
        "power-capacity": f"{cap} kW",
        "cop": compact(list(cop), ""),
        "heat-demand": compact(list(demand), "kW"),
        "storage-efficiency": keep,
        "soc-targets": [{"datetime": at(k), "value": f"{float(soc[k])!r} kWh"} for k in targets],
        "soc-minima": [{"start": at(comfort), "end": at(comfort + 8), "value": f"{band!r} kWh"}],
    }
    cp = np.array(prices)
    result, dev = solve(make_request([hp], {"consumption-price": prices_dict(cp)}))
    ref = solve_site(
        Site(dt, cp, devices=[Storage("hp", 20.0, lower, upper, cap, 0.0, cop, 1.0, keep, demand)])
    )
    assert result["cost"]["value"] == approx(ref.cost)
    p, s = dev["hp"]["power"], dev["hp"]["soc"]
    assert (p >= -1e-6).all() and (p <= cap + 1e-6).all()
    np.testing.assert_allclose(s, simulate_soc(p, 20.0, cop, 1.0, keep, demand, dt), atol=1e-6)
    assert (s >= lower - 1e-6).all() and (s <= upper + 1e-6).all()
    assert result["cost"]["value"] == approx(settle(p, cp, None, dt))


def test_two_limits_at_one_instant_the_tightest_holds(make_request, at):
    """soc-maxima 6 then 9 kWh at 01:00 (and soc-minima 2 then 1 kWh at 00:30): the tighter
    of each holds, whatever their order. Free energy at 0 EUR/MWh first and 100 after: the
    battery fills as far as it may by 01:00 (6 kWh, not 9) and keeps at least 2 at 00:30.
    Found by the independent reference: the later entry used to overwrite the earlier."""
    maxima = [{"datetime": at(4), "value": "6 kWh"}, {"datetime": at(4), "value": "9 kWh"}]
    minima = [{"datetime": at(2), "value": "2 kWh"}, {"datetime": at(2), "value": "1 kWh"}]
    fm = battery(**{"soc-at-start": "3 kWh", "soc-maxima": maxima, "soc-minima": minima})
    _, dev = solve(make_request(fm, {"consumption-price": prices([0] * 4 + [100] * 4)},
                                     steps=8))  # fmt: skip
    assert dev["battery"]["soc"][4] == approx(6.0)
    assert dev["battery"]["soc"][2] >= 2.0 - 1e-9
