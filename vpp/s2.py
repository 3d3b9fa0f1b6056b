"""S2 devices (EN 50491-12-2) through ``s2-python``: a device's S2 messages in, a flex-model
device out; a schedule's device entry in, that control type's S2 instructions out.

Each control type maps onto an existing asset kind, exactly or not at all: what the kind
cannot express is refused with a :class:`~vpp.errors.VppError` naming the S2 field, never
approximated.

* **FRBC** (fill-rate based) -> ``storage``. The fill level is the SoC, in "kWh-equivalents"
  (fill-level units divided by the actuator's fill-level units per kWh drawn at discharge).
  One actuator; operation modes of one element each whose fill rate is proportional to
  power; their power ranges must join into one interval containing 0.
* **PPBC** (power-profile based) -> ``shiftable``. One container with one power sequence,
  not interruptible; its elements are the profile, the definition's start and end the window.
* **PEBC** (power envelopes) -> curtailable ``generation``: the forecast's production, with
  envelopes allowed to cut it to zero (consequence ``VANISH``).
* **DDBC** (demand-driven) -> ``inflexible``: one actuator with one operation mode whose
  supply is proportional to power meets the demand forecast; its power follows exactly.
* **OMBC** (operation modes) -> ``modes``: its normal operation modes with their power
  ranges and running costs, its normal transitions with their costs and timers, its timers;
  ``OMBC.Status`` gives the initial mode and the timers its last transition started.
  Transitions that take time (``transition_duration``) and uncertain running costs are
  refused.

S2 powers are W, consumption positive; vpp's are kW, consumption positive. Pure: no I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from s2python.common import CommodityQuantity, Duration, PowerForecast, PowerRange
from s2python.ddbc import (
    DDBCAverageDemandRateForecast,
    DDBCInstruction,
    DDBCSystemDescription,
)
from s2python.frbc import (
    FRBCFillLevelTargetProfile,
    FRBCInstruction,
    FRBCLeakageBehaviour,
    FRBCOperationMode,
    FRBCStorageStatus,
    FRBCSystemDescription,
    FRBCUsageForecast,
)
from s2python.generated.gen_s2 import ID
from s2python.ombc import OMBCInstruction, OMBCStatus, OMBCSystemDescription
from s2python.pebc import (
    PEBCInstruction,
    PEBCPowerConstraints,
    PEBCPowerEnvelope,
    PEBCPowerEnvelopeElement,
)
from s2python.ppbc import PPBCPowerProfileDefinition, PPBCScheduleInstruction

from vpp.errors import VppError
from vpp.timeseries import iso_duration

__all__ = [
    "ELECTRIC",
    "FrbcScale",
    "S2Grid",
    "S2MappingError",
    "ddbc_device",
    "ddbc_instructions",
    "frbc_device",
    "frbc_instructions",
    "frbc_scale",
    "ombc_device",
    "ombc_instructions",
    "pebc_device",
    "pebc_instructions",
    "ppbc_device",
    "ppbc_instructions",
]

ELECTRIC = frozenset(
    {
        CommodityQuantity.ELECTRIC_POWER_L1,
        CommodityQuantity.ELECTRIC_POWER_L2,
        CommodityQuantity.ELECTRIC_POWER_L3,
        CommodityQuantity.ELECTRIC_POWER_3_PHASE_SYMMETRIC,
    }
)
"""The commodity quantities that are electric power (summed over phases)."""

_TOL = 1e-9


class S2MappingError(VppError):
    """An S2 message asks for something the site model cannot express exactly."""

    http_status = 422
    title = "S2 message not supported"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class S2Grid:
    """The schedule's time grid: the request's ``start``, ``resolution`` and step count."""

    start: datetime
    resolution: timedelta
    steps: int

    def index(self, when: datetime, field: str) -> int:
        """The instant index of ``when``; refused when it is off the grid or outside."""
        ratio = (when - self.start) / self.resolution
        k = round(ratio)
        if abs(ratio - k) > _TOL or not 0 <= k <= self.steps:
            raise S2MappingError(
                field,
                f"{when.isoformat()} is not an instant of the schedule (from "
                f"{self.start.isoformat()}, every {self.resolution}, {self.steps} steps)",
            )
        return k

    def steps_of(self, duration: Duration, field: str) -> int:
        """How many steps an S2 duration spans; refused unless a whole multiple."""
        ratio = duration.to_timedelta() / self.resolution
        k = round(ratio)
        if abs(ratio - k) > _TOL:
            raise S2MappingError(field, f"{duration.root} ms is not a multiple of the resolution")
        return k

    def at(self, k: int) -> datetime:
        return self.start + k * self.resolution


def _clean(value: float) -> float:
    """``value`` to 12 significant digits: unit conversions leave 1e-15 noise."""
    return float(f"{value:.12g}") + 0.0  # + 0.0: no "-0.0"


def _kw(value: float, unit: str = "kW") -> str:
    return f"{_clean(value)!r} {unit}"


def _electric_range(ranges: Sequence[PowerRange], field: str) -> tuple[float, float]:
    """The (start, end) of the summed electric power ranges, in kW."""
    other = [r.commodity_quantity.value for r in ranges if r.commodity_quantity not in ELECTRIC]
    if other:
        raise S2MappingError(field, f"only electric power maps onto the site; got {other}")
    if not ranges:
        raise S2MappingError(field, "no electric power range")
    return (
        sum(r.start_of_range for r in ranges) / 1000.0,
        sum(r.end_of_range for r in ranges) / 1000.0,
    )


def _electric_value(values: Iterable[Any], field: str) -> float:
    """The summed expected electric power of ``PowerForecastValue``s, in kW."""
    total, seen = 0.0, False
    for v in values:
        if v.commodity_quantity not in ELECTRIC:
            raise S2MappingError(
                field, f"only electric power maps onto the site; got {v.commodity_quantity.value}"
            )
        total += v.value_expected
        seen = True
    if not seen:
        raise S2MappingError(field, "no electric power value")
    return total / 1000.0


def _per_step(
    grid: S2Grid, start: datetime, elements: Sequence[Any], rate: str, field: str
) -> list[float]:
    """An S2 profile (``start`` and elements with ``duration``) as one value per step of the
    grid (``rate`` the element's attribute). It may start on a step before the schedule (the
    elapsed steps are dropped) but must cover the whole horizon."""
    offset = (grid.start - start) / grid.resolution
    skip = round(offset)
    if abs(offset - skip) > _TOL or skip < 0:
        raise S2MappingError(
            f"{field}.start_time",
            f"{start.isoformat()} must be the schedule's start or a whole number of steps "
            "before it",
        )
    out: list[float] = []
    for i, e in enumerate(elements):
        out += [float(getattr(e, rate))] * grid.steps_of(
            e.duration, f"{field}.elements[{i}].duration"
        )
    if len(out) < skip + grid.steps:
        raise S2MappingError(f"{field}.elements", "do not cover the schedule's horizon")
    return out[skip : skip + grid.steps]


def _runs(values: Sequence[Any]) -> list[tuple[int, int]]:
    """``(first, stop)`` of each run of equal consecutive values."""
    runs: list[tuple[int, int]] = []
    for i, v in enumerate(values):
        if runs and values[runs[-1][0]] == v:
            runs[-1] = (runs[-1][0], i + 1)
        else:
            runs.append((i, i + 1))
    return runs


def _s2_id() -> ID:
    """A fresh id for the fields s2-python types as an S2 ``ID`` rather than a UUID."""
    return ID(root=str(uuid.uuid4()))


def _powers(entry: dict[str, Any]) -> list[float]:
    """A schedule device entry's power, kW per step."""
    return [float(v) for v in entry["power"]["values"]]


# -- FRBC -> storage --------------------------------------------------------------------


@dataclass(frozen=True)
class FrbcScale:
    """How an FRBC actuator's fill level maps onto a storage's SoC.

    ``per_kwh`` fill-level units are one kWh of SoC; ``eta_c`` is the charging efficiency
    (fill gained per kWh consumed, relative to the fill lost per kWh produced). ``modes``
    are the normal operation modes: ``(id, power start kW, power end kW)``."""

    actuator_id: uuid.UUID
    per_kwh: float
    eta_c: float
    consumption_capacity: float
    production_capacity: float
    modes: tuple[tuple[uuid.UUID, float, float], ...]


def frbc_scale(description: FRBCSystemDescription) -> FrbcScale:
    """Check the FRBC system description maps exactly and return its scale."""
    if len(description.actuators) != 1:
        raise S2MappingError(
            "FRBC.SystemDescription.actuators",
            f"exactly one actuator maps onto a storage; got {len(description.actuators)} "
            "(several actuators sharing one storage need a multi-actuator model)",
        )
    act = description.actuators[0]
    path = "FRBC.SystemDescription.actuators[0]"
    if act.timers:
        raise S2MappingError(
            f"{path}.timers",
            "timers (minimum on/off times) are not modelled yet (issue 13 item 6)",
        )
    modes = [m for m in act.operation_modes if not m.abnormal_condition_only]
    ratios_c: list[float] = []
    ratios_d: list[float] = []
    ranges: list[tuple[uuid.UUID, float, float]] = []
    for i, mode in enumerate(act.operation_modes):
        if mode.abnormal_condition_only:
            continue
        ranges.append(
            (mode.id, *_frbc_mode(mode, f"{path}.operation_modes[{i}]", ratios_c, ratios_d))
        )
        _covers(
            mode.elements[0].fill_level_range,
            description.storage.fill_level_range,
            f"{path}.operation_modes[{i}].elements[0].fill_level_range",
        )
    if not ranges:
        raise S2MappingError(f"{path}.operation_modes", "no operation mode for normal use")
    _check_transitions(act.transitions, [m.id for m in modes], f"{path}.transitions")
    lows = sorted(ranges, key=lambda r: min(r[1], r[2]))
    lo = min(min(r[1], r[2]) for r in ranges)
    hi = max(max(r[1], r[2]) for r in ranges)
    reach = lo
    for _mode, a, b in lows:
        if min(a, b) > reach + _TOL:
            raise S2MappingError(
                f"{path}.operation_modes.elements.power_ranges",
                f"the operation modes' power ranges leave a gap between {reach} kW and "
                f"{min(a, b)} kW; a storage's power is one continuous range",
            )
        reach = max(reach, a, b)
    if lo > _TOL or hi < -_TOL:
        raise S2MappingError(
            f"{path}.operation_modes.elements.power_ranges",
            f"the power ranges [{lo}, {hi}] kW do not include 0 kW (idle); a storage can idle",
        )
    k_c = _same(ratios_c, f"{path}.operation_modes.elements.fill_rate")
    k_d = _same(ratios_d, f"{path}.operation_modes.elements.fill_rate")
    if k_c is not None and k_d is not None and k_c > k_d * (1 + 1e-9):
        raise S2MappingError(
            f"{path}.operation_modes.elements.fill_rate",
            "charging fills more per kWh than discharging drains: a roundtrip efficiency above 1",
        )
    k = k_d if k_d is not None else k_c if k_c is not None else 1.0
    return FrbcScale(
        actuator_id=act.id,
        per_kwh=k * 3600.0,
        eta_c=1.0 if k_c is None else k_c / k,
        consumption_capacity=max(hi, 0.0),
        production_capacity=max(-lo, 0.0),
        modes=tuple(ranges),
    )


def _covers(inner: Any, outer: Any, field: str) -> None:
    """A mode of one element must hold over the storage's whole fill level range."""
    if (
        inner.start_of_range > outer.start_of_range + _TOL
        or inner.end_of_range < outer.end_of_range - _TOL
    ):
        raise S2MappingError(
            field,
            "a mode available in part of the fill level range needs a piecewise storage "
            "model; it must cover the storage's fill_level_range",
        )


def _frbc_mode(
    mode: FRBCOperationMode, path: str, ratios_c: list[float], ratios_d: list[float]
) -> tuple[float, float]:
    """A mode's power range (kW, factor 0 then 1); its fill-rate ratios (fill units per
    second per kW) go to ``ratios_c`` (consuming) and ``ratios_d`` (producing)."""
    if len(mode.elements) != 1:
        raise S2MappingError(
            f"{path}.elements",
            "a fill-level dependent operation mode (several elements) needs a piecewise "
            "storage model; give one element",
        )
    element = mode.elements[0]
    a, b = _electric_range(element.power_ranges, f"{path}.elements[0].power_ranges")
    rates = (element.fill_rate.start_of_range, element.fill_rate.end_of_range)
    for power, rate in zip((a, b), rates, strict=True):
        if abs(power) <= _TOL:
            if abs(rate) > _TOL:
                raise S2MappingError(
                    f"{path}.elements[0].fill_rate",
                    "a fill rate at 0 kW is a loss or gain the mode adds; give it as leakage",
                )
            continue
        ratio = rate / power
        if ratio <= 0:
            raise S2MappingError(
                f"{path}.elements[0].fill_rate",
                "must rise with power (consuming fills, producing drains the storage)",
            )
        (ratios_c if power > 0 else ratios_d).append(ratio)
    if a * b < -_TOL:  # one mode across 0: linear through 0 only with one ratio
        ratio_a, ratio_b = rates[0] / a, rates[1] / b
        if abs(ratio_a - ratio_b) > 1e-9 * max(abs(ratio_a), abs(ratio_b)):
            raise S2MappingError(
                f"{path}.elements[0].fill_rate",
                "a mode across 0 kW must fill and drain at one rate per kW",
            )
    return a, b


def _same(ratios: list[float], field: str) -> float | None:
    if not ratios:
        return None
    if max(ratios) - min(ratios) > 1e-9 * max(abs(r) for r in ratios):
        raise S2MappingError(
            field, "the fill rate per kW differs between modes; a storage has one efficiency"
        )
    return ratios[0]


def _check_transitions(transitions: Sequence[Any], modes: list[Any], field: str) -> None:
    """Every switch between normal modes must be free: allowed directly, without costs,
    timers or a duration (vpp switches every step)."""
    allowed = set()
    for i, t in enumerate(transitions):
        if t.abnormal_condition_only:
            continue
        if (
            t.transition_costs
            or t.start_timers
            or t.blocking_timers
            or (t.transition_duration is not None and t.transition_duration.root > 0)
        ):
            raise S2MappingError(
                f"{field}[{i}]",
                "transition costs, timers and durations are not modelled yet (issue 13 item 6)",
            )
        allowed.add((t.from_, t.to))
    for a in modes:
        for b in modes:
            if a != b and (a, b) not in allowed:
                raise S2MappingError(
                    field,
                    f"no transition from operation mode {a} to {b}; a storage may change "
                    "power freely between steps",
                )


def frbc_device(
    description: FRBCSystemDescription,
    status: FRBCStorageStatus,
    grid: S2Grid,
    *,
    name: str = "frbc",
    fill_level_target_profile: FRBCFillLevelTargetProfile | None = None,
    leakage_behaviour: FRBCLeakageBehaviour | None = None,
    usage_forecast: FRBCUsageForecast | None = None,
) -> dict[str, Any]:
    """The ``storage`` flex-model device of an FRBC device (SoC in kWh-equivalents)."""
    scale = frbc_scale(description)
    storage = description.storage
    c = scale.per_kwh
    device: dict[str, Any] = {
        "name": name,
        "type": "storage",
        "soc-at-start": _kw(status.present_fill_level / c, "kWh"),
        "soc-min": _kw(storage.fill_level_range.start_of_range / c, "kWh"),
        "soc-max": _kw(storage.fill_level_range.end_of_range / c, "kWh"),
        "consumption-capacity": _kw(scale.consumption_capacity),
        "production-capacity": _kw(scale.production_capacity),
        "charging-efficiency": repr(_clean(scale.eta_c)),
        "discharging-efficiency": "1",
    }
    usage = [0.0] * grid.steps
    if usage_forecast is not None:
        rates = _per_step(
            grid,
            usage_forecast.start_time,
            usage_forecast.elements,
            "usage_rate_expected",
            "FRBC.UsageForecast",
        )
        usage = [u + r * 3600.0 / c for u, r in zip(usage, rates, strict=True)]
    if leakage_behaviour is not None:
        leaks = {e.leakage_rate for e in leakage_behaviour.elements}
        if len(leaks) != 1:
            raise S2MappingError(
                "FRBC.LeakageBehaviour.elements",
                "leakage that depends on the fill level needs a piecewise storage model; "
                "one constant leakage rate maps onto soc-usage",
            )
        if leakage_behaviour.valid_from > grid.start:
            raise S2MappingError("FRBC.LeakageBehaviour.valid_from", "must not be after the start")
        leak = leaks.pop() * 3600.0 / c
        usage = [u + leak for u in usage]
    if any(usage):
        device["soc-usage"] = {"values": [_clean(u) for u in usage], "unit": "kW"}
    if fill_level_target_profile is not None:
        minima, maxima = _targets(fill_level_target_profile, grid, c)
        device["soc-minima"], device["soc-maxima"] = minima, maxima
    return device


def _targets(
    profile: FRBCFillLevelTargetProfile, grid: S2Grid, c: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    field = "FRBC.FillLevelTargetProfile"
    k = grid.index(profile.start_time, f"{field}.start_time")
    minima: list[dict[str, Any]] = []
    maxima: list[dict[str, Any]] = []
    for i, e in enumerate(profile.elements):
        n = grid.steps_of(e.duration, f"{field}.elements[{i}].duration")
        last = i == len(profile.elements) - 1
        first, stop = k, min(k + n if last else k + n - 1, grid.steps)  # the next element owns k+n
        k += n
        if first > grid.steps or stop < first:
            continue
        span = {"start": grid.at(first).isoformat(), "end": grid.at(stop).isoformat()}
        minima.append(span | {"value": _kw(e.fill_level_range.start_of_range / c, "kWh")})
        maxima.append(span | {"value": _kw(e.fill_level_range.end_of_range / c, "kWh")})
    return minima, maxima


def frbc_instructions(
    description: FRBCSystemDescription, entry: dict[str, Any], grid: S2Grid
) -> list[FRBCInstruction]:
    """One ``FRBC.Instruction`` per change of operation mode or factor in the schedule's
    device entry (``to_json()["devices"][i]``); the mode is the first whose power range
    holds the step's power."""
    scale = frbc_scale(description)
    chosen: list[tuple[uuid.UUID, float]] = []
    for t, p in enumerate(_powers(entry)):
        for mode_id, a, b in scale.modes:
            if min(a, b) - 1e-6 <= p <= max(a, b) + 1e-6:
                factor = 0.0 if abs(b - a) <= _TOL else min(max((p - a) / (b - a), 0.0), 1.0)
                chosen.append((mode_id, round(factor, 9)))
                break
        else:
            raise S2MappingError("power", f"{p} kW at step {t} is in no operation mode's range")
    return [
        FRBCInstruction(
            message_id=uuid.uuid4(),
            id=uuid.uuid4(),
            actuator_id=scale.actuator_id,
            operation_mode=chosen[first][0],
            operation_mode_factor=chosen[first][1],
            execution_time=grid.at(first),
            abnormal_condition=False,
        )
        for first, _stop in _runs(chosen)
    ]


# -- PPBC -> shiftable ------------------------------------------------------------------


def _ppbc_sequence(definition: PPBCPowerProfileDefinition) -> tuple[Any, Any]:
    """The one container and its one normal power sequence."""
    field = "PPBC.PowerProfileDefinition.power_sequences_containers"
    if len(definition.power_sequences_containers) != 1:
        raise S2MappingError(
            field,
            "exactly one container maps onto a shiftable process; consecutive containers need "
            "an order between processes, which vpp does not model",
        )
    container = definition.power_sequences_containers[0]
    sequences = [s for s in container.power_sequences if not s.abnormal_condition_only]
    if len(sequences) != 1:
        raise S2MappingError(
            f"{field}[0].power_sequences",
            "exactly one normal power sequence maps onto a process; a choice between "
            "alternative sequences is not modelled",
        )
    if sequences[0].is_interruptible:
        raise S2MappingError(
            f"{field}[0].power_sequences.is_interruptible",
            "interruptible sequences (bounded pauses) are not modelled; a BREAKABLE process "
            "may pause without bound",
        )
    return container, sequences[0]


def ppbc_device(
    definition: PPBCPowerProfileDefinition, grid: S2Grid, *, name: str = "ppbc"
) -> dict[str, Any]:
    """The ``shiftable`` flex-model device of a PPBC power profile: its one sequence's
    power per step, shiftable between the definition's start and end times."""
    _container, sequence = _ppbc_sequence(definition)
    field = "PPBC.PowerProfileDefinition"
    profile: list[float] = []
    for i, e in enumerate(sequence.elements):
        path = f"{field}.power_sequences_containers[0].power_sequences.elements[{i}]"
        profile += [_electric_value(e.power_values, f"{path}.power_values")] * grid.steps_of(
            e.duration, f"{path}.duration"
        )
    grid.index(definition.start_time, f"{field}.start_time")
    grid.index(definition.end_time, f"{field}.end_time")
    return {
        "name": name,
        "type": "shiftable",
        "power": {"values": profile, "unit": "kW"},
        "process-type": "SHIFTABLE",
        "earliest-start": definition.start_time.isoformat(),
        "latest-end": definition.end_time.isoformat(),
    }


def ppbc_instructions(
    definition: PPBCPowerProfileDefinition, entry: dict[str, Any], grid: S2Grid
) -> list[PPBCScheduleInstruction]:
    """The ``PPBC.ScheduleInstruction`` that starts the sequence where the schedule runs it."""
    container, sequence = _ppbc_sequence(definition)
    profile = ppbc_device(definition, grid)["power"]["values"]
    power = _powers(entry)
    first = grid.index(definition.start_time, "start_time")
    stop = grid.index(definition.end_time, "end_time")
    for j in range(first, stop - len(profile) + 1):
        run = [0.0] * j + profile + [0.0] * (len(power) - j - len(profile))
        if all(abs(a - b) <= 1e-6 for a, b in zip(run, power, strict=True)):
            return [
                PPBCScheduleInstruction(
                    message_id=uuid.uuid4(),
                    id=uuid.uuid4(),
                    power_profile_id=definition.id,
                    sequence_container_id=container.id,
                    power_sequence_id=sequence.id,
                    execution_time=grid.at(j),
                    abnormal_condition=False,
                )
            ]
    raise S2MappingError("power", "the schedule does not run the power sequence once")


# -- PEBC -> curtailable generation ------------------------------------------------------


def pebc_device(
    constraints: PEBCPowerConstraints,
    forecast: PowerForecast,
    grid: S2Grid,
    *,
    name: str = "pebc",
) -> dict[str, Any]:
    """The curtailable ``generation`` device of a producing PEBC device: its forecast
    (``PowerForecast``, production negative) is the most it produces, and its envelopes may
    cut production to zero."""
    field = "PEBC.PowerConstraints"
    if constraints.consequence_type.value != "VANISH":
        raise S2MappingError(
            f"{field}.consequence_type",
            "DEFER (curtailed energy produced later) needs a store of deferred energy; only "
            "VANISH maps onto curtailable generation",
        )
    if constraints.valid_from > grid.start or (
        constraints.valid_until is not None and constraints.valid_until < grid.at(grid.steps)
    ):
        raise S2MappingError(f"{field}.valid_from", "must cover the schedule's horizon")
    expected = [
        _electric_value(e.power_values, f"PowerForecast.elements[{i}].power_values")
        for i, e in enumerate(forecast.elements)
    ]
    per_step = _per_step(
        grid,
        forecast.start_time,
        [_Rate(e.duration, v) for e, v in zip(forecast.elements, expected, strict=True)],
        "value",
        "PowerForecast",
    )
    if any(v > _TOL for v in per_step):
        raise S2MappingError(
            "PowerForecast.elements.power_values",
            "a consuming PEBC device (a curtailable load) has no vpp kind yet; production only",
        )
    lowest = min(per_step) * 1000.0
    quantities = {r.commodity_quantity for r in constraints.allowed_limit_ranges}
    for q in quantities:
        if q not in ELECTRIC:
            raise S2MappingError(f"{field}.allowed_limit_ranges", f"{q.value} is not electric")
    for i, r in enumerate(constraints.allowed_limit_ranges):
        if r.abnormal_condition_only:
            continue
        lo, hi = r.range_boundary.start_of_range, r.range_boundary.end_of_range
        if r.limit_type.value == "LOWER_LIMIT" and not (lo <= lowest + 1e-6 and hi >= -1e-6):
            raise S2MappingError(
                f"{field}.allowed_limit_ranges[{i}].range_boundary",
                f"the lower limit must be settable from the forecast ({lowest} W) to 0 W "
                "for the device to be curtailable between them",
            )
        if r.limit_type.value == "UPPER_LIMIT" and not (lo <= 1e-6 and hi >= -1e-6):
            raise S2MappingError(
                f"{field}.allowed_limit_ranges[{i}].range_boundary",
                "the upper limit must be settable to 0 W",
            )
    return {
        "name": name,
        "type": "generation",
        "production": {"values": [-v for v in per_step], "unit": "kW"},
        "curtailable": True,
    }


@dataclass(frozen=True)
class _Rate:
    duration: Duration
    value: float


def pebc_instructions(
    constraints: PEBCPowerConstraints, entry: dict[str, Any], grid: S2Grid
) -> list[PEBCInstruction]:
    """One ``PEBC.Instruction`` whose envelope holds the scheduled power: lower limit the
    scheduled (negative) power, upper limit 0 W, one element per run of equal power."""
    power = _powers(entry)
    commodity = next(
        (r.commodity_quantity for r in constraints.allowed_limit_ranges),
        CommodityQuantity.ELECTRIC_POWER_3_PHASE_SYMMETRIC,
    )
    elements = [
        PEBCPowerEnvelopeElement(
            duration=Duration.from_timedelta((stop - first) * grid.resolution),
            lower_limit=min(power[first], 0.0) * 1000.0,
            upper_limit=0.0,
        )
        for first, stop in _runs(power)
    ]
    envelope = PEBCPowerEnvelope(
        id=_s2_id(), commodity_quantity=commodity, power_envelope_elements=elements
    )
    return [
        PEBCInstruction(
            message_id=uuid.uuid4(),
            id=uuid.uuid4(),
            execution_time=grid.start,
            abnormal_condition=False,
            power_constraints_id=constraints.id,
            power_envelopes=[envelope],
        )
    ]


# -- DDBC -> inflexible -----------------------------------------------------------------


def _ddbc_mode(description: DDBCSystemDescription) -> tuple[Any, Any, float, float]:
    """The one actuator, its one normal mode, its kW per unit of supply and its power range."""
    field = "DDBC.SystemDescription.actuators"
    if len(description.actuators) != 1:
        raise S2MappingError(
            field,
            "exactly one actuator maps exactly (its power follows the demand); choosing "
            "between actuators is a dispatch vpp does not model",
        )
    act = description.actuators[0]
    modes = [m for m in act.operation_modes if not m.abnormal_condition_only]
    if len(modes) != 1:
        raise S2MappingError(
            f"{field}[0].operation_modes",
            "exactly one normal operation mode maps exactly; a choice between modes is "
            "not modelled",
        )
    mode = modes[0]
    a, b = _electric_range(mode.power_ranges, f"{field}[0].operation_modes.power_ranges")
    if len(mode.supply_range) != 1:
        raise S2MappingError(
            f"{field}[0].operation_modes.supply_range", "give one supply range for the mode"
        )
    s0, s1 = mode.supply_range[0].start_of_range, mode.supply_range[0].end_of_range
    if abs(s1 - s0) <= _TOL or abs(a - s0 * (b - a) / (s1 - s0)) > 1e-9 * max(abs(a), abs(b), 1):
        raise S2MappingError(
            f"{field}[0].operation_modes.supply_range",
            "supply must be proportional to power (0 supply at 0 kW)",
        )
    return act, mode, (b - a) / (s1 - s0), max(abs(s0), abs(s1))


def ddbc_device(
    description: DDBCSystemDescription,
    forecast: DDBCAverageDemandRateForecast,
    grid: S2Grid,
    *,
    name: str = "ddbc",
) -> dict[str, Any]:
    """The ``inflexible`` device of a DDBC device: its one mode's power meets the demand
    forecast (``demand_rate_expected``) at every step."""
    _act, mode, kw_per_supply, most = _ddbc_mode(description)
    demand = _per_step(
        grid,
        forecast.start_time,
        forecast.elements,
        "demand_rate_expected",
        "DDBC.AverageDemandRateForecast",
    )
    lo, hi = sorted((mode.supply_range[0].start_of_range, mode.supply_range[0].end_of_range))
    for t, d in enumerate(demand):
        if not lo - 1e-9 <= d <= hi + 1e-9:
            raise S2MappingError(
                "DDBC.AverageDemandRateForecast.elements",
                f"the demand {d} at step {t} is outside the operation mode's supply range "
                f"[{lo}, {hi}] (up to {most})",
            )
    return {
        "name": name,
        "type": "inflexible",
        "power": {"values": [_clean(d * kw_per_supply) for d in demand], "unit": "kW"},
    }


def ddbc_instructions(
    description: DDBCSystemDescription, entry: dict[str, Any], grid: S2Grid
) -> list[DDBCInstruction]:
    """One ``DDBC.Instruction`` per change of the mode's factor in the schedule."""
    act, mode, _kw_per_supply, _most = _ddbc_mode(description)
    a, b = _electric_range(mode.power_ranges, "power_ranges")
    factors = [round(0.0 if abs(b - a) <= _TOL else (p - a) / (b - a), 9) for p in _powers(entry)]
    return [
        DDBCInstruction(
            message_id=uuid.uuid4(),
            id=_s2_id(),
            execution_time=grid.at(first),
            abnormal_condition=False,
            actuator_id=act.id,
            operation_mode_id=mode.id,
            operation_mode_factor=factors[first],
        )
        for first, _stop in _runs(factors)
    ]


# -- OMBC -> modes ------------------------------------------------------------------------


def _ombc_modes(description: OMBCSystemDescription) -> list[tuple[Any, float, float]]:
    """The normal operation modes with their power at factor 0 and at factor 1 (kW)."""
    field = "OMBC.SystemDescription.operation_modes"
    modes = []
    for i, mode in enumerate(description.operation_modes):
        if not mode.abnormal_condition_only:
            modes.append((mode, *_electric_range(mode.power_ranges, f"{field}[{i}].power_ranges")))
    if not modes:
        raise S2MappingError(field, "no operation mode for normal use")
    return modes


def ombc_device(
    description: OMBCSystemDescription,
    grid: S2Grid,
    *,
    name: str = "ombc",
    status: OMBCStatus | None = None,
) -> dict[str, Any]:
    """The ``modes`` flex-model device of an OMBC device: its normal operation modes (named
    by their ids) with their power ranges and running costs, its normal transitions with
    their costs and timers, and its timers; the status gives the initial mode and which
    timers still run. Costs are taken to be in EUR (the resource manager's currency)."""
    field = "OMBC.SystemDescription"
    modes = _ombc_modes(description)
    normal = {str(m.id) for m, _a, _b in modes}
    device_modes: list[dict[str, Any]] = []
    for i, (mode, a, b) in enumerate(modes):
        spec: dict[str, Any] = {"name": str(mode.id)}
        if abs(a - b) <= _TOL:
            spec["power"] = _kw(a)
        else:
            spec["min-power"], spec["max-power"] = _kw(min(a, b)), _kw(max(a, b))
        costs = mode.running_costs
        if costs is not None:
            if abs(costs.start_of_range - costs.end_of_range) > _TOL:
                raise S2MappingError(
                    f"{field}.operation_modes[{i}].running_costs",
                    "a range of running costs is uncertain; give one cost (start = end)",
                )
            spec["cost"] = f"{_clean(costs.start_of_range * 3600.0)!r} EUR/h"
        device_modes.append(spec)
    transitions: list[dict[str, Any]] = []
    for i, t in enumerate(description.transitions):
        if t.abnormal_condition_only or not {str(t.from_), str(t.to)} <= normal:
            continue
        if t.transition_duration is not None and t.transition_duration.root > 0:
            raise S2MappingError(
                f"{field}.transitions[{i}].transition_duration",
                "a transition that takes time is not modelled; the device runs in its new "
                "mode from the step it switches",
            )
        for key, timers in (
            ("start_timers", t.start_timers),
            ("blocking_timers", t.blocking_timers),
        ):
            unknown = [str(k) for k in timers if k not in {k.id for k in description.timers}]
            if unknown:
                raise S2MappingError(
                    f"{field}.transitions[{i}].{key}", f"no timer has the id {unknown[0]}"
                )
        spec = {"from": str(t.from_), "to": str(t.to)}
        if t.transition_costs:
            spec["cost"] = f"{_clean(t.transition_costs)!r} EUR"
        if t.start_timers:
            spec["start-timers"] = [str(k) for k in t.start_timers]
        if t.blocking_timers:
            spec["blocking-timers"] = [str(k) for k in t.blocking_timers]
        transitions.append(spec)
    durations = {str(k.id): k.duration.to_timedelta() for k in description.timers}
    running: dict[str, datetime] = {}
    device: dict[str, Any] = {"name": name, "type": "modes", "modes": device_modes}
    if status is not None:
        running = _ombc_status(description, status, normal, durations)
        device["initial-mode"] = _mode_id(
            status.active_operation_mode_id, "OMBC.Status.active_operation_mode_id"
        )
    device["transitions"] = transitions
    if durations:
        device["timers"] = [
            {"name": k, "duration": iso_duration(d)}
            | (
                {"finished-at": running[k].isoformat()}
                if running.get(k, grid.start) > grid.start
                else {}
            )
            for k, d in durations.items()
        ]
    return device


def _mode_id(value: ID, field: str) -> str:
    """An S2 ``ID`` that names an operation mode, spelled as the modes' UUIDs are."""
    try:
        return str(uuid.UUID(value.root))
    except ValueError:
        raise S2MappingError(field, f"{value.root!r} is not an operation mode's id") from None


def _ombc_status(
    description: OMBCSystemDescription,
    status: OMBCStatus,
    normal: set[str],
    durations: dict[str, timedelta],
) -> dict[str, datetime]:
    """Check the status and return when each timer its last transition started finishes."""
    field = "OMBC.Status"
    active = _mode_id(status.active_operation_mode_id, f"{field}.active_operation_mode_id")
    if active not in normal:
        raise S2MappingError(
            f"{field}.active_operation_mode_id",
            f"{active} is not a normal operation mode of the system description",
        )
    previous, when = status.previous_operation_mode_id, status.transition_timestamp
    if (previous is None) != (when is None):
        missing = "transition_timestamp" if when is None else "previous_operation_mode_id"
        raise S2MappingError(
            f"{field}.{missing}",
            "give both previous_operation_mode_id and transition_timestamp (the running "
            "timers follow from them), or neither",
        )
    if previous is None or when is None:
        return {}
    started = [
        t
        for t in description.transitions
        if str(t.from_) == _mode_id(previous, f"{field}.previous_operation_mode_id")
        and str(t.to) == active
    ]
    if not started:
        raise S2MappingError(
            f"{field}.previous_operation_mode_id",
            f"no transition from {previous.root} to {active} in the system description",
        )
    return {str(k): when + durations[str(k)] for k in started[0].start_timers}


def ombc_instructions(
    description: OMBCSystemDescription, entry: dict[str, Any], grid: S2Grid
) -> list[OMBCInstruction]:
    """One ``OMBC.Instruction`` per change of operation mode or factor in the schedule's
    device entry (its ``operation-mode`` says the mode, its power the factor)."""
    modes = _ombc_modes(description)
    chosen: list[tuple[uuid.UUID, float]] = []
    for t, (k, p) in enumerate(zip(entry["operation-mode"]["values"], _powers(entry), strict=True)):
        mode, a, b = modes[round(k)]
        if not min(a, b) - 1e-6 <= p <= max(a, b) + 1e-6:
            raise S2MappingError("power", f"{p} kW at step {t} is outside its mode's range")
        factor = 0.0 if abs(b - a) <= _TOL else min(max((p - a) / (b - a), 0.0), 1.0)
        chosen.append((mode.id, round(factor, 9)))
    return [
        OMBCInstruction(
            message_id=uuid.uuid4(),
            id=uuid.uuid4(),
            execution_time=grid.at(first),
            operation_mode_id=chosen[first][0],
            operation_mode_factor=chosen[first][1],
            abnormal_condition=False,
        )
        for first, _stop in _runs(chosen)
    ]
