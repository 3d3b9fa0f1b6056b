"""Peak (demand) charges: a price per kW of the highest site power in the billing period.

FlexMeasures' flex-context fields, per direction (``P[t]`` the site's net power, consumption
positive; production the negative side):

``site-peak-consumption`` (kW, default 0)
    the consumption peak already reached earlier in this billing period;
``site-peak-consumption-price`` (EUR/kW)
    the price of every kW the schedule's peak rises above it;
``site-peak-production`` / ``site-peak-production-price``
    the same for production (``-P[t]``).

A peak below the one already reached is sunk: it costs nothing more. So each priced direction
gets one column ``e >= 0``, the excess over the current peak, and one row per step:

``site-peak-consumption``
    ``e_c - P[t] >= -site-peak-consumption``  (so ``e_c >= P[t] - site-peak-consumption``)
``site-peak-production``
    ``e_p + P[t] >= -site-peak-production``  (so ``e_p >= -P[t] - site-peak-production``)

Objective term (EUR): ``site-peak-consumption-price * e_c + site-peak-production-price * e_p``.
With a non-negative price the optimum holds ``e = max(0, max_t P[t] - peak)``, the bill's
increase. The schedule reports the resulting peak, ``max(site-peak-consumption, max_t P[t])``.
A price series must hold one value over the schedule: a billing period has one peak price.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from pydantic import WithJsonSchema

from vpp.errors import FieldIssue, RequestValidationError
from vpp.linear import INF, LinearModel
from vpp.timeseries import _SERIES_SCHEMA, Horizon, Series, _series_validator

__all__ = [
    "CONSUMPTION",
    "PRODUCTION",
    "DemandPriceSeries",
    "Peak",
    "PeakTerms",
    "add_peaks",
    "resolve_peaks",
]

CONSUMPTION = "site-peak-consumption"
PRODUCTION = "site-peak-production"

DemandPriceSeries = Annotated[Series, _series_validator("demand"), WithJsonSchema(_SERIES_SCHEMA)]
"""A price per kW of peak (``"5 EUR/kW"``, or a series holding one value)."""


@dataclass(frozen=True)
class Peak:
    """One direction's peak charge, resolved: ``sign`` is +1 for consumption, -1 for
    production (the side of ``P`` it concerns)."""

    family: str
    sign: float
    current: float  # kW, the peak already reached this billing period
    price: float | None  # EUR/kW, None when only the current peak is given (reported only)


def resolve_peaks(
    ctx: Any, horizon: Horizon, unit: str, issues: list[FieldIssue]
) -> tuple[Peak, ...]:
    """The flex-context's peak fields; every problem is added to ``issues`` by field name.
    ``unit`` is what the site's prices count (vpp/co2.py): a peak price in EUR cannot be
    added to an objective in kg."""
    peaks = []
    for family, sign in ((CONSUMPTION, 1.0), (PRODUCTION, -1.0)):
        attr = family.replace("-", "_")
        current_series: Series | None = getattr(ctx, attr)
        price_series: Series | None = getattr(ctx, f"{attr}_price")
        if current_series is None and price_series is None:
            continue
        current = _one_value(current_series, horizon, f"flex-context.{family}", 0.0, issues)
        price = _one_value(price_series, horizon, f"flex-context.{family}-price", None, issues)
        if current is not None and current < 0:
            issues.append(FieldIssue(f"flex-context.{family}", "must not be negative"))
        if price is not None and price < 0:
            issues.append(FieldIssue(f"flex-context.{family}-price", "must not be negative"))
        if price is not None and unit != "EUR":
            why = f"the prices count {unit} per energy; a peak price adds EUR"
            issues.append(FieldIssue(f"flex-context.{family}-price", why))
        peaks.append(Peak(family, sign, current or 0.0, price))
    return tuple(peaks)


def _one_value(
    series: Series | None,
    horizon: Horizon,
    field: str,
    default: float | None,
    issues: list[FieldIssue],
) -> float | None:
    if series is None:
        return default
    try:
        values = series.resolve(horizon, field)
    except RequestValidationError as err:
        issues.extend(err.issues)
        return default
    if np.isnan(values).any():
        issues.append(FieldIssue(field, "segments leave time steps without a value"))
        return default
    if not np.allclose(values, values[0], rtol=0.0, atol=1e-12):
        issues.append(
            FieldIssue(field, "must hold one value over the schedule (one billing period)")
        )
        return default
    return float(values[0])


@dataclass(frozen=True)
class PeakTerms:
    """The peak columns of a site model and what they cost and report."""

    peaks: tuple[Peak, ...]
    excess: tuple[int, ...]  # one column per priced peak (-1 where reported only)

    def add_cost(self, cost: np.ndarray) -> None:
        """Put each priced peak's EUR/kW on its excess column (the site's base cost)."""
        for peak, col in zip(self.peaks, self.excess, strict=True):
            if col >= 0:
                cost[col] += peak.price

    def charges(self, power: np.ndarray) -> float | None:
        """EUR of peak charges of the site power ``power`` (None when no peak is priced):
        computed from the power, as the bill is, not from the excess columns."""
        priced = [p for p in self.peaks if p.price is not None]
        if not priced:
            return None
        return float(sum(p.price * _excess(p, power) for p in priced if p.price is not None))

    def report(self, power: np.ndarray) -> dict[str, Any]:
        """``{"peak-consumption": {"value", "unit": "kW"}, ...}`` for the site's result."""
        return {
            p.family.removeprefix("site-"): {
                "value": round(p.current + _excess(p, power), 9),
                "unit": "kW",
            }
            for p in self.peaks
        }


def _excess(peak: Peak, power: np.ndarray) -> float:
    highest = float(np.max(peak.sign * power)) if power.size else -math.inf
    return max(0.0, highest - peak.current)


def add_peaks(lm: LinearModel, power: np.ndarray, peaks: tuple[Peak, ...]) -> PeakTerms:
    """Add the excess column and its rows for every priced peak (see the module docstring)."""
    n = power.size
    excess = []
    for peak in peaks:
        if peak.price is None:
            excess.append(-1)
            continue
        col = lm.add_vars(f"{peak.family}-excess", 1, 0.0, INF)
        lm.add_rows(
            peak.family,
            [(1.0, np.full(n, col[0])), (-peak.sign, power)],
            -peak.current,
            INF,
            doc="the excess over the billing period's peak is at least each step's power",
        )
        excess.append(int(col[0]))
    return PeakTerms(peaks, tuple(excess))
