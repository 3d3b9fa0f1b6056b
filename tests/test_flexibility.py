"""Flexibility quotes (vpp.flexibility) against independent re-computations.

The limits' effect is checked on the returned schedules (summed here from the sites' JSON),
every site schedule against its own constraints (``reference.site_violations``: SoC
re-simulated, capacities), the costs recomputed here from site powers and the request's
prices, and both optima against ``reference.portfolio_reference`` (its own HiGHS model,
reading the limits as a commitment of the JSON).
"""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest
from reference import Grid, portfolio_reference, portfolio_sites, site_violations
from test_portfolio import HOURS, at, batteries, compact, heat_pump, mixed, portfolio

from vpp.errors import RequestValidationError
from vpp.flexibility import PowerLimits, baseline, limits_commitment, quote
from vpp.portfolio import parse_portfolio


def energy_cost(request: dict[str, Any], body: dict[str, Any]) -> float:
    """EUR of a result's site powers at each site's prices (EUR/MWh in the JSON):
    ``dt/1000 * (cp @ max(P, 0) - pp @ max(-P, 0))`` per site, summed."""
    grid = Grid.of(request)
    base = request["flex-context"]
    total = 0.0
    for entry in body["sites"]:
        own = next(s for s in request["sites"] if s["id"] == entry["id"])
        context = {**base, **own.get("flex-context", {})}
        cp = grid.series(context["consumption-price"])
        pp = grid.series(context.get("production-price", context["consumption-price"]))
        p = np.array(entry["site"]["power"]["values"], float)
        total += grid.dt / 1000.0 * (cp @ np.maximum(p, 0.0) - pp @ np.maximum(-p, 0.0))
    return total


def summed(body: dict[str, Any]) -> np.ndarray:
    return np.sum([s["site"]["power"]["values"] for s in body["sites"]], axis=0)


def feasible(request: dict[str, Any], body: dict[str, Any]) -> None:
    sites = portfolio_sites(request)
    for entry in body["sites"]:
        assert site_violations(sites[entry["id"]], entry) == [], entry["id"]


def evening_limits(request: dict[str, Any], fraction: float) -> PowerLimits:
    """Max consumption at ``fraction`` of the free optimum's peak (from the reference) over
    16:00-21:00; free elsewhere."""
    free = portfolio_reference(request)
    cap = np.full(HOURS, np.inf)
    cap[16:21] = round(fraction * float(free.total[16:21].max()), 3)
    return PowerLimits(cap, np.full(HOURS, np.inf))


def test_quote_respects_limits_and_prices_the_cost_difference():
    request = mixed(5, 0)
    limits = evening_limits(request, 0.6)
    margin = 0.25
    q = quote(request, limits, margin=margin)
    assert q.deliverable and q.reason is None and q.flexed is not None
    base_body, flexed_body = q.baseline.to_json(), q.flexed.to_json()
    feasible(request, base_body)
    feasible(request, flexed_body)
    flexed_total, base_total = summed(flexed_body), summed(base_body)
    assert (flexed_total <= limits.max_consumption + 1e-6).all()
    assert (base_total[16:21] > limits.max_consumption[16:21] + 1e-3).any()  # limits bind
    np.testing.assert_allclose(q.change, flexed_total - base_total, atol=1e-6)
    base_cost, flexed_cost = energy_cost(request, base_body), energy_cost(request, flexed_body)
    assert q.baseline_cost == pytest.approx(base_cost, rel=1e-7, abs=1e-7)
    assert q.flexed_cost == pytest.approx(flexed_cost, rel=1e-7, abs=1e-7)
    assert q.price == pytest.approx(flexed_cost - base_cost + margin, rel=1e-6, abs=1e-7)
    assert q.price > margin + 1e-3  # flexibility costs something
    # both are optima: the independent reference, without and with the limits
    assert base_cost == pytest.approx(portfolio_reference(request).cost, rel=1e-6)
    limited = {**request, "commitments": [limits_free_json(limits)]}
    assert flexed_cost == pytest.approx(portfolio_reference(limited).cost, rel=1e-6)


def limits_free_json(limits: PowerLimits) -> dict[str, Any]:
    """The limits as a commitment written here (compact values; free steps a big number)."""
    cap = np.where(np.isfinite(limits.max_consumption), limits.max_consumption, 1e6)
    return {"max-consumption": compact(cap, "kW")}


def test_production_limit_and_existing_commitment_with_a_market_target():
    request = copy.deepcopy(batteries(4, 0))
    request["target"] = {"type": "market", "volume": "2 kW", "deviation-price": "20 EUR/MWh"}
    request["commitments"] = [
        {"id": "order-0", "max-consumption": [{"start": at(2), "end": at(4), "value": "8 kW"}]}
    ]
    free = portfolio_reference(request)
    production = np.full(HOURS, np.inf)
    production[8:10] = round(0.4 * -float(free.total[8:10].min()), 3)
    limits = PowerLimits(np.full(HOURS, np.inf), production)
    q = quote(request, limits)
    assert q.deliverable and q.flexed is not None
    body = q.flexed.to_json()
    feasible(request, body)
    total = summed(body)
    assert (total >= -production - 1e-6).all()
    assert (total[2:4] <= 8.0 + 1e-6).all()  # the existing commitment still holds
    grid = Grid.of(request)
    deviation = 20.0 * grid.dt / 1000.0
    cost = energy_cost(request, body) + deviation * float(np.abs(total - 2.0).sum())
    base = q.baseline.to_json()
    base_cost = energy_cost(request, base) + deviation * float(np.abs(summed(base) - 2.0).sum())
    assert q.price == pytest.approx(cost - base_cost, rel=1e-6, abs=1e-7)
    cap = np.where(np.isfinite(production), production, 1e6)
    limited = copy.deepcopy(request)
    limited["commitments"].append({"max-production": compact(cap, "kW")})
    assert cost == pytest.approx(portfolio_reference(limited).cost, rel=1e-6)


def test_no_limits_quote_the_baseline_at_the_margin():
    request = batteries(3, 1)
    q = quote(request, PowerLimits.free(HOURS), margin=1.5)
    assert q.deliverable and q.change is not None
    np.testing.assert_allclose(q.change, 0.0, atol=1e-6)
    assert q.price == pytest.approx(1.5, abs=1e-6)
    assert baseline(request).cost == pytest.approx(portfolio_reference(request).cost, rel=1e-6)


def test_a_step_no_site_can_meet_is_not_deliverable_with_its_time():
    request = batteries(3, 0)
    houses = sum(
        np.array(s["flex-context"]["inflexible-devices"]["house"]["values"])
        for s in request["sites"]
    )
    discharge = sum(
        float(s["flex-model"][0]["power-capacity"].split()[0]) for s in request["sites"]
    )
    cap = np.full(HOURS, np.inf)
    cap[19] = round(houses[19] - discharge - 0.5, 3)  # 0.5 kW below the least possible
    q = quote(request, PowerLimits(cap, np.full(HOURS, np.inf)))
    assert not q.deliverable and q.flexed is None and q.price is None
    assert q.reason is not None and at(19) in q.reason and "0.5 kW too much" in q.reason
    assert q.shortfall is not None and q.shortfall[19] == pytest.approx(0.5, abs=1e-5)
    assert q.baseline_cost == pytest.approx(portfolio_reference(request).cost, rel=1e-6)


def test_energy_over_the_day_not_deliverable_with_the_shortfall():
    """Heat pumps kept off all day by a cap at the houses' load: every step alone is fine,
    the day is not. The least excess is the pumps' electricity for the day's heat
    (``sum(demand) * dt / cop``: the buffer ends where it starts), worked out here."""
    rng = np.random.default_rng(5)
    pumps = [heat_pump(rng) for _ in range(3)]
    request = portfolio([[p] for p in pumps], seed=5)
    houses = sum(
        np.array(s["flex-context"]["inflexible-devices"]["house"]["values"])
        for s in request["sites"]
    )
    assert np.isnan(
        portfolio_reference(
            {**request, "target": {"type": "congestion", "max-consumption": compact(houses, "kW")}}
        ).cost
    )
    q = quote(request, PowerLimits(houses.copy(), np.full(HOURS, np.inf)))
    assert not q.deliverable and q.reason is not None
    assert "ISPs off in all" in q.reason and "kWh" in q.reason
    heat = sum(
        float(np.sum(p["heat-demand"]["values"])) / float(p["cop"]) for p in pumps
    )  # kWh of electricity (dt = 1 h)
    assert q.shortfall is not None
    assert float(q.shortfall.sum()) * 1.0 == pytest.approx(heat, rel=1e-6)
    first = int(np.flatnonzero(q.shortfall > 1e-6)[0])
    assert at(first) in q.reason


def test_limits_contradicting_a_commitment_are_not_deliverable():
    request = copy.deepcopy(batteries(3, 0))
    request["commitments"] = [{"max-production": [{"start": at(5), "end": at(6), "value": "1 kW"}]}]
    cap = np.full(HOURS, np.inf)
    cap[5] = -2.0  # must produce 2 kW, while the order allows at most 1
    q = quote(request, PowerLimits(cap, np.full(HOURS, np.inf)))
    assert not q.deliverable and q.reason is not None and at(5) in q.reason


def test_limits_of_the_wrong_length_are_a_field_error():
    with pytest.raises(RequestValidationError) as info:
        quote(batteries(2, 0), PowerLimits(np.full(HOURS - 1, 3.0), np.full(HOURS, np.inf)))
    assert [i.field for i in info.value.issues] == ["limits.max-consumption"]


def test_limits_commitment_round_trips_through_the_request():
    request = batteries(2, 0)
    cap = np.full(HOURS, np.inf)
    cap[3:6], cap[6] = 4.5, 1e-05
    production = np.full(HOURS, np.inf)
    production[10] = 2.0
    commitment = limits_commitment(PowerLimits(cap, production), parse_portfolio(request).horizon)
    assert commitment["max-consumption"][0] == {"start": at(3), "end": at(6), "value": "4.5 kW"}
    grid = Grid.of(request)
    np.testing.assert_allclose(grid.series(commitment["max-consumption"], np.inf), cap)
    np.testing.assert_allclose(grid.series(commitment["max-production"], np.inf), production)


def test_quote_takes_the_baseline_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12: a caller that solved the baseline (the UFTP FlexRequest handler) hands it
    over and ``quote`` does not solve it again; the quote is the same."""
    import vpp.flexibility as flexibility

    request = mixed(3, 0)
    limits = evening_limits(request, 0.7)
    parsed = parse_portfolio(request)
    base = baseline(parsed)
    expected = quote(parsed, limits)

    def no_second_solve(_: Any) -> Any:
        raise AssertionError("quote solved the baseline again")

    monkeypatch.setattr(flexibility, "baseline", no_second_solve)
    got = quote(parsed, limits, base=base)
    assert got.baseline is base
    assert got.deliverable == expected.deliverable
    assert got.price == pytest.approx(expected.price, abs=1e-6)
    short = SimpleNamespace(power=np.zeros(HOURS - 1))  # another horizon's baseline
    with pytest.raises(ValueError, match="steps"):
        quote(parsed, limits, base=cast(Any, short))
