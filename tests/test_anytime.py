"""Anytime solves (issue 13 item 9): a per-request ``time-limit``, the incumbent of a MILP
that hits it (status ``time-limited`` with its ``mip-gap``), and the day with a constant
200 EUR/MWh feed-in price whose import/export binaries used to leave a gap, checked for its
optimum against the independent reference (binaries at every step, no time limit).

Timing is not tested here: ``python benchmarks/site_schedule.py --case feed-in-200``
measures the pathological day (docs/benchmarks.md).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reference import Generation, Site, Storage, device_arrays, simulate_soc, solve_site

from vpp.errors import RequestValidationError, SolverError
from vpp.request import parse_request
from vpp.settings import get_settings
from vpp.site import SiteProblem, schedule

HOME = Path(__file__).resolve().parents[1] / "docs" / "examples" / "home.json"


def feed_in_200_day() -> dict[str, Any]:
    """The home example with a constant 200 EUR/MWh production price."""
    request: dict[str, Any] = json.loads(HOME.read_text())
    request["flex-context"]["production-price"] = "200 EUR/MWh"
    return request


@pytest.mark.parametrize("value", [0, -1, "soon", float("inf")])
def test_time_limit_must_be_a_positive_number(make_request, value):
    request = make_request({"soc-at-start": "0 kWh", "soc-max": "1 kWh", "power-capacity": "1 kW"})
    request["time-limit"] = value
    with pytest.raises(RequestValidationError) as err:
        parse_request(request)
    assert [i.field for i in err.value.issues] == ["time-limit"]
    assert err.value.http_status == 422


def test_time_limit_absent_means_the_configured_default(make_request, monkeypatch):
    request = make_request({"soc-at-start": "0 kWh", "soc-max": "1 kWh", "power-capacity": "1 kW"})
    assert parse_request(request).time_limit is None
    assert SiteProblem(request).time_limit == 60.0
    monkeypatch.setenv("VPP_SOLVE_TIME_LIMIT", "7.5")
    get_settings.cache_clear()
    try:
        assert SiteProblem(request).time_limit == 7.5
    finally:
        monkeypatch.delenv("VPP_SOLVE_TIME_LIMIT")
        get_settings.cache_clear()
    request["time-limit"] = 2.5
    assert parse_request(request).time_limit == 2.5
    assert schedule(request)["status"] == "finished"


def test_a_milp_hitting_its_limit_returns_its_incumbent():
    request = feed_in_200_day()
    request["time-limit"] = 1.0
    result = schedule(request)
    if result["status"] == "finished":  # a fast machine proved it within the limit
        pytest.skip("solved to optimality within 1 s")
    assert result["status"] == "time-limited"
    assert 0 <= result["mip-gap"] < 1
    check_feasible(request, result)


def test_no_schedule_within_the_limit_names_it():
    request = feed_in_200_day()
    request["time-limit"] = 1e-4
    try:
        result = schedule(request)
    except SolverError as err:
        assert "time-limit of 0.0001 s" in str(err)
        return
    assert result["status"] in ("time-limited", "finished")  # an incumbent that fast


def check_feasible(request: dict[str, Any], result: dict[str, Any]) -> None:
    """Re-check the schedule from the request: device powers within their ranges, the
    battery's SoC re-simulated within its bounds, the site within its capacity, and the cost
    recomputed from the site power."""
    dev = device_arrays(result)
    site = np.array(result["site"]["power"]["values"])
    assert np.all(np.abs(site) <= 17 + 1e-6)
    battery = dev["battery"]["power"]
    assert np.all(np.abs(battery) <= 5 + 1e-6)
    eta = 0.9**0.5
    soc = simulate_soc(battery, 4.0, eta, eta, 0.9999, 0.0, 0.25)
    assert soc.min() >= 1 - 1e-6 and soc.max() <= 13.5 + 1e-6
    assert abs(soc[-1] - 4.0) <= 1e-6
    pv = -dev["pv"]["power"]
    forecast = np.array(
        next(d for d in request["flex-model"] if d["name"] == "pv")["production"]["values"]
    )
    assert np.all(pv >= -1e-6) and np.all(pv <= forecast + 1e-6)
    cp = np.array(request["flex-context"]["consumption-price"]["values"])
    cost = 0.25 / 1000 * (cp @ np.maximum(site, 0) - 200 * np.maximum(-site, 0).sum())
    assert result["cost"]["value"] == pytest.approx(cost, rel=1e-6, abs=1e-6)


def small_feed_in_day(start: int, steps: int) -> tuple[dict[str, Any], Site]:
    """``steps`` quarter-hours of the 200 EUR/MWh day from step ``start``: battery, PV and
    house, as a request and as the reference's site."""
    day = feed_in_200_day()
    devices = {d["name"]: d for d in day["flex-model"]}
    window = slice(start, start + steps)
    cp = day["flex-context"]["consumption-price"]["values"][window]
    house = day["flex-context"]["inflexible-devices"]["house"]["values"][window]
    pv = devices["pv"]["production"]["values"][window]
    battery = {k: v for k, v in devices["battery"].items() if k != "soc-targets"}
    request = copy.deepcopy(day)
    request["start"] = f"2026-03-02T{start // 4:02d}:{start % 4 * 15:02d}:00+01:00"
    request["duration"] = f"PT{steps * 15}M"
    request["flex-model"] = [
        battery,
        {**devices["pv"], "production": {"values": pv, "unit": "kW"}},
    ]
    request["flex-context"] = {
        "consumption-price": {"values": cp, "unit": "EUR/MWh"},
        "production-price": "200 EUR/MWh",
        "site-power-capacity": "17 kW",
        "inflexible-devices": {"house": {"values": house, "unit": "kW"}},
    }
    eta = 0.9**0.5
    site = Site(
        0.25,
        np.array(cp),
        np.full(steps, 200.0),
        consumption_capacity=17.0,
        production_capacity=17.0,
        inflexible=np.array(house),
        devices=[
            Storage("battery", 4.0, 1.0, 13.5, 5.0, 5.0, eta, eta, keep=0.9999),
            Generation("pv", np.array(pv), curtailable=True),
        ],
    )
    return request, site


@pytest.mark.parametrize("start", [28, 44, 60])
def test_feed_in_200_optimum_matches_the_full_binary_reference(start):
    request, site = small_feed_in_day(start, 16)
    reference = solve_site(site, exclusive=True)
    assert reference.status == "optimal"
    result = schedule(request)
    assert result["status"] == "finished"
    assert "mip-gap" not in result
    assert result["cost"]["value"] == pytest.approx(reference.cost, rel=1e-6, abs=1e-7)
    site_power = np.array(result["site"]["power"]["values"])
    # never importing and exporting at once: the settled cost is that of the net power
    cost = (
        0.25
        / 1000
        * (
            site.consumption_price @ np.maximum(site_power, 0)
            - 200 * np.maximum(-site_power, 0).sum()
        )
    )
    assert result["cost"]["value"] == pytest.approx(cost, rel=1e-6, abs=1e-7)
