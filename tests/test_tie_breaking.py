"""Deterministic tie-breaking (issue 13 item 3): ``prefer-charging-sooner`` and
``prefer-curtailing-later`` (FlexMeasures' fields, both default true).

The storage kind gives a secondary objective on its SoC (``-w[s] * soc[s]``, a fuller store
sooner is preferred: charge sooner, discharge later) in ``DeviceVars.extra["tie-break"]``;
:meth:`vpp.solver.HighsSolver.break_ties` minimises it on the optimal face of the site's
solve (what every optimum keeps at its bound stays fixed), so the cost cannot move. The
example battery (docs/examples/battery.json) exports its surplus at a flat feed-in price
after the 18:00 target, so every split of that export over the evening costs the same:
without a tie-break the LP vertex flips between covering the house only and exporting at
full power. The optimum's cost is checked against a hand-built highspy model of the same day
(not vpp's model), against the solve without tie-break, and, on random sites with flat price
stretches, against the reference MILP of tests/reference.py.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import highspy
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import Grid, site_from_json, site_violations, solve_site

from vpp.assets import storage
from vpp.site import SiteProblem, SiteSchedule, schedule

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "battery.json"
TARGET_STEP = 72  # 18:00, the soc-target
WINDOW = slice(74, 85)  # 18:30 .. 21:00


def _request(**flex: Any) -> dict[str, Any]:
    req: dict[str, Any] = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    req["flex-model"] = {**req["flex-model"], **flex}
    return req


def _solve(req: dict[str, Any]) -> tuple[SiteSchedule, SiteProblem]:
    """The site's schedule (tie-broken unless the request turns it off) and its problem."""
    problem = SiteProblem(copy.deepcopy(req))
    return problem.solve(), problem


def _export_runs(site_power: np.ndarray) -> int:
    """Number of separate runs of export steps after the target."""
    exporting = site_power[TARGET_STEP:] < -1e-6
    return int(exporting[0]) + int(np.count_nonzero(exporting[1:] & ~exporting[:-1]))


def _hand_built_cost() -> float:
    """The example day as a highspy LP written from the request (no vpp code): columns
    charge, discharge, soc (T+1), import, export per step."""
    req = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    cp = np.array(req["flex-context"]["consumption-price"]["values"]) / 1000.0  # EUR/kWh
    pp = np.full_like(cp, 30.0 / 1000.0)
    house = np.array(req["flex-context"]["inflexible-devices"]["house"]["values"])
    n, dt, eta, cap, site = cp.size, 0.25, 0.95, 10.0, 25.0
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    inf = highspy.kHighsInf
    ch = [h.addVariable(0, cap) for _ in range(n)]
    dis = [h.addVariable(0, cap) for _ in range(n)]
    soc = [h.addVariable(0, 40) for _ in range(n + 1)]
    imp = [h.addVariable(0, inf) for _ in range(n)]
    exp = [h.addVariable(0, inf) for _ in range(n)]
    h.addConstr(soc[0] == 10)
    h.addConstr(soc[TARGET_STEP] == 30)
    for t in range(n):
        h.addConstr(soc[t + 1] == soc[t] + dt * (eta * ch[t] - dis[t] * (1 / eta)))
        h.addConstr(imp[t] - exp[t] == ch[t] - dis[t] + house[t])
        h.addConstr(imp[t] - exp[t] <= site)
        h.addConstr(imp[t] - exp[t] >= -site)
    h.minimize(sum(dt * (cp[t] * imp[t] - pp[t] * exp[t]) for t in range(n)))
    assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return float(h.getInfo().objective_function_value)


def test_example_battery_does_not_flip_flop_and_keeps_its_cost() -> None:
    off, *_ = _solve(_request(**{"prefer-charging-sooner": False}))
    on, *_ = _solve(_request())
    # the problem the tie-break solves: without it, the evening export flips on and off
    assert _export_runs(off.site_power) > 1
    assert np.abs(np.diff(off.device_power["battery"][WINDOW])).max() > 5
    # with it: one run of export at the end (discharge later), no step-to-step flips
    assert _export_runs(on.site_power) == 1
    assert (on.site_power[WINDOW] > -1e-6).all()  # the battery only covers the house then
    assert np.abs(np.diff(on.device_power["battery"][WINDOW])).max() < 0.2
    reference = _hand_built_cost()
    assert off.cost == pytest.approx(reference, rel=1e-9)
    assert on.cost == pytest.approx(reference, rel=1e-9)


def test_cost_stays_at_the_optimum_on_random_days() -> None:
    """On the optimal face the cost stays at the optimum (to HiGHS' tolerances), on days
    where a tiny cost term moved the optimum (prices at 0.01 EUR/MWh resolution)."""
    rng = np.random.default_rng(7)
    for _ in range(5):
        req = _request(**{"soc-at-start": f"{rng.uniform(0, 40):.2f} kWh"})
        prices = np.round(rng.uniform(-20, 200, 96), 2).tolist()
        req["flex-context"]["consumption-price"]["values"] = prices
        req["flex-context"]["production-price"] = f"{rng.uniform(0, 60):.2f} EUR/MWh"
        on, *_ = _solve(req)
        plain = copy.deepcopy(req)
        plain["flex-model"]["prefer-charging-sooner"] = False
        off, *_ = _solve(plain)
        assert on.objective == pytest.approx(off.objective, rel=2e-9, abs=1e-9)
        assert on.cost == pytest.approx(off.cost, rel=2e-9, abs=1e-9)


def test_flat_prices_charge_sooner_and_discharge_later() -> None:
    """All schedules cost the same at flat prices: the charge needed for a late target is
    taken at the start, and a surplus is released at the end. (With feed-in at the tariff
    and no losses, cycling is free too, and the store would fill up first: FlexMeasures'
    "prefer a full storage sooner".)"""
    base: dict[str, Any] = {
        "start": "2026-03-02T00:00:00+01:00",
        "duration": "PT4H",
        "resolution": "PT15M",
        # feed-in below the tariff, so cycling through the store is not free
        "flex-context": {"consumption-price": "100 EUR/MWh", "production-price": "50 EUR/MWh"},
    }
    charge = {
        **base,
        "flex-model": {
            "soc-at-start": "0 kWh",
            "soc-max": "20 kWh",
            "power-capacity": "10 kW",
            "soc-targets": [{"datetime": "2026-03-02T04:00:00+01:00", "value": "5 kWh"}],
        },
    }
    on, *_ = _solve(charge)
    assert on.device_power["battery"][:2] == pytest.approx([10.0, 10.0])
    assert np.allclose(on.device_power["battery"][2:], 0.0, atol=1e-6)
    discharge = copy.deepcopy(charge)
    discharge["flex-model"]["soc-at-start"] = "10 kWh"
    on, *_ = _solve(discharge)
    assert np.allclose(on.device_power["battery"][:-2], 0.0, atol=1e-6)
    assert on.device_power["battery"][-2:] == pytest.approx([-10.0, -10.0])


def test_weights_follow_the_two_flags() -> None:
    problem = SiteProblem(_request())
    params = problem.inputs.devices[0][2]
    n = problem.horizon.steps
    sloped = storage.tie_break_weights(params, n)
    assert sloped is not None
    assert (sloped < 0).all() and (np.diff(sloped) > 0).all()  # fuller sooner weighs more
    assert sloped[0] == pytest.approx(-2.0, rel=0.02)
    assert sloped[-1] == pytest.approx(-1.0)
    flat = storage.tie_break_weights(
        SiteProblem(_request(**{"prefer-curtailing-later": False})).inputs.devices[0][2], n
    )
    assert flat is not None and np.allclose(flat, -1.0)
    off = SiteProblem(_request(**{"prefer-charging-sooner": False}))
    assert "tie-break" not in off.devices[0][0].extra


def test_schedule_applies_the_tie_break() -> None:
    """End to end through ``schedule()``: one export run, no flip-flopping."""
    result = schedule(_request())
    power = np.array(result["site"]["power"]["values"])
    assert _export_runs(power) == 1


def _mixed_site(seed: int) -> dict[str, Any]:
    """A random site with ties: prices flat over stretches of 4-12 steps, a lossless or lossy
    battery, sometimes an EV (charge only), a shiftable process and curtailable PV."""
    rng = np.random.default_rng(seed)
    steps = 24
    edges = np.sort(rng.choice(np.arange(1, steps), size=3, replace=False))
    levels = np.round(rng.uniform(-20, 150, 4), 1)
    prices = np.repeat(levels, np.diff([0, *edges, steps])).tolist()
    battery: dict[str, Any] = {
        "name": "battery",
        "soc-at-start": f"{rng.uniform(0, 10):.2f} kWh",
        "soc-max": "10 kWh",
        "power-capacity": f"{rng.choice([2, 4])} kW",
        "roundtrip-efficiency": str(rng.choice(["100%", "90%"])),
        "prefer-curtailing-later": bool(rng.random() < 0.5),
    }
    devices: list[dict[str, Any]] = [battery]
    if rng.random() < 0.5:
        devices.append(
            {
                "name": "ev",
                "soc-at-start": "5 kWh",
                "soc-max": "30 kWh",
                "consumption-capacity": "7 kW",
                "production-capacity": "0 kW",
                "soc-targets": [{"datetime": "2026-03-02T06:00:00+01:00", "value": "15 kWh"}],
            }
        )
    if rng.random() < 0.5:
        devices.append(
            {"name": "process", "type": "shiftable", "power": "2 kW", "duration": "PT1H"}
        )
    if rng.random() < 0.5:
        pv = np.round(np.clip(np.sin(np.linspace(0, np.pi, steps)) * 5, 0, None), 2).tolist()
        devices.append(
            {
                "name": "pv",
                "type": "generation",
                "production": {"values": pv, "unit": "kW"},
                "curtailable": True,
            }
        )
    return {
        "start": "2026-03-02T00:00:00+01:00",
        "duration": "PT6H",
        "resolution": "PT15M",
        "flex-model": devices,
        "flex-context": {
            "consumption-price": {"values": prices, "unit": "EUR/MWh"},
            "production-price": f"{rng.choice([0, 30, 60])} EUR/MWh",
            "site-power-capacity": "12 kW",
        },
    }


@settings(max_examples=25, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**31))
def test_tie_broken_schedules_cost_the_independent_optimum(seed: int) -> None:
    """With ties everywhere (flat prices), the tie-broken schedule is feasible and costs
    what the reference MILP (tests/reference.py, built without vpp) says is optimal."""
    request = _mixed_site(seed)
    plain = [
        {k: v for k, v in d.items() if not k.startswith("prefer-")} for d in request["flex-model"]
    ]
    site = site_from_json(Grid.of(request), plain, request["flex-context"])
    reference = solve_site(site, exclusive=True)
    result = schedule(copy.deepcopy(request))
    assert site_violations(site, result) == []
    assert result["cost"]["value"] == pytest.approx(reference.cost, rel=1e-7, abs=1e-7)
