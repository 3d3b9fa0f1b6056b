"""Soft constraints: limits that may be breached at a price (FlexMeasures' breach prices).

Flex-context fields (absent: the limit stays hard):

========================================  ==========================================  ========
field                                     softens                                     price
========================================  ==========================================  ========
``site-consumption-breach-price``         ``site-consumption-capacity``               EUR/kW
``site-production-breach-price``          ``site-production-capacity``                EUR/kW
``consumption-breach-price``              each storage's ``consumption-capacity``     EUR/kW
``production-breach-price``               each storage's ``production-capacity``      EUR/kW
``soc-minima-breach-price``               ``soc-minima`` (storage and heat)           EUR/kWh
``soc-maxima-breach-price``               ``soc-maxima`` (storage and heat)           EUR/kWh
========================================  ==========================================  ========

What stays hard, as in FlexMeasures: ``site-power-capacity``, a device's ``power-capacity``,
``soc-min``/``soc-max`` and ``soc-targets``. A capacity is softened only where a hard one is
left above it (a device's ``power-capacity``; for the site, anything or nothing): without
one, a price below a negative energy price would make the breach unbounded, so the field is
refused naming why.

``relax-constraints: true`` fills the absent ones with defaults in FlexMeasures' priority
order (the most expensive breached last): site capacity 10,000 EUR/kW, SoC minima and
maxima 1,000 EUR/kWh (FlexMeasures' own defaults), device capacity 100 EUR/kW.

Constraint families, for a limited quantity ``q[t]`` (the site's power, a storage's charge
or discharge power, its SoC at an instant) with soft limit ``L[t]``, breach ``b[t] >= 0`` and
the window's largest breach ``B``:

``<family>-breach`` (e.g. ``site-consumption-capacity-breach``)
    ``q[t] - b[t] <= L[t]`` for an upper limit, ``q[t] + b[t] >= L[t]`` for a lower one
``<family>-breach-peak``
    ``b[t] <= B``

Objective, as FlexMeasures applies a breach price both to the height of the highest breach
and to the area of every breach: ``max_t(price[t]) * B + sum_t price[t] * b[t] * dt`` (EUR;
a power breach's area in kW h, an SoC breach's in kWh h).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from vpp.errors import FieldIssue, InfeasibleError
from vpp.linear import INF, LinearModel, Term
from vpp.timeseries import Horizon, Series

if TYPE_CHECKING:
    from vpp.device import DeviceVars
    from vpp.request import FlexContext

__all__ = [
    "DEFAULTS",
    "HINTS",
    "Breach",
    "Softening",
    "add_breaches",
    "add_soft_limit",
    "breach_costs",
    "read_breaches",
    "soften",
    "with_hint",
]

DEFAULTS = {
    "site-consumption-breach-price": 10_000.0,  # EUR/kW
    "site-production-breach-price": 10_000.0,
    "soc-minima-breach-price": 1_000.0,  # EUR/kWh
    "soc-maxima-breach-price": 1_000.0,
    "consumption-breach-price": 100.0,  # EUR/kW
    "production-breach-price": 100.0,
}
"""What ``relax-constraints: true`` sets where a breach price is absent (EUR per kW or kWh)."""

HINTS = {
    "site-consumption-capacity": "site-consumption-breach-price",
    "site-production-capacity": "site-production-breach-price",
    "site-power-capacity": "site-consumption-breach-price",
    "consumption-capacity": "consumption-breach-price",
    "production-capacity": "production-breach-price",
    "charge": "consumption-breach-price",
    "discharge": "production-breach-price",
    "soc-minima": "soc-minima-breach-price",
    "soc-maxima": "soc-maxima-breach-price",
}
"""The breach price that would make an infeasible hard family soft."""


@dataclass(frozen=True)
class SoftLimit:
    """One softened limit before the model exists: what it bounds and at what price."""

    family: str
    device: int | None  # index into the site's devices; None for the site's power
    quantity: str  # "power", "charge", "discharge", "soc"
    upper: bool
    limit: np.ndarray  # per step (or instant for "soc"); nan where not soft
    price: np.ndarray  # EUR per kW (or kWh) per step


@dataclass
class Softening:
    """The soft limits of a site; :func:`soften` fills it and relaxes the hard bounds."""

    limits: list[SoftLimit] = field(default_factory=list)
    requested: bool = False  # a breach price or relax-constraints was given


@dataclass(frozen=True)
class Breach:
    """A soft limit in the model: its breach columns and their cost."""

    family: str
    device: str | None
    unit: str
    instant: bool
    breach: np.ndarray  # columns b[t]
    peak: int  # column B
    area_price: np.ndarray  # EUR per unit per step (price * dt)
    peak_price: float


def _prices(ctx: FlexContext) -> dict[str, Series | None]:
    return {name: getattr(ctx, name.replace("-", "_")) for name in DEFAULTS}


def soften(
    ctx: FlexContext,
    horizon: Horizon,
    devices: Sequence[tuple[Any, Any, Any]],
    issues: list[FieldIssue],
) -> tuple[Softening, dict[str, np.ndarray]]:
    """The soft limits the flex-context asks for; each softened device's params get their hard
    bounds back (a storage's charge bound becomes its power-capacity, an SoC minimum
    ``soc-min``). Returns the softening and the site's soft capacities by field name."""
    prices = _resolve_prices(ctx, horizon, issues)
    given = _prices(ctx)
    defaulted = {n for n in prices if given[n] is None}
    soft = Softening(requested=bool(prices))
    site: dict[str, np.ndarray] = {}
    for name, cap in (
        ("consumption", ctx.site_consumption_capacity),
        ("production", ctx.site_production_capacity),
    ):
        price = prices.get(f"site-{name}-breach-price")
        if price is None or cap is None:
            continue
        limit = cap.resolve(horizon, f"flex-context.site-{name}-capacity", np.nan)
        site[name] = limit
        soft.limits.append(
            SoftLimit(
                f"site-{name}-capacity",
                None,
                "power",
                name == "consumption",
                limit if name == "consumption" else -limit,  # P >= -production capacity
                price,
            )
        )
    for i, (spec, common, params) in enumerate(devices):
        _soften_device(i, spec, common, params, prices, defaulted, horizon, soft, issues)
    return soft, site


def _resolve_prices(
    ctx: FlexContext, horizon: Horizon, issues: list[FieldIssue]
) -> dict[str, np.ndarray]:
    """Each given breach price per step, or relax-constraints' default where absent."""
    out: dict[str, np.ndarray] = {}
    for name, series in _prices(ctx).items():
        path = f"flex-context.{name}"
        if series is None:
            if ctx.relax_constraints:
                out[name] = np.full(horizon.steps, DEFAULTS[name])
            continue
        if series.unit not in ("", "EUR"):
            issues.append(FieldIssue(path, f"a breach price is money per unit, not {series.unit}"))
            continue
        values = series.resolve(horizon, path, np.nan)
        if np.isnan(values).any():
            issues.append(FieldIssue(path, "segments leave time steps without a price"))
        elif (values < 0).any():
            issues.append(FieldIssue(path, "must not be negative"))
        else:
            out[name] = values
    return out


def _soften_device(
    i: int,
    spec: Any,
    common: Any,
    params: Any,
    prices: dict[str, np.ndarray],
    defaulted: set[str],
    horizon: Horizon,
    soft: Softening,
    issues: list[FieldIssue],
) -> None:
    from vpp.assets.storage import StorageParams, series_or

    if not isinstance(params, StorageParams):
        return
    path = f"flex-model[{i}]"
    for kind, name, attr in (
        ("charge", "consumption", "charge_max"),
        ("discharge", "production", "discharge_max"),
    ):
        price = prices.get(f"{name}-breach-price")
        given = getattr(spec, f"{name}_capacity", None)
        if price is None or given is None:
            continue
        power = getattr(spec, "power_capacity", None)
        if power is None and f"{name}-breach-price" in defaulted:
            continue  # relax-constraints' default: such a device keeps its hard limit
        if power is None:
            issues.append(
                FieldIssue(
                    f"flex-context.{name}-breach-price",
                    f"{path} has no power-capacity to bound a breach of its "
                    f"{name}-capacity: give one",
                )
            )
            continue
        hard = series_or(power, horizon, f"{path}.power-capacity", INF)
        limit = series_or(given, horizon, f"{path}.{name}-capacity", INF)
        setattr(params, attr, np.maximum(hard, 0.0) * common.available)
        soft.limits.append(
            SoftLimit(
                f"{name}-capacity", i, kind, True, np.where(limit < hard, limit, np.nan), price
            )
        )
    _soften_soc(i, spec, params, prices, soft)


def _soften_soc(
    i: int, spec: Any, params: Any, prices: dict[str, np.ndarray], soft: Softening
) -> None:
    for name, upper, bound, sources, hard in (
        ("soc-minima", False, params.lower, params.lower_source, float(spec.soc_min or 0.0)),
        ("soc-maxima", True, params.upper, params.upper_source, float(spec.soc_max)),
    ):
        price = prices.get(f"{name}-breach-price")
        if price is None:
            continue
        soft_at = np.array([s.startswith(name) for s in sources])
        if not soft_at.any():
            continue
        limit = np.where(soft_at, bound, np.nan)
        bound[soft_at] = hard
        for s in np.flatnonzero(soft_at):
            sources[s] = "soc-max" if upper else "soc-min"
        # the instant's price: the step it ends (instant 0: the first step)
        instant_price = np.concatenate([price[:1], price])
        soft.limits.append(SoftLimit(name, i, "soc", upper, limit, instant_price))


def add_breaches(
    lm: LinearModel,
    soft: Softening,
    site_power: np.ndarray,
    devices: Sequence[DeviceVars],
    horizon: Horizon,
) -> list[Breach]:
    """Breach columns and rows of every soft limit (module docstring)."""
    out = []
    for limit in soft.limits:
        dv = devices[limit.device] if limit.device is not None else None
        cols = _quantity(limit.quantity, site_power, dv)
        out.append(_add_one(lm, limit, cols, None if dv is None else dv.name, horizon))
    return out


def _quantity(kind: str, site_power: np.ndarray, dv: DeviceVars | None) -> np.ndarray:
    if dv is None:
        return site_power
    if kind == "soc":
        assert dv.soc is not None  # only storage and heat params are softened
        return dv.soc
    blocks = dv.consumption if kind == "charge" else dv.production
    return blocks[0]


def _add_one(
    lm: LinearModel, limit: SoftLimit, cols: np.ndarray, device: str | None, horizon: Horizon
) -> Breach:
    terms: list[Term] = [(1.0, cols)]
    constant = np.zeros(len(cols))
    instant = limit.quantity == "soc"
    return add_soft_limit(
        lm,
        limit.family,
        device,
        terms,
        constant,
        limit.limit,
        limit.upper,
        limit.price,
        horizon,
        instant=instant,
    )


def add_soft_limit(
    lm: LinearModel,
    family: str,
    device: str | None,
    terms: Sequence[Term],
    constant: np.ndarray,
    limit: np.ndarray,
    upper: bool,
    price: np.ndarray,
    horizon: Horizon,
    *,
    instant: bool = False,
) -> Breach:
    """The rows ``sum(terms) + constant - b <= limit`` (``upper``) or ``... + b >= limit``
    where ``limit`` is finite (nan or inf elsewhere: no breach there), ``b <= B``, and the
    breach columns with their cost (module docstring). Any kind of limit can use it: a
    group's (vpp/groups.py) as well as the site's and the devices'."""
    n = len(limit)
    active = np.isfinite(limit)
    b = lm.add_vars(
        f"{family}-breach", n, 0.0, np.where(active, INF, 0.0), device=device, instant=instant
    )
    peak = int(lm.add_vars(f"{family}-breach-peak", 1, 0.0, INF, device=device)[0])
    bound = np.where(active, limit - constant, INF if upper else -INF)
    rows: list[Term] = [*terms, (-1.0 if upper else 1.0, b)]
    lower_bound, upper_bound = (-INF, bound) if upper else (bound, INF)
    lm.add_rows(f"{family}-breach", rows, lower_bound, upper_bound, device=device, instant=instant)
    lm.add_rows(
        f"{family}-breach-peak",
        [(1.0, b), (-1.0, np.full(n, peak))],
        -INF,
        0.0,
        device=device,
        instant=instant,
    )
    unit = "kWh" if instant else "kW"
    used = price[active] if active.any() else price
    return Breach(
        family, device, unit, instant, b, peak, price * horizon.dt, float(used.max(initial=0.0))
    )


def breach_costs(breaches: Sequence[Breach], n_cols: int) -> np.ndarray:
    """The objective's coefficients of every breach column (EUR per kW or kWh)."""
    cost = np.zeros(n_cols)
    for b in breaches:
        cost[b.breach] += b.area_price
        cost[b.peak] += b.peak_price
    return cost


def read_breaches(
    breaches: Sequence[Breach], x: np.ndarray, horizon: Horizon
) -> tuple[list[dict[str, Any]], float]:
    """Every breach in ``x`` (area per step or instant, and each window's peak) and their
    total cost (EUR)."""
    out: list[dict[str, Any]] = []
    total = 0.0
    for b in breaches:
        sizes = x[b.breach]
        for step in np.flatnonzero(sizes > 1e-7):
            t = int(step)
            cost = float(b.area_price[t] * sizes[t])
            out.append(_entry(b, horizon.at(t).isoformat(), float(sizes[t]), cost, "area"))
            total += cost
        peak = float(x[b.peak])
        if peak > 1e-7:
            at = int(np.argmax(sizes))
            cost = b.peak_price * peak
            out.append(_entry(b, horizon.at(at).isoformat(), peak, cost, "peak"))
            total += cost
    return out, total


def _entry(b: Breach, start: str, size: float, cost: float, part: str) -> dict[str, Any]:
    return {
        "family": b.family,
        "device": b.device,
        "start": start,
        "part": part,
        "size": round(size, 9),
        "unit": b.unit,
        "cost": round(cost, 9),
    }


def with_hint(err: InfeasibleError) -> InfeasibleError:
    """``err`` with the breach price that would make its family soft, when there is one."""
    names = [HINTS[c] for c in err.constraint.split("/") if c in HINTS]
    if err.constraint.startswith("soc-targets"):  # a storage pre-check names its limits
        names += [
            HINTS[f]
            for f in ("consumption-capacity", "production-capacity")
            if f in err.message.split("given ", 1)[-1]
        ]
    if "site's connection capacity" in err.message:  # a device pre-check the site bounds
        names += ["site-consumption-breach-price", "site-production-breach-price"]
    if not names or "breach-price" in err.message:
        return err
    field_name = " or flex-context.".join(dict.fromkeys(names))
    hinted = InfeasibleError(
        f"{err.message}; to treat it as a soft constraint, give "
        f"flex-context.{field_name} (or relax-constraints: true)",
        constraint=err.constraint,
        time=err.time,
        device=err.device,
    )
    return hinted
