"""Heat pump with a heat buffer.

The buffer is a store of heat (kWh thermal) that the heat pump charges with
``COP[t] * p[t]`` and the heat demand drains, so it is the storage model with the COP as
charging efficiency, heat demand as usage and no discharge back to the grid:

``soc-dynamics``
    ``soc[t+1] = keep[t]*soc[t] + dt*(cop[t]*p[t] - heat_demand[t])``
``soc-min`` / ``soc-max`` / ``soc-minima`` / ``soc-maxima`` / ``soc-targets``
    buffer bounds and comfort targets, per instant, in kWh of heat.
``power-capacity``
    ``0 <= p[t] <= power-capacity[t]`` (electric kW).

With ``min-on-duration``, ``min-off-duration`` or ``start-cost`` the heat pump is off or on
(at ``min-power`` up to ``power-capacity``), off before the start, with the families of
:mod:`vpp.assets.modes` (``operation-mode-*``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar, Literal

import numpy as np

from vpp.assets.modes import Cost, OnOff, add_on_off, steps_of
from vpp.assets.registry import SOC, AssetKind
from vpp.assets.storage import (
    StorageParams,
    bounds_from_instants,
    precheck,
    series_or,
    storage_efficiency,
)
from vpp.assets.storage import formulate as formulate_storage
from vpp.device import (
    Common,
    DeviceSpec,
    DeviceVars,
    Energy,
    EnergyInstants,
    FractionSeries,
    Power,
    PowerSeries,
    check,
)
from vpp.errors import FieldIssue, RequestValidationError
from vpp.linear import LinearModel
from vpp.timeseries import Horizon

__all__ = ["KIND", "HeatParams", "HeatSpec", "formulate", "resolve"]


class HeatSpec(DeviceSpec):
    """Flex-model of a heat pump with a buffer; SoC fields are heat in the buffer (kWh)."""

    default_name: ClassVar[str] = "heat-pump"

    type: Literal["heat"]
    soc_at_start: Energy
    soc_min: Energy = 0.0
    soc_max: Energy
    soc_minima: EnergyInstants | None = None
    soc_maxima: EnergyInstants | None = None
    soc_targets: EnergyInstants | None = None
    storage_efficiency: FractionSeries | None = None
    cop: FractionSeries
    heat_demand: PowerSeries | None = None
    power_capacity: PowerSeries
    # on/off operation (vpp/assets/modes.py)
    min_power: Power | None = None
    min_on_duration: timedelta | None = None
    min_off_duration: timedelta | None = None
    start_cost: Cost | None = None


@dataclass
class HeatParams(StorageParams):
    """The buffer as a storage, and the heat pump's on/off operation if any."""

    on_off: OnOff | None = None


def resolve(spec: HeatSpec, horizon: Horizon, common: Common, path: str) -> HeatParams:
    issues: list[FieldIssue] = []
    n = horizon.steps
    cop = spec.cop.resolve(horizon, f"{path}.cop", np.nan)
    check(issues, bool((cop > 0).all()), f"{path}.cop", "must be positive at every step")
    capacity = spec.power_capacity.resolve(horizon, f"{path}.power-capacity", 0.0)
    check(issues, bool((capacity >= 0).all()), f"{path}.power-capacity", "must not be negative")
    demand = series_or(spec.heat_demand, horizon, f"{path}.heat-demand", 0.0)
    keep = storage_efficiency(spec.storage_efficiency, horizon, path, issues)
    bounds = bounds_from_instants(
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
    on_off = _on_off(spec, horizon, path, capacity, issues)
    if issues:
        raise RequestValidationError(issues)
    lower, upper, lower_source, upper_source = bounds
    return HeatParams(
        name=spec.label,
        soc_at_start=spec.soc_at_start,
        lower=lower,
        upper=upper,
        lower_source=lower_source,
        upper_source=upper_source,
        eta_c=cop,
        eta_d=np.ones(n),
        keep=keep,
        charge_max=np.maximum(capacity, 0.0) * common.available,
        discharge_max=np.zeros(n),
        usage=demand,
        charge_field="power-capacity",
        discharge_field="heat-demand",
        net_lower=common.net_lower,
        net_upper=common.net_upper,
        on_off=on_off,
    )


def _on_off(
    spec: HeatSpec, horizon: Horizon, path: str, capacity: np.ndarray, issues: list[FieldIssue]
) -> OnOff | None:
    if spec.min_on_duration is None and spec.min_off_duration is None and spec.start_cost is None:
        check(
            issues,
            spec.min_power is None,
            f"{path}.min-power",
            "needs min-on-duration, min-off-duration or start-cost (on/off operation)",
        )
        return None
    minimum = 0.0 if spec.min_power is None else spec.min_power
    check(issues, minimum >= 0, f"{path}.min-power", "must not be negative")
    check(
        issues,
        spec.min_on_duration is None or spec.min_power is not None,
        f"{path}.min-on-duration",
        "needs min-power: on means running at min-power or more",
    )
    for name, value in (
        ("min-on-duration", spec.min_on_duration),
        ("min-off-duration", spec.min_off_duration),
    ):
        check(
            issues, value is None or value >= timedelta(0), f"{path}.{name}", "must not be negative"
        )
    check(issues, (spec.start_cost or 0.0) >= 0, f"{path}.start-cost", "must not be negative")
    zero = timedelta(0)
    return OnOff(
        min_power=np.minimum(minimum, capacity),
        min_on=steps_of(max(spec.min_on_duration or zero, zero), horizon),
        min_off=steps_of(max(spec.min_off_duration or zero, zero), horizon),
        start_cost=spec.start_cost or 0.0,
    )


def formulate(p: StorageParams, lm: LinearModel, horizon: Horizon) -> DeviceVars:
    dv = formulate_storage(p, lm, horizon)
    dv.kind = "heat"
    if isinstance(p, HeatParams) and p.on_off is not None:
        dv.extra["column-cost"] = add_on_off(
            lm, p.name, dv.consumption[0], p.charge_max, p.on_off, horizon
        )
    return dv


# the buffer's reachability is the storage's: the same params, the same check
KIND = AssetKind(
    name="heat",
    spec=HeatSpec,
    resolve=resolve,
    precheck=precheck,
    formulate=formulate,
    result_fields=(SOC,),
)
