"""What every device kind shares: the flex-model fields common to all, and the interface an
asset module fills in when it adds a device to a site model.

Sign convention everywhere in vpp: **consumption is positive, production negative** (kW).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar

import numpy as np
from pydantic import AwareDatetime, BaseModel, ConfigDict, model_validator

from vpp.errors import FieldIssue, RequestValidationError
from vpp.linear import INF, LinearModel
from vpp.timeseries import (
    Energy,
    EnergyInstants,
    Fraction,
    FractionSeries,
    Horizon,
    Power,
    PowerSeries,
    PriceSeries,
)

__all__ = [
    "Common",
    "DeviceSpec",
    "DeviceVars",
    "Energy",
    "EnergyInstants",
    "Fraction",
    "FractionSeries",
    "Period",
    "Power",
    "PowerSeries",
    "PriceSeries",
    "Spec",
    "apply_common",
    "check",
    "resolve_common",
]


def kebab(name: str) -> str:
    return name.replace("_", "-")


class Spec(BaseModel):
    """Base of all request models: kebab-case JSON names, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=kebab, populate_by_name=True, extra="forbid", frozen=True
    )


class Period(Spec):
    """``[start, end)``, given by ``end`` or by ``duration``."""

    start: AwareDatetime
    end: AwareDatetime | None = None
    duration: timedelta | None = None

    @model_validator(mode="after")
    def _one_end(self) -> Period:
        if (self.end is None) == (self.duration is None):
            raise ValueError("give exactly one of 'end' and 'duration'")
        if self.stop <= self.start:
            raise ValueError("the period must end after it starts")
        return self

    @property
    def stop(self) -> AwareDatetime:
        return self.end if self.end is not None else self.start + (self.duration or timedelta())


class FixedPower(Period):
    """A user-fed commitment on the device's power during a period: ``value`` fixes it,
    ``min``/``max`` bound it (e.g. discharge at the factory's rate through a blackout)."""

    value: Power | None = None
    min: Power | None = None
    max: Power | None = None

    @model_validator(mode="after")
    def _some_bound(self) -> FixedPower:
        if self.value is None and self.min is None and self.max is None:
            raise ValueError("give 'value', or 'min' and/or 'max'")
        if self.value is not None and (self.min is not None or self.max is not None):
            raise ValueError("give 'value' or 'min'/'max', not both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("'min' is above 'max'")
        return self


class DeviceSpec(Spec):
    """Fields every device may carry."""

    default_name: ClassVar[str] = "device"

    type: str
    name: str | None = None
    consumption_price: PriceSeries | None = None
    production_price: PriceSeries | None = None
    availability: list[Period] | None = None
    power_fixed: list[FixedPower] | None = None

    @property
    def label(self) -> str:
        return self.name or self.default_name


@dataclass
class Common:
    """The shared fields resolved on the horizon."""

    available: np.ndarray  # bool per step
    net_lower: np.ndarray  # bounds on device power from power-fixed (-inf/inf where free)
    net_upper: np.ndarray
    consumption_price: np.ndarray | None
    production_price: np.ndarray | None

    @property
    def own_prices(self) -> bool:
        return self.consumption_price is not None or self.production_price is not None


def resolve_common(spec: DeviceSpec, horizon: Horizon, path: str) -> Common:
    n = horizon.steps
    available = np.ones(n, bool)
    if spec.availability is not None:
        available[:] = False
        for i, window in enumerate(spec.availability):
            a, b = _span(horizon, window, f"{path}.availability[{i}]")
            available[a:b] = True
    lower, upper = np.full(n, -INF), np.full(n, INF)
    for i, fixed in enumerate(spec.power_fixed or []):
        a, b = _span(horizon, fixed, f"{path}.power-fixed[{i}]")
        lo = fixed.value if fixed.value is not None else fixed.min
        hi = fixed.value if fixed.value is not None else fixed.max
        lower[a:b] = -INF if lo is None else lo
        upper[a:b] = INF if hi is None else hi
    cp = spec.consumption_price
    pp = spec.production_price
    cons = cp.resolve(horizon, f"{path}.consumption-price") if cp else None
    prod = pp.resolve(horizon, f"{path}.production-price") if pp else None
    if cons is not None and prod is None:
        prod = cons
    if prod is not None and cons is None:
        cons = prod
    for name, arr in (("consumption-price", cons), ("production-price", prod)):
        if arr is not None and np.isnan(arr).any():
            raise RequestValidationError.single(
                f"{path}.{name}", "segments leave time steps without a price"
            )
    return Common(available, lower, upper, cons, prod)


def _span(horizon: Horizon, period: Period, field: str) -> tuple[int, int]:
    span = horizon.step_span(period.start, period.stop)
    if span is None:
        raise RequestValidationError.single(
            field, "start and end must fall on the request's time steps"
        )
    return span


@dataclass
class DeviceVars:
    """How a device appears in a site model.

    Its power is ``sum(consumption cols) - sum(production cols) + constant``; every listed
    column is non-negative. ``exclusive`` lists column pairs that may not both be positive at
    the same step (charging and discharging), enforced lazily with binaries by the site.
    """

    name: str
    kind: str
    steps: int
    consumption: list[np.ndarray] = field(default_factory=list)
    production: list[np.ndarray] = field(default_factory=list)
    constant: np.ndarray | None = None
    soc: np.ndarray | None = None
    exclusive: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def power_terms(self, sign: float = 1.0) -> list[tuple[float, np.ndarray]]:
        """``(coefficient, columns)`` terms of ``sign * power`` (without the constant)."""
        return [(sign, c) for c in self.consumption] + [(-sign, c) for c in self.production]

    def power(self, x: np.ndarray) -> np.ndarray:
        p = np.zeros(self.steps) if self.constant is None else self.constant.copy()
        for cols in self.consumption:
            p += x[cols]
        for cols in self.production:
            p -= x[cols]
        return p


def apply_common(lm: LinearModel, dv: DeviceVars, common: Common) -> None:
    """Availability windows and ``power-fixed`` commitments, for any device kind.

    ``availability``: outside its windows a device's power is 0 (its columns are fixed at 0).

    ``power-fixed``: ``min[t] <= power[t] <= max[t]`` at the steps a commitment covers.
    """
    off = ~common.available
    if off.any():
        for cols in dv.consumption + dv.production:
            lm.tighten(cols[off], np.zeros(off.sum()), np.zeros(off.sum()))
    fixed = np.flatnonzero(np.isfinite(common.net_lower) | np.isfinite(common.net_upper))
    if fixed.size and (dv.consumption or dv.production):
        terms = [(coef, cols[fixed]) for coef, cols in dv.power_terms()]
        const = 0.0 if dv.constant is None else dv.constant[fixed]
        for start, stop in _runs(fixed):
            sel = slice(start, stop)
            lm.add_rows(
                "power-fixed",
                [(coef, cols[sel]) for coef, cols in terms],
                (common.net_lower[fixed] - const)[sel],
                (common.net_upper[fixed] - const)[sel],
                device=dv.name,
                offset=int(fixed[start]),
            )


def _runs(idx: np.ndarray) -> list[tuple[int, int]]:
    """Positions in ``idx`` of its consecutive runs, as ``[start, stop)`` pairs."""
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    bounds = [0, *breaks.tolist(), len(idx)]
    return list(itertools.pairwise(bounds))


def check(issues: list[FieldIssue], ok: bool, field: str, message: str) -> None:
    """Append an issue unless ``ok``: lets a module report every problem at once."""
    if not ok:
        issues.append(FieldIssue(field, message))
