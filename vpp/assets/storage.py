"""Storage: home and grid batteries, and EVs (with availability windows).

Constraint families (``t`` a step, ``s`` an instant, ``dt`` the step length in hours):

``soc-dynamics``
    ``soc[t+1] = keep[t]*soc[t] + dt*(eta_c[t]*p_ch[t] - p_dis[t]/eta_d[t])
    - dt*usage[t] + dt*gain[t]``
    with ``keep`` the storage efficiency (fraction of SoC kept per step).
``soc-at-start``
    ``soc[0] = soc-at-start``.
``soc-min`` / ``soc-max`` / ``soc-minima`` / ``soc-maxima`` / ``soc-targets``
    ``lower[s] <= soc[s] <= upper[s]``, the tightest of the bounds asked at each instant;
    a target is ``soc[s] = value``.
``consumption-capacity`` / ``production-capacity``
    ``0 <= p_ch[t] <= consumption-capacity[t]``, ``0 <= p_dis[t] <= production-capacity[t]``
    (each defaults to ``power-capacity``; 0 outside ``availability`` windows).
``no-simultaneous-charge-discharge``
    ``p_ch[t] * p_dis[t] = 0``: added lazily, with a binary, only at steps where the LP
    optimum would both charge and discharge (which it does only when wasting energy pays).

Device power: ``p[t] = p_ch[t] - p_dis[t]``.

Tie-breaking (``prefer-charging-sooner``, ``prefer-curtailing-later``, both default true, as
in FlexMeasures): among schedules of equal cost, prefer the one whose SoC is fuller sooner,
i.e. that charges sooner and discharges later. It is lexicographic, so the cost is provably
unchanged: :func:`formulate` puts a secondary objective ``-sum_s w[s] * soc[s]`` in
``DeviceVars.extra["tie-break"]`` as ``(columns, w)`` (``w[s] = 1 + (T - s) / T`` with
``prefer-curtailing-later``, so fullness sooner weighs more, as FlexMeasures' sloped penalty;
``w = 1`` without). The site minimises it over the optimal face of its solve
(:meth:`vpp.solver.HighsSolver.break_ties`). A tiny tie-break term in the cost instead was
measured to move random sites' optima by 7e-6 relative (it must exceed HiGHS' 1e-7 dual
tolerance to act, and then outweighs price differences of 0.01 EUR/MWh).

``soc-unit`` (``"kWh"`` or ``"MWh"``, FlexMeasures' deprecated but documented field): bare
numbers in ``soc-at-start``, ``soc-min``, ``soc-max`` and the ``value`` of ``soc-minima``,
``soc-maxima`` and ``soc-targets`` entries are read in that unit. Without ``soc-unit`` a bare
number is refused (FlexMeasures documents no default unit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import StrictBool, model_validator

from vpp.assets.registry import SOC, AssetKind
from vpp.device import (
    Common,
    DeviceSpec,
    DeviceVars,
    Energy,
    EnergyInstants,
    Fraction,
    FractionSeries,
    PowerSeries,
    check,
)
from vpp.errors import FieldIssue, InfeasibleError, RequestValidationError
from vpp.linear import LinearModel
from vpp.timeseries import Horizon, Instants, Series

__all__ = [
    "KIND",
    "SOC_FIELDS",
    "TOLERANCE",
    "StorageParams",
    "StorageSpec",
    "bounds_from_instants",
    "formulate",
    "precheck",
    "resolve",
    "series_or",
    "storage_efficiency",
    "tie_break_weights",
]

TOLERANCE = 1e-6  # kWh: what a reachability check forgives (solver tolerance)

SOC_FIELDS = ("soc-at-start", "soc-min", "soc-max")
"""Energy fields a ``soc-unit`` applies to (and the ``value`` of the instant lists below)."""
_SOC_LISTS = ("soc-minima", "soc-maxima", "soc-targets")


class StorageSpec(DeviceSpec):
    """Flex-model of a storage device (FlexMeasures field names)."""

    default_name: ClassVar[str] = "battery"

    type: Literal["storage"] = "storage"
    soc_at_start: Energy
    soc_min: Energy = 0.0
    soc_max: Energy
    soc_minima: EnergyInstants | None = None
    soc_maxima: EnergyInstants | None = None
    soc_targets: EnergyInstants | None = None
    charging_efficiency: FractionSeries | None = None
    discharging_efficiency: FractionSeries | None = None
    roundtrip_efficiency: Fraction | None = None
    storage_efficiency: FractionSeries | None = None
    power_capacity: PowerSeries | None = None
    consumption_capacity: PowerSeries | None = None
    production_capacity: PowerSeries | None = None
    soc_usage: list[PowerSeries] | PowerSeries | None = None
    soc_gain: list[PowerSeries] | PowerSeries | None = None
    soc_unit: Literal["kWh", "MWh"] | None = None
    prefer_charging_sooner: StrictBool = True
    prefer_curtailing_later: StrictBool = True

    @model_validator(mode="before")
    @classmethod
    def _apply_soc_unit(cls, raw: Any) -> Any:
        """Bare numbers in the SoC fields take ``soc-unit`` (FlexMeasures' form)."""
        if not isinstance(raw, dict):
            return raw
        unit = raw.get("soc-unit", raw.get("soc_unit"))
        if unit not in ("kWh", "MWh"):
            return raw  # absent or invalid: field validation reports it
        out = dict(raw)
        for name in (*SOC_FIELDS, *_SOC_LISTS):
            for key in (name, name.replace("-", "_")):
                if key not in out:
                    continue
                if name in SOC_FIELDS:
                    out[key] = _with_unit(out[key], unit)
                elif isinstance(out[key], list):
                    out[key] = [
                        {**e, "value": _with_unit(e["value"], unit)}
                        if isinstance(e, dict) and "value" in e
                        else e
                        for e in out[key]
                    ]
        return out


def _with_unit(value: Any, unit: str) -> Any:
    """``12.1`` -> ``"12.1 kWh"``; anything else (a string with its unit) unchanged."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value!r} {unit}"
    return value


@dataclass
class StorageParams:
    """A storage device resolved on the horizon, in kW / kWh / fractions."""

    name: str
    soc_at_start: float
    lower: np.ndarray  # per instant, T+1
    upper: np.ndarray
    lower_source: list[str]  # which field sets lower[s]: "soc-min", "soc-targets[0]", ...
    upper_source: list[str]
    eta_c: np.ndarray  # per step
    eta_d: np.ndarray
    keep: np.ndarray
    charge_max: np.ndarray
    discharge_max: np.ndarray
    usage: np.ndarray  # net kW drawn from the store (usage - gain)
    charge_field: str = "consumption-capacity"
    discharge_field: str = "production-capacity"
    net_lower: np.ndarray | None = None
    net_upper: np.ndarray | None = None
    prefer_charging_sooner: bool = True
    prefer_curtailing_later: bool = True


def resolve(spec: StorageSpec, horizon: Horizon, common: Common, path: str) -> StorageParams:
    """Turn the flex-model into arrays, reporting every invalid field at once."""
    issues: list[FieldIssue] = []
    n = horizon.steps
    eta_c, eta_d = _efficiencies(spec, horizon, path, issues)
    keep = storage_efficiency(spec.storage_efficiency, horizon, path, issues)
    charge_max, discharge_max = _capacities(spec, horizon, path, issues)
    usage = _sum_series(spec.soc_usage, horizon, f"{path}.soc-usage")
    usage = usage - _sum_series(spec.soc_gain, horizon, f"{path}.soc-gain")
    params = bounds_from_instants(
        spec.label,
        spec.soc_at_start,
        spec.soc_min,
        spec.soc_max,
        minima=spec.soc_minima,
        maxima=spec.soc_maxima,
        targets=spec.soc_targets,
        horizon=horizon,
        path=path,
        issues=issues,
    )
    if issues:
        raise RequestValidationError(issues)
    lower, upper, lower_source, upper_source = params
    available = common.available.astype(float)
    return StorageParams(
        name=spec.label,
        soc_at_start=spec.soc_at_start,
        lower=lower,
        upper=upper,
        lower_source=lower_source,
        upper_source=upper_source,
        eta_c=eta_c,
        eta_d=eta_d,
        keep=keep,
        charge_max=np.full(n, charge_max) * available,
        discharge_max=np.full(n, discharge_max) * available,
        usage=usage,
        net_lower=common.net_lower,
        net_upper=common.net_upper,
        prefer_charging_sooner=spec.prefer_charging_sooner,
        prefer_curtailing_later=spec.prefer_curtailing_later,
    )


def series_or(s: Series | None, horizon: Horizon, field: str, default: float) -> np.ndarray:
    """``s`` per step, ``default`` where it is not given or its segments leave steps empty."""
    if s is None:
        return np.full(horizon.steps, default)
    values = s.resolve(horizon, field, default)
    return np.where(np.isnan(values), default, values)


def storage_efficiency(
    s: Series | None, horizon: Horizon, path: str, issues: list[FieldIssue]
) -> np.ndarray:
    """``storage-efficiency`` per step (1 where not given), checked to be in (0, 1]."""
    keep = series_or(s, horizon, f"{path}.storage-efficiency", 1.0)
    check(
        issues,
        bool(((keep > 0) & (keep <= 1)).all()),
        f"{path}.storage-efficiency",
        "must be a fraction in (0, 1]",
    )
    return keep


def _sum_series(s: list[Series] | Series | None, horizon: Horizon, field: str) -> np.ndarray:
    parts = [] if s is None else [s] if isinstance(s, Series) else s
    total = np.zeros(horizon.steps)
    for i, part in enumerate(parts):
        name = field if isinstance(s, Series) else f"{field}[{i}]"
        total += series_or(part, horizon, name, 0.0)
    return total


def _efficiencies(
    spec: StorageSpec, horizon: Horizon, path: str, issues: list[FieldIssue]
) -> tuple[np.ndarray, np.ndarray]:
    split = spec.charging_efficiency is None and spec.discharging_efficiency is None
    if spec.roundtrip_efficiency is not None and not split:
        issues.append(
            FieldIssue(
                f"{path}.roundtrip-efficiency",
                "give roundtrip-efficiency or charging-/discharging-efficiency, not both",
            )
        )
    rt = spec.roundtrip_efficiency
    if rt is not None:
        check(issues, 0 < rt <= 1, f"{path}.roundtrip-efficiency", "must be in (0, 1]")
    default = math.sqrt(rt) if rt is not None and 0 < rt <= 1 else 1.0
    eta_c = series_or(spec.charging_efficiency, horizon, f"{path}.charging-efficiency", default)
    eta_d = series_or(
        spec.discharging_efficiency, horizon, f"{path}.discharging-efficiency", default
    )
    for name, arr in (("charging-efficiency", eta_c), ("discharging-efficiency", eta_d)):
        check(
            issues,
            bool(((arr > 0) & (arr <= 1)).all()),
            f"{path}.{name}",
            "must be a fraction in (0, 1]",
        )
    return eta_c, eta_d


def _capacities(
    spec: StorageSpec, horizon: Horizon, path: str, issues: list[FieldIssue]
) -> tuple[np.ndarray, np.ndarray]:
    both = spec.consumption_capacity is not None and spec.production_capacity is not None
    if spec.power_capacity is None and not both:
        issues.append(
            FieldIssue(
                f"{path}.power-capacity",
                "required unless consumption-capacity and production-capacity are both given",
            )
        )
        return np.zeros(horizon.steps), np.zeros(horizon.steps)
    power = series_or(spec.power_capacity, horizon, f"{path}.power-capacity", math.inf)
    out = []
    for name, s in (
        ("consumption-capacity", spec.consumption_capacity),
        ("production-capacity", spec.production_capacity),
    ):
        arr = np.minimum(series_or(s, horizon, f"{path}.{name}", math.inf), power)
        field = f"{path}.{name}" if s is not None else f"{path}.power-capacity"
        check(issues, bool((arr >= 0).all()), field, "must not be negative")
        out.append(np.maximum(arr, 0.0))
    return out[0], out[1]


def bounds_from_instants(
    name: str,
    soc_at_start: float,
    soc_min: float,
    soc_max: float,
    *,
    minima: Instants | None,
    maxima: Instants | None,
    targets: Instants | None,
    horizon: Horizon,
    path: str,
    issues: list[FieldIssue],
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Per-instant SoC bounds and the field each comes from (for error messages)."""
    m = horizon.steps + 1
    check(
        issues,
        soc_min <= soc_max,
        f"{path}.soc-min",
        f"{soc_min:g} kWh is above soc-max {soc_max:g} kWh",
    )
    check(
        issues,
        soc_min - TOLERANCE <= soc_at_start <= soc_max + TOLERANCE,
        f"{path}.soc-at-start",
        f"{soc_at_start:g} kWh is outside [soc-min, soc-max] = [{soc_min:g}, {soc_max:g}] kWh",
    )
    lower, upper = np.full(m, soc_min), np.full(m, soc_max)
    lower_source, upper_source = ["soc-min"] * m, ["soc-max"] * m
    for field, inst in (("soc-minima", minima), ("soc-maxima", maxima), ("soc-targets", targets)):
        if inst is None:
            continue
        # two entries at one instant: the tightest holds (targets: the later, as before)
        combine: Literal["max", "min"] | None = (
            "max" if field == "soc-minima" else "min" if field == "soc-maxima" else None
        )
        try:
            values = inst.resolve(horizon, f"{path}.{field}", combine)
        except RequestValidationError as err:
            issues.extend(err.issues)
            continue
        labels = _entry_labels(inst, horizon, field)
        for s in np.flatnonzero(~np.isnan(values)):
            v = float(values[s])
            entry = labels[s]
            where = f"{path}.{entry}"
            check(
                issues,
                v <= soc_max + TOLERANCE,
                where,
                f"{v:g} kWh is above soc-max {soc_max:g} kWh",
            )
            check(
                issues,
                v >= soc_min - TOLERANCE,
                where,
                f"{v:g} kWh is below soc-min {soc_min:g} kWh",
            )
            if field in ("soc-minima", "soc-targets") and v > lower[s]:
                lower[s], lower_source[s] = v, entry
            if field in ("soc-maxima", "soc-targets") and v < upper[s]:
                upper[s], upper_source[s] = v, entry
    for bound, source, clash in (
        (lower, lower_source, lower[0] > soc_at_start + TOLERANCE),
        (upper, upper_source, upper[0] < soc_at_start - TOLERANCE),
    ):
        check(
            issues,
            not clash or source[0] in ("soc-min", "soc-max"),
            f"{path}.{source[0]}",
            f"{bound[0]:g} kWh at the start contradicts soc-at-start {soc_at_start:g} kWh",
        )
    lower[0] = upper[0] = soc_at_start
    lower_source[0] = upper_source[0] = "soc-at-start"
    return lower, upper, lower_source, upper_source


def _entry_labels(inst: Instants, horizon: Horizon, field: str) -> list[str]:
    labels = [field] * (horizon.steps + 1)
    for i, entry in enumerate(inst.entries):
        a, b = horizon.instant_index(entry.start), horizon.instant_index(entry.end)
        if a is not None and b is not None:
            labels[a : b + 1] = [f"{field}[{i}]"] * (b + 1 - a)
    return labels


def precheck(
    p: StorageParams, horizon: Horizon, site_lower: np.ndarray, site_upper: np.ndarray
) -> None:
    """Forward reachability of the SoC, exact for the device on its own.

    The set of reachable SoCs is an interval at every instant; propagate it through the
    dynamics with the most/least charging allowed and intersect it with the bounds. An
    empty intersection names the bound that cannot be met, when, and the best reachable.
    ``site_lower``/``site_upper`` bound the device's power by what the site's connection
    leaves it (capacity minus the other devices' least use).
    """
    dt = horizon.dt
    lo = hi = p.soc_at_start
    net_lo = np.maximum(site_lower, -np.inf if p.net_lower is None else p.net_lower)
    net_hi = np.minimum(site_upper, np.inf if p.net_upper is None else p.net_upper)
    site_binds = bool((site_lower > -p.discharge_max).any() or (site_upper < p.charge_max).any())
    a = np.maximum(-p.discharge_max, net_lo)  # the least and most power per step
    b = np.minimum(p.charge_max, net_hi)
    clash = np.flatnonzero(a > b + TOLERANCE)
    if clash.size:
        t = int(clash[0])
        raise InfeasibleError(
            f"power-fixed/site capacity of {p.name} at {horizon.at(t).isoformat()} allow "
            f"[{net_lo[t]:g}, {net_hi[t]:g}] kW but the device can only do "
            f"[{-p.discharge_max[t]:g}, {p.charge_max[t]:g}] kW",
            constraint="power-fixed",
            time=horizon.at(t),
            device=p.name,
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        gain_hi = np.where(b >= 0, p.eta_c * b, b / p.eta_d) - p.usage
        gain_lo = np.where(a >= 0, p.eta_c * a, a / p.eta_d) - p.usage
    # the recurrence is sequential: plain floats, not numpy scalars (5x faster per step)
    keep, lower, upper = p.keep.tolist(), p.lower.tolist(), p.upper.tolist()
    for t, (g_hi, g_lo) in enumerate(zip(gain_hi.tolist(), gain_lo.tolist(), strict=True)):
        up = keep[t] * hi + dt * g_hi
        down = keep[t] * lo + dt * g_lo
        s = t + 1
        if up < lower[s] - TOLERANCE:
            _unreachable(
                p, horizon, s, up, "at most", p.lower_source[s], lower[s], p.charge_field,
                site_binds,
            )  # fmt: skip
        if down > upper[s] + TOLERANCE:
            _unreachable(
                p, horizon, s, down, "at least", p.upper_source[s], upper[s], p.discharge_field,
                site_binds,
            )  # fmt: skip
        hi, lo = min(up, upper[s]), max(down, lower[s])


def _unreachable(
    p: StorageParams,
    horizon: Horizon,
    s: int,
    best: float,
    bound: str,
    source: str,
    value: float,
    capacity: str,
    site_binds: bool,
) -> None:
    when = horizon.at(s)
    family = source.split("[")[0]
    site = ", usage and the site's connection capacity" if site_binds else " and usage"
    raise InfeasibleError(
        f"{source} = {value:.4g} kWh at {when.isoformat()} cannot be met for {p.name}: "
        f"{bound} {best:.4g} kWh is reachable given soc-at-start, {capacity}, "
        f"efficiencies{site}",
        constraint=family,
        time=when,
        device=p.name,
    )


def formulate(p: StorageParams, lm: LinearModel, horizon: Horizon) -> DeviceVars:
    """Add the storage's columns and its ``soc-dynamics`` rows to ``lm``."""
    n, dt = horizon.steps, horizon.dt
    charge = lm.add_vars("charge", n, 0.0, p.charge_max, device=p.name)
    discharge = lm.add_vars("discharge", n, 0.0, p.discharge_max, device=p.name)
    soc = lm.add_vars("soc", n + 1, p.lower, p.upper, device=p.name, instant=True)
    lm.add_rows(
        "soc-dynamics",
        [(1.0, soc[1:]), (-p.keep, soc[:-1]), (-dt * p.eta_c, charge), (dt / p.eta_d, discharge)],
        -dt * p.usage,
        -dt * p.usage,
        device=p.name,
        instant=True,
        offset=1,
    )
    dv = DeviceVars(p.name, "storage", n, consumption=[charge], production=[discharge], soc=soc)
    if (p.discharge_max > 0).any() and (p.charge_max > 0).any():
        dv.exclusive.append((charge, discharge))
    dv.extra["bound_source"] = (p.lower_source, p.upper_source)
    weights = tie_break_weights(p, n)
    if weights is not None:
        dv.extra["tie-break"] = (soc[1:], weights)
    return dv


def tie_break_weights(p: StorageParams, steps: int) -> np.ndarray | None:
    """The secondary objective's coefficients of ``soc[1..T]``, or ``None`` when off.

    Negative, so a fuller SoC is preferred; with ``prefer-curtailing-later`` the weight
    falls from 2 to 1 over the horizon (fuller sooner weighs more), otherwise it is 1.
    Instant 0 is fixed by ``soc-at-start``.
    """
    if not p.prefer_charging_sooner:
        return None
    s = np.arange(1, steps + 1)
    slope = (steps - s) / steps if p.prefer_curtailing_later else np.zeros(steps)
    weights: np.ndarray = -(1.0 + slope)
    return weights


KIND = AssetKind(
    name="storage",
    spec=StorageSpec,
    resolve=resolve,
    precheck=precheck,
    formulate=formulate,
    result_fields=(SOC,),
)
