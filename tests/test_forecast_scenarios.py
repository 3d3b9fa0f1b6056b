"""Scenarios from a forecast's interval or past errors (vpp.forecast_scenarios), checked by
hand and through a two-stage solve whose numbers are derived below."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from vpp.errors import RequestValidationError
from vpp.forecast import Forecast
from vpp.forecast_scenarios import error_scenarios, interval_scenarios, robust_request
from vpp.stochastic import solve_robust

INDEX = pd.date_range("2026-03-02", periods=2, freq="1h", tz="UTC")


def _forecast(coverage: float = 0.8) -> Forecast:
    return Forecast(INDEX, np.array([50.0, 40.0]), np.array([50.0, -10.0]),
                    np.array([50.0, 120.0]), "test", coverage)  # fmt: skip


def test_interval_scenarios_by_hand() -> None:
    made = interval_scenarios(_forecast(), "flex-context:consumption-price", "EUR/MWh")
    assert [(s["name"], s["probability"]) for s in made] == [
        ("low", 0.3), ("median", 0.4), ("high", 0.3)
    ]  # fmt: skip
    assert [s["flex-context"]["consumption-price"]["values"] for s in made] == [
        [50.0, -10.0], [50.0, 40.0], [50.0, 120.0]
    ]  # fmt: skip
    pt = interval_scenarios(_forecast(0.9), "flex-model:pv:production", "kW", least=0.0)
    assert [s["probability"] for s in pt] == [0.185, 0.63, 0.185]
    assert pt[0]["flex-model"] == [{"name": "pv", "production": {"values": [50.0, 0.0],
                                                                  "unit": "kW"}}]  # fmt: skip


def test_a_two_stage_schedule_over_the_interval() -> None:
    # A 1 kWh / 1 kW battery, empty; hour 0 at 50 EUR/MWh, hour 1 at -10, 40 or 120 with
    # probabilities 0.3, 0.4, 0.3 (feed-in paid the same). Charging x kWh in hour 0 costs
    # 50x; then hour 1 charges the rest (1 - x) at -10 in the low case and sells x at 40 or
    # 120: expected 50x + 0.3*-10*(1 - x) - 0.4*40x - 0.3*120x = x - 3 (EUR/MWh x kWh), so
    # x = 0 and RP = -0.003 EUR. Knowing hour 1: low -0.01 (charge at -10), median 0,
    # high -0.07 (50 in, 120 out): WS = -0.024 EUR, EVPI = 0.021 EUR.
    base: dict[str, Any] = {
        "start": INDEX[0].isoformat(), "duration": "PT2H", "resolution": "PT1H",
        "flex-model": [{"name": "battery", "soc-at-start": "0 kWh", "soc-max": "1 kWh",
                        "power-capacity": "1 kW"}],
        "flex-context": {"consumption-price": {"values": [50, 40], "unit": "EUR/MWh"}},
    }  # fmt: skip
    scenarios = interval_scenarios(_forecast(), "flex-context:consumption-price", "EUR/MWh")
    result = solve_robust(robust_request(base, scenarios, "PT1H"))

    def eur(key: str) -> float:
        value = result[key]
        return float(value["value"] if isinstance(value, dict) else value)

    assert eur("expected-cost") == pytest.approx(-0.003, abs=1e-9)
    assert eur("wait-and-see") == pytest.approx(-0.024, abs=1e-9)
    assert eur("evpi") == pytest.approx(0.021, abs=1e-9)


def test_error_scenarios_by_hand() -> None:
    made = error_scenarios([1.0, 1.0], [[0.5, -0.5], [-1.5, 0.5]], "flex-context:"
                           "inflexible-devices:house", "kW", least=0.0)  # fmt: skip
    assert [s["probability"] for s in made] == [0.5, 0.5]
    assert [s["flex-context"]["inflexible-devices"]["house"]["values"] for s in made] == [
        [1.5, 0.5], [0.0, 1.5]
    ]  # fmt: skip
    request = robust_request(
        {"flex-context": {"inflexible-devices": {"fridge": "0.1 kW"}}}, made, "PT1H"
    )
    assert set(request["scenarios"][0]["flex-context"]["inflexible-devices"]) == {
        "fridge", "house"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: interval_scenarios(_forecast(0.5), "flex-context:x", "kW"), "coverage"),
        (lambda: interval_scenarios(_forecast(), "prices", "kW"), "target"),
        (lambda: interval_scenarios(_forecast(), "flex-model:pv", "kW"), "target"),
        (lambda: error_scenarios([1.0], [[1.0, 2.0]], "flex-context:x", "kW"), "errors"),
        (lambda: error_scenarios([1.0], [], "flex-context:x", "kW"), "errors"),
        (lambda: error_scenarios([1.0], [[float("nan")]], "flex-context:x", "kW"), "errors"),
    ],
)
def test_bad_arguments_name_the_field(call: Any, field: str) -> None:
    with pytest.raises(RequestValidationError) as caught:
        call()
    assert caught.value.issues[0].field == field
