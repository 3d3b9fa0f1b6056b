"""Generation (PV, wind) and inflexible load.

``generation``: a production forecast ``forecast[t] >= 0`` (kW). Device power is
``p[t] = -g[t]`` with

``curtailment``
    ``0 <= g[t] <= forecast[t]`` when ``curtailable``, else ``g[t] = forecast[t]``.

``inflexible``: a fixed power series (consumption positive); it adds no decision, only a
load or generation at the site, possibly settled at its own prices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from vpp.device import Common, DeviceSpec, DeviceVars, PowerSeries
from vpp.errors import RequestValidationError
from vpp.linear import LinearModel
from vpp.timeseries import Horizon


class GenerationSpec(DeviceSpec):
    """Flex-model of a generator; ``production`` is its forecast (positive kW)."""

    default_name: ClassVar[str] = "pv"

    type: Literal["generation"]
    production: PowerSeries
    curtailable: bool = False


class InflexibleSpec(DeviceSpec):
    """An inflexible load or generation series (consumption positive)."""

    default_name: ClassVar[str] = "load"

    type: Literal["inflexible"]
    power: PowerSeries


@dataclass
class GenerationParams:
    name: str
    forecast: np.ndarray
    curtailable: bool


@dataclass
class InflexibleParams:
    name: str
    power: np.ndarray


def resolve_generation(
    spec: GenerationSpec, horizon: Horizon, common: Common, path: str
) -> GenerationParams:
    forecast = spec.production.resolve(horizon, f"{path}.production", 0.0)
    if (forecast < 0).any():
        raise RequestValidationError.single(
            f"{path}.production", "is a forecast of production: give positive kW"
        )
    return GenerationParams(spec.label, forecast * common.available, spec.curtailable)


def resolve_inflexible(
    spec: InflexibleSpec, horizon: Horizon, common: Common, path: str
) -> InflexibleParams:
    power = spec.power.resolve(horizon, f"{path}.power", 0.0)
    return InflexibleParams(spec.label, power * common.available)


def formulate_generation(p: GenerationParams, lm: LinearModel, horizon: Horizon) -> DeviceVars:
    lower = 0.0 if p.curtailable else p.forecast
    g = lm.add_vars("generation", horizon.steps, lower, p.forecast, device=p.name)
    return DeviceVars(p.name, "generation", horizon.steps, production=[g])


def formulate_inflexible(p: InflexibleParams, lm: LinearModel, horizon: Horizon) -> DeviceVars:
    return DeviceVars(p.name, "inflexible", horizon.steps, constant=p.power.copy())
