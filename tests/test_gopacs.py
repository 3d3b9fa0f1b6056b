"""GOPACS redispatch bids (vpp.gopacs and ``POST /api/v1/gopacs/redispatch-bid``).

Acceptance: a bid on an example portfolio is feasible when applied and its price equals the
portfolio's cost increase within 1e-6 relative. Checked independently of vpp's code: every
site's returned schedule against its own constraints (``reference.site_violations``: SoC
re-simulated from power, device and connection capacities), the summed change against the
bid volume in every ISP of the period, the cost increase recomputed here from site powers
and the request's prices, and the schedule's optimality and the bid's maximality against
``reference.portfolio_reference`` (its own HiGHS model).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from reference import Grid, portfolio_reference, portfolio_sites, site_violations
from test_client import serve_app
from test_flexibility import energy_cost, summed
from test_portfolio import HOURS, at, compact, mixed, portfolio

from api.app import InlineDispatcher, create_app
from store import repository as repo
from vpp.client import AsyncClient, Client
from vpp.errors import RequestValidationError
from vpp.gopacs import (
    bid_to_json,
    needed_volume,
    parse_redispatch,
    redispatch_bid,
    schedule_window,
)

pytest_plugins = ["db_fixtures"]  # fresh_db_url

CP = "EAN871687110000000099"
FIRST, STOP = 17, 20  # the congested ISPs: 17:00-20:00 (hourly)


def with_cap(request: dict[str, Any], cap: np.ndarray, first: int) -> dict[str, Any]:
    """``request`` with ``S[t] <= cap[t - first]`` on the period as a commitment (the
    reference reads it; infinite caps are left out)."""
    out = copy.deepcopy(request)
    upper = np.full(HOURS, 1e6)
    upper[first : first + len(cap)] = cap
    out["commitments"] = [*out.get("commitments", []), {"max-consumption": compact(upper, "kW")}]
    return out


def with_floor(request: dict[str, Any], floor: np.ndarray, first: int) -> dict[str, Any]:
    out = copy.deepcopy(request)
    lower = np.full(HOURS, 1e6)
    lower[first : first + len(floor)] = -floor
    out["commitments"] = [*out.get("commitments", []), {"max-production": compact(lower, "kW")}]
    return out


def check_bid(request: dict[str, Any], body: dict[str, Any], side: str) -> float:
    """The acceptance checks on a bid's JSON; returns the recomputed cost increase (EUR)."""
    schedule, baseline = body["schedule"], body["baseline"]
    sites = portfolio_sites(request)
    for entry in schedule["sites"]:
        assert site_violations(sites[entry["id"]], entry) == [], entry["id"]
    first = round(
        (np.datetime64(body["start"][:19]) - np.datetime64(request["start"][:19]))
        / np.timedelta64(1, "h")
    )
    volume = np.array(body["volume"]["values"], float)
    needed = np.array(body["needed"]["values"], float)
    assert (volume <= needed + 1e-9).all() and (volume >= 0).all()
    change = summed(schedule) - summed(baseline)
    period = change[first : first + len(volume)]
    if side == "sell":
        assert (-period >= volume - 1e-6).all(), (period, volume)
    else:
        assert (period >= volume - 1e-6).all(), (period, volume)
    increase = energy_cost(request, schedule) - energy_cost(request, baseline)
    grid = Grid.of(request)
    energy_mwh = grid.dt * float(volume.sum()) / 1000.0
    assert body["energy"]["value"] == pytest.approx(energy_mwh, rel=1e-9)
    assert body["cost-increase"]["value"] == pytest.approx(increase, rel=1e-6, abs=1e-9)
    assert body["price"]["value"] * energy_mwh == pytest.approx(increase, rel=1e-6)
    # the pair's spread is the price: the grid operator paying it pays the cost increase
    spread = body["in-area-order"]["price"]["value"] - body["out-of-area-order"]["price"]["value"]
    assert (spread if side == "sell" else -spread) == pytest.approx(body["price"]["value"])
    assert body["out-of-area-order"]["side"] == ("buy" if side == "sell" else "sell")
    assert body["in-area-order"]["volume"] == body["out-of-area-order"]["volume"] == body["volume"]
    # the baseline and the schedule are optima: without, and with the shift as a limit
    assert energy_cost(request, baseline) == pytest.approx(
        portfolio_reference(request).cost, rel=1e-6
    )
    b = summed(baseline)[first : first + len(volume)]
    shifted = (
        with_cap(request, b - volume, first)
        if side == "sell"
        else with_floor(request, b + volume, first)
    )
    assert energy_cost(request, schedule) == pytest.approx(
        portfolio_reference(shifted).cost, rel=1e-6, abs=1e-9
    )
    return increase


# -- the pure bid ----------------------------------------------------------------------------------


def test_full_buy_bid_is_feasible_and_priced_at_its_cost_increase():
    request = mixed(5, 0)
    bid = redispatch_bid(request, "buy", FIRST, STOP, 3.0)
    assert bid.full and bid.deliverable and bid.reason is None
    np.testing.assert_allclose(bid.volume, 3.0, atol=1e-9)
    increase = check_bid(request, bid_to_json(bid), "buy")
    assert increase > 1e-3  # moving consumption into the evening costs something


def test_partial_sell_bid_is_the_largest_deliverable_volume():
    request = mixed(5, 0)
    bid = redispatch_bid(request, "sell", FIRST, STOP, [3.0, 3.0, 3.0])
    body = bid_to_json(bid)
    assert not bid.full and bid.deliverable
    assert bid.reason is not None and "largest deliverable" in bid.reason
    check_bid(request, body, "sell")
    # one ISP more (10 W beyond the 1 W bid rounding), others kept: the reference says no
    short = int(np.flatnonzero(bid.volume < bid.needed - 1e-6)[0])
    more = bid.volume.copy()
    more[short] += 0.01
    b = summed(body["baseline"])[FIRST:STOP]
    assert np.isnan(portfolio_reference(with_cap(request, b - more, FIRST)).cost)
    assert np.isfinite(portfolio_reference(with_cap(request, b - bid.volume, FIRST)).cost)


def test_a_portfolio_without_flexibility_bids_nothing():
    fixed = [{"name": "pv", "type": "generation", "production": "1 kW"}]
    request = portfolio([fixed, fixed])
    bid = redispatch_bid(request, "sell", FIRST, STOP, 2.0)
    assert not bid.deliverable and bid.flexed is None and bid.price is None
    assert bid.reason is not None and "cannot lower" in bid.reason
    body = bid_to_json(bid)
    assert body["schedule"] is None and body["volume"]["values"] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"direction": "sideways"}, "direction"),
        ({"volume": "2 MWh"}, "volume"),
        ({"end": "2026-03-02T19:30:00+01:00"}, "end"),
        ({"congestion-point": None}, ""),
        ({"volume": {"values": [1.0, 2.0], "unit": "MW"}}, "volume"),
    ],
)
def test_bad_announcements_name_the_field(change, field):
    body = {
        "congestion-point": CP,
        "direction": "sell",
        "start": at(FIRST),
        "end": at(STOP),
        "volume": "2 MW",
        "resolution": "PT1H",
    }
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(RequestValidationError) as info:
        announcement = parse_redispatch(body)
        schedule_window(announcement)
        needed_volume(announcement)
    assert [i.field for i in info.value.issues] == [field], info.value.issues


def test_default_horizon_is_the_day_around_the_period():
    announcement = parse_redispatch(
        {
            "connections": ["EAN1"],
            "direction": "reduce-consumption",
            "period": {"start": at(FIRST), "end": at(STOP)},
            "volume": "1 MW",
            "resolution": "PT15M",
        }
    )
    start, duration, first, stop = schedule_window(announcement)
    assert start.isoformat() == at(0) and duration.total_seconds() == 24 * 3600
    assert (first, stop) == (FIRST * 4, STOP * 4) and announcement.side == "sell"


# -- the API -------------------------------------------------------------------------------------


def store_example(sessions: Any) -> dict[str, Any]:
    """The example portfolio stored in a client account of the admin's consultancy: four
    sites behind ``CP`` and one elsewhere; returns the request of the four (the reference's
    view of what is stored)."""
    request = mixed(5, 0)
    with sessions.begin() as session:
        admin, _ = repo.ensure_admin(session)
        client = repo.get_or_create_account(session, "grid-customer", parent=admin.account)
        for i, site in enumerate(request["sites"]):
            context = {**request["flex-context"], **site["flex-context"]}
            devices = [
                {
                    "name": d["name"],
                    "type": d.get("type", "storage"),
                    "flex_model": {k: v for k, v in d.items() if k not in ("name", "type")},
                }
                for d in site["flex-model"]
            ]
            repo.upsert_site(
                session,
                client,
                site["id"],
                context,
                devices,
                ean=f"EAN87168711000000{i:04d}",
                congestion_point=CP if i < 4 else "EAN-ELSEWHERE",
            )
    behind = copy.deepcopy(request)
    behind["sites"] = request["sites"][:4]
    return behind


@pytest.fixture
def api(fresh_db_url: str) -> Iterator[tuple[TestClient, dict[str, str], dict[str, Any]]]:
    """The app on a fresh database with the example portfolio stored."""
    app = create_app(fresh_db_url, InlineDispatcher(None))
    app.state.dispatcher.sessions = app.state.sessions
    with app.state.sessions.begin() as session:
        _, token = repo.ensure_admin(session)
    assert token is not None
    behind = store_example(app.state.sessions)
    with TestClient(app, raise_server_exceptions=False) as http:
        yield http, {"Authorization": f"Bearer {token}"}, behind


def announcement(**change: Any) -> dict[str, Any]:
    body = {
        "congestion-point": CP,
        "direction": "buy",
        "start": at(FIRST),
        "end": at(STOP),
        "volume": "0.002 MW",
        "resolution": "PT1H",
    }
    return {k: v for k, v in {**body, **change}.items() if v is not None}


def test_api_bid_is_feasible_and_priced_at_its_cost_increase(api):
    http, auth, request = api
    response = http.post("/api/v1/gopacs/redispatch-bid", json=announcement(), headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["full"] and body["direction"] == "buy"
    np.testing.assert_allclose(body["volume"]["values"], [2.0, 2.0, 2.0], atol=1e-9)
    assert [c["id"] for c in body["connections"]] == ["site-0", "site-1", "site-2", "site-3"]
    assert [s["id"] for s in body["schedule"]["sites"]] == ["site-0", "site-1", "site-2", "site-3"]
    assert check_bid(request, body, "buy") > 0


def test_api_bid_is_stored_as_a_job_with_its_schedule(api):
    """Issue 12: a bid goes through the job service like any job: a finished
    ``redispatch-bid`` job in the list, the bid as its result and the schedule that delivers
    it as schedule rows of the stored sites."""
    from sqlalchemy import select

    from store.tables import Schedule, Site

    http, auth, _ = api
    body = http.post("/api/v1/gopacs/redispatch-bid", json=announcement(), headers=auth).json()
    job = http.get(f"/api/v1/scheduling-job/{body['job']}", headers=auth).json()
    assert (job["kind"], job["status"]) == ("redispatch-bid", "finished")
    assert job["result"] == {k: v for k, v in body.items() if k != "job"}
    listed = http.get("/api/v1/scheduling-jobs?kind=redispatch-bid", headers=auth).json()
    assert [j["job"] for j in listed] == [body["job"]]
    sessions = http.app.state.sessions
    with sessions() as session:
        rows = session.execute(
            select(Site.name, Schedule.device_name, Schedule.values)
            .join(Site, Schedule.site_id == Site.id)
            .where(Schedule.job_id == body["job"])
        ).all()
    stored = {(site, device): values for site, device, values in rows}
    for site in body["schedule"]["sites"]:
        assert stored[(site["id"], None)] == site["site"]["power"]["values"]
        for device in site["devices"]:
            assert stored[(site["id"], device["name"])] == device["power"]["values"]
    assert len(stored) == sum(len(s["devices"]) + 1 for s in body["schedule"]["sites"])


def test_api_bid_for_listed_connections(api):
    http, auth, request = api
    eans = ["EAN871687110000000001", "EAN871687110000000003"]
    response = http.post(
        "/api/v1/gopacs/redispatch-bid",
        json=announcement(**{"congestion-point": None, "connections": eans, "direction": "sell"}),
        headers=auth,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [c["ean"] for c in body["connections"]] == eans
    two = copy.deepcopy(request)
    two["sites"] = [request["sites"][1], request["sites"][3]]
    check_bid(two, body, "sell")


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"congestion-point": "EAN-NOBODY"}, 404, None),
        ({"congestion-point": None, "connections": ["EAN871687110000000001", "EAN0"]}, 404, None),
        ({"direction": "sideways"}, 422, "direction"),
        ({"volume": "2 kWh"}, 422, "volume"),
        ({"start": "tomorrow"}, 422, "start"),
    ],
)
def test_api_bad_announcements_are_problem_json(api, change, status, field):
    http, auth, _ = api
    response = http.post("/api/v1/gopacs/redispatch-bid", json=announcement(**change), headers=auth)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    if field is not None:
        assert [e["field"] for e in problem["errors"]] == [field]
    else:
        assert "EAN-NOBODY" in problem["detail"] or "'EAN0'" in problem["detail"]


def test_api_needs_a_token(api):
    http, _, _ = api
    assert http.post("/api/v1/gopacs/redispatch-bid", json=announcement()).status_code == 401


# -- the Python client ---------------------------------------------------------------------------


def test_client_methods_return_the_bid(tmp_path):
    with serve_app(f"sqlite:///{tmp_path}/db.sqlite") as live:
        request = store_example(live.sessions)
        with Client(live.url, token=live.token) as c:
            body = c.gopacs_redispatch_bid(
                "buy", at(FIRST), at(STOP), [2.0, 1.0, 2.0], congestion_point=CP, resolution="PT1H"
            )
            with pytest.raises(ValueError, match="congestion_point or connections"):
                c.gopacs_redispatch_bid("buy", at(FIRST), at(STOP), 1.0)
        assert body["needed"]["values"] == [2.0, 1.0, 2.0]
        check_bid(request, body, "buy")

        async def run() -> dict[str, Any]:
            async with AsyncClient(live.url, token=live.token) as c:
                return await c.gopacs_redispatch_bid(
                    "reduce-consumption",
                    at(FIRST),
                    at(STOP),
                    "0.001 MW",
                    connections=["EAN871687110000000002"],
                    resolution="PT1H",
                )

        sold = asyncio.run(run())
        one = copy.deepcopy(request)
        one["sites"] = [request["sites"][2]]
        assert sold["direction"] == "sell"
        check_bid(one, sold, "sell")
