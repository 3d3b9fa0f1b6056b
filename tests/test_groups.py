"""Groups of devices with shared limits inside a site (flex-context ``groups``, vpp/groups.py).

Each schedule is judged against hand-derived numbers (derived in the comments) and against
the independent reference LP (``reference.Group`` rows: ``-production <= sum of members'
power <= consumption``, built with highspy, nesting expanded by hand), never against vpp's own
output. Infeasibility must name the group and the time; bad groups give 422s naming the field.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import (
    FixedLoad,
    Generation,
    Grid,
    Group,
    Site,
    Storage,
    device_arrays,
    portfolio_reference,
    random_site,
    site_from_json,
    site_violations,
    solve_site,
)

from vpp.errors import InfeasibleError, RequestValidationError
from vpp.site import SiteProblem, schedule, validate_site_request

START = "2026-03-02T00:00:00+01:00"
REL, ABS = 1e-6, 1e-9
DOCS = Path(__file__).resolve().parent.parent / "docs" / "flex-model.md"


def approx(value: Any) -> Any:
    return pytest.approx(value, rel=REL, abs=ABS)


def compact(values: list[float], unit: str) -> dict[str, Any]:
    return {"values": [float(v) for v in values], "unit": unit}


def at(hour: int) -> str:
    return f"2026-03-02T{hour:02d}:00:00+01:00"


def request(
    flex_model: list[dict[str, Any]], context: dict[str, Any], hours: int
) -> dict[str, Any]:
    return {
        "start": START,
        "duration": f"PT{hours}H",
        "resolution": "PT1H",
        "flex-model": flex_model,
        "flex-context": context,
    }


def reference_of(req: dict[str, Any]) -> Site:
    """The reference site read from the request JSON by hand (groups included)."""
    return site_from_json(Grid.of(req), req["flex-model"], req["flex-context"])


def check_against_reference(req: dict[str, Any]) -> dict[str, Any]:
    """Solve ``req``; its cost equals the reference optimum and its schedule keeps every
    constraint of the reference site, group limits included. Returns the result JSON."""
    result = schedule(req)
    site = reference_of(req)
    ref = solve_site(site)
    assert ref.status == "optimal"
    assert result["cost"]["value"] == pytest.approx(ref.cost, rel=1e-6, abs=1e-7)
    assert site_violations(site, result) == []
    return result


# -- hybrid inverter: PV and battery behind one 5 kW inverter ------------------------------------


def hybrid(groups: list[dict[str, Any]] | None) -> dict[str, Any]:
    """3 hourly steps; prices 10, 100, 90 EUR/MWh (sold at the same); PV 3 kW in the first
    hour; a 10 kW / 20 kWh battery starting empty."""
    context: dict[str, Any] = {"consumption-price": compact([10, 100, 90], "EUR/MWh")}
    if groups is not None:
        context["groups"] = groups
    return request(
        [
            {
                "name": "battery",
                "soc-at-start": "0 kWh",
                "soc-max": "20 kWh",
                "power-capacity": "10 kW",
            },
            {"name": "pv", "type": "generation", "production": compact([3, 0, 0], "kW")},
        ],
        context,
        3,
    )


INVERTER = [{"name": "inverter", "devices": ["battery", "pv"], "power-capacity": "5 kW"}]


def test_hybrid_inverter_limits_grid_charging():
    # Through the 5 kW inverter: battery + pv <= 5, so with PV at -3 kW the battery charges
    # at most 8 kW in hour 0 (3 from PV, 5 from the grid), and discharges at most 5 kW per
    # hour. Charging at 10 and selling at 100/90 pays, so: +8, then -5 at 100, -3 at 90.
    # Cost: 5 kW * 10 - 5 kW * 100 - 3 kW * 90 = 0.05 - 0.5 - 0.27 = -0.72 EUR.
    result = check_against_reference(hybrid(INVERTER))
    dev = device_arrays(result)
    np.testing.assert_allclose(dev["battery"]["power"], [8, -5, -3], atol=1e-7)
    np.testing.assert_allclose(result["site"]["power"]["values"], [5, -5, -3], atol=1e-7)
    assert result["cost"]["value"] == approx(-0.72)
    # without the inverter: charge 10 (7 from the grid), sell 10 at 100: 0.07 - 1.0
    assert schedule(hybrid(None))["cost"]["value"] == approx(-0.93)


def test_hybrid_inverter_against_a_hand_built_model():
    """The reference model itself, built from the equations (not read from JSON)."""
    site = Site(
        1.0,
        np.array([10.0, 100.0, 90.0]),
        devices=[
            Storage("battery", 0.0, 0.0, 20.0, 10.0, 10.0),
            Generation("pv", np.array([3.0, 0.0, 0.0])),
        ],
        groups=[Group("inverter", ["battery", "pv"], 5.0, 5.0)],
    )
    ref = solve_site(site)
    assert ref.cost == approx(-0.72)
    np.testing.assert_allclose(ref.power["battery"], [8, -5, -3], atol=1e-7)


def test_groups_absent_or_empty_change_nothing():
    plain = schedule(hybrid(None))
    assert schedule(hybrid([])) == plain
    assert list(validate_site_request(hybrid(None)).groups) == []


# -- which capacity holds: every optional field absent and present --------------------------------


@pytest.mark.parametrize(
    ("fields", "consumption", "production"),
    [
        ({"power-capacity": "5 kW"}, 5.0, 5.0),
        ({"consumption-capacity": "5 kW"}, 5.0, np.inf),
        ({"production-capacity": "4 kW"}, np.inf, 4.0),
        ({"consumption-capacity": "6 kW", "production-capacity": "4 kW"}, 6.0, 4.0),
        ({"power-capacity": "5 kW", "consumption-capacity": "7 kW"}, 5.0, 5.0),
        ({"power-capacity": "5 kW", "production-capacity": "2 kW"}, 5.0, 2.0),
        (
            {
                "power-capacity": "9 kW",
                "consumption-capacity": "6 kW",
                "production-capacity": "4 kW",
            },
            6.0,
            4.0,
        ),
    ],
)
def test_capacity_defaults(fields, consumption, production):
    """consumption-/production-capacity default to power-capacity, the tighter holds, and a
    direction given by none is unlimited: checked against a hand-built reference site."""
    req = hybrid([{"name": "inverter", "devices": ["battery", "pv"], **fields}])
    result = schedule(req)
    site = Site(
        1.0,
        np.array([10.0, 100.0, 90.0]),
        devices=[
            Storage("battery", 0.0, 0.0, 20.0, 10.0, 10.0),
            Generation("pv", np.array([3.0, 0.0, 0.0])),
        ],
        groups=[Group("inverter", ["battery", "pv"], consumption, production)],
    )
    ref = solve_site(site)
    assert result["cost"]["value"] == pytest.approx(ref.cost, rel=1e-6, abs=1e-7)
    assert site_violations(site, result) == []


def test_time_varying_capacity_with_segments():
    """A segment capacity limits only where it is given: unlimited elsewhere."""
    group = {
        "name": "inverter",
        "devices": ["battery", "pv"],
        "production-capacity": [{"start": at(1), "end": at(2), "value": "2 kW"}],
    }
    result = check_against_reference(hybrid([group]))
    # hour 1 sells at most 2 kW; the rest sells in hour 2 at 90: charge 10, -2, -8
    np.testing.assert_allclose(device_arrays(result)["battery"]["power"], [10, -2, -8], atol=1e-7)
    assert result["cost"]["value"] == approx(0.07 - 0.2 - 0.72)


# -- nested groups: a feeder inside a factory -----------------------------------------------------


def factory(ev_target: float, heater: float = 4.0, factory_cap: str = "14 kW") -> dict[str, Any]:
    """Two 11 kW EVs starting empty that need ``ev_target`` kWh each after 2 hours, on a
    12 kW feeder, inside a factory limited to ``factory_cap`` that also feeds a heater
    (a flex-context inflexible device); prices 100 then 300 EUR/MWh."""

    def ev(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "soc-at-start": "0 kWh",
            "soc-max": "40 kWh",
            "power-capacity": "11 kW",
            "production-capacity": "0 kW",
            "soc-targets": [{"datetime": at(2), "value": f"{ev_target} kWh"}],
        }

    return request(
        [ev("ev-1"), ev("ev-2")],
        {
            "consumption-price": compact([100, 300], "EUR/MWh"),
            "inflexible-devices": {"heater": f"{heater} kW"},
            "groups": [
                {"name": "factory", "devices": ["feeder", "heater"], "power-capacity": factory_cap},
                {"name": "feeder", "devices": ["ev-1", "ev-2"], "consumption-capacity": "12 kW"},
            ],
        },
        2,
    )


def test_nested_feeder_inside_factory():
    # Feeder: ev-1 + ev-2 <= 12; factory: ev-1 + ev-2 + 4 (heater) <= 14, so the EVs share
    # 10 kW per hour. 18 kWh in all, cheapest first: 10 kW in hour 0, 8 kW in hour 1.
    # Site power 14, 12; cost 14 * 0.1 + 12 * 0.3 = 5.0 EUR (the feeder alone: 12 + 6,
    # 16 * 0.1 + 10 * 0.3 = 4.6 EUR).
    result = check_against_reference(factory(9.0))
    np.testing.assert_allclose(result["site"]["power"]["values"], [14, 12], atol=1e-7)
    assert result["cost"]["value"] == approx(5.0)
    alone = factory(9.0)
    alone["flex-context"]["groups"] = alone["flex-context"]["groups"][1:]
    alone["flex-context"]["groups"][0]["devices"] = ["ev-1", "ev-2"]
    assert schedule(alone)["cost"]["value"] == approx(4.6)


def test_nested_groups_expand_once():
    inputs = validate_site_request(factory(9.0))
    members = {g.name: g.members for g in inputs.groups}
    assert members == {"factory": ("ev-1", "ev-2", "heater"), "feeder": ("ev-1", "ev-2")}
    np.testing.assert_allclose(inputs.groups[0].inflexible, [4, 4])


def test_infeasible_group_names_the_group_and_the_time():
    # 2 x 11 kWh in 2 hours needs 22 kWh; the factory leaves the EVs 10 kW per hour: 20 kWh.
    with pytest.raises(InfeasibleError) as err:
        SiteProblem(factory(11.0)).solve()
    assert "group factory at 2026-03-02T00:00:00+01:00" in err.value.message
    assert err.value.constraint == "group-consumption-capacity"
    assert err.value.device == "factory"
    assert err.value.time is not None and err.value.time.isoformat() == START


def test_fixed_power_above_a_group_is_named_before_solving():
    # the heater alone (4 kW) is above the factory's 3 kW at 00:00
    with pytest.raises(InfeasibleError) as err:
        SiteProblem(factory(1.0, heater=4.0, factory_cap="3 kW"))
    assert err.value.constraint == "group-consumption-capacity"
    assert err.value.device == "factory"
    assert err.value.time is not None and err.value.time.isoformat() == START
    assert "group 'factory'" in err.value.message and "flex-context.groups[0]" in err.value.message


def test_a_device_precheck_sees_what_its_group_leaves():
    # ev-1 alone: the feeder (6 kW) leaves it 6 kW per hour, 12 kWh in 2 hours < 15 kWh: the
    # storage's pre-check names its soc-targets, not an IIS of the whole site
    req = factory(15.0, factory_cap="30 kW")
    req["flex-model"] = req["flex-model"][:1]
    req["flex-context"]["groups"][1] = {
        "name": "feeder",
        "devices": ["ev-1"],
        "consumption-capacity": "6 kW",
    }
    with pytest.raises(InfeasibleError) as err:
        SiteProblem(req)
    assert err.value.device == "ev-1"
    assert "soc-target" in err.value.constraint


# -- a charge-point cluster ------------------------------------------------------------------------


def cluster() -> dict[str, Any]:
    """Three 11 kW charge points on a 22 kW cluster, limited to 11 kW from 17:00 to 19:00,
    beside a 3 kW office load; each charge point has a target in the morning or evening."""
    hours = 24
    prices = [60 + 40 * np.sin(np.pi * (h - 5) / 12) for h in range(hours)]
    cap = [11.0 if 17 <= h < 19 else 22.0 for h in range(hours)]
    evs = [
        {
            "name": f"cp-{k}",
            "soc-at-start": f"{5 + 5 * k} kWh",
            "soc-max": "60 kWh",
            "power-capacity": "11 kW",
            "production-capacity": "0 kW",
            "soc-targets": [{"datetime": at(7 + 5 * k), "value": f"{30 + 5 * k} kWh"}],
        }
        for k in range(3)
    ]
    return request(
        evs,
        {
            "consumption-price": compact([round(p, 2) for p in prices], "EUR/MWh"),
            "inflexible-devices": {"office": "3 kW"},
            "groups": [
                {
                    "name": "cluster",
                    "devices": ["cp-0", "cp-1", "cp-2"],
                    "consumption-capacity": compact(cap, "kW"),
                }
            ],
        },
        hours,
    )


def test_charge_point_cluster():
    result = check_against_reference(cluster())
    dev = device_arrays(result)
    summed = sum(dev[f"cp-{k}"]["power"] for k in range(3))
    assert summed.max() <= 22 + 1e-7
    assert summed[17:19].max() <= 11 + 1e-7
    free = copy.deepcopy(cluster())
    del free["flex-context"]["groups"]
    assert schedule(free)["cost"]["value"] < result["cost"]["value"] - 1e-6  # it binds


# -- validation: 422s naming the field -------------------------------------------------------------


def _bad(change: Any) -> RequestValidationError:
    req = factory(9.0)
    change(req["flex-context"]["groups"])
    with pytest.raises(RequestValidationError) as err:
        validate_site_request(req)
    return err.value


def _set(i: int, key: str, value: Any) -> Any:
    def change(groups: list[dict[str, Any]]) -> None:
        groups[i][key] = value

    return change


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (_set(1, "devices", ["ev-1", "ev-3"]), "flex-context.groups[1].devices[1]", "ev-3"),
        (_set(1, "name", "factory"), "flex-context.groups[1].name", "groups[0]"),
        (_set(1, "name", "ev-1"), "flex-context.groups[1].name", "name of a device"),
        (_set(1, "name", "heater"), "flex-context.groups[1].name", "name of a device"),
        (_set(1, "devices", ["ev-1", "factory"]), "flex-context.groups[1].devices[1]", "cycle"),
        (_set(0, "devices", ["factory"]), "flex-context.groups[0].devices[0]", "cycle"),
        (
            _set(0, "devices", ["feeder", "ev-2", "heater"]),
            "flex-context.groups[0].devices[1]",
            "already in group 'factory' through 'feeder'",
        ),
        (_set(1, "devices", ["ev-1", "ev-1"]), "flex-context.groups[1].devices[1]", "twice"),
        (_set(1, "consumption-capacity", "-1 kW"), "flex-context.groups[1].consumption-capacity",
         "negative"),
        (_set(0, "power-capacity", "5 kWh"), "flex-context.groups[0].power-capacity", ""),
        (_set(0, "power-capacity", compact([1, 2, 3], "kW")),
         "flex-context.groups[0].power-capacity", "3 values"),
        (_set(1, "devices", []), "flex-context.groups[1].devices", ""),
        (_set(1, "colour", "red"), "flex-context.groups[1].colour", "unknown field"),
        (_set(1, "name", ""), "flex-context.groups[1].name", ""),
    ],
)  # fmt: skip
def test_bad_groups_name_the_field(change, field, words):
    err = _bad(change)
    messages = {i.field: i.message for i in err.issues}
    assert field in messages, err.issues
    assert words in messages[field]
    assert err.http_status == 422


def test_missing_capacity_and_missing_fields():
    err = _bad(lambda groups: groups[1].pop("consumption-capacity"))
    assert [i.field for i in err.issues] == ["flex-context.groups[1]"]
    assert "power-capacity" in err.issues[0].message
    err = _bad(lambda groups: groups[1].pop("devices"))
    assert [(i.field, i.message) for i in err.issues] == [
        ("flex-context.groups[1].devices", "required")
    ]
    err = _bad(lambda groups: groups[1].pop("name"))
    assert [(i.field, i.message) for i in err.issues] == [
        ("flex-context.groups[1].name", "required")
    ]


def test_every_problem_reported_at_once():
    def change(groups: list[dict[str, Any]]) -> None:
        groups[0]["power-capacity"] = "-2 kW"
        groups[1]["devices"] = ["nobody"]

    fields = {i.field for i in _bad(change).issues}
    assert fields == {"flex-context.groups[1].devices[0]"}  # names first: nothing to flatten
    fields = {i.field for i in _bad(_set(0, "power-capacity", "-2 kW")).issues}
    assert fields == {"flex-context.groups[0].power-capacity"}


# -- a grouped site in a portfolio -----------------------------------------------------------------


def test_grouped_sites_in_a_portfolio():
    """The centralised portfolio and ADMM keep every site's group and reach the independent
    reference optimum, which holds all sites and their groups in one HiGHS model."""
    from vpp.portfolio import CentralisedPortfolio

    site_a = hybrid(INVERTER)
    site_b = factory(9.0)
    site_b["flex-context"]["consumption-price"] = site_a["flex-context"]["consumption-price"]
    site_b["flex-context"]["groups"][0]["power-capacity"] = "15 kW"
    for ev in site_b["flex-model"]:
        ev["soc-targets"] = [{"datetime": at(3), "value": "9 kWh"}]
    req = {
        "start": START,
        "duration": "PT3H",
        "resolution": "PT1H",
        "flex-context": {"consumption-price": compact([10, 100, 90], "EUR/MWh")},
        "sites": [
            {"id": "home", "flex-model": site_a["flex-model"],
             "flex-context": {"groups": INVERTER}},
            {"id": "factory", "flex-model": site_b["flex-model"],
             "flex-context": {k: v for k, v in site_b["flex-context"].items()
                              if k != "consumption-price"}},
        ],
        "target": {"type": "congestion", "congestion-point": "EAN1", "max-consumption": "16 kW"},
    }  # fmt: skip
    ref = portfolio_reference(req)
    assert ref.status == "optimal"
    free = portfolio_reference({**req, "target": None})
    assert ref.cost > free.cost + 1e-6  # the congestion limit binds
    result = CentralisedPortfolio(req).solve()
    assert result.cost == pytest.approx(ref.cost, rel=1e-6, abs=1e-7)
    body = result.to_json()
    sites = {sid: reference_of_portfolio(req, sid) for sid in ("home", "factory")}
    for entry in body["sites"]:
        assert site_violations(sites[entry["id"]], entry) == [], entry["id"]
    admm = copy.deepcopy(req) | {"method": "admm"}
    from test_portfolio import admm as run_admm

    out, _ = run_admm(admm)
    assert out.cost >= ref.cost - 1e-6
    assert out.cost <= ref.cost + 1e-3 * abs(ref.cost)
    for entry in out.to_json()["sites"]:
        assert site_violations(sites[entry["id"]], entry) == [], entry["id"]


def reference_of_portfolio(req: dict[str, Any], sid: str) -> Site:
    from reference import portfolio_sites

    return portfolio_sites(req)[sid]


# -- properties ------------------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(
    max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def _span(site: Site, name: str) -> float:
    """The most power, either way, a device of the reference site can take."""
    dev = next(d for d in site.devices if d.name == name)
    if isinstance(dev, Storage):
        return float(np.max(np.maximum(dev.charge_max, dev.discharge_max)))
    if isinstance(dev, FixedLoad):
        return float(np.max(np.abs(dev.power)))
    assert isinstance(dev, Generation)
    return float(np.max(dev.forecast))


@PROPERTY_SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n_storage=st.integers(1, 3),
    house=st.booleans(),
    split=st.booleans(),
)
def test_a_loose_group_changes_nothing(seed, n_storage, house, split):
    """A group whose capacity is at least the sum of its members' capacities changes
    nothing: the same optimal cost as without it (both against the reference)."""
    case = random_site(np.random.default_rng(seed), steps=24, minutes=60, n_storage=n_storage)
    names = [d["name"] for d in case.request["flex-model"]]
    loose = sum(_span(case.site, n) for n in names) + 1.0
    members = [*names, "house"] if house else names
    if house:
        loose += float(np.max(np.abs(case.site.inflexible)))
    caps = (
        {"consumption-capacity": f"{loose} kW", "production-capacity": f"{loose + 1} kW"}
        if split
        else {"power-capacity": f"{loose} kW"}
    )
    grouped = copy.deepcopy(case.request)
    grouped["flex-context"]["groups"] = [{"name": "all", "devices": members, **caps}]
    plain = schedule(case.request)["cost"]["value"]
    assert schedule(grouped)["cost"]["value"] == pytest.approx(plain, rel=1e-7, abs=1e-7)
    assert plain == pytest.approx(solve_site(case.site).cost, rel=1e-6, abs=1e-7)


@PROPERTY_SETTINGS
@given(seed=st.integers(0, 2**32 - 1), slack=st.floats(0.0, 2.0), nested=st.booleans())
def test_a_binding_group_matches_the_reference(seed, slack, nested):
    """A group sized just above the feasible trajectory the random site was built around
    (so it stays feasible but usually binds): the same cost as the reference optimum, and
    the schedule keeps the group."""
    case = random_site(np.random.default_rng(seed), steps=24, minutes=60, n_storage=2)
    summed = sum(s.trajectory for s in case.storages)
    cap_c = float(max(summed.max(), 0.0)) + slack
    cap_p = float(max(-summed.min(), 0.0)) + slack
    grouped = copy.deepcopy(case.request)
    inner = {
        "name": "inner",
        "devices": ["battery-0"],
        "power-capacity": f"{float(np.abs(case.storages[0].trajectory).max()) + slack} kW",
    }
    outer = {
        "name": "outer",
        "devices": ["inner" if nested else "battery-0", "battery-1"],
        "consumption-capacity": f"{cap_c} kW",
        "production-capacity": f"{cap_p} kW",
    }
    grouped["flex-context"]["groups"] = [outer, inner] if nested else [outer]
    check_against_reference(grouped)


# -- the worked example in docs/flex-model.md ----------------------------------------------------


def test_docs_worked_example():
    text = DOCS.read_text()
    section = text[text.index("## Groups: shared limits inside a site") :]
    blocks = re.findall(r"```json\n(.*?)```", section, flags=re.S)
    req, expected = json.loads(blocks[0]), json.loads(blocks[1])
    result = check_against_reference(req)
    assert result["cost"]["value"] == approx(expected["cost"]["value"])
    dev = device_arrays(result)
    for entry in expected["devices"]:
        np.testing.assert_allclose(dev[entry["name"]]["power"], entry["power"]["values"], atol=1e-7)
    np.testing.assert_allclose(
        result["site"]["power"]["values"], expected["site"]["power"]["values"], atol=1e-7
    )


def test_the_benchmark_grouped_site(monkeypatch):
    """The site benchmark's grouped case (benchmarks/site_schedule.py): the reference optimum,
    every group kept, and the groups bind (it costs more than the same site without them)."""
    import importlib

    monkeypatch.syspath_prepend(str(DOCS.parent.parent / "benchmarks"))
    bench = importlib.import_module("site_schedule")
    grouped = bench.grouped_site_request()
    result = check_against_reference(grouped)
    assert result["cost"]["value"] > schedule(bench.site_request())["cost"]["value"] + 1e-3


@PROPERTY_SETTINGS
@given(
    power=st.one_of(st.none(), st.integers(0, 12)),
    consumption=st.one_of(st.none(), st.integers(0, 12)),
    production=st.one_of(st.none(), st.integers(0, 12)),
)
def test_any_capacity_fields_present_or_absent(power, consumption, production):
    """Any subset of the three capacities: refused naming the group when empty, else the
    reference optimum with the defaults written out by hand (each direction the tighter of
    its own field and power-capacity, unlimited when neither is given)."""
    given_fields = {
        key: f"{value} kW"
        for key, value in (
            ("power-capacity", power),
            ("consumption-capacity", consumption),
            ("production-capacity", production),
        )
        if value is not None
    }
    req = hybrid([{"name": "inverter", "devices": ["battery", "pv"], **given_fields}])
    if not given_fields:
        with pytest.raises(RequestValidationError) as err:
            schedule(req)
        assert [i.field for i in err.value.issues] == ["flex-context.groups[0]"]
        return
    inf = float("inf")
    cap = inf if power is None else float(power)
    cons = min(cap, inf if consumption is None else float(consumption))
    prod = min(cap, inf if production is None else float(production))
    site = Site(
        1.0,
        np.array([10.0, 100.0, 90.0]),
        devices=[
            Storage("battery", 0.0, 0.0, 20.0, 10.0, 10.0),
            Generation("pv", np.array([3.0, 0.0, 0.0])),
        ],
        groups=[Group("inverter", ["battery", "pv"], cons, prod)],
    )
    ref = solve_site(site)
    if ref.status != "optimal":  # not expected: the battery can absorb the PV
        with pytest.raises(InfeasibleError) as infeasible:
            SiteProblem(req).solve()
        assert infeasible.value.device == "inverter"
        return
    result = schedule(req)
    assert result["cost"]["value"] == pytest.approx(ref.cost, rel=1e-6, abs=1e-7)
    assert site_violations(site, result) == []


def test_a_soft_group_is_breached_at_its_price() -> None:
    """The battery must take 8 kWh in 2 h through a 3 kW inverter: hard, infeasible (named);
    at 1 EUR/kW the inverter is breached by 1 kW each hour: area 2 EUR + peak 1 EUR, energy
    8 kWh at 0.1 EUR."""
    import copy as _copy

    from vpp.errors import InfeasibleError as _Infeasible
    from vpp.errors import RequestValidationError as _Invalid
    from vpp.site import schedule as _schedule

    request: dict[str, Any] = {
        "start": "2026-03-02T00:00:00+00:00",
        "duration": "PT2H",
        "resolution": "PT1H",
        "flex-model": [
            {"name": "battery", "soc-at-start": "0 kWh", "soc-max": "10 kWh",
             "power-capacity": "5 kW",
             "soc-targets": [{"datetime": "2026-03-02T02:00:00+00:00", "value": "8 kWh"}]}
        ],
        "flex-context": {
            "consumption-price": "100 EUR/MWh",
            "groups": [
                {"name": "inverter", "devices": ["battery"], "consumption-capacity": "3 kW"}
            ],
        },
    }  # fmt: skip
    with pytest.raises(_Infeasible):
        _schedule(_copy.deepcopy(request))
    soft = _copy.deepcopy(request)
    soft["flex-context"]["groups"][0]["consumption-breach-price"] = "1 EUR/kW"
    result = _schedule(soft)
    assert result["cost"] == pytest.approx(
        {"value": 3.8, "unit": "EUR", "energy": 0.8, "breaches": 3.0}
    )
    assert {(b["family"], b["device"]) for b in result["breaches"]} == {
        ("group-consumption-capacity", "inverter")
    }
    bad = _copy.deepcopy(request)
    bad["flex-context"]["groups"][0] = {
        "name": "inverter", "devices": ["battery"], "power-capacity": "3 kW",
        "consumption-breach-price": "1 EUR/kW",
    }  # fmt: skip
    with pytest.raises(_Invalid) as err:
        _schedule(bad)
    assert [i.field for i in err.value.issues] == [
        "flex-context.groups[0].consumption-breach-price"
    ]
