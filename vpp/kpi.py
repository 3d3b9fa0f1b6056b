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
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vpp.request import FlexContext, ScheduleRequest, parse_request
from vpp.site import SiteProblem, energy_cost, resolve_site

__all__ = ["site_kpis"]

_STORAGE = ("storage",)


def site_kpis(request: ScheduleRequest | dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The KPIs (module docstring) of ``result``, a site's schedule JSON for ``request``."""
    parsed = parse_request(request)
    inputs = resolve_site(parsed)
    dt = inputs.horizon.dt
    kinds = {d["name"]: d["type"] for d in result["devices"]}
    powers = {d["name"]: np.asarray(d["power"]["values"], float) for d in result["devices"]}
    energy = energy_cost(inputs, powers, np.asarray(result["site"]["power"]["values"], float))
    baseline_request = _price_blind(parsed, inputs.consumption_price)
    baseline = SiteProblem(baseline_request).solve().to_json()
    base_powers = {d["name"]: np.asarray(d["power"]["values"], float) for d in baseline["devices"]}
    baseline_cost = energy_cost(
        inputs, base_powers, np.asarray(baseline["site"]["power"]["values"], float)
    )
    site = np.asarray(result["site"]["power"]["values"], float)
    imports, exports = np.maximum(site, 0.0), np.maximum(-site, 0.0)
    production = dt * float(np.maximum(-inputs.inflexible, 0.0).sum()) + dt * sum(
        float(np.maximum(-p, 0.0).sum()) for n, p in powers.items() if kinds[n] == "generation"
    )
    consumption = dt * float(np.maximum(inputs.inflexible, 0.0).sum())
    for entry in result["devices"]:
        p = powers[entry["name"]]
        if entry["type"] in _STORAGE and "soc" in entry:
            soc = entry["soc"]["values"]
            consumption += max(0.0, dt * float(p.sum()) - (soc[-1] - soc[0]))
        elif entry["type"] != "generation":
            consumption += dt * float(np.maximum(p, 0.0).sum())
    imported, exported = dt * float(imports.sum()), dt * float(exports.sum())
    cost = result.get("cost", {})
    return {
        "energy-cost": {"value": round(energy, 9), "unit": "EUR"},
        "baseline-cost": {"value": round(baseline_cost, 9), "unit": "EUR"},
        "savings": {"value": round(baseline_cost - energy, 9), "unit": "EUR"},
        "import": {"value": round(imported, 9), "unit": "kWh"},
        "export": {"value": round(exported, 9), "unit": "kWh"},
        "production": {"value": round(production, 9), "unit": "kWh"},
        "consumption": {"value": round(consumption, 9), "unit": "kWh"},
        "self-consumption": _share(production - exported, production),
        "self-sufficiency": _share(consumption - imported, consumption),
        "peak-import": {"value": round(float(imports.max(initial=0.0)), 9), "unit": "kW"},
        "peak-export": {"value": round(float(exports.max(initial=0.0)), 9), "unit": "kW"},
        "penalties": {k: v for k, v in cost.items() if k not in ("value", "unit", "energy")},
    }


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
    return parsed.model_copy(
        update={"flex_context": parsed.flex_context.merged(prices), "flex_model": devices}
    )
