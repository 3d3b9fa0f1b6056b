"""Soft constraints with breach prices (issue 13 item 1), against hand-derived optima, a
hand-built highspy model, and properties over random feasible sites."""

from __future__ import annotations

import copy
from typing import Any

import highspy
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import random_site, solve_site

from vpp.errors import InfeasibleError, RequestValidationError
from vpp.site import schedule

START = "2026-03-02T00:00:00+00:00"


def _request(device: dict[str, Any], **context: Any) -> dict[str, Any]:
    return {
        "start": START,
        "duration": "PT2H",
        "resolution": "PT1H",
        "flex-model": [{"name": "battery", "soc-at-start": "0 kWh", "soc-max": "10 kWh",
                        "power-capacity": "5 kW", **device}],
        "flex-context": {"consumption-price": "100 EUR/MWh", **context},
    }  # fmt: skip


TARGET_8 = {"soc-targets": [{"datetime": "2026-03-02T02:00:00+00:00", "value": "8 kWh"}]}


def _breaches(result: dict[str, Any]) -> list[tuple[str, str | None, str, float]]:
    return [(b["family"], b["device"], b["part"], b["size"]) for b in result["breaches"]]


def test_a_site_capacity_breach_by_hand() -> None:
    """8 kWh in two hours behind a 3 kW connection: 1 kW short each hour. Spreading the
    breach keeps the peak at 1 kW: area 2 x 1 kW x 1 h x 1 EUR/kW = 2 EUR, peak 1 EUR, energy
    8 kWh x 0.1 EUR = 0.8 EUR."""
    request = _request(TARGET_8, **{"site-consumption-capacity": "3 kW"})
    with pytest.raises(InfeasibleError) as err:
        schedule(copy.deepcopy(request))
    assert "site-consumption-breach-price" in err.value.message  # names the soft field
    request["flex-context"]["site-consumption-breach-price"] = "1 EUR/kW"
    result = schedule(request)
    assert result["site"]["power"]["values"] == pytest.approx([4.0, 4.0])
    assert result["cost"] == pytest.approx(
        {"value": 3.8, "unit": "EUR", "energy": 0.8, "breaches": 3.0}
    )
    assert sorted(_breaches(result)) == [
        ("site-consumption-capacity", None, "area", 1.0),
        ("site-consumption-capacity", None, "area", 1.0),
        ("site-consumption-capacity", None, "peak", 1.0),
    ]
    assert _highspy_site_breach() == pytest.approx(3.8)


def _highspy_site_breach() -> float:
    """The same case hand-built: columns c0, c1 (charge), b0, b1 (breach), B (peak)."""
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    inf = highspy.kHighsInf
    cost = [0.1, 0.1, 1.0, 1.0, 1.0]  # EUR per kWh charged; 1 EUR/kW h; 1 EUR/kW of peak
    for c in cost:
        h.addCol(c, 0.0, inf, 0, [], [])
    h.changeColsBounds(2, np.array([0, 1], np.int32), np.zeros(2), np.full(2, 5.0))
    rows = [
        ([0, 1], [1.0, 1.0], 8.0, 8.0),  # the target: c0 + c1 = 8 kWh
        ([0, 2], [1.0, -1.0], -inf, 3.0),  # c0 - b0 <= 3
        ([1, 3], [1.0, -1.0], -inf, 3.0),
        ([2, 4], [1.0, -1.0], -inf, 0.0),  # b0 <= B
        ([3, 4], [1.0, -1.0], -inf, 0.0),
    ]
    for idx, vals, lo, hi in rows:
        h.addRow(lo, hi, len(idx), np.array(idx, np.int32), np.array(vals))
    h.run()
    return float(h.getInfo().objective_function_value)


def test_a_production_breach_by_hand() -> None:
    """5 kW of PV that cannot be curtailed behind a 3 kW export limit, no battery room (it is
    full): 2 kW breached each hour at 2 EUR/kW: area 2 x 2 x 2 = 8 EUR, peak 2 x 2 = 4 EUR;
    the export earns 2 x 5 kWh x 0.05 EUR = 0.5 EUR."""
    request = _request(
        {"soc-at-start": "10 kWh"},
        **{"production-price": "50 EUR/MWh", "site-production-capacity": "3 kW",
           "site-production-breach-price": "2 EUR/kW"},
    )  # fmt: skip
    request["flex-model"].append({"name": "pv", "type": "generation", "production": "5 kW"})
    result = schedule(request)
    assert result["cost"]["breaches"] == pytest.approx(12.0)
    assert result["cost"]["energy"] == pytest.approx(-0.5)


def test_soc_minima_and_maxima_breaches_by_hand() -> None:
    """At most 2 kW x 2 h = 4 kWh can be charged, soc-minima asks 6 at 02:00: 2 kWh short,
    area 2 kWh x 1 h x 1 EUR/kWh = 2 EUR plus peak 2 EUR. Maxima: 8 kWh at the start, at
    most 5 kWh at 01:00, 2 kW of discharge: 1 kWh over, 3 EUR/kWh: 3 + 3 EUR."""
    minima = _request(
        {"consumption-capacity": "2 kW", "production-capacity": "2 kW",
         "soc-minima": [{"datetime": "2026-03-02T02:00:00+00:00", "value": "6 kWh"}]},
        **{"soc-minima-breach-price": "1 EUR/kWh"},
    )  # fmt: skip
    result = schedule(minima)
    assert _breaches(result) == [
        ("soc-minima", "battery", "area", 2.0),
        ("soc-minima", "battery", "peak", 2.0),
    ]
    assert result["cost"]["breaches"] == pytest.approx(4.0)
    assert result["devices"][0]["soc"]["values"][-1] == pytest.approx(4.0)
    maxima = _request(
        {"soc-at-start": "8 kWh", "consumption-capacity": "2 kW", "production-capacity": "2 kW",
         "soc-maxima": [{"datetime": "2026-03-02T01:00:00+00:00", "value": "5 kWh"}]},
        **{"soc-maxima-breach-price": "3 EUR/kWh", "production-price": "0 EUR/MWh"},
    )  # fmt: skip
    result = schedule(maxima)
    assert result["cost"]["breaches"] == pytest.approx(6.0)
    assert result["devices"][0]["soc"]["values"][1] == pytest.approx(6.0)


def test_a_device_capacity_breach_by_hand() -> None:
    """6 kWh in 2 h at a 2 kW consumption-capacity (5 kW power-capacity stays hard): 1 kW
    breached each hour at 1 EUR/kW: 2 + 1 EUR, energy 0.6 EUR."""
    request = _request(
        {"consumption-capacity": "2 kW", "production-capacity": "2 kW",
         "soc-targets": [{"datetime": "2026-03-02T02:00:00+00:00", "value": "6 kWh"}]},
    )  # fmt: skip
    with pytest.raises(InfeasibleError) as err:
        schedule(copy.deepcopy(request))
    assert "consumption-breach-price" in err.value.message
    request["flex-context"]["consumption-breach-price"] = "1 EUR/kW"
    result = schedule(request)
    assert result["devices"][0]["power"]["values"] == pytest.approx([3.0, 3.0])
    assert result["cost"] == pytest.approx(
        {"value": 3.6, "unit": "EUR", "energy": 0.6, "breaches": 3.0}
    )


def test_relax_constraints_breaches_in_flexmeasures_order() -> None:
    """Short of both the site's capacity and an SoC minimum, relax-constraints breaches the
    SoC minimum (1,000 EUR/kWh) rather than the site capacity (10,000 EUR/kW)."""
    request = _request(
        {"soc-minima": [{"datetime": "2026-03-02T02:00:00+00:00", "value": "8 kWh"}]},
        **{"site-consumption-capacity": "3 kW", "relax-constraints": True},
    )
    result = schedule(request)
    assert {b["family"] for b in result["breaches"]} == {"soc-minima"}
    assert result["site"]["power"]["values"] == pytest.approx([3.0, 3.0])
    assert result["cost"]["breaches"] == pytest.approx(2 * 1000.0 * 2)  # area 2 kWh h + peak


_SITE = "flex-context.site-consumption-breach-price"


@pytest.mark.parametrize(
    ("context", "field"),
    [
        ({"site-consumption-breach-price": "-1 EUR/kW"}, _SITE),
        ({"site-consumption-breach-price": "1 EUR/kWh"}, _SITE),
        ({"soc-minima-breach-price": "1 EUR/kW"}, "flex-context.soc-minima-breach-price"),
        ({"soc-minima-breach-price": "300 kg/MWh"}, "flex-context.soc-minima-breach-price"),
        ({"soc-maxima-breach-price": "-5 EUR/kWh"}, "flex-context.soc-maxima-breach-price"),
        ({"relax-constraints": "yes"}, "flex-context.relax-constraints"),
        ({"consumption-breach-price": "1 EUR/kW"}, "flex-context.consumption-breach-price"),
    ],
)  # fmt: skip
def test_bad_breach_prices_name_the_field(context: dict[str, Any], field: str) -> None:
    request = _request({"consumption-capacity": "2 kW", "production-capacity": "2 kW"}, **context)
    del request["flex-model"][0]["power-capacity"]  # a device breach needs a hard bound
    with pytest.raises(RequestValidationError) as err:
        schedule(request)
    assert field in [i.field for i in err.value.issues]


def test_relax_constraints_keeps_a_device_without_hard_bound_hard() -> None:
    request = _request(
        {"consumption-capacity": "2 kW", "production-capacity": "2 kW"},
        **{"relax-constraints": True},
    )
    del request["flex-model"][0]["power-capacity"]
    assert schedule(request)["breaches"] == []


# -- properties --------------------------------------------------------------------------------
PRICES = st.sampled_from(["site", "soc", "device", "relax"])


@settings(
    max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(seed=st.integers(0, 2**31), which=st.sets(PRICES, min_size=1))
def test_expensive_breaches_never_happen_when_the_hard_problem_is_feasible(
    seed: int, which: set[str]
) -> None:
    """Random feasible sites (prices <= 0.2 EUR/kWh): with breach prices far above any
    energy price, nothing is breached, breach costs are 0 and the cost is the hard optimum
    (the independent reference's)."""
    case = random_site(np.random.default_rng(seed), steps=24, targets=2, bounds=2)
    request = copy.deepcopy(case.request)
    ctx = request["flex-context"]
    if "site" in which:
        ctx |= {
            "site-consumption-breach-price": "50 EUR/kW",
            "site-production-breach-price": "50 EUR/kW",
        }
    if "soc" in which:
        ctx |= {"soc-minima-breach-price": "50 EUR/kWh", "soc-maxima-breach-price": "50 EUR/kWh"}
    if "device" in which:
        ctx |= {"consumption-breach-price": "50 EUR/kW", "production-breach-price": "50 EUR/kW"}
        for device in request["flex-model"]:  # a device breach needs a hard bound above
            device.setdefault("power-capacity", "1000 kW")
    if "relax" in which:
        ctx["relax-constraints"] = True
    result = schedule(request)
    assert all(b["cost"] >= 0 for b in result["breaches"])
    assert result["breaches"] == []
    assert result["cost"]["breaches"] == pytest.approx(0.0, abs=1e-9)
    hard = solve_site(case.site)
    assert result["cost"]["value"] == pytest.approx(hard.cost, rel=1e-6, abs=1e-6)


@settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    seed=st.integers(0, 2**31),
    price=st.floats(0.0, 5.0),
    short=st.floats(0.5, 4.0),
)
def test_breach_costs_are_never_negative_and_add_up(seed: int, price: float, short: float) -> None:
    """A target out of reach by ``short`` kWh behind the connection, any breach price: every
    listed breach costs >= 0 and they add up to the cost's breaches part."""
    request = _request(
        {"soc-targets": [{"datetime": "2026-03-02T02:00:00+00:00", "value": f"{6 + short} kWh"}]},
        **{"site-consumption-capacity": "3 kW", "site-consumption-breach-price": f"{price} EUR/kW",
           "soc-minima-breach-price": f"{price} EUR/kWh"},
    )  # fmt: skip
    result = schedule(request)
    costs = [b["cost"] for b in result["breaches"]]
    assert all(c >= 0 for c in costs)
    assert sum(costs) == pytest.approx(result["cost"]["breaches"], abs=1e-7)
    assert result["cost"]["value"] == pytest.approx(
        result["cost"]["energy"] + result["cost"]["breaches"], abs=1e-7
    )


def test_a_portfolio_of_soft_sites_agrees_centralised_and_by_admm() -> None:
    """Two sites short of their connection: the ADMM's cost is within 0.5 % of the exact
    optimum, both with the breach penalties in."""
    from vpp.admm import AdmmSettings, LocalPool, solve_portfolio_admm
    from vpp.portfolio import (
        CentralisedPortfolio,
        build_sites,
        parse_portfolio,
        price_scale,
        resolve_target,
    )

    single = _request(TARGET_8, **{"site-consumption-capacity": "3 kW",
                                   "site-consumption-breach-price": "1 EUR/kW"})  # fmt: skip
    body = {
        **{k: single[k] for k in ("start", "duration", "resolution", "flex-context")},
        "sites": [{"id": i, "flex-model": single["flex-model"]} for i in ("a", "b")],
    }
    exact = CentralisedPortfolio(parse_portfolio(body)).solve().to_json()
    assert exact["portfolio"]["cost"]["value"] == pytest.approx(2 * 3.8)
    parsed = parse_portfolio(body)
    pool = LocalPool([s.id for s in parsed.sites], build_sites(parsed))
    admm = solve_portfolio_admm(
        parsed, pool, resolve_target(parsed), price_scale(parsed), AdmmSettings()
    ).to_json()
    assert admm["portfolio"]["cost"]["value"] == pytest.approx(2 * 3.8, rel=5e-3)


def test_the_documented_example() -> None:
    """docs/flex-model.md's worked example gives the numbers it states."""
    import json
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "flex-model.md").read_text()
    section = text.split("## Soft constraints and breach prices", 1)[1]
    request = json.loads(section.split("```json\n", 1)[1].split("```", 1)[0])
    result = schedule(request)
    assert result["site"]["power"]["values"] == pytest.approx([4.0, 4.0])
    assert result["cost"] == pytest.approx(
        {"value": 3.8, "unit": "EUR", "energy": 0.8, "breaches": 3.0}
    )
