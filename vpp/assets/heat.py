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
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np

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
    PowerSeries,
    check,
)
from vpp.errors import FieldIssue, RequestValidationError
from vpp.linear import LinearModel
from vpp.timeseries import Horizon

__all__ = ["KIND", "HeatSpec", "formulate", "resolve"]


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


def resolve(spec: HeatSpec, horizon: Horizon, common: Common, path: str) -> StorageParams:
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
    if issues:
        raise RequestValidationError(issues)
    lower, upper, lower_source, upper_source = bounds
    return StorageParams(
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
    )


def formulate(p: StorageParams, lm: LinearModel, horizon: Horizon) -> DeviceVars:
    dv = formulate_storage(p, lm, horizon)
    dv.kind = "heat"
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
