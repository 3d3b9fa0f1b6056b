"""Rolling-horizon re-planning (model predictive control) of a site, and its closed-loop
simulation over history.

Every ISP ``k`` the site is planned again over the next ``horizon`` steps (:func:`replan`):

* from the storages' **measured** state of charge (``soc-at-start``);
* on the **newest forecasts** of what is uncertain (house load, PV), issued at or before
  ``k`` from data before their issue time;
* with the power **already ordered** held fixed: the plan of ISP ``k - 1`` ordered its steps
  ``k - 1 .. k + commit - 2``; those still ahead stay as ordered (``power-fixed``);
* **warm-started** from the previous plan shifted by one step
  (:meth:`vpp.site.SiteProblem.warm_start`).

Only the first step of each plan is applied. :func:`simulate` closes the loop on a history
(:func:`vpp.datasets.greensboro_home`): the battery follows its set-point, the house and the
PV do what they really did, the grid takes the difference and is billed. It reports the
realised cost against

* **perfect foresight**: one schedule of the whole period on the actual series (a lower
  bound no controller reaches), ending at the state of charge the controller ended at, so
  the two are comparable;
* **no control**: the battery idle (grid = load - PV).

Forecasters (:data:`FORECASTERS`): ``perfect`` (the actuals: isolates the horizon's
effect), ``seasonal-naive`` (the same time one day earlier) and ``model``
(:func:`vpp.forecast.forecast`, re-trained at each issue).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from vpp.errors import RequestValidationError
from vpp.site import SiteProblem, SiteSchedule
from vpp.timeseries import iso_duration
from vpp.units import parse_quantity

__all__ = [
    "DEFAULT_BATTERY",
    "FORECASTERS",
    "Forecaster",
    "Simulation",
    "home_request",
    "replan",
    "simulate",
    "simulate_home",
]

logger = logging.getLogger(__name__)

Forecaster = Callable[[pd.Series, pd.DatetimeIndex], np.ndarray]
"""``(history, steps) -> values``: a forecast of ``steps`` from ``history``, the series
before the issue time (and nothing after it)."""

DEFAULT_BATTERY: dict[str, Any] = {
    "soc-at-start": "5 kWh",
    "soc-min": "1 kWh",
    "soc-max": "10 kWh",
    "power-capacity": "5 kW",
    "roundtrip-efficiency": "90%",
}
UNCERTAIN = ("load", "pv")  # the series forecast; prices are a tariff known in advance
BATTERY = "battery"


def _seasonal_naive(history: pd.Series, steps: pd.DatetimeIndex) -> np.ndarray:
    """The value a whole number of days before each step (the least that reaches into the
    history: :func:`vpp.forecast.repeat_season`)."""
    from vpp.forecast import repeat_season

    return repeat_season(history, steps, timedelta(days=1))


def _model(history: pd.Series, steps: pd.DatetimeIndex) -> np.ndarray:
    from vpp.forecast import forecast

    resolution = steps[1] - steps[0]
    made = forecast(history, start=steps[0], steps=len(steps), resolution=resolution)
    return np.asarray(made.mean, float)


FORECASTERS: dict[str, Forecaster | None] = {
    "perfect": None,
    "seasonal-naive": _seasonal_naive,
    "model": _model,
}


def home_request(
    start: pd.Timestamp,
    frame: pd.DataFrame,
    battery: Mapping[str, Any],
    *,
    soc: float,
    terminal_soc: float | None,
    ordered: np.ndarray,
) -> dict[str, Any]:
    """The site request of one plan: ``frame`` holds the plan's steps (``load`` and ``pv``
    as forecast, the tariff); ``ordered`` the battery's already-ordered power of its first
    steps (kW, may be empty)."""
    resolution = frame.index[1] - frame.index[0]
    end = start + len(frame) * resolution
    storage = {**battery, "name": BATTERY, "type": "storage", "soc-at-start": f"{soc} kWh"}
    storage.pop("soc-targets", None)
    if terminal_soc is not None:
        storage["soc-minima"] = [{"datetime": end.isoformat(), "value": f"{terminal_soc} kWh"}]
    if ordered.size:
        storage["power-fixed"] = [
            {
                "start": (start + i * resolution).isoformat(),
                "end": (start + (i + 1) * resolution).isoformat(),
                "value": f"{value} kW",
            }
            for i, value in enumerate(ordered)
        ]

    def series(column: str, unit: str) -> dict[str, Any]:
        return {"values": [float(v) for v in frame[column]], "unit": unit}

    return {
        "start": start.isoformat(),
        "duration": iso_duration(end - start),
        "resolution": iso_duration(resolution),
        "flex-model": [
            storage,
            {"name": "pv", "type": "generation", "production": series("pv", "kW")},
        ],
        "flex-context": {
            "consumption-price": series("consumption-price", "EUR/MWh"),
            "production-price": series("production-price", "EUR/MWh"),
            "inflexible-devices": {"house": series("load", "kW")},
        },
    }


def replan(request: Mapping[str, Any], previous: SiteProblem | None) -> SiteProblem:
    """Solve one plan, warm-started from ``previous`` (the plan one step earlier); the
    problem is returned solved (``last_x`` set) for the next warm start."""
    problem = SiteProblem(dict(request))
    if previous is not None:
        problem.warm_start(previous, 1)
    problem.solve()
    return problem


@dataclass
class Simulation:
    """What a closed-loop run realised, and what the references would have."""

    steps: int
    resolution: timedelta
    grid: np.ndarray  # kW realised per step, consumption positive
    battery: np.ndarray  # kW applied per step
    soc: np.ndarray  # kWh per instant
    realised_cost: float = 0.0  # EUR
    perfect_foresight_cost: float = 0.0
    no_control_cost: float = 0.0
    solve_seconds: list[float] = field(default_factory=list)
    forecast_mae: dict[str, float] = field(default_factory=dict)  # kW, over plans' 1st steps

    def to_json(self) -> dict[str, Any]:
        times = np.array(self.solve_seconds)
        regret = self.realised_cost - self.perfect_foresight_cost
        return {
            "steps": self.steps,
            "resolution": iso_duration(self.resolution),
            "realised-cost": round(self.realised_cost, 4),
            "perfect-foresight-cost": round(self.perfect_foresight_cost, 4),
            "no-control-cost": round(self.no_control_cost, 4),
            "regret": round(regret, 4) + 0.0,  # + 0.0: -0.0 prints as 0.0
            "savings-realised": round(self.no_control_cost - self.realised_cost, 4),
            "savings-perfect-foresight": round(
                self.no_control_cost - self.perfect_foresight_cost, 4
            ),
            "soc-at-start": round(float(self.soc[0]), 4),
            "soc-at-end": round(float(self.soc[-1]), 4),
            "forecast-mae": {k: round(v, 4) for k, v in self.forecast_mae.items()},
            "re-plans": len(times),
            "plan-seconds": {
                "mean": round(float(times.mean()), 5) if times.size else None,
                "max": round(float(times.max()), 5) if times.size else None,
            },
        }


def _bill(grid: np.ndarray, frame: pd.DataFrame, hours: float) -> float:
    buy = frame["consumption-price"].to_numpy()
    sell = frame["production-price"].to_numpy()
    eur = buy * np.maximum(grid, 0.0) - sell * np.maximum(-grid, 0.0)
    return float(eur.sum() * hours / 1000.0)


class _Forecasts:
    """The newest forecast of each uncertain series: issued every ``every`` steps from the
    data before the issue time, covering up to the next issue plus a horizon."""

    def __init__(self, data: pd.DataFrame, forecaster: Forecaster | None, every: int, span: int):
        self.data, self.forecaster, self.every, self.span = data, forecaster, every, span
        self.issued_at = -1
        self.values: dict[str, np.ndarray] = {}

    def window(self, k: int, horizon: int) -> pd.DataFrame:
        frame = self.data.iloc[k : k + horizon].copy()
        if self.forecaster is None:
            return frame
        if self.issued_at < 0 or k - self.issued_at >= self.every:
            self._issue(k)
        offset = k - self.issued_at
        for column in UNCERTAIN:
            frame[column] = self.values[column][offset : offset + horizon]
        return frame

    def _issue(self, k: int) -> None:
        assert self.forecaster is not None
        steps = pd.DatetimeIndex(self.data.index[k : k + self.span])
        self.values = {c: self.forecaster(self.data[c].iloc[:k], steps) for c in UNCERTAIN}
        self.values["pv"] = np.maximum(self.values["pv"], 0.0)
        self.values["load"] = np.maximum(self.values["load"], 0.0)
        self.issued_at = k


def simulate(
    data: pd.DataFrame,
    battery: Mapping[str, Any],
    *,
    first: int,
    steps: int,
    horizon: int = 96,
    forecaster: str = "seasonal-naive",
    reforecast: int = 96,
    commit: int = 1,
) -> Simulation:
    """Re-plan every step of ``data.iloc[first : first + steps]`` and apply each plan's
    first step. ``data`` (columns ``load``, ``pv``, ``consumption-price``,
    ``production-price``, regular steps) must reach ``horizon`` steps past the period;
    the rows before ``first`` are the history forecasts learn from. ``battery`` is a
    storage flex-model entry; its ``soc-at-start`` is the state at ``first`` and each plan
    must end at least that full (no plan empties the battery at its horizon)."""
    _check(data, battery, first=first, steps=steps, horizon=horizon, commit=commit)
    if forecaster not in FORECASTERS:
        raise RequestValidationError.single("forecaster", f"one of {sorted(FORECASTERS)}")
    resolution = data.index[1] - data.index[0]
    hours = resolution / timedelta(hours=1)
    soc0 = _kwh(battery["soc-at-start"])
    forecasts = _Forecasts(data, FORECASTERS[forecaster], reforecast, reforecast + horizon)
    sim = Simulation(steps, resolution, np.zeros(steps), np.zeros(steps), np.full(steps + 1, soc0))
    ordered = np.zeros(0)  # battery power ordered for the steps from k on
    previous: SiteProblem | None = None
    errors: dict[str, list[float]] = {c: [] for c in UNCERTAIN}
    for i in range(steps):
        k = first + i
        window = forecasts.window(k, horizon)
        request = home_request(
            pd.Timestamp(data.index[k]), window, battery,
            soc=float(sim.soc[i]), terminal_soc=soc0, ordered=ordered[: commit - 1],
        )  # fmt: skip
        started = time.perf_counter()
        previous = replan(request, previous)
        sim.solve_seconds.append(time.perf_counter() - started)
        plan = previous.schedule_of_last()
        ordered = _ordered(plan, ordered, commit)
        sim.battery[i] = ordered[0]
        sim.soc[i + 1] = plan.device_soc[BATTERY][1]
        actual = data.iloc[k]
        sim.grid[i] = actual["load"] - actual["pv"] + sim.battery[i]
        for column in UNCERTAIN:
            errors[column].append(abs(float(window[column].iloc[0]) - float(actual[column])))
        ordered = ordered[1:]
    period = data.iloc[first : first + steps]
    sim.realised_cost = _bill(sim.grid, period, hours)
    sim.no_control_cost = _bill((period["load"] - period["pv"]).to_numpy(), period, hours)
    sim.perfect_foresight_cost = _perfect_foresight(period, battery, soc0, float(sim.soc[-1]))
    sim.forecast_mae = {c: float(np.mean(e)) for c, e in errors.items()}
    return sim


def _ordered(plan: SiteSchedule, ordered: np.ndarray, commit: int) -> np.ndarray:
    """The battery power ordered for the steps from now: what was ordered before, then
    this plan's next steps up to ``commit`` ahead."""
    power = plan.device_power[BATTERY]
    return np.concatenate([ordered, power[ordered.size : max(commit, 1)]])


def _perfect_foresight(
    period: pd.DataFrame, battery: Mapping[str, Any], soc0: float, soc_end: float
) -> float:
    request = home_request(
        pd.Timestamp(period.index[0]), period, battery,
        soc=soc0, terminal_soc=None, ordered=np.zeros(0),
    )  # fmt: skip
    end = pd.Timestamp(period.index[0]) + len(period) * (period.index[1] - period.index[0])
    request["flex-model"][0]["soc-targets"] = [
        {"datetime": end.isoformat(), "value": f"{soc_end} kWh"}
    ]
    return SiteProblem(request).solve().cost


def _kwh(value: Any) -> float:
    try:
        return parse_quantity(value, "energy")
    except ValueError as err:
        raise RequestValidationError.single("battery.soc-at-start", str(err)) from None


def _check(
    data: pd.DataFrame,
    battery: Mapping[str, Any],
    *,
    first: int,
    steps: int,
    horizon: int,
    commit: int,
) -> None:
    missing = [c for c in (*UNCERTAIN, "consumption-price", "production-price") if c not in data]
    if missing:
        raise RequestValidationError.single("data", f"lacks the columns {missing}")
    if "soc-at-start" not in battery:
        raise RequestValidationError.single("battery.soc-at-start", "is required")
    for name, value, least in (("steps", steps, 1), ("horizon", horizon, 2), ("commit", commit, 1)):
        if value < least:
            raise RequestValidationError.single(name, f"must be at least {least}")
    if commit > horizon:
        raise RequestValidationError.single("commit", "must not exceed the horizon")
    if first < 0 or first + steps + horizon > len(data):
        raise RequestValidationError.single(
            "data", f"needs {horizon} steps past the period (rows {first} to {first + steps})"
        )


def simulate_home(
    first_day: date,
    days: int,
    *,
    history_days: int = 7,
    horizon_hours: int = 24,
    forecaster: str = "seasonal-naive",
    commit: int = 1,
    battery: Mapping[str, Any] | None = None,
) -> Simulation:
    """:func:`simulate` on :func:`vpp.datasets.greensboro_home` from ``first_day`` for
    ``days``, forecasts learning from the ``history_days`` before and issued daily at
    midnight (``vpp simulate``)."""
    from vpp.datasets import greensboro_home

    if history_days < 1:
        raise RequestValidationError.single("history-days", "must be at least 1")
    if horizon_hours < 1:
        raise RequestValidationError.single("horizon-hours", "must be at least 1")
    span = history_days + days + (horizon_hours + 23) // 24
    data = greensboro_home(first_day - timedelta(days=history_days), span)
    per_day = 96
    return simulate(
        data, battery or DEFAULT_BATTERY,
        first=history_days * per_day, steps=days * per_day, horizon=horizon_hours * 4,
        forecaster=forecaster, reforecast=per_day, commit=commit,
    )  # fmt: skip
