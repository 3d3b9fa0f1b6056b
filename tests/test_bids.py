"""Day-ahead bid curves (issue 14 item 4) against hand-derived curves and re-solved bids.

The hand case: one battery, 1 of 2 kWh, 1 kW either way, no losses, two hours at 50 and
100 EUR/MWh (feed-in paid the same). Energy left at the end is worth nothing.

Hour 0 at price p, hour 1 at 100, charging c in hour 0 and v in hour 1 (kW = kWh):
cost p*c + 100*v, v >= -1 and v >= -(1 + c) (what is stored). With c >= 0, v = -1 and
the cost p*c - 100 wants c = 1 for p < 0 and c = 0 for p > 0; with c < 0, v = -(1 + c) and
the cost (p - 100)*c - 100 wants c = -1 for p > 100 and c = 0 below. So V0(p) = +1 (p < 0),
0 (0 < p < 100), -1 (p > 100).

Hour 1 at price p, hour 0 at 50: for p > 50 keep the kWh and sell it in hour 1 (v = -1,
c = 0); for 0 < p < 50 sell in hour 0 (c = -1) and do nothing in hour 1; for p < 0 also
charge 1 kW in hour 1 (paid to consume). So V1(p) = +1 (p < 0), 0 (0 < p < 50), -1 (p > 50).

At the ladder -20, 25, 75, 125: hour 0 [1, 0, 0, -1], hour 1 [1, 0, -1, -1]; the schedule at
the request's own prices: 0 kW in hour 0, -1 kW in hour 1.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from api_harness import assert_problem, harness
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vpp.bids import _curve, _market_hours, bid_curves, monotone_envelope, validate_prices
from vpp.errors import InfeasibleError, RequestValidationError
from vpp.portfolio import CentralisedPortfolio, parse_portfolio

BASE: dict[str, Any] = {
    "start": "2026-03-02T00:00:00+00:00",
    "duration": "PT2H",
    "resolution": "PT1H",
    "flex-context": {"consumption-price": {"values": [50, 100], "unit": "EUR/MWh"}},
    "sites": [
        {
            "id": "home",
            "flex-model": [
                {"name": "battery", "soc-at-start": "1 kWh", "soc-max": "2 kWh",
                 "power-capacity": "1 kW"},
            ],
        }
    ],
}  # fmt: skip
LADDER = [-20.0, 25.0, 75.0, 125.0]
HAND = [[1.0, 0.0, 0.0, -1.0], [1.0, 0.0, -1.0, -1.0]]


def volumes(result: dict[str, Any]) -> list[list[float]]:
    return [h["volumes"]["values"] for h in result["hours"]]


def test_the_hand_derived_curves() -> None:
    result = bid_curves(copy.deepcopy(BASE), prices=LADDER)
    assert volumes(result) == [pytest.approx(v, abs=1e-7) for v in HAND]
    assert [h["scheduled"]["value"] for h in result["hours"]] == pytest.approx([0.0, -1.0])
    assert [h["start"] for h in result["hours"]] == [
        "2026-03-02T00:00:00+00:00",
        "2026-03-02T01:00:00+00:00",
    ]
    assert result["prices"] == {"values": LADDER, "unit": "EUR/MWh"}
    assert result["solves"] == 8 and result["time-limited-solves"] == 0
    assert all(h["repaired"] == [] and h["non-monotone"] == [] for h in result["hours"])


def test_half_hour_steps_give_the_same_flat_hours() -> None:
    """At PT30M the same battery and prices (50, 50, 100, 100) give the same curves: each
    hour's two steps are held at one power, the hour's volume."""
    request = copy.deepcopy(BASE)
    request["resolution"] = "PT30M"
    request["flex-context"]["consumption-price"]["values"] = [50, 50, 100, 100]
    result = bid_curves(request, prices=LADDER)
    assert volumes(result) == [pytest.approx(v, abs=1e-7) for v in HAND]


def test_the_default_ladder() -> None:
    """Request prices 50..100 EUR/MWh: margin max(5, 10) = 10, so 21 prices from 40 to 110
    by 3.5. Hour 0 sells only above 100 (103.5, 107, 110); hour 1 above 50 (from 50.5)."""
    result = bid_curves(copy.deepcopy(BASE))
    assert result["prices"]["values"] == pytest.approx([40 + 3.5 * k for k in range(21)])
    assert volumes(result)[0] == pytest.approx([0.0] * 18 + [-1.0] * 3, abs=1e-7)
    assert volumes(result)[1] == pytest.approx([0.0] * 3 + [-1.0] * 18, abs=1e-7)


# -- accepting a bid, re-solved ------------------------------------------------------------
def priced_at(request: dict[str, Any], steps: list[int], price: float) -> dict[str, Any]:
    """``request`` (flex-context prices as value lists in EUR/MWh) with every price of
    ``steps`` set to ``price``: built at the request level, not as vpp.bids does it."""
    out = copy.deepcopy(request)
    context = out["flex-context"]
    consumption = list(context["consumption-price"]["values"])
    production = list(context.get("production-price", context["consumption-price"])["values"])
    for t in steps:
        consumption[t] = production[t] = price
    context["consumption-price"] = {"values": consumption, "unit": "EUR/MWh"}
    context["production-price"] = {"values": production, "unit": "EUR/MWh"}
    return out


def accepted(request: dict[str, Any], steps: list[int], volume: float) -> dict[str, Any]:
    """``request`` with the bid accepted: a commitment holding the hour at ``volume``."""
    out = copy.deepcopy(request)
    n = len(out["flex-context"]["consumption-price"]["values"])
    upper, lower = [1e6] * n, [1e6] * n
    for t in steps:
        upper[t], lower[t] = volume, -volume
    out["commitments"] = [
        {"max-consumption": {"values": upper, "unit": "kW"},
         "max-production": {"values": lower, "unit": "kW"}}
    ]  # fmt: skip
    return out


def check_every_point_accepted(request: dict[str, Any], result: dict[str, Any]) -> None:
    """Every (hour, price): the request priced at it, the hour fixed to the curve's volume,
    solves (feasible) and holds the volume. At PT1H it also costs what the unfixed optimum
    at that price costs: the volume is an optimal one, whichever of tied optima the ladder
    solve took. (Within an hour of several steps the curve holds the power flat, which the
    unfixed optimum need not: there the fixed cost is only no lower.)"""
    per_hour = len(request["flex-context"]["consumption-price"]["values"]) // len(result["hours"])
    for h, hour in enumerate(result["hours"]):
        steps = list(range(h * per_hour, (h + 1) * per_hour))
        for price, volume in zip(
            result["prices"]["values"], hour["volumes"]["values"], strict=True
        ):
            at_price = priced_at(request, steps, price)
            free = CentralisedPortfolio(at_price).solve()
            fixed = CentralisedPortfolio(accepted(at_price, steps, volume)).solve()
            assert fixed.power[steps] == pytest.approx([volume] * per_hour, abs=1e-6)
            scale = max(1.0, abs(free.cost))
            assert fixed.cost >= free.cost - 1e-6 * scale
            if per_hour == 1:
                assert fixed.cost == pytest.approx(free.cost, abs=1e-6 * scale), (h, price)


def test_every_hand_point_accepted_is_feasible() -> None:
    request = copy.deepcopy(BASE)
    check_every_point_accepted(request, bid_curves(copy.deepcopy(request), prices=LADDER))
    # and one kW beyond the battery's reach is not (the check can fail)
    with pytest.raises(InfeasibleError):
        CentralisedPortfolio(accepted(request, [0], 1.5)).solve()


@st.composite
def portfolios(draw: st.DrawFn) -> dict[str, Any]:
    resolution = draw(st.sampled_from(["PT1H", "PT30M"]))
    per_hour = 1 if resolution == "PT1H" else 2
    hours = draw(st.integers(2, 3))
    n = hours * per_hour
    prices = draw(st.lists(st.integers(-20, 200), min_size=n, max_size=n))
    feed_in = draw(st.sampled_from([None, 0.5, 1.0]))
    context: dict[str, Any] = {"consumption-price": {"values": prices, "unit": "EUR/MWh"}}
    if feed_in is not None:
        context["production-price"] = {"values": [p * feed_in for p in prices], "unit": "EUR/MWh"}
    sites = []
    for i in range(draw(st.integers(1, 2))):
        soc_max = draw(st.integers(1, 4))
        devices: list[dict[str, Any]] = [{
            "name": "battery",
            "soc-max": f"{soc_max} kWh",
            "soc-at-start": f"{draw(st.integers(0, soc_max))} kWh",
            "power-capacity": f"{draw(st.integers(1, 3))} kW",
            "roundtrip-efficiency": draw(st.sampled_from([1.0, 0.81])),
        }]  # fmt: skip
        load = draw(st.integers(0, 2))
        if load:
            devices.append({"name": "house", "type": "inflexible", "power": f"{load} kW"})
        sites.append({"id": f"s{i}", "flex-model": devices})
    request: dict[str, Any] = {
        "start": "2026-03-02T00:00:00+00:00",
        "duration": f"PT{hours}H",
        "resolution": resolution,
        "flex-context": context,
        "sites": sites,
    }
    target = draw(st.sampled_from(["none", "congestion", "market"]))
    if target == "congestion":
        request["target"] = {"type": "congestion", "max-consumption": "4 kW"}
    elif target == "market":
        request["target"] = {"type": "market", "volume": "0 kW", "deviation-price": "30 EUR/MWh"}
    return request


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(portfolios(), st.lists(st.integers(-50, 250), min_size=1, max_size=5, unique=True))
def test_curves_are_monotone_and_every_point_accepted_is_feasible(
    request: dict[str, Any], ladder: list[int]
) -> None:
    prices = sorted(float(p) + 0.5 for p in ladder)
    result = bid_curves(copy.deepcopy(request), prices=prices)
    for hour in result["hours"]:
        v = hour["volumes"]["values"]
        assert all(b <= a + 1e-9 for a, b in itertools.pairwise(v)), v
        assert hour["non-monotone"] == []
    check_every_point_accepted(request, result)


# -- a non-monotone point (as a MILP at its gap or time limit could give) ------------------
def test_the_monotone_envelope() -> None:
    assert monotone_envelope([1.0, 0.0, 0.5, -1.0]) == ([1.0, 0.0, 0.0, -1.0], [2])
    assert monotone_envelope([0.0, 1e-9, -1.0]) == ([0.0, 0.0, -1.0], [])  # rounding


def test_a_non_monotone_point_is_repaired_only_when_a_re_solve_allows_it() -> None:
    request = parse_portfolio(copy.deepcopy(BASE))
    steps = _market_hours(request)[0]
    curve = _curve(request, steps, LADDER, [1.0, 0.0, 0.5, -1.0], 0.0)
    assert curve["volumes"]["values"] == [1.0, 0.0, 0.0, -1.0]
    assert curve["repaired"] == [{"price": 25.0 + 50.0, "solved": 0.5, "volume": 0.0}]
    # 5 kW is beyond the 1 kW battery: lowering 6 to 5 is infeasible, so it is reported
    curve = _curve(request, steps, LADDER[:2], [5.0, 6.0], 0.0)
    assert curve["volumes"]["values"] == [5.0, 6.0]
    assert curve["repaired"] == []
    assert curve["non-monotone"] == [{"price": 25.0, "solved": 6.0, "volume": 6.0}]


# -- bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("prices", "field"),
    [
        ([], "prices"),
        (None, "prices"),
        ("10,20", "prices"),
        ([10.0, 10.0], "prices[1]"),
        ([20.0, 10.0], "prices[1]"),
        ([10.0, float("nan")], "prices[1]"),
        ([float("inf")], "prices[0]"),
        ([10.0, "20"], "prices[1]"),
        ([True, 2.0], "prices[0]"),
        (list(range(201)), "prices"),
    ],
)
def test_bad_prices_name_the_field(prices: Any, field: str) -> None:
    with pytest.raises(RequestValidationError) as err:
        validate_prices(prices)
    assert field in [i.field for i in err.value.issues]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"resolution": "PT2H", "duration": "PT4H"}, "resolution"),
        ({"resolution": "PT7M", "duration": "PT7M"}, "resolution"),
        ({"start": "2026-03-02T00:15:00+00:00"}, "start"),
        ({"resolution": "PT30M", "duration": "PT90M"}, "duration"),
    ],
)
def test_a_horizon_that_is_not_whole_hours_names_the_field(
    change: dict[str, Any], field: str
) -> None:
    request = {**copy.deepcopy(BASE), **change}
    request["flex-context"] = {"consumption-price": "50 EUR/MWh"}
    with pytest.raises(RequestValidationError) as err:
        bid_curves(request, prices=LADDER)
    assert [i.field for i in err.value.issues] == [field]


def test_an_hour_that_cannot_be_held_flat_is_infeasible_by_name(tmp_path: Path) -> None:
    """A house of 1 kW then 2 kW within an hour and nothing to balance it: the hour cannot
    be delivered as one power."""
    request = copy.deepcopy(BASE)
    request["resolution"] = "PT30M"
    request["duration"] = "PT1H"
    request["flex-context"] = {"consumption-price": "50 EUR/MWh"}
    request["sites"][0]["flex-model"] = [
        {"name": "house", "type": "inflexible", "power": {"values": [1, 2], "unit": "kW"}}
    ]
    with pytest.raises(InfeasibleError) as err:
        bid_curves(copy.deepcopy(request), prices=LADDER)
    assert err.value.constraint == "bid-flat-delivery"
    with harness("sqlite", tmp_path) as api:
        answer = api.http.post("/api/v1/bid-curves", json=request, headers=api.admin)
        assert assert_problem(answer, 422)["constraint"] == "bid-flat-delivery"


# -- REST, client, CLI ---------------------------------------------------------------------
def test_the_api_answers_bid_curves(tmp_path: Path) -> None:
    with harness("sqlite", tmp_path) as api:
        post = api.http.post
        answer = post("/api/v1/bid-curves", json={**BASE, "prices": LADDER}, headers=api.admin)
        assert answer.status_code == 200, answer.text
        assert volumes(answer.json()) == [pytest.approx(v, abs=1e-7) for v in HAND]
        default = post("/api/v1/bid-curves", json=BASE, headers=api.admin)  # prices absent
        assert default.status_code == 200, default.text
        assert default.json()["prices"]["values"] == pytest.approx(
            [40 + 3.5 * k for k in range(21)]
        )
        for prices, field in (([], "prices"), ([2, 1], "prices[1]"), ([1, None], "prices[1]")):
            bad = post("/api/v1/bid-curves", json={**BASE, "prices": prices}, headers=api.admin)
            assert_problem(bad, 422, field)
        # a non-finite number is not JSON: the body itself is refused, not a 500
        nan = json.dumps({**BASE, "prices": [1, float("nan")]})
        refused = post("/api/v1/bid-curves", content=nan,
                       headers={**api.admin, "Content-Type": "application/json"})  # fmt: skip
        assert 400 <= refused.status_code < 500, refused.text
        bad_site = {**BASE, "sites": []}
        assert_problem(post("/api/v1/bid-curves", json=bad_site, headers=api.admin), 422)
        hours = {**BASE, "start": "2026-03-02T00:30:00+00:00"}
        assert_problem(post("/api/v1/bid-curves", json=hours, headers=api.admin), 422, "start")
        viewer = api.account("bids-viewer", role="viewer")
        assert_problem(post("/api/v1/bid-curves", json=BASE, headers=viewer), 403)


def test_the_api_limits_the_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from api.routes import markets

    monkeypatch.setattr(markets, "BIDS_MAX_WORK", 2 * 4 * 2 * 1 - 1)  # hours x prices x steps
    with harness("sqlite", tmp_path) as api:
        body = {**BASE, "prices": LADDER}
        big = api.http.post("/api/v1/bid-curves", json=body, headers=api.admin)
        assert_problem(big, 422, "sites")
        body["prices"] = LADDER[:3]
        assert api.http.post("/api/v1/bid-curves", json=body, headers=api.admin).is_success


def test_the_python_clients_ask_for_bid_curves(tmp_path: Path) -> None:
    from vpp.client import AsyncClient, Client

    with harness("sqlite", tmp_path) as api:
        token = api.admin["Authorization"].removeprefix("Bearer ")
        client = Client("http://testserver", token=token, transport=api.http._transport)
        assert volumes(client.bid_curves(BASE, LADDER)) == [
            pytest.approx(v, abs=1e-7) for v in HAND
        ]
        assert len(client.bid_curves(BASE)["prices"]["values"]) == 21  # prices absent

        def forward(request: httpx.Request) -> httpx.Response:
            answer = api.http.request(
                request.method, request.url.path, content=request.content,
                headers=dict(request.headers),
            )  # fmt: skip
            return httpx.Response(answer.status_code, headers=answer.headers,
                                  content=answer.content)  # fmt: skip

        async def ask() -> dict[str, Any]:
            async with AsyncClient(
                "http://testserver", token=token, transport=httpx.MockTransport(forward)
            ) as c:
                result: dict[str, Any] = await c.bid_curves(BASE, prices=LADDER)
                return result

        assert volumes(asyncio.run(ask())) == [pytest.approx(v, abs=1e-7) for v in HAND]


def test_the_command_line(tmp_path: Path) -> None:
    source = tmp_path / "portfolio.json"
    source.write_text(json.dumps({**BASE, "prices": LADDER}))
    out = tmp_path / "bids.json"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "api.cli", "bids", str(source), *args],
            capture_output=True, text=True, check=False, cwd=Path(__file__).parents[1],
        )  # fmt: skip

    assert run("-o", str(out)).returncode == 0
    assert volumes(json.loads(out.read_text())) == [pytest.approx(v, abs=1e-7) for v in HAND]
    assert run("-o", str(out), "--prices=-20,125").returncode == 0
    assert np.allclose(volumes(json.loads(out.read_text())), [[1, -1], [1, -1]], atol=1e-7)
    bad = run("--prices", "125,-20")
    assert bad.returncode != 0 and "prices[1]" in bad.stderr
    source.write_text(json.dumps(BASE))  # prices absent: the default ladder
    assert run("-o", str(out)).returncode == 0
    assert len(json.loads(out.read_text())["prices"]["values"]) == 21
