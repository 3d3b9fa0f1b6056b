"""The scheduling horizon and the three ways a request gives a time series.

A series is given as

* one constant quantity: ``"30 EUR/MWh"``;
* compact values aligned with the request's start and resolution:
  ``{"values": [..], "unit": "EUR/MWh"}``;
* segments: ``[{"start": ..., "duration": "PT1H" | "end": ..., "value": "5 kW"}]``.

Instant constraints (``soc-targets``, ``soc-minima``, ``soc-maxima``) are lists of
``{"datetime": ..., "value": ...}`` or of segments, which then hold at every instant from
``start`` to ``end`` inclusive.

Parsing (units, shapes) happens in pydantic validation; *resolving* against a
:class:`Horizon` (lengths, alignment) happens before the model is built, with the field's
name in every error.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AwareDatetime, BeforeValidator, TypeAdapter, WithJsonSchema

from vpp.errors import RequestValidationError
from vpp.units import Kind, factor, is_finite, parse_quantity, price_numerator

__all__ = [
    "Energy",
    "EnergyInstants",
    "Fraction",
    "FractionSeries",
    "Horizon",
    "Instants",
    "Power",
    "PowerSeries",
    "PriceSeries",
    "Segment",
    "Series",
    "iso_duration",
]


_DATETIME = TypeAdapter(AwareDatetime)
_DURATION = TypeAdapter(timedelta)


@dataclass(frozen=True)
class Horizon:
    """``steps`` time steps of ``resolution`` from ``start``; instants 0..steps."""

    start: datetime
    duration: timedelta
    resolution: timedelta

    @property
    def steps(self) -> int:
        return int(self.duration / self.resolution)

    @property
    def dt(self) -> float:
        """Step length in hours: the factor between kW and kWh per step."""
        return self.resolution.total_seconds() / 3600.0

    def at(self, k: int) -> datetime:
        """The instant that starts step ``k`` (``k == steps`` is the end)."""
        return self.start + k * self.resolution

    def instant_index(self, when: datetime) -> int | None:
        """Index of ``when`` among the instants, or ``None`` if it is not on one."""
        offset = (when - self.start) / self.resolution
        k = round(offset)
        if abs(offset - k) > 1e-9 or not 0 <= k <= self.steps:
            return None
        return int(k)

    def step_span(self, start: datetime, end: datetime) -> tuple[int, int] | None:
        """Steps ``[a, b)`` covered by ``[start, end)``, clipped to the horizon.

        ``None`` when a boundary inside the horizon does not fall on a step boundary.
        """
        a = (start - self.start) / self.resolution
        b = (end - self.start) / self.resolution
        for x in (a, b):
            if 0 < x < self.steps and abs(x - round(x)) > 1e-9:
                return None
        lo = min(max(round(a), 0), self.steps)
        hi = min(max(round(b), 0), self.steps)
        return lo, hi

    def describe(self) -> str:
        return f"{iso_duration(self.duration)} at {iso_duration(self.resolution)}"


def iso_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    return text + (f"{secs}S" if secs or text == "PT" else "")


@dataclass(frozen=True)
class Segment:
    start: datetime
    end: datetime
    value: float


@dataclass(frozen=True)
class Series:
    """A parsed series in canonical units; exactly one of the three forms is set."""

    kind: Kind
    constant: float | None = None
    values: tuple[float, ...] | None = None
    segments: tuple[Segment, ...] | None = None
    # what a price counts per kWh, "EUR" or "kg" (CO2 steering, vpp/co2.py); "" otherwise
    unit: str = ""

    def resolve(self, horizon: Horizon, field: str, default: float = math.nan) -> np.ndarray:
        """One value per step; steps no segment covers get ``default``."""
        n = horizon.steps
        if self.constant is not None:
            return np.full(n, self.constant)
        if self.values is not None:
            if len(self.values) != n:
                raise RequestValidationError.single(
                    field,
                    f"has {len(self.values)} values, expected {n} ({horizon.describe()})",
                )
            return np.array(self.values, dtype=float)
        out = np.full(n, default)
        for i, seg in enumerate(self.segments or ()):
            span = horizon.step_span(seg.start, seg.end)
            if span is None:
                raise RequestValidationError.single(
                    f"{field}[{i}]", "start and end must fall on the request's time steps"
                )
            out[span[0] : span[1]] = seg.value
        return out


@dataclass(frozen=True)
class Instants:
    """Values that hold at instants (SoC targets, minima, maxima)."""

    entries: tuple[Segment, ...]  # a single instant has start == end

    def resolve(
        self, horizon: Horizon, field: str, combine: Literal["max", "min"] | None = None
    ) -> np.ndarray:
        """One value per instant (``steps + 1``), NaN where nothing is asked. Entries that
        cover one instant twice: the later wins, or with ``combine`` the larger ("max", as
        minima combine: the tightest holds) or the smaller ("min", as maxima do)."""
        out = np.full(horizon.steps + 1, math.nan)
        for i, entry in enumerate(self.entries):
            a = horizon.instant_index(entry.start)
            b = horizon.instant_index(entry.end)
            if a is None or b is None:
                raise RequestValidationError.single(
                    f"{field}[{i}]",
                    f"{entry.start.isoformat()} is not an instant of the schedule "
                    f"(from {horizon.start.isoformat()}, every {iso_duration(horizon.resolution)}"
                    f", {horizon.steps} steps)",
                )
            if combine == "max":
                out[a : b + 1] = np.fmax(out[a : b + 1], entry.value)
            elif combine == "min":
                out[a : b + 1] = np.fmin(out[a : b + 1], entry.value)
            else:
                out[a : b + 1] = entry.value
        return out


def _parse_segment(raw: Any, kind: Kind, *, instant: bool) -> Segment:
    if not isinstance(raw, dict):
        raise ValueError("each entry must be an object with a start and a value")
    unknown = set(raw) - {"start", "end", "duration", "value", "datetime"}
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)}")
    if "value" not in raw:
        raise ValueError("entry has no 'value'")
    value = parse_quantity(raw["value"], kind)
    if "datetime" in raw:
        when = _DATETIME.validate_python(raw["datetime"])
        return Segment(when, when, value)
    if "start" not in raw:
        raise ValueError("entry needs 'start' (or 'datetime')")
    start = _DATETIME.validate_python(raw["start"])
    has_end, has_duration = "end" in raw, "duration" in raw
    if has_end and has_duration:
        raise ValueError("give 'end' or 'duration', not both")
    if not has_end and not has_duration:
        if instant:
            return Segment(start, start, value)
        raise ValueError("a segment needs 'end' or 'duration'")
    end = (
        _DATETIME.validate_python(raw["end"])
        if "end" in raw
        else start + _DURATION.validate_python(raw["duration"])
    )
    if end < start:
        raise ValueError("'end' is before 'start'")
    return Segment(start, end, value)


def _parse_series(raw: Any, kind: Kind) -> Series:
    if isinstance(raw, Series):
        return raw
    series = _parse_any_series(raw, kind)
    if kind == "price":  # a price's numerator sets the objective's unit (vpp/co2.py)
        return dataclasses.replace(series, unit=_price_numerator(raw))
    return series


def _price_numerator(raw: Any) -> str:
    """``"EUR"`` or ``"kg"``: what every value of a parsed price series counts per kWh
    (a bare number, where a unit is implied, counts money)."""
    if isinstance(raw, int | float):
        return "EUR"
    if isinstance(raw, dict):
        return price_numerator(str(raw["unit"]))
    if isinstance(raw, list):
        found = {_price_numerator(s["value"]) for s in raw}
        if len(found) > 1:
            raise ValueError(f"segments mix units of {' and '.join(sorted(found))}")
        return found.pop() if found else "EUR"
    return price_numerator(str(raw))


def _parse_any_series(raw: Any, kind: Kind) -> Series:
    if isinstance(raw, str | int | float) and not isinstance(raw, bool):
        return Series(kind, constant=parse_quantity(raw, kind))
    if isinstance(raw, dict):
        unknown = set(raw) - {"values", "unit"}
        if unknown or "values" not in raw:
            raise ValueError("a compact series is {'values': [...], 'unit': '...'}")
        unit = raw.get("unit", "")
        if not isinstance(unit, str) or (kind != "fraction" and not unit):
            raise ValueError("a compact series needs a 'unit'")
        values = raw["values"]
        if not isinstance(values, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values
        ):
            raise ValueError("'values' must be a list of numbers")
        if not all(is_finite(v) for v in values):
            raise ValueError("'values' must be finite numbers")
        f = factor(unit, kind)
        scaled = tuple(float(v) * f for v in values)
        if not all(math.isfinite(v) for v in scaled):  # finite, until the unit's factor
            raise ValueError("'values' must be finite numbers in canonical units")
        return Series(kind, values=scaled)
    if isinstance(raw, list):
        if not raw:  # nothing at any step: leave the field out instead
            raise ValueError("an empty list of segments; give at least one, or leave it out")
        return Series(kind, segments=tuple(_parse_segment(s, kind, instant=False) for s in raw))
    raise ValueError("expected a quantity, {'values': [...], 'unit': ...} or a list of segments")


def _parse_instants(raw: Any, kind: Kind) -> Instants:
    if isinstance(raw, Instants):
        return raw
    if not isinstance(raw, list):
        raise ValueError("expected a list of {'datetime': ..., 'value': ...}")
    return Instants(tuple(_parse_segment(s, kind, instant=True) for s in raw))


_SERIES_SCHEMA = {
    "anyOf": [
        {"type": "string", "examples": ["5 kW"]},
        {
            "type": "object",
            "properties": {
                "values": {"type": "array", "items": {"type": "number"}},
                "unit": {"type": "string"},
            },
            "required": ["values", "unit"],
        },
        {"type": "array", "items": {"type": "object"}},
    ]
}
_INSTANTS_SCHEMA = {"type": "array", "items": {"type": "object"}}


def _series_validator(kind: Kind) -> BeforeValidator:
    return BeforeValidator(partial(_parse_series, kind=kind))


def _instants_validator(kind: Kind) -> BeforeValidator:
    return BeforeValidator(partial(_parse_instants, kind=kind))


def _quantity_validator(kind: Kind) -> BeforeValidator:
    return BeforeValidator(partial(parse_quantity, kind=kind))


_QUANTITY_SCHEMA = WithJsonSchema({"type": "string"})

# pydantic field types: parsed and converted to canonical units during validation
Power = Annotated[float, _quantity_validator("power"), _QUANTITY_SCHEMA]
Energy = Annotated[float, _quantity_validator("energy"), _QUANTITY_SCHEMA]
Fraction = Annotated[float, _quantity_validator("fraction"), _QUANTITY_SCHEMA]
PowerSeries = Annotated[Series, _series_validator("power"), WithJsonSchema(_SERIES_SCHEMA)]
PriceSeries = Annotated[Series, _series_validator("price"), WithJsonSchema(_SERIES_SCHEMA)]
FractionSeries = Annotated[Series, _series_validator("fraction"), WithJsonSchema(_SERIES_SCHEMA)]
EnergyInstants = Annotated[
    Instants, _instants_validator("energy"), WithJsonSchema(_INSTANTS_SCHEMA)
]
