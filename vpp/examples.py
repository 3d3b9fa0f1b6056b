"""Example portfolios of mixed homes, deterministic for a seed: the portfolio demo, the tests
and the benchmarks use them.

Each home has a household load and, at random, a battery, an EV, a heat pump with a buffer,
PV and (with ``shiftable_share``) a washing machine to shift. A congestion limit is set from
the homes' own schedules: ``limit_fraction`` of their unconstrained peak, never below what
they must consume at the least.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vpp.demo import START, STEPS, _at, day_ahead_prices, heat_demand, house_load, pv_forecast


def mixed_home(rng: np.random.Generator, shiftable_share: float = 0.0) -> dict[str, Any]:
    """One home's flex-model and flex-context override."""
    devices: list[dict[str, Any]] = []
    kinds = rng.random(4)
    if kinds[0] < 0.6:
        size = float(rng.choice([5.0, 10.0, 13.5]))
        devices.append(
            {
                "name": "battery",
                "soc-at-start": f"{size * rng.uniform(0.2, 0.8):.2f} kWh",
                "soc-min": "0 kWh",
                "soc-max": f"{size} kWh",
                "power-capacity": f"{size / 2.5:.1f} kW",
                "roundtrip-efficiency": f"{rng.uniform(85, 93):.1f}%",
            }
        )
    if kinds[1] < 0.4:
        leave, back = rng.uniform(6.5, 9.0), rng.uniform(16.5, 19.5)
        start_soc = rng.uniform(15, 35)
        devices.append(
            {
                "name": "ev",
                "soc-at-start": f"{start_soc:.1f} kWh",
                "soc-min": "5 kWh",
                "soc-max": "60 kWh",
                "consumption-capacity": f"{rng.choice([3.7, 7.4, 11.0])} kW",
                "production-capacity": "0 kW",
                "charging-efficiency": "92%",
                "availability": [
                    {"start": START, "end": _quarter(leave)},
                    {"start": _quarter(back), "end": _at(24)},
                ],
                "soc-usage": [{"start": _quarter(leave), "end": _quarter(back), "value": "1 kW"}],
                "soc-targets": [
                    {"datetime": _at(24), "value": f"{min(start_soc + 10, 55):.1f} kWh"}
                ],
            }
        )
    if kinds[2] < 0.4:
        demand = heat_demand() * rng.uniform(0.6, 1.2)
        devices.append(
            {
                "name": "heat-pump",
                "type": "heat",
                "soc-at-start": "10 kWh",
                "soc-min": "3 kWh",
                "soc-max": "20 kWh",
                "cop": f"{rng.uniform(3.0, 4.0):.2f}",
                "power-capacity": "3 kW",
                "heat-demand": {"values": np.round(demand, 3).tolist(), "unit": "kW"},
                "soc-targets": [{"datetime": _at(24), "value": "10 kWh"}],
            }
        )
    if kinds[3] < 0.5:
        devices.append(
            {
                "name": "pv",
                "type": "generation",
                "curtailable": True,
                "production": {"values": pv_forecast(rng.uniform(2, 6)).tolist(), "unit": "kW"},
            }
        )
    if rng.random() < shiftable_share:
        devices.append(
            {
                "name": "washing-machine",
                "type": "shiftable",
                "power": {"values": [2.0, 2.0, 0.4, 0.4, 1.8], "unit": "kW"},
                "earliest-start": _at(8),
                "latest-end": _at(23),
            }
        )
    if not devices:  # every home has something to schedule
        devices.append(
            {
                "name": "battery",
                "soc-at-start": "2 kWh",
                "soc-max": "5 kWh",
                "power-capacity": "2 kW",
                "roundtrip-efficiency": "90%",
            }
        )
    load = house_load() * rng.uniform(0.6, 1.6)
    return {
        "flex-model": devices,
        "flex-context": {
            "inflexible-devices": {"house": {"values": np.round(load, 3).tolist(), "unit": "kW"}},
            "site-power-capacity": "17 kW",
        },
    }


def _quarter(hours: float) -> str:
    return _at(round(hours * 4) / 4)


def mixed_portfolio(
    n: int,
    seed: int = 0,
    *,
    shiftable_share: float = 0.0,
    target: str | None = "congestion",
    limit_fraction: float = 0.7,
) -> dict[str, Any]:
    """A portfolio request of ``n`` mixed homes (see the module docstring)."""
    rng = np.random.default_rng(seed)
    prices = day_ahead_prices()
    request: dict[str, Any] = {
        "start": START,
        "duration": "PT24H",
        "resolution": "PT15M",
        "flex-context": {
            "consumption-price": {"values": (prices + 30.0).tolist(), "unit": "EUR/MWh"},
            "production-price": {"values": prices.tolist(), "unit": "EUR/MWh"},
        },
        "sites": [{"id": f"home-{i:04d}", **mixed_home(rng, shiftable_share)} for i in range(n)],
    }
    if target == "congestion":
        request["target"] = congestion_target(request, limit_fraction)
    elif target == "market":
        request["target"] = {
            "type": "market",
            "volume": f"{0.8 * n:.1f} kW",
            "deviation-price": "150 EUR/MWh",
        }
    return request


def congestion_target(request: dict[str, Any], fraction: float) -> dict[str, Any]:
    """A consumption limit at ``fraction`` of the homes' unconstrained peak."""
    from vpp.portfolio import build_sites, parse_portfolio

    sites = build_sites(parse_portfolio({**request, "target": None}))
    alone = np.sum([p.solve().site_power for p in sites], axis=0)
    least = np.sum([p.power_range()[0] for p in sites], axis=0)
    limit = max(fraction * float(alone.max()), float(least.max()) + 0.05 * len(sites))
    return {
        "type": "congestion",
        "congestion-point": "EAN871687110000000001",
        "max-consumption": f"{limit:.1f} kW",
    }


__all__ = ["STEPS", "congestion_target", "mixed_home", "mixed_portfolio"]
