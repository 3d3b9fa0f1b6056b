"""KPIs of a site's schedule, recomputed from its powers and its request's prices.

With ``dt`` the step in hours, ``P[t]`` the site's net power (consumption positive),
``import = max(P, 0)``, ``export = max(-P, 0)``:

``energy-cost``
    ``dt * sum_t (cp[t] * import[t] - pp[t] * export[t])`` over the power settled at the
    site's prices (``P`` less the devices with their own prices), plus each own-priced
    device's power at its own prices: the schedule's energy cost, EUR.
``baseline-cost`` and ``savings``
    the same for a *price-blind* schedule of the same devices: the request solved at one flat
    price (the mean consumption price, for consumption and production alike, so nothing pays
    for being moved in time), settled at the real prices. ``savings = baseline - energy``.
``import``, ``export``, ``production``, ``consumption`` (kWh)
    ``production`` is what generation produces (devices of kind ``generation`` and negative
    inflexible power); ``consumption`` what everything else draws (heat pumps included), a
    ``storage`` device counted by what it uses up: its net intake less the rise of its SoC,
    ``max(0, dt * sum_t p[t] - (soc[T] - soc[0]))`` (losses, and an EV's driving), so energy
    only moved through a battery, or left in it, is not consumption.
``self-consumption``
    ``(production - export) / production``: the share of local production used on site
    (``null`` without production).
``self-sufficiency``
    ``(consumption - import) / consumption``, clipped to ``[0, 1]``: the share of
    consumption met on site (``null`` without consumption).
``peak-import``, ``peak-export`` (kW)
    ``max_t import[t]``, ``max_t export[t]``.
``penalties``
    what the result's cost lists besides energy (breach penalties, peak charges, running
    costs), EUR, by its ``cost`` keys.
``emissions``, ``baseline-emissions``, ``emissions-savings`` (kg)
    only when the flex-context has ``co2-intensity`` (vpp/co2.py): ``dt * sum_t
    intensity[t] * import[t]`` of the schedule and of the baseline (which is blind to a
    ``co2-price`` too), and ``baseline-emissions - emissions``. Exports earn nothing (see
    vpp/co2.py for why).

:func:`step_kpis` gives the same quantities per step, for reports over a period that count
only some steps of a schedule (vpp/reports.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from vpp.request import FlexContext, ScheduleRequest, parse_request
from vpp.site import SiteInputs, SiteProblem, energy_cost, energy_costs, resolve_site

__all__ = ["StepKpis", "site_kpis", "step_kpis"]

_STORAGE = ("storage",)


def site_kpis(request: ScheduleRequest | dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The KPIs (module docstring) of ``result``, a site's schedule JSON for ``request``."""
    parsed = parse_request(request)
    inputs = resolve_site(parsed)
    dt = inputs.horizon.dt
    powers = {d["name"]: np.asarray(d["power"]["values"], float) for d in result["devices"]}
    energy = energy_cost(inputs, powers, np.asarray(result["site"]["power"]["values"], float))
    baseline = _baseline(parsed, inputs)
    base_powers = {d["name"]: np.asarray(d["power"]["values"], float) for d in baseline["devices"]}
    baseline_cost = energy_cost(
        inputs, base_powers, np.asarray(baseline["site"]["power"]["values"], float)
    )
    site = np.asarray(result["site"]["power"]["values"], float)
    imports, exports = np.maximum(site, 0.0), np.maximum(-site, 0.0)
    production = float(_production_steps(inputs, result, powers).sum())
    consumption = dt * float(np.maximum(inputs.inflexible, 0.0).sum())
    for entry in result["devices"]:
        p = powers[entry["name"]]
        if entry["type"] in _STORAGE and "soc" in entry:
            soc = entry["soc"]["values"]
            consumption += max(0.0, dt * float(p.sum()) - (soc[-1] - soc[0]))
        elif entry["type"] != "generation":
            consumption += dt * float(np.maximum(p, 0.0).sum())
    imported, exported = dt * float(imports.sum()), dt * float(exports.sum())
    kpis: dict[str, Any] = {
        "energy-cost": {"value": round(energy, 9), "unit": inputs.cost_unit},
        "baseline-cost": {"value": round(baseline_cost, 9), "unit": inputs.cost_unit},
        "savings": {"value": round(baseline_cost - energy, 9), "unit": inputs.cost_unit},
        "import": {"value": round(imported, 9), "unit": "kWh"},
        "export": {"value": round(exported, 9), "unit": "kWh"},
        "production": {"value": round(production, 9), "unit": "kWh"},
        "consumption": {"value": round(consumption, 9), "unit": "kWh"},
        "self-consumption": _share(production - exported, production),
        "self-sufficiency": _share(consumption - imported, consumption),
        "peak-import": {"value": round(float(imports.max(initial=0.0)), 9), "unit": "kW"},
        "peak-export": {"value": round(float(exports.max(initial=0.0)), 9), "unit": "kW"},
        "penalties": _penalties(result),
    }
    if inputs.co2 is not None:
        kpis |= _co2_kpis(
            float(_emissions(inputs, site).sum()),
            float(_emissions(inputs, _site_power(baseline)).sum()),
        )
    return kpis


def _penalties(result: dict[str, Any]) -> dict[str, Any]:
    cost = result.get("cost", {})
    return {k: v for k, v in cost.items() if k not in ("value", "unit", "energy")}


def _co2_kpis(emissions: float, baseline: float) -> dict[str, Any]:
    return {
        "emissions": {"value": round(emissions, 9), "unit": "kg"},
        "baseline-emissions": {"value": round(baseline, 9), "unit": "kg"},
        "emissions-savings": {"value": round(baseline - emissions, 9), "unit": "kg"},
    }


def _site_power(result: dict[str, Any]) -> np.ndarray:
    return np.asarray(result["site"]["power"]["values"], float)


def _emissions(inputs: SiteInputs, site_power: np.ndarray) -> np.ndarray:
    """kg of CO2 per step of the grid import of ``site_power`` (vpp/co2.py's definition)."""
    if inputs.co2 is None:
        return np.zeros_like(site_power)
    result: np.ndarray = inputs.horizon.dt * inputs.co2.intensity * np.maximum(site_power, 0.0)
    return result


def _baseline(parsed: ScheduleRequest, inputs: SiteInputs) -> dict[str, Any]:
    """The price-blind schedule's result JSON (the module docstring's baseline)."""
    return SiteProblem(_price_blind(parsed, inputs.consumption_price)).solve().to_json()


def _share(part: float, whole: float) -> float | None:
    if whole <= 1e-12:
        return None
    return round(min(1.0, max(0.0, part / whole)), 9)


def _price_blind(parsed: ScheduleRequest, price: np.ndarray) -> ScheduleRequest:
    """The request at one flat price (EUR/MWh), own prices dropped: nothing to shift for."""
    flat = f"{float(np.mean(price)) * 1000.0!r} EUR/MWh"
    prices = FlexContext.model_validate({"consumption-price": flat, "production-price": flat})
    devices = [
        d.model_copy(update={"consumption_price": None, "production_price": None})
        for d in parsed.flex_model
    ]
    context = parsed.flex_context.merged(prices).model_copy(update={"co2_price": None})
    return parsed.model_copy(update={"flex_context": context, "flex_model": devices})


@dataclass(frozen=True)
class StepKpis:
    """A site schedule's KPIs per step (energies in kWh, costs in ``cost_unit``, powers in
    kW, emissions in kg), so that a report over a period can count some of its steps."""

    start: datetime
    resolution: timedelta
    cost_unit: str
    energy_cost: np.ndarray
    baseline_cost: np.ndarray
    imports: np.ndarray  # kWh
    exports: np.ndarray
    production: np.ndarray
    consumption: np.ndarray
    import_power: np.ndarray  # kW
    export_power: np.ndarray
    emissions: np.ndarray | None  # kg; None without co2-intensity
    baseline_emissions: np.ndarray | None
    penalties: dict[str, Any]

    @property
    def steps(self) -> int:
        return int(self.energy_cost.size)


def step_kpis(request: ScheduleRequest | dict[str, Any], result: dict[str, Any]) -> StepKpis:
    """The module docstring's quantities per step of ``result`` (a site's schedule JSON).

    A storage device's consumption per step is its intake less the rise of its SoC in that
    step, ``max(0, dt * p[t] - (soc[t+1] - soc[t]))``: summed over every step it is at least
    :func:`site_kpis`' (equal when no step gives back more than it took, as losses never do).
    """
    parsed = parse_request(request)
    inputs = resolve_site(parsed)
    dt = inputs.horizon.dt
    powers = {d["name"]: np.asarray(d["power"]["values"], float) for d in result["devices"]}
    site = _site_power(result)
    baseline = _baseline(parsed, inputs)
    base_powers = {d["name"]: np.asarray(d["power"]["values"], float) for d in baseline["devices"]}
    co2 = inputs.co2 is not None
    return StepKpis(
        start=inputs.horizon.start,
        resolution=inputs.horizon.resolution,
        cost_unit=inputs.cost_unit,
        energy_cost=energy_costs(inputs, powers, site),
        baseline_cost=energy_costs(inputs, base_powers, _site_power(baseline)),
        imports=dt * np.maximum(site, 0.0),
        exports=dt * np.maximum(-site, 0.0),
        production=_production_steps(inputs, result, powers),
        consumption=_consumption_steps(inputs, result, powers),
        import_power=np.maximum(site, 0.0),
        export_power=np.maximum(-site, 0.0),
        emissions=_emissions(inputs, site) if co2 else None,
        baseline_emissions=_emissions(inputs, _site_power(baseline)) if co2 else None,
        penalties=_penalties(result),
    )


def _production_steps(
    inputs: SiteInputs, result: dict[str, Any], powers: dict[str, np.ndarray]
) -> np.ndarray:
    dt = inputs.horizon.dt
    out = dt * np.maximum(-inputs.inflexible, 0.0)
    for entry in result["devices"]:
        if entry["type"] == "generation":
            out = out + dt * np.maximum(-powers[entry["name"]], 0.0)
    return np.asarray(out, float)


def _consumption_steps(
    inputs: SiteInputs, result: dict[str, Any], powers: dict[str, np.ndarray]
) -> np.ndarray:
    dt = inputs.horizon.dt
    out = dt * np.maximum(inputs.inflexible, 0.0)
    for entry in result["devices"]:
        p = powers[entry["name"]]
        if entry["type"] in _STORAGE and "soc" in entry:
            rise = np.diff(np.asarray(entry["soc"]["values"], float))
            out = out + np.maximum(dt * p - rise, 0.0)
        elif entry["type"] != "generation":
            out = out + dt * np.maximum(p, 0.0)
    return np.asarray(out, float)
