"""Infeasible requests raise InfeasibleError naming the constraint family, time and device.

Expected times are derived here from the SoC arithmetic (not read from vpp): with
``dt = 0.25 h``, a 10 kW battery at 95 % gains at most 2.375 kWh per step, etc.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from reference import random_site, solve_site

from vpp.errors import InfeasibleError, RequestValidationError
from vpp.site import SiteProblem, schedule

START = datetime.fromisoformat("2026-03-02T00:00:00+01:00")
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
BATTERY = {
    "soc-at-start": "10 kWh",
    "soc-max": "40 kWh",
    "power-capacity": "10 kW",
    "charging-efficiency": "95%",
    "discharging-efficiency": "95%",
}


def t(k: int, minutes: int = 15) -> datetime:
    return START + k * timedelta(minutes=minutes)


def infeasible(request: dict[str, Any]) -> InfeasibleError:
    with pytest.raises(InfeasibleError) as info:
        SiteProblem(request).solve()
    err = info.value
    assert ISO_TIME.search(err.message), err.message
    body = err.to_problem()
    assert body["status"] == 422 and body["constraint"] == err.constraint
    return err


def first_step(condition: Any) -> int:
    """Smallest k >= 1 for which condition(k) holds."""
    return next(k for k in range(1, 10_000) if condition(k))


def test_unreachable_target(make_request):
    # from 10 kWh, at most 10 kW * 0.95 * 0.25 h = 2.375 kWh per step: 40 kWh at 01:00
    # (4 steps) is out of reach (19.5 kWh)
    fm = {
        **BATTERY,
        "name": "ev",
        "soc-targets": [{"datetime": t(4).isoformat(), "value": "40 kWh"}],
    }
    err = infeasible(make_request([fm, {**BATTERY, "name": "home"}]))
    assert err.constraint == "soc-targets"
    assert err.time == t(4)
    assert err.device == "ev"


def test_unreachable_target_of_second_target(make_request):
    # the first target is reachable (12 kWh after 1 step); the second asks +20 kWh in 2 steps
    fm = {
        **BATTERY,
        "soc-targets": [
            {"datetime": t(1).isoformat(), "value": "12 kWh"},
            {"datetime": t(3).isoformat(), "value": "32 kWh"},
        ],
    }
    err = infeasible(make_request(fm))
    assert (err.constraint, err.time, err.device) == ("soc-targets", t(3), "battery")


def test_target_after_ev_leaves(make_request):
    # plugged in for the first hour only: at most 10 + 4 * 2.375 = 19.5 kWh by 10:00
    fm = {
        **BATTERY,
        "availability": [{"start": t(0).isoformat(), "end": t(4).isoformat()}],
        "soc-targets": [{"datetime": t(40).isoformat(), "value": "30 kWh"}],
    }
    err = infeasible(make_request(fm))
    assert (err.constraint, err.time, err.device) == ("soc-targets", t(40), "battery")


def test_soc_max_exceeded_by_soc_gain(make_request):
    # gain 20 kW, discharging at most 10 kW / 0.95: the store fills by
    # 0.25 * (20 - 10/0.95) kWh each step from 30 kWh, and passes 40 kWh at step k
    fm = {**BATTERY, "soc-at-start": "30 kWh", "soc-gain": "20 kW"}
    k = first_step(lambda k: 30 + k * 0.25 * (20 - 10 / 0.95) > 40)
    err = infeasible(make_request(fm))
    assert (err.constraint, err.time, err.device) == ("soc-max", t(k), "battery")


def test_soc_maxima_exceeded_by_soc_gain(make_request):
    fm = {
        **BATTERY,
        "soc-gain": "20 kW",
        "soc-maxima": [{"datetime": t(2).isoformat(), "value": "11 kWh"}],
    }
    # at least 10 + 2 * 0.25 * (20 - 10/0.95) = 14.7 kWh at step 2 > 11 kWh
    err = infeasible(make_request(fm))
    assert (err.constraint, err.time, err.device) == ("soc-maxima", t(2), "battery")


def test_soc_min_undercut_by_usage(make_request):
    # usage 20 kW, charging at most 9.5 kWh/h into the store: -2.625 kWh per step from 10
    fm = {**BATTERY, "soc-usage": "20 kW", "soc-min": "2 kWh"}
    k = first_step(lambda k: 10 - k * 0.25 * (20 - 9.5) < 2)
    err = infeasible(make_request(fm))
    assert (err.constraint, err.time, err.device) == ("soc-min", t(k), "battery")


def test_heat_buffer_cannot_meet_demand(make_request):
    # 1 kW electric at COP 3 gives 3 kW heat, demand 4 kW: the empty buffer runs dry at once
    hp = {
        "type": "heat",
        "name": "hp",
        "soc-at-start": "0 kWh",
        "soc-max": "5 kWh",
        "power-capacity": "1 kW",
        "cop": 3,
        "heat-demand": "4 kW",
    }
    err = infeasible(make_request([hp]))
    assert (err.constraint, err.time, err.device) == ("soc-min", t(1), "hp")


@pytest.mark.parametrize(
    ("field", "constraint"),
    [
        ("site-power-capacity", "site-power-capacity"),
        ("site-consumption-capacity", "site-consumption-capacity"),
    ],
)
def test_site_capacity_below_inflexible_load(make_request, field, constraint):
    # the house draws 30 kW at step 10; the battery can cover at most 10 kW of it
    house = [1.0] * 96
    house[10] = 30.0
    ctx = {
        "consumption-price": "50 EUR/MWh",
        field: "5 kW",
        "inflexible-devices": {"house": {"values": house, "unit": "kW"}},
    }
    err = infeasible(make_request(BATTERY, ctx))
    assert err.constraint == constraint
    assert err.time == t(10)
    assert err.device is None


def test_site_production_capacity_below_fixed_generation(make_request):
    pv = {
        "type": "generation",
        "name": "pv",
        "production": {"values": [0.0] * 40 + [20.0] * 56, "unit": "kW"},
    }
    ctx = {"consumption-price": "50 EUR/MWh", "site-production-capacity": "5 kW"}
    err = infeasible(make_request([pv], ctx))
    assert err.constraint in ("site-production-capacity", "site-power-capacity")
    assert err.time == t(40)


def test_site_capacity_forces_discharge_beyond_energy(make_request):
    # house 15 kW on a 10 kW connection: the battery must give 5 kW every hour; from
    # 10 kWh it is empty after 2 h and cannot give the third hour's 5 kWh
    ctx = {
        "consumption-price": "50 EUR/MWh",
        "site-power-capacity": "10 kW",
        "inflexible-devices": {"house": "15 kW"},
    }
    fm = {"soc-at-start": "10 kWh", "soc-max": "40 kWh", "power-capacity": "10 kW"}
    err = infeasible(make_request(fm, ctx, steps=4, minutes=60))
    assert err.time is not None
    assert err.constraint in ("soc-min", "site-power-capacity")
    if err.constraint == "soc-min":
        k = first_step(lambda k: 10 - 5 * k < 0)
        assert err.time == t(k, 60)
        assert err.device == "battery"


def test_coupled_infeasibility_of_two_batteries(make_request):
    # each battery alone could give the 5 kW the connection lacks, but together they hold
    # 6 kWh and 4 h need 20 kWh: only the joint model sees it
    ctx = {
        "consumption-price": "50 EUR/MWh",
        "site-power-capacity": "10 kW",
        "inflexible-devices": {"house": "15 kW"},
    }
    b = {"soc-at-start": "3 kWh", "soc-max": "40 kWh", "power-capacity": "5 kW"}
    request = make_request([{**b, "name": "a"}, {**b, "name": "b"}], ctx, steps=4, minutes=60)
    err = infeasible(request)
    assert err.constraint and err.constraint != "unknown"
    with pytest.raises(InfeasibleError):
        schedule(request)


def test_power_fixed_beyond_capacity(make_request):
    fm = {
        **BATTERY,
        "power-fixed": [{"start": t(8).isoformat(), "duration": "PT1H", "value": "20 kW"}],
    }
    err = infeasible(make_request(fm))
    assert (err.constraint, err.time, err.device) == ("power-fixed", t(8), "battery")


def test_minima_above_maxima_at_one_instant(make_request):
    fm = {
        **BATTERY,
        "soc-minima": [{"datetime": t(8).isoformat(), "value": "20 kWh"}],
        "soc-maxima": [{"datetime": t(8).isoformat(), "value": "15 kWh"}],
    }
    with pytest.raises((InfeasibleError, RequestValidationError)) as info:
        SiteProblem(make_request(fm)).solve()
    if isinstance(info.value, InfeasibleError):
        assert info.value.time == t(8)


# -- random targets: vpp is infeasible exactly when the reference is ------------------------


@pytest.mark.parametrize("seed", range(16))
def test_infeasible_exactly_when_reference_is(seed):
    rng = np.random.default_rng(1000 + seed)
    case = random_site(
        rng,
        steps=24,
        minutes=60,
        n_storage=int(rng.integers(1, 3)),
        usage=bool(seed % 2),
        capacity=bool(seed % 3),
        keep=bool(seed % 4 == 0),
    )
    # replace the (feasible) trajectory's targets by random ones: some cannot be reached
    for s, model in zip(case.storages, case.request["flex-model"], strict=True):
        k = int(rng.integers(1, 7))  # early: often out of reach
        value = float(rng.uniform(s.soc_min, s.soc_max))
        model["soc-targets"] = [{"datetime": t(k, 60).isoformat(), "value": f"{value!r} kWh"}]
        s.lower = np.full(25, s.soc_min)
        s.upper = np.full(25, s.soc_max)
        s.lower[k] = s.upper[k] = value
    for dev, s in zip(case.site.devices, case.storages, strict=True):
        dev.lower, dev.upper = s.lower, s.upper
    ref = solve_site(case.site)
    try:
        result = schedule(case.request)
    except InfeasibleError as err:
        assert math.isnan(ref.cost), f"vpp infeasible ({err}) but the reference solved it"
        assert err.time is not None and ISO_TIME.search(err.message)
        if err.constraint == "soc-targets":  # then it names a device whose target is then
            named = case.request["flex-model"][int(err.device.rsplit("-", 1)[1])]
            assert named["soc-targets"][0]["datetime"] == err.time.isoformat()
        return
    assert not math.isnan(ref.cost), "vpp solved a request the reference finds infeasible"
    assert result["cost"]["value"] == pytest.approx(ref.cost, rel=1e-6, abs=1e-9)
