"""Scenarios for two-stage schedules (:mod:`vpp.stochastic`, docs/scenarios.md) from a
forecast: from its prediction interval, or from its past errors.

* :func:`interval_scenarios`: three scenarios, the interval's lower bound, the point forecast
  and the upper bound, weighted by a standard three-point approximation of the distribution
  they are quantiles of: Swanson's rule (0.3, 0.4, 0.3) for the 10/50/90 % quantiles (an
  interval of ``coverage`` 0.8), the extended Pearson-Tukey rule (0.185, 0.63, 0.185) for the
  5/50/95 % ones (coverage 0.9). Both match the mean and variance of common distributions
  closely (Keefer and Bodily, 1983); other coverages have no such rule and are refused.
* :func:`error_scenarios`: the point forecast plus each of ``k`` past error profiles (what
  was measured minus what was forecast, per step ahead, e.g. one per backtest fold), each of
  probability ``1/k``: the empirical distribution of the forecast's errors.

A scenario sets one series of the request, named by ``target``:
``"flex-context:consumption-price"``, ``"flex-context:inflexible-devices:house"`` or
``"flex-model:pv:production"`` (device ``pv``'s field ``production``).
:func:`robust_request` puts the scenarios into a request for :func:`vpp.stochastic.solve_robust`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vpp.errors import RequestValidationError
from vpp.forecast import Forecast

__all__ = ["THREE_POINT", "error_scenarios", "interval_scenarios", "robust_request"]

THREE_POINT: dict[float, tuple[float, float, float]] = {
    0.8: (0.3, 0.4, 0.3),  # Swanson: P10, P50, P90
    0.9: (0.185, 0.63, 0.185),  # extended Pearson-Tukey: P5, P50, P95
}


def interval_scenarios(
    forecast: Forecast, target: str, unit: str, *, least: float | None = None
) -> list[dict[str, Any]]:
    """``low``, ``median`` and ``high`` scenarios of ``target`` from ``forecast``'s interval
    (values below ``least``, e.g. 0 for a PV production, raised to it)."""
    weights = THREE_POINT.get(round(forecast.coverage, 6))
    if weights is None:
        raise RequestValidationError.single(
            "coverage",
            f"three-point weights exist for {sorted(THREE_POINT)}, not {forecast.coverage}",
        )
    bounds = (forecast.lower, forecast.mean, forecast.upper)
    named = zip(("low", "median", "high"), bounds, strict=True)
    return [
        _scenario(name, weight, target, _floor(values, least), unit)
        for (name, values), weight in zip(named, weights, strict=True)
    ]


def error_scenarios(
    point: Sequence[float] | np.ndarray,
    errors: Sequence[Sequence[float]] | np.ndarray,
    target: str,
    unit: str,
    *,
    least: float | None = None,
) -> list[dict[str, Any]]:
    """One scenario per past error profile: ``point + errors[i]``, probability ``1/k``."""
    base = np.asarray(point, float)
    table = np.asarray(errors, float)
    if table.ndim != 2 or table.shape[0] == 0 or table.shape[1] != base.size:
        raise RequestValidationError.single(
            "errors", f"must be k >= 1 profiles of {base.size} steps, not shape {table.shape}"
        )
    if not np.isfinite(table).all() or not np.isfinite(base).all():
        raise RequestValidationError.single("errors", "must be finite numbers")
    k = table.shape[0]
    return [
        _scenario(f"error-{i}", 1.0 / k, target, _floor(base + row, least), unit)
        for i, row in enumerate(table)
    ]


def robust_request(
    request: Mapping[str, Any], scenarios: list[dict[str, Any]], first_stage: str
) -> dict[str, Any]:
    """``request`` (its series the point forecast) with ``scenarios`` and a ``first-stage``
    (ISO duration): a request for :func:`vpp.stochastic.solve_robust`. A scenario's
    inflexible device joins the request's others (a scenario overrides a flex-context field
    whole)."""
    others = dict((request.get("flex-context") or {}).get("inflexible-devices") or {})
    merged = []
    for scenario in scenarios:
        context = scenario.get("flex-context") or {}
        if "inflexible-devices" in context:
            devices = {**others, **context["inflexible-devices"]}
            scenario = {**scenario, "flex-context": {**context, "inflexible-devices": devices}}
        merged.append(scenario)
    return {**request, "first-stage": first_stage, "scenarios": merged}


def _floor(values: np.ndarray, least: float | None) -> list[float]:
    out = np.asarray(values, float)
    if least is not None:
        out = np.maximum(out, least)
    return [float(v) for v in out]


def _scenario(
    name: str, probability: float, target: str, values: list[float], unit: str
) -> dict[str, Any]:
    series = {"values": values, "unit": unit}
    scenario: dict[str, Any] = {"name": name, "probability": probability}
    part, *path = target.split(":")
    if part == "flex-context" and len(path) == 1:
        scenario["flex-context"] = {path[0]: series}
    elif part == "flex-context" and len(path) == 2 and path[0] == "inflexible-devices":
        scenario["flex-context"] = {"inflexible-devices": {path[1]: series}}
    elif part == "flex-model" and len(path) == 2:
        scenario["flex-model"] = [{"name": path[0], path[1]: series}]
    else:
        raise RequestValidationError.single(
            "target",
            f"{target!r}: give 'flex-context:<field>', 'flex-context:inflexible-devices:<name>' "
            "or 'flex-model:<device>:<field>'",
        )
    return scenario
