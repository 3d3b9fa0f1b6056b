"""Capacity headroom (issue 14 item 4) against hand-derived numbers.

One site: a house of 0.5 kW and a battery (1 kWh of 2, 1 kW), two hours at 100 EUR/MWh,
feed-in paid nothing. The unique optimum covers the house from the battery: 0.5 kW in each
hour, site power 0, 0. Hour 0: it can charge 1 kW on top of the house (1.5 kW, then any hour
1 is feasible) or discharge 1 kW (-0.5 kW): up 1.5, down 0.5. Hour 1, hour 0 held at 0 kW
(SoC 0.5 kWh): up 1.5 again, down 0 (0.5 kWh covers the house and no more).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from api_harness import assert_problem, harness

from vpp.errors import InfeasibleError
from vpp.headroom import headroom
from vpp.portfolio import CentralisedPortfolio

BASE: dict[str, Any] = {
    "start": "2026-03-02T00:00:00+00:00",
    "duration": "PT2H",
    "resolution": "PT1H",
    "flex-context": {"consumption-price": "100 EUR/MWh", "production-price": "0 EUR/MWh"},
    "sites": [
        {
            "id": "home",
            "flex-model": [
                {"name": "battery", "soc-at-start": "1 kWh", "soc-max": "2 kWh",
                 "power-capacity": "1 kW"},
                {"name": "house", "type": "inflexible", "power": "0.5 kW"},
            ],
        }
    ],
}  # fmt: skip


def test_headroom_by_hand() -> None:
    result = headroom(copy.deepcopy(BASE))
    assert result["scheduled"]["values"] == pytest.approx([0.0, 0.0])
    assert result["up"]["values"] == pytest.approx([1.5, 1.5])
    assert result["down"]["values"] == pytest.approx([0.5, 0.0])


def test_a_congestion_limit_caps_the_headroom() -> None:
    request = copy.deepcopy(BASE)
    request["target"] = {"type": "congestion", "max-consumption": "1 kW"}
    assert headroom(request)["up"]["values"] == pytest.approx([1.0, 1.0])


def test_accepting_the_headroom_is_feasible_and_more_is_not() -> None:
    """Re-solve with the hour-0 up headroom accepted and activated: a commitment holding the
    portfolio at or above S*[0] + up[0] (a negative max-production) is feasible; 0.01 kW
    more is not. The same for down: at or below S*[0] - down[0]."""
    result = headroom(copy.deepcopy(BASE))
    s0, up, down = (result[k]["values"][0] for k in ("scheduled", "up", "down"))
    for extra, feasible in ((0.0, True), (0.01, False)):
        for field, bound in (("max-production", -(s0 + up + extra)),
                             ("max-consumption", s0 - down - extra)):  # fmt: skip
            request = copy.deepcopy(BASE)
            request["commitments"] = [{field: {"values": [bound, 100.0], "unit": "kW"}}]
            if feasible:
                CentralisedPortfolio(request).solve()
            else:
                with pytest.raises(InfeasibleError):
                    CentralisedPortfolio(request).solve()


def test_the_api_answers_headroom(tmp_path: Path) -> None:
    with harness("sqlite", tmp_path) as api:
        answer = api.http.post("/api/v1/headroom", json=BASE, headers=api.admin)
        assert answer.status_code == 200, answer.text
        assert answer.json()["up"]["values"] == pytest.approx([1.5, 1.5])
        bad = {**BASE, "sites": []}
        assert_problem(api.http.post("/api/v1/headroom", json=bad, headers=api.admin), 422)
        viewer = api.account("headroom-viewer", role="viewer")
        assert_problem(api.http.post("/api/v1/headroom", json=BASE, headers=viewer), 403)


def test_the_python_client_asks_for_headroom(tmp_path: Path) -> None:
    from vpp.client import Client

    with harness("sqlite", tmp_path) as api:
        token = api.admin["Authorization"].removeprefix("Bearer ")
        client = Client("http://testserver", token=token, transport=api.http._transport)
        assert client.headroom(BASE)["down"]["values"] == pytest.approx([0.5, 0.0])
