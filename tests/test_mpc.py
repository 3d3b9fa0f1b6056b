"""Rolling-horizon re-planning (vpp.mpc) and its closed-loop simulation, against hand-derived
numbers and against perfect foresight as an independent bound."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest

from api.cli import main
from vpp import mpc
from vpp.errors import RequestValidationError
from vpp.linear import LinearModel
from vpp.site import SiteProblem

LOSSLESS = {
    "soc-at-start": "0 kWh",
    "soc-min": "0 kWh",
    "soc-max": "1 kWh",
    "power-capacity": "1 kW",
    "roundtrip-efficiency": "100%",
}


def _frame(prices: list[float], load: float = 1.0, pv: float = 0.0) -> pd.DataFrame:
    index = pd.date_range("2026-03-02", periods=len(prices), freq="1h", tz="UTC")
    return pd.DataFrame(
        {
            "load": load,
            "pv": pv,
            "consumption-price": prices,
            "production-price": 0.0,
        },
        index=index,
    )


def test_two_hours_by_hand() -> None:
    # 1 kW of house at 100 then 300 EUR/MWh, a lossless 1 kWh battery starting empty, plans
    # two hours ahead on perfect forecasts: charge 1 kW in hour 0 (grid 2 kW, 0.2 EUR), cover
    # the house in hour 1 (grid 0). Without the battery: 0.1 + 0.3 = 0.4 EUR.
    data = _frame([100, 300, 100, 300])
    sim = mpc.simulate(data, LOSSLESS, first=0, steps=2, horizon=2, forecaster="perfect")
    assert sim.grid == pytest.approx([2.0, 0.0], abs=1e-6)
    assert sim.battery == pytest.approx([1.0, -1.0], abs=1e-6)
    assert sim.soc == pytest.approx([0.0, 1.0, 0.0], abs=1e-6)
    assert sim.realised_cost == pytest.approx(0.2, abs=1e-9)
    assert sim.no_control_cost == pytest.approx(0.4, abs=1e-9)
    assert sim.perfect_foresight_cost == pytest.approx(0.2, abs=1e-9)
    out = sim.to_json()
    assert out["regret"] == 0.0 and out["re-plans"] == 2


def test_forecasts_only_see_the_past(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[pd.Timestamp, pd.Timestamp]] = []

    def spy(history: pd.Series, steps: pd.DatetimeIndex) -> np.ndarray:
        seen.append((history.index[-1], steps[0]))
        return np.asarray(history.iloc[-len(steps) :], float)  # persistence of the last values

    monkeypatch.setitem(mpc.FORECASTERS, "seasonal-naive", spy)
    data = _frame([100, 300] * 6)
    mpc.simulate(data, LOSSLESS, first=4, steps=4, horizon=2, reforecast=2)
    assert len(seen) == 2 * 2  # two issues (every 2 steps), load and pv each
    assert all(last < first for last, first in seen)


@pytest.mark.parametrize("forecaster", ["perfect", "seasonal-naive"])
def test_realised_cost_is_never_below_perfect_foresight(forecaster: str) -> None:
    # The realised trajectory is a schedule perfect foresight could have chosen (same start and
    # end state, same actual series), so its cost bounds the realised one from below.
    sim = mpc.simulate_home(date(2026, 4, 1), 1, history_days=1, forecaster=forecaster)
    assert sim.realised_cost >= sim.perfect_foresight_cost - 1e-6
    assert sim.realised_cost < sim.no_control_cost  # the battery pays on this tariff
    if forecaster == "perfect":
        assert sim.forecast_mae == {"load": 0.0, "pv": 0.0}
    else:
        assert sim.forecast_mae["pv"] > 0.0


def test_ordered_power_is_held() -> None:
    data = _frame([100, 300, 100, 300])
    request = mpc.home_request(
        pd.Timestamp(data.index[0]), data, LOSSLESS, soc=0.0, terminal_soc=None,
        ordered=np.array([0.25]),
    )  # fmt: skip
    plan = mpc.replan(request, None).schedule_of_last()
    assert plan.device_power[mpc.BATTERY][0] == pytest.approx(0.25, abs=1e-9)
    # the next hours still use the rest of the battery: 0.75 kWh more in hour 2 at 100
    assert plan.device_soc[mpc.BATTERY].max() == pytest.approx(1.0, abs=1e-6)


def test_commit_holds_what_an_earlier_plan_ordered(monkeypatch: pytest.MonkeyPatch) -> None:
    # Forecasts say hour 1 is cheap until hour 1 comes; with commit=2 the order made in
    # hour 0 (wait, charge in hour 1) is delivered although hour 1's own plan would differ.
    prices = [300.0, 100.0, 300.0, 300.0, 300.0]
    data = _frame(prices)
    free = mpc.simulate(data, LOSSLESS, first=0, steps=2, horizon=3, forecaster="perfect")
    held = mpc.simulate(data, LOSSLESS, first=0, steps=2, horizon=3, forecaster="perfect",
                        commit=2)  # fmt: skip
    # perfect forecasts: the plans agree, so holding changes nothing
    assert held.battery == pytest.approx(free.battery, abs=1e-9)
    assert held.battery[1] == pytest.approx(1.0, abs=1e-6)


def test_warm_start_keeps_the_optimum() -> None:
    # Feed-in above the buying price: the site model needs import/export binaries (a MILP);
    # a plan warm-started from the one before has the same cost as one solved cold.
    index = pd.date_range("2026-03-02", periods=8, freq="1h", tz="UTC")
    data = pd.DataFrame(
        {"load": [0.5] * 8, "pv": [0, 1, 2, 2, 1, 0, 0, 0],
         "consumption-price": [100, 120, 150, 90, 80, 200, 250, 100],
         "production-price": 180.0},
        index=index,
    )  # fmt: skip
    battery = {**LOSSLESS, "roundtrip-efficiency": "90%"}

    def request(k: int) -> dict[str, Any]:
        return mpc.home_request(pd.Timestamp(index[k]), data.iloc[k : k + 6], battery,
                                soc=0.5, terminal_soc=None, ordered=np.zeros(0))  # fmt: skip

    previous = mpc.replan(request(0), None)
    warm = mpc.replan(request(1), previous)
    cold = SiteProblem(request(1)).solve()
    assert warm.model.integrality().any()
    assert warm.schedule_of_last().cost == pytest.approx(cold.cost, abs=1e-9)


def test_shifted_start_maps_columns_by_block_and_time() -> None:
    old, new = LinearModel(), LinearModel()
    old.add_vars("power", 3, -5.0, 5.0, device="b")
    old.add_vars("peak", 1, 0.0, 9.0)
    new.add_vars("power", 3, -5.0, 5.0, device="b")
    new.add_vars("peak", 1, 0.0, 9.0)
    new.add_vars("extra", 2, 1.0, 2.0)
    start = new.shifted_start(old, np.array([1.0, 2.0, 7.0, 4.0]), 1)
    # power[t] <- old power[t + 1], the last repeated and clipped to 5; peak carried; the
    # block the old model lacks at 0, clipped to its lower bound 1
    assert start.tolist() == [2.0, 5.0, 5.0, 4.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"steps": 0}, "steps"),
        ({"horizon": 1}, "horizon"),
        ({"commit": 0}, "commit"),
        ({"commit": 9}, "commit"),
        ({"first": 3}, "data"),
        ({"forecaster": "oracle"}, "forecaster"),
    ],
)
def test_bad_arguments_name_the_field(change: dict[str, Any], field: str) -> None:
    kwargs: dict[str, Any] = {"first": 0, "steps": 2, "horizon": 2, "forecaster": "perfect"}
    kwargs.update(change)
    with pytest.raises(RequestValidationError) as caught:
        mpc.simulate(_frame([100, 300, 100, 300]), LOSSLESS, **kwargs)
    assert caught.value.issues[0].field == field


def test_bad_data_and_battery_name_the_field() -> None:
    with pytest.raises(RequestValidationError) as caught:
        mpc.simulate(_frame([100, 300]).drop(columns="pv"), LOSSLESS, first=0, steps=1, horizon=2)
    assert caught.value.issues[0].field == "data"
    battery = {k: v for k, v in LOSSLESS.items() if k != "soc-at-start"}
    with pytest.raises(RequestValidationError) as caught:
        mpc.simulate(_frame([100, 300, 100]), battery, first=0, steps=1, horizon=2)
    assert caught.value.issues[0].field == "battery.soc-at-start"


def test_cli_prints_realised_against_perfect_foresight(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--days", "1", "--history-days", "1", "--forecast", "perfect",
                 "--horizon-hours", "12"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    for key in ("realised-cost", "perfect-foresight-cost", "no-control-cost", "regret"):
        assert f'"{key}"' in out
    assert main(["simulate", "--start", "April 1st"]) == 2


def test_a_portfolio_warm_start_keeps_the_optimum() -> None:
    # Two homes with feed-in above the buying price (import/export binaries: a MILP); the
    # centralised model one hour later, warm-started, has the cold solve's cost.
    from vpp.portfolio import CentralisedPortfolio, validate_portfolio

    prices = [100, 120, 150, 90, 80, 200, 250, 100]

    def request(k: int) -> dict[str, Any]:
        start = pd.Timestamp("2026-03-02", tz="UTC") + pd.Timedelta(hours=k)
        window = {"values": prices[k : k + 6], "unit": "EUR/MWh"}
        home = [{"name": "battery", "soc-at-start": "0.5 kWh", "soc-max": "1 kWh",
                 "power-capacity": "1 kW", "roundtrip-efficiency": "90%"},
                {"name": "house", "type": "inflexible", "power": "0.5 kW"}]  # fmt: skip
        sites = [{"id": "a", "flex-model": home}, {"id": "b", "flex-model": home}]
        context = {"consumption-price": window, "production-price": "180 EUR/MWh"}
        window_of = {"start": start.isoformat(), "duration": "PT6H", "resolution": "PT1H"}
        return {**window_of, "flex-context": context, "sites": sites}

    first = CentralisedPortfolio(validate_portfolio(request(0)))
    first.solve()
    warm = CentralisedPortfolio(validate_portfolio(request(1)))
    warm.warm_start(first, 1)
    cold = CentralisedPortfolio(validate_portfolio(request(1))).solve()
    assert warm.model.integrality().any()
    assert warm.solve().to_json()["portfolio"]["cost"]["value"] == pytest.approx(
        cold.to_json()["portfolio"]["cost"]["value"], abs=1e-9
    )
