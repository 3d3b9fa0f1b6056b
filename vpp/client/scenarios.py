"""What-if studies: request variants (scenario builders) and the table comparing results.

Pure: nothing here talks to the server (``Client.what_if`` and :func:`vpp.client.what_if`
schedule the variants).
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from vpp.client.frames import POWER_UNITS, is_portfolio, result_of, values_in

__all__ = [
    "BASE",
    "Scenario",
    "bigger_batteries",
    "combine",
    "compare_results",
    "deep_merge",
    "is_battery",
    "more_batteries",
    "scale_prices",
    "scenario_requests",
    "with_congestion_limit",
    "with_market_target",
]

Scenario = Callable[[dict[str, Any]], dict[str, Any] | None]
"""A request variant: takes a deep copy of the base request, returns the variant (or
``None`` after changing the copy in place)."""

BASE = "base"
"""The name of the unchanged request in :func:`scenario_requests` and :func:`compare_results`."""



def deep_merge(base: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged in: dicts recursively, anything else replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def scenario_requests(
    portfolio: Mapping[str, Any], scenarios: Mapping[str, Scenario | Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The base request (as ``"base"``) and every scenario's variant of it."""
    if BASE in scenarios:
        raise ValueError(f"{BASE!r} is the unchanged request; name the scenario otherwise")
    requests = {BASE: copy.deepcopy(dict(portfolio))}
    for name, scenario in scenarios.items():
        base = copy.deepcopy(dict(portfolio))
        if isinstance(scenario, Mapping):
            requests[name] = deep_merge(base, scenario)
        elif callable(scenario):
            variant = scenario(base)
            requests[name] = base if variant is None else dict(variant)
        else:
            raise TypeError(f"scenario {name!r} must be a function or a dict")
    return requests


def _net_power(result: Mapping[str, Any]) -> np.ndarray:
    power = result["portfolio"]["power"] if is_portfolio(result) else result["site"]["power"]
    return np.asarray(values_in(power, POWER_UNITS, "kW"), dtype=float)


def compare_results(results: Mapping[str, Mapping[str, Any]], base: str = BASE) -> pd.DataFrame:
    """One row per result: ``cost`` (EUR), ``peak`` (kW, the highest net power),
    ``energy_shifted`` (kWh, ``sum_t |P[t] - P_base[t]| * dt / 2``: the energy moved in time
    relative to ``base``), ``gap`` (to the centralised optimum, when reported),
    ``iterations``, ``converged`` and ``limit_violation_kw``."""
    if base not in results:
        raise ValueError(f"no {base!r} result to compare with")
    reference = result_of(results[base])
    p_base = _net_power(reference)
    rows = []
    for name, raw in results.items():
        result = result_of(raw)
        p = _net_power(result)
        dt = pd.Timedelta(result["resolution"]) / pd.Timedelta(hours=1)
        same_axis = p.shape == p_base.shape and result["start"] == reference["start"]
        summary = result.get("portfolio", {}) if is_portfolio(result) else {}
        cost = summary["cost"] if "cost" in summary else result.get("cost", {})
        rows.append(
            {
                "scenario": name,
                "cost": float(cost.get("value", math.nan)),
                "peak": float(p.max()) if p.size else math.nan,
                "energy_shifted": float(np.abs(p - p_base).sum() * dt / 2)
                if same_axis
                else math.nan,
                "gap": float(summary.get("gap", math.nan)),
                "iterations": summary.get("iterations"),
                "converged": summary.get("converged"),
                "limit_violation_kw": float(summary.get("target-violation-kw", math.nan)),
            }
        )
    table = pd.DataFrame(rows).set_index("scenario")
    table["iterations"] = table["iterations"].astype("Int64")
    table["converged"] = table["converged"].astype("boolean")
    return table




# -- scenario builders --------------------------------------------------------------------
_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")


def _number(x: float) -> str:
    return f"{x:.10g}"


def _scale(node: Any, factor: float, field: str) -> Any:
    """A quantity or series (constant, compact values or segments) times ``factor``."""
    if isinstance(node, bool):
        raise ValueError(f"{field}: expected a quantity, got {node!r}")
    if isinstance(node, int | float):
        return node * factor
    if isinstance(node, str):
        match = _QUANTITY.match(node)
        if match is None:
            raise ValueError(f"{field}: cannot read {node!r} as a number with a unit")
        value, unit = match.groups()
        return f"{_number(float(value) * factor)} {unit}".rstrip()
    if isinstance(node, Mapping):
        if set(node) == {"sensor"}:
            raise ValueError(
                f"{field} refers to sensor {node['sensor']}: the client cannot scale stored "
                "data; give the values inline (Client.series) to scale them"
            )
        out = dict(node)
        if "values" in out:
            out["values"] = [v * factor for v in out["values"]]
            return out
        for key in ("value", "min", "max"):
            if key in out:
                out[key] = _scale(out[key], factor, f"{field}.{key}")
        return out
    if isinstance(node, list):
        return [_scale(s, factor, f"{field}[{i}]") for i, s in enumerate(node)]
    raise ValueError(f"{field}: cannot scale {node!r}")


def _sites(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's sites (a single-site request is its own one site)."""
    if "sites" in request:
        sites: list[dict[str, Any]] = request["sites"]
        return sites
    if "flex-model" in request:
        return [request]
    raise ValueError("the request has neither 'sites' nor a 'flex-model' to change")


def _devices(site: dict[str, Any]) -> list[dict[str, Any]]:
    """The site's devices as a list (turning a single-device flex-model into one)."""
    model = site.get("flex-model")
    if model is None:
        site["flex-model"] = model = []
    elif isinstance(model, dict):
        site["flex-model"] = model = [model]
    return model


def is_battery(device: Mapping[str, Any], include_vehicles: bool = False) -> bool:
    """A stationary battery: a ``storage`` device without ``availability`` windows (those
    are vehicles that come and go), or any storage device with ``include_vehicles``."""
    if device.get("type", "storage") != "storage":
        return False
    return include_vehicles or "availability" not in device


def combine(*scenarios: Scenario) -> Scenario:
    """One scenario applying each of ``scenarios`` in turn."""

    def apply(request: dict[str, Any]) -> dict[str, Any]:
        for scenario in scenarios:
            request = scenario(request) or request
        return request

    return apply


def scale_prices(factor: float) -> Scenario:
    """Consumption and production prices times ``factor``: the portfolio's, every site's
    override and every device's own prices (not a market target's deviation price)."""

    def apply(request: dict[str, Any]) -> dict[str, Any]:
        contexts = [request.get("flex-context")]
        for site in _sites(request):
            if site is not request:
                contexts.append(site.get("flex-context"))
            contexts.extend(_devices(site))
        for i, context in enumerate(contexts):
            for key in ("consumption-price", "production-price"):
                if isinstance(context, dict) and key in context:
                    context[key] = _scale(context[key], factor, f"[{i}].{key}")
        return request

    return apply


def _power(value: float | str | Sequence[float] | np.ndarray | pd.Series) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | np.number):
        return f"{_number(float(value))} kW"
    return {"values": [float(v) for v in np.asarray(value, dtype=float)], "unit": "kW"}


def with_congestion_limit(
    max_consumption_kw: float | str | Sequence[float] | np.ndarray | pd.Series,
    max_production_kw: float | str | Sequence[float] | np.ndarray | None = None,
) -> Scenario:
    """A congestion target with this consumption limit (kW: one number, or one per step);
    an existing congestion target keeps its congestion point and production limit."""

    def apply(request: dict[str, Any]) -> dict[str, Any]:
        old = request.get("target")
        target = dict(old) if isinstance(old, dict) and old.get("type") == "congestion" else {}
        target["type"] = "congestion"
        target["max-consumption"] = _power(max_consumption_kw)
        if max_production_kw is not None:
            target["max-production"] = _power(max_production_kw)
        request["target"] = target
        return request

    return apply


def with_market_target(
    volume_kw: float | str | Sequence[float] | np.ndarray | pd.Series,
    deviation_price: str | float = "200 EUR/MWh",
) -> Scenario:
    """A market target: follow ``volume_kw`` (a number or one per step), each kWh of
    deviation costing ``deviation_price`` (EUR/MWh when a number)."""

    def apply(request: dict[str, Any]) -> dict[str, Any]:
        price = deviation_price
        request["target"] = {
            "type": "market",
            "volume": _power(volume_kw),
            "deviation-price": price if isinstance(price, str) else f"{_number(price)} EUR/MWh",
        }
        return request

    return apply


def bigger_batteries(factor: float, *, include_vehicles: bool = False) -> Scenario:
    """Every battery's ``soc-max`` and power limits (``power-capacity``,
    ``consumption-capacity``, ``production-capacity``) times ``factor``; its
    ``soc-at-start`` stays. Batteries per :func:`is_battery`."""
    if factor <= 0:
        raise ValueError(f"factor must be positive, not {factor}")

    def apply(request: dict[str, Any]) -> dict[str, Any]:
        for site in _sites(request):
            for i, device in enumerate(_devices(site)):
                if not is_battery(device, include_vehicles):
                    continue
                for key in (
                    "soc-max",
                    "power-capacity",
                    "consumption-capacity",
                    "production-capacity",
                ):
                    if key in device:
                        device[key] = _scale(device[key], factor, f"flex-model[{i}].{key}")
        return request

    return apply


def _rank(site_id: str) -> str:
    return hashlib.sha256(site_id.encode("utf-8")).hexdigest()


def more_batteries(share: float, size_kwh: float = 10.0) -> Scenario:
    """A ``size_kwh`` battery (power ``size / 2.5`` kW, 90 % round trip, half full at the
    start and again at the end) for ``share`` of the sites that have none.

    Which sites is deterministic: ranked by a hash of their id, so a larger share adds to
    the same sites and the order of the sites does not matter.
    """
    if not 0 <= share <= 1:
        raise ValueError(f"share must be in [0, 1], not {share}")
    if size_kwh <= 0:
        raise ValueError(f"size_kwh must be positive, not {size_kwh}")

    def apply(request: dict[str, Any]) -> dict[str, Any]:
        end = pd.Timestamp(request["start"]) + pd.Timedelta(request["duration"])
        sites = _sites(request)
        without = [
            (str(site.get("id", i)), site)
            for i, site in enumerate(sites)
            if not any(is_battery(d) for d in _devices(site))
        ]
        chosen = sorted(without, key=lambda pair: _rank(pair[0]))[: round(share * len(without))]
        half = _number(size_kwh / 2)
        for _, site in chosen:
            devices = _devices(site)
            names = {d.get("name") for d in devices}
            name = next(
                n for n in ("battery", *(f"battery-{k}" for k in range(2, 99))) if n not in names
            )
            devices.append(
                {
                    "name": name,
                    "type": "storage",
                    "soc-at-start": f"{half} kWh",
                    "soc-min": "0 kWh",
                    "soc-max": f"{_number(size_kwh)} kWh",
                    "power-capacity": f"{_number(size_kwh / 2.5)} kW",
                    "roundtrip-efficiency": "90%",
                    "soc-targets": [{"datetime": end.isoformat(), "value": f"{half} kWh"}],
                }
            )
        return request

    return apply
