"""The bundled example site for ``vpp demo``: a home with a battery, an EV, a heat pump with a
buffer, PV, a shiftable appliance and the household's own load, on a day of quarter-hour
prices shaped like a Dutch day-ahead spring day (cheap at night and midday, dear at the
morning and evening peaks).

Also the *unscheduled baseline* the demo compares against: battery idle, EV charging at full
power from arrival until full, heat pump following the heat demand, the appliance starting
at its earliest start, PV producing all it can.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np

from vpp.site import SiteProblem, SiteSchedule

__all__ = [
    "DT",
    "START",
    "STEPS",
    "baseline",
    "day_ahead_prices",
    "demo_request",
    "heat_demand",
    "house_load",
    "pv_forecast",
]


START = "2026-03-02T00:00:00+01:00"
STEPS = 96
DT = 0.25


def day_ahead_prices() -> np.ndarray:
    """EUR/MWh per quarter-hour: a night trough, a solar dip at noon, two peaks."""
    h = np.arange(STEPS) * DT
    price = (
        85.0
        + 45.0 * np.exp(-(((h - 8.0) / 1.6) ** 2))  # morning peak
        + 95.0 * np.exp(-(((h - 18.75) / 2.0) ** 2))  # evening peak
        - 70.0 * np.exp(-(((h - 13.0) / 2.4) ** 2))  # solar dip, negative around noon
        - 20.0 * np.exp(-(((h - 3.5) / 2.0) ** 2))  # night trough
    )
    rounded: np.ndarray = np.round(price, 2)
    return rounded


def pv_forecast(peak_kw: float = 6.0) -> np.ndarray:
    h = np.arange(STEPS) * DT
    pv: np.ndarray = np.round(np.clip(peak_kw * np.sin(np.pi * (h - 7.0) / 11.5), 0.0, None), 3)
    return pv


def house_load() -> np.ndarray:
    h = np.arange(STEPS) * DT
    load = 0.35 + 0.6 * np.exp(-(((h - 7.5) / 1.0) ** 2)) + 1.2 * np.exp(-(((h - 19.0) / 1.8) ** 2))
    rounded: np.ndarray = np.round(load, 3)
    return rounded


def heat_demand() -> np.ndarray:
    """kW of heat: more at night and in the morning (early March)."""
    h = np.arange(STEPS) * DT
    heat: np.ndarray = np.round(2.2 + 1.3 * np.cos(2 * np.pi * (h - 5.0) / 24.0), 3)
    return heat


def _at(hours: float) -> str:
    return (datetime.fromisoformat(START) + timedelta(hours=hours)).isoformat()


def demo_request() -> dict[str, Any]:
    """The example site's request, in the public JSON format."""
    prices = day_ahead_prices()
    return {
        "start": START,
        "duration": "PT24H",
        "resolution": "PT15M",
        "flex-model": [
            {
                "name": "battery",
                "type": "storage",
                "soc-at-start": "4 kWh",
                "soc-min": "1 kWh",
                "soc-max": "13.5 kWh",
                "power-capacity": "5 kW",
                "roundtrip-efficiency": "90%",
                "storage-efficiency": "99.99%",
                "soc-targets": [{"datetime": _at(24), "value": "4 kWh"}],
            },
            {
                "name": "ev",
                "type": "storage",
                "soc-at-start": "30 kWh",
                "soc-min": "8 kWh",
                "soc-max": "60 kWh",
                "consumption-capacity": "11 kW",
                "production-capacity": "0 kW",
                "charging-efficiency": "92%",
                "availability": [
                    {"start": START, "end": _at(7.5)},
                    {"start": _at(17.5), "end": _at(24)},
                ],
                # driving to work and back: 12 kWh drawn while away
                "soc-usage": [{"start": _at(7.5), "end": _at(17.5), "value": "1.2 kW"}],
                "soc-minima": [{"datetime": _at(7.5), "value": "45 kWh"}],
                "soc-targets": [{"datetime": _at(24), "value": "40 kWh"}],
            },
            {
                "name": "heat-pump",
                "type": "heat",
                "soc-at-start": "12 kWh",
                "soc-min": "4 kWh",
                "soc-max": "24 kWh",
                "cop": "3.4",
                "power-capacity": "3 kW",
                "storage-efficiency": "99.9%",
                "heat-demand": {"values": heat_demand().tolist(), "unit": "kW"},
                "soc-targets": [{"datetime": _at(24), "value": "12 kWh"}],
            },
            {
                "name": "pv",
                "type": "generation",
                "curtailable": True,
                "production": {"values": pv_forecast().tolist(), "unit": "kW"},
            },
            {
                "name": "washing-machine",
                "type": "shiftable",
                "power": {"values": [2.0, 2.0, 0.4, 0.4, 0.4, 1.8], "unit": "kW"},
                "process-type": "SHIFTABLE",
                "earliest-start": _at(8),
                "latest-end": _at(22),
            },
        ],
        "flex-context": {
            "consumption-price": {"values": (prices + 30.0).tolist(), "unit": "EUR/MWh"},
            "production-price": {"values": prices.tolist(), "unit": "EUR/MWh"},
            "site-power-capacity": "17 kW",
            "inflexible-devices": {"house": {"values": house_load().tolist(), "unit": "kW"}},
        },
    }


def baseline(problem: SiteProblem) -> SiteSchedule:
    """What the site would do without a scheduler (see module docstring), costed alike.

    The EV charges at full power on arrival until it has what it needs next (45 kWh for the
    morning, 40 kWh by midnight); the heat pump tracks the demand, so the buffer stays put.
    """
    req = demo_request()
    steps, powers = STEPS, {}
    powers["battery"] = np.zeros(steps)
    ev = np.zeros(steps)
    soc = 30.0
    for t in range(steps):
        home = t < 30 or t >= 70
        wanted = 45.0 if t < 30 else 40.0  # the next minimum or target
        if not home:
            soc -= 1.2 * DT
        elif soc < wanted:
            ev[t] = min(11.0, (wanted - soc) / (0.92 * DT))
            soc += 0.92 * ev[t] * DT
    powers["ev"] = ev
    powers["heat-pump"] = heat_demand() / 3.4
    powers["pv"] = -pv_forecast()
    machine = np.zeros(steps)
    machine[32:38] = req["flex-model"][4]["power"]["values"]
    powers["washing-machine"] = machine
    site = sum(powers.values(), house_load())
    inputs = problem.inputs
    cost = float(
        DT
        * (
            inputs.consumption_price @ np.maximum(site, 0.0)
            - inputs.production_price @ np.maximum(-site, 0.0)
        )
    )
    kinds = {dv.name: dv.kind for dv, _ in problem.devices}
    return SiteSchedule(problem.horizon, powers, {}, kinds, site, cost, cost)
