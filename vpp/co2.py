"""Steering on CO2: prices in any per-energy unit, and a CO2 price on a CO2-intensity series.

Two ways, as FlexMeasures allows the first:

1. **Prices that are not money.** ``consumption-price`` and ``production-price`` (and a
   device's own) may be any per-energy quantity whose numerators agree: ``EUR/MWh`` or a CO2
   intensity in ``kg/MWh`` or ``g/kWh``. The objective then counts kg, and the result says so
   (``"cost": {"unit": "kg"}``). Prices whose numerators differ (EUR and kg) are refused with
   the field named: they cannot be added.
2. **A combined objective.** flex-context ``co2-intensity`` (a series in ``kg/MWh`` or
   ``g/kWh``) and ``co2-price`` (``EUR/t`` or ``EUR/kg``) add the CO2 cost of the energy the
   site imports to its energy cost. FlexMeasures has no field for this; the names are ours.

Emissions are counted on the site's grid import, ``max(P[t], 0)`` with ``P`` the site's net
power (own-priced devices included: the grid does not know about settlement). Exported energy
earns no avoided emissions: whether it displaces anything depends on the grid's marginal plant,
which an average intensity series does not tell, so crediting it would reward exporting for
its own sake. With a price, one column per step ``g[t] >= 0`` (``grid-import``) and one row:

``co2-import``
    ``g[t] - P[t] >= 0``

Objective term (EUR): ``sum_t dt * co2-price[t] * co2-intensity[t] * g[t]``; with a non-negative
price and intensity the optimum holds ``g[t] = max(P[t], 0)`` wherever the term is positive.
The result reports ``"emissions": {"value": dt * co2-intensity @ max(P, 0), "unit": "kg"}``
whenever ``co2-intensity`` is given, and ``cost.co2`` (EUR) when ``co2-price`` is too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import WithJsonSchema

from vpp.errors import FieldIssue, RequestValidationError
from vpp.linear import INF, LinearModel
from vpp.timeseries import _SERIES_SCHEMA, Horizon, Series, _series_validator

__all__ = [
    "IMPORT",
    "Co2",
    "Co2PriceSeries",
    "Co2Terms",
    "IntensitySeries",
    "add_co2",
    "objective_unit",
    "resolve_co2",
]

IMPORT = "co2-import"

IntensitySeries = Annotated[Series, _series_validator("intensity"), WithJsonSchema(_SERIES_SCHEMA)]
"""CO2 per energy, kg/kWh inside (``{"values": [...], "unit": "g/kWh"}``, ``"300 kg/MWh"``)."""

Co2PriceSeries = Annotated[Series, _series_validator("co2-price"), WithJsonSchema(_SERIES_SCHEMA)]
"""Money per CO2 mass, EUR/kg inside (``"80 EUR/t"``)."""


@dataclass(frozen=True)
class Co2:
    """The flex-context's CO2 fields on the horizon."""

    intensity: np.ndarray  # kg/kWh per step
    price: np.ndarray | None  # EUR/kg per step; None: emissions reported, not priced


def objective_unit(request: Any, issues: list[FieldIssue]) -> str:
    """What the site's prices count per kWh (``"EUR"`` or ``"kg"``): the objective's unit.
    Every price field must agree with the flex-context's ``consumption-price``."""
    ctx = request.flex_context
    first: tuple[str, str] | None = None
    fields = [("flex-context.consumption-price", ctx.consumption_price)]
    fields.append(("flex-context.production-price", ctx.production_price))
    for i, spec in enumerate(request.flex_model):
        fields.append((f"flex-model[{i}].consumption-price", spec.consumption_price))
        fields.append((f"flex-model[{i}].production-price", spec.production_price))
    for path, series in fields:
        if series is None:
            continue
        unit = series.unit or "EUR"  # a Series built in code, not parsed, counts money
        if first is None:
            first = (path, unit)
        elif unit != first[1]:
            issues.append(
                FieldIssue(
                    path,
                    f"counts {unit} per energy but {first[0]} counts {first[1]}: "
                    "prices of one site must share a unit",
                )
            )
    return first[1] if first else "EUR"


def resolve_co2(ctx: Any, horizon: Horizon, unit: str, issues: list[FieldIssue]) -> Co2 | None:
    """The CO2 fields resolved, or None when ``co2-intensity`` is absent."""
    intensity = _resolve(ctx.co2_intensity, horizon, "flex-context.co2-intensity", issues)
    price = _resolve(ctx.co2_price, horizon, "flex-context.co2-price", issues)
    if price is not None and intensity is None and ctx.co2_intensity is None:
        issues.append(FieldIssue("flex-context.co2-intensity", "required with co2-price"))
    if price is not None and unit != "EUR":
        issues.append(
            FieldIssue(
                "flex-context.co2-price",
                f"the prices count {unit} per energy; a co2-price adds EUR, so the prices "
                "must be in EUR (e.g. '50 EUR/MWh') too",
            )
        )
    if intensity is None:
        return None
    return Co2(intensity, price)


def _resolve(
    series: Series | None, horizon: Horizon, field: str, issues: list[FieldIssue]
) -> np.ndarray | None:
    if series is None:
        return None
    try:
        values = series.resolve(horizon, field)
    except RequestValidationError as err:
        issues.extend(err.issues)
        return None
    if np.isnan(values).any():
        issues.append(FieldIssue(field, "segments leave time steps without a value"))
        return None
    if (values < 0).any():
        issues.append(FieldIssue(field, "must not be negative"))
        return None
    return values


@dataclass(frozen=True)
class Co2Terms:
    """The CO2 columns of a site model and what they cost and report."""

    co2: Co2 | None
    grid_import: np.ndarray  # columns g[t]; empty when CO2 is not priced
    dt: float

    def add_cost(self, cost: np.ndarray) -> None:
        """Put the CO2 cost per kWh imported on the grid-import columns (the base cost)."""
        if self.co2 is not None and self.co2.price is not None:
            cost[self.grid_import] += self.dt * self.co2.price * self.co2.intensity

    def emissions(self, power: np.ndarray) -> float | None:
        """kg of CO2 of the site power ``power`` (None without ``co2-intensity``)."""
        if self.co2 is None:
            return None
        return float(self.dt * self.co2.intensity @ np.maximum(power, 0.0))

    def cost(self, power: np.ndarray) -> float | None:
        """EUR of CO2 of the site power ``power`` (None without ``co2-price``)."""
        if self.co2 is None or self.co2.price is None:
            return None
        return float(self.dt * (self.co2.price * self.co2.intensity) @ np.maximum(power, 0.0))


def add_co2(lm: LinearModel, power: np.ndarray, co2: Co2 | None, dt: float) -> Co2Terms:
    """Add the grid-import columns and ``co2-import`` rows when CO2 is priced."""
    if co2 is None or co2.price is None:
        return Co2Terms(co2, np.zeros(0, dtype=int), dt)
    n = power.size
    g = lm.add_vars("grid-import", n, 0.0, INF)
    lm.add_rows(
        IMPORT,
        [(1.0, g), (-1.0, power)],
        0.0,
        INF,
        doc="the grid import that carries CO2 is at least the site's net power",
    )
    return Co2Terms(co2, g, dt)
