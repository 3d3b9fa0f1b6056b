"""Commitments: hard limits on a portfolio's summed power, on top of any target.

Every optimum is compared with ``reference.portfolio_reference``, which reads the
``commitments`` of the request JSON by hand and adds them as rows of its own HiGHS model;
every returned schedule is re-checked against the sites' own constraints and against the
commitments' bounds, read here from the JSON.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from reference import Grid, portfolio_reference
from test_portfolio import (
    HOURS,
    admm,
    assert_near_optimum,
    at,
    batteries,
    check_result,
    compact,
    congestion,
    market,
    mixed,
)

from vpp.errors import InfeasibleError, RequestValidationError
from vpp.portfolio import CentralisedPortfolio, parse_portfolio, resolve_target


def evening_cap(request: dict[str, Any], fraction: float, hours: tuple[int, int] = (16, 22)):
    """A commitment capping consumption at ``fraction`` of the free optimum's peak within
    ``hours`` (segments: the other hours stay free); ``id`` as a FlexOrder's MessageID."""
    free = portfolio_reference({**request, "target": None, "commitments": []})
    peak = float(free.total[hours[0] : hours[1]].max())
    return {
        "id": "order-1",
        "max-consumption": [
            {"start": at(hours[0]), "end": at(hours[1]), "value": f"{fraction * peak:.2f} kW"}
        ],
    }


def committed(request: dict[str, Any], *commitments: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(request)
    out["commitments"] = list(commitments)
    return out


def bounds(request: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The summed-power bounds of the target and the commitments, read from the JSON."""
    grid = Grid.of(request)
    lower, upper = np.full(grid.steps, -np.inf), np.full(grid.steps, np.inf)
    limits = list(request.get("commitments", []))
    target = request.get("target")
    if target and target["type"] == "congestion":
        limits.append(target)
    for c in limits:
        upper = np.minimum(upper, grid.series(c.get("max-consumption", np.inf), np.inf))
        lower = np.maximum(lower, -grid.series(c.get("max-production", np.inf), np.inf))
    return lower, upper


def check_committed(request: dict[str, Any], body: dict[str, Any]) -> float:
    """Sites feasible, cost as recomputed, summed power within every bound; the cost."""
    cost = check_result(request, body)
    total = np.sum([s["site"]["power"]["values"] for s in body["sites"]], axis=0)
    lower, upper = bounds(request)
    slack = 1e-6 * len(body["sites"])
    assert (total <= upper + slack).all(), np.max(total - upper)
    assert (total >= lower - slack).all(), np.max(lower - total)
    return cost


def _cases() -> dict[str, Any]:
    def no_target() -> dict[str, Any]:
        request = mixed(6, 0)
        return committed(request, evening_cap(request, 0.6))

    def with_congestion() -> dict[str, Any]:
        request = congestion(mixed(6, 0), 0.8)
        return committed(request, evening_cap(request, 0.6))

    def with_market() -> dict[str, Any]:
        request = market(mixed(6, 1), "4 kW", "15 EUR/MWh")
        return committed(request, evening_cap(request, 0.7))

    def two_commitments() -> dict[str, Any]:
        request = batteries(4, 0)
        free = portfolio_reference(request)
        production = 0.5 * -float(free.total[8:10].min())  # the batteries discharge at 8-10
        second = {
            "max-production": [{"start": at(8), "end": at(10), "value": f"{production:.2f} kW"}]
        }
        return committed(request, evening_cap(request, 0.6, (12, 15)), second)

    return {
        "no-target": no_target,
        "congestion": with_congestion,
        "market": with_market,
        "two-commitments": two_commitments,
    }


@pytest.mark.parametrize("case", list(_cases()))
def test_centralised_with_commitments_equals_reference(case):
    request = _cases()[case]()
    ref = portfolio_reference(request)
    without = portfolio_reference({**request, "commitments": []})
    assert ref.status == "optimal"
    assert ref.cost > without.cost + 1e-4  # the commitment binds: it costs something
    result = CentralisedPortfolio(request).solve()
    assert result.cost == pytest.approx(ref.cost, rel=1e-6, abs=1e-9)
    assert check_committed(request, result.to_json()) == pytest.approx(ref.cost, rel=1e-6)


@pytest.mark.parametrize("case", list(_cases()))
def test_admm_keeps_commitments_near_the_optimum(case):
    request = _cases()[case]()
    optimum = portfolio_reference(request).cost
    result, _ = admm(request)
    body = result.to_json()
    assert body["portfolio"]["method"] == "admm"
    assert body["portfolio"]["target-violation-kw"] <= 1e-5
    assert_near_optimum(check_committed(request, body), optimum, gap=5e-3)


def test_target_carries_the_intersection_of_bounds():
    request = congestion(mixed(4, 0), 0.8)
    limit = float(request["target"]["max-consumption"].split()[0])
    request = committed(
        request,
        {"id": "a", "max-consumption": [{"start": at(2), "end": at(4), "value": "3 kW"}]},
        {
            "max-consumption": [{"start": at(3), "end": at(5), "value": "2 kW"}],
            "max-production": "1 kW",
        },
    )
    target = resolve_target(parse_portfolio(request))
    expected = np.full(HOURS, limit)
    expected[2], expected[3:5] = 3.0, 2.0
    np.testing.assert_allclose(target.upper, expected)
    np.testing.assert_allclose(target.lower, np.full(HOURS, -1.0))
    assert target.upper_from[2] == "commitment-limit" and target.upper_from[6] == "congestion-limit"


def test_bad_commitment_series_names_its_path():
    request = committed(
        mixed(3, 0),
        {"max-consumption": "5 kW"},
        {"max-consumption": "5 kWh"},
    )
    with pytest.raises(RequestValidationError) as info:
        resolve_target(parse_portfolio(request))
    assert [i.field for i in info.value.issues] == ["commitments[1].max-consumption"]
    short = committed(mixed(3, 0), {"max-production": compact([1.0] * (HOURS - 1), "kW")})
    with pytest.raises(RequestValidationError) as info:
        resolve_target(parse_portfolio(short))
    assert [i.field for i in info.value.issues] == ["commitments[0].max-production"]
    empty = committed(mixed(3, 0), {"id": "x"})
    with pytest.raises(RequestValidationError) as info:
        parse_portfolio(empty)
    assert [i.field for i in info.value.issues] == ["commitments[0]"]


def test_contradicting_commitments_are_a_field_error_with_the_time():
    request = committed(
        mixed(3, 0),
        {"max-consumption": [{"start": at(5), "end": at(7), "value": "-4 kW"}]},
        {"max-production": [{"start": at(6), "end": at(8), "value": "3 kW"}]},
    )
    with pytest.raises(RequestValidationError) as info:
        resolve_target(parse_portfolio(request))
    (issue,) = info.value.issues
    assert issue.field == "commitments[1]"
    assert at(6) in issue.message and "commitments[0]" in issue.message
    # against the congestion target: production must be at least 2 kW, the target allows 1
    request = committed(
        {**mixed(3, 0), "target": {"type": "congestion", "max-production": "1 kW"}},
        {"max-consumption": [{"start": at(9), "end": at(10), "value": "-2 kW"}]},
    )
    with pytest.raises(RequestValidationError) as info:
        resolve_target(parse_portfolio(request))
    (issue,) = info.value.issues
    assert issue.field == "commitments[0]" and at(9) in issue.message
    assert "congestion" in issue.message


def test_unmeetable_commitment_is_infeasible_at_its_step():
    request = batteries(3, 0)
    houses = sum(
        np.array(s["flex-context"]["inflexible-devices"]["house"]["values"])
        for s in request["sites"]
    )
    battery_power = sum(
        float(s["flex-model"][0]["power-capacity"].split()[0]) for s in request["sites"]
    )
    # even discharging every battery fully leaves 0.5 kW more than the cap at 19:00
    cap = houses[19] - battery_power - 0.5
    request = committed(
        request, {"max-consumption": [{"start": at(19), "end": at(20), "value": f"{cap} kW"}]}
    )
    assert np.isnan(portfolio_reference(request).cost)
    for solve in (lambda: CentralisedPortfolio(request).solve(), lambda: admm(request)):
        with pytest.raises(InfeasibleError) as info:
            solve()
        assert info.value.constraint == "commitment-limit"
        assert info.value.time is not None and info.value.time.isoformat() == at(19)
        assert "0.5 kW too much" in info.value.message
