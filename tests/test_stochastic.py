"""Two-stage scenario-robust schedules (issue 14 item 3) against a brute-force reference.

The case: one lossless 1 kWh / 1 kW battery, empty, two hourly steps, feed-in paid the
purchase price. The first stage is hour 0 at 50 EUR/MWh; hour 1 costs 100 EUR/MWh with
probability 0.6 ("high") or 0 with probability 0.4 ("low"). The point forecast says 40.

By hand, with ``x`` the charge in hour 0 (shared) and the best recourse in hour 1:
high: sell all, ``(50 x - 100 x) / 1000``; low: keep it, ``50 x / 1000``. Expected:
``-0.01 x``, so ``x = 1`` and RP = -0.01 EUR. Wait-and-see: high alone -0.05, low alone 0:
WS = -0.03, EVPI = 0.02. The point forecast (40 in hour 1) never charges: its first stage
``x = 0`` costs 0 in both scenarios, EEV = 0, VSS = 0.01. The brute force below finds RP by
enumerating ``x`` and each scenario's recourse on a grid, without vpp.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vpp.errors import RequestValidationError
from vpp.stochastic import solve_robust

PRICE_0, HIGH, LOW, P_HIGH = 50.0, 100.0, 0.0, 0.6


def _request() -> dict[str, Any]:
    def prices(second: float) -> dict[str, Any]:
        return {"values": [PRICE_0, second], "unit": "EUR/MWh"}

    return {
        "start": "2026-03-02T00:00:00+00:00",
        "duration": "PT2H",
        "resolution": "PT1H",
        "first-stage": "PT1H",
        "flex-model": [
            {
                "name": "battery",
                "soc-at-start": "0 kWh",
                "soc-max": "1 kWh",
                "power-capacity": "1 kW",
            }
        ],
        "flex-context": {"consumption-price": prices(40.0)},
        "scenarios": [
            {
                "name": "high",
                "probability": P_HIGH,
                "flex-context": {"consumption-price": prices(HIGH)},
            },
            {
                "name": "low",
                "probability": 1 - P_HIGH,
                "flex-context": {"consumption-price": prices(LOW)},
            },
        ],
    }


def _brute_force() -> float:
    """min over x of the expected cost, each scenario's recourse (power y in hour 1, SoC in
    [0, 1], |y| <= 1) enumerated: both on a grid of 0.05 kWh."""
    grid = np.round(np.arange(0.0, 1.0001, 0.05), 2)
    best = np.inf
    for x in grid:  # charge in hour 0 (SoC after: x)
        expected = 0.0
        for probability, price in ((P_HIGH, HIGH), (1 - P_HIGH, LOW)):
            recourse = min(
                (PRICE_0 * x + price * y) / 1000.0
                for y in np.round(np.arange(-x, 1 - x + 1e-9, 0.05), 2)
            )
            expected += probability * recourse
        best = min(best, expected)
    return float(best)


def test_the_two_stage_schedule_matches_the_brute_force() -> None:
    result = solve_robust(_request())
    assert _brute_force() == pytest.approx(-0.01)
    assert result["expected-cost"]["value"] == pytest.approx(_brute_force(), abs=1e-9)
    assert result["wait-and-see"]["value"] == pytest.approx(-0.03)
    assert result["evpi"]["value"] == pytest.approx(0.02)
    assert result["expected-value-cost"]["value"] == pytest.approx(0.0)
    assert result["vss"]["value"] == pytest.approx(0.01)
    (battery,) = result["first-stage"]["devices"]
    assert battery["power"]["values"] == pytest.approx([1.0])
    high, low = result["scenarios"]
    assert high["devices"][0]["power"]["values"] == pytest.approx([1.0, -1.0])
    assert low["devices"][0]["power"]["values"][0] == pytest.approx(1.0)  # the shared stage
    assert (high["probability"], low["probability"]) == pytest.approx((0.6, 0.4))


def test_one_certain_scenario_has_no_value_of_information() -> None:
    request = _request()
    request["scenarios"] = [{"name": "sure", "probability": 1.0}]
    result = solve_robust(request)
    assert result["evpi"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert result["vss"]["value"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r.pop("first-stage"), "first-stage"),
        (lambda r: r.update({"first-stage": "PT3H"}), "first-stage"),
        (lambda r: r.update({"first-stage": "PT30M"}), "first-stage"),
        (lambda r: r.update({"scenarios": []}), "scenarios"),
        (lambda r: r["scenarios"][0].update({"probability": 0.5}), "scenarios"),
        (lambda r: r["scenarios"][0].update({"probability": "high"}), "scenarios[0].probability"),
        (lambda r: r["scenarios"][0].update({"colour": 1}), "scenarios[0].colour"),
        (
            lambda r: r["scenarios"][0].update(
                {"flex-model": [{"name": "ev", "soc-max": "1 kWh"}]}
            ),
            "scenarios[0].flex-model[0].name",
        ),
        (
            lambda r: r["scenarios"][1].update({"flex-context": {"consumption-price": "cheap"}}),
            "scenarios[1].flex-context.consumption-price",
        ),
    ],
)
def test_bad_requests_name_the_field(change: Any, field: str) -> None:
    request = copy.deepcopy(_request())
    change(request)
    with pytest.raises(RequestValidationError) as err:
        solve_robust(request)
    assert field in [i.field for i in err.value.issues]


def test_device_overrides_per_scenario() -> None:
    """A house of 1 kW and PV of 2 kW (point forecast) or 0 kW (cloudy, p = 0.5) in hour 1,
    no battery decision needed: the first stage is empty and each scenario pays its own
    import (cloudy: 1 kWh at the price of hour 1)."""
    request = _request()
    request["flex-model"].append(
        {"name": "pv", "type": "generation", "production": {"values": [0, 2], "unit": "kW"}}
    )
    request["scenarios"][1]["flex-model"] = [
        {"name": "pv", "production": {"values": [0, 0], "unit": "kW"}}
    ]
    result = solve_robust(request)
    low = result["scenarios"][1]
    assert [d["name"] for d in low["devices"]] == ["battery", "pv"]
    assert low["devices"][1]["power"]["values"] == pytest.approx([0.0, 0.0])


@pytest.mark.usefixtures("ray_session")
def test_the_scenarios_run_on_ray_with_the_same_numbers() -> None:
    from actors.scenarios import solve_robust_on_ray

    on_ray = solve_robust_on_ray(_request())
    local = solve_robust(_request())
    for key in ("expected-cost", "wait-and-see", "evpi", "expected-value-cost", "vss"):
        assert on_ray[key]["value"] == pytest.approx(local[key]["value"], abs=1e-12)


def test_the_cli_runs_the_worked_example(tmp_path: Path) -> None:
    """docs/scenarios.md's request, through `vpp robust`: its numbers."""
    request = tmp_path / "robust.json"
    text = (Path(__file__).resolve().parent.parent / "docs" / "scenarios.md").read_text()
    request.write_text(text.split("```json\n", 1)[1].split("```", 1)[0])
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "robust", str(request), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["expected-cost"]["value"] == pytest.approx(-0.01)
    assert result["vss"]["value"] == pytest.approx(0.01)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**json.loads(request.read_text()), "first-stage": "PT3H"}))
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "robust", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0 and "first-stage" in done.stderr
    assert "Traceback" not in done.stderr
