"""Generation (PV, wind): a production forecast ``forecast[t] >= 0`` (kW). Device power is
``p[t] = -g[t]`` with

``curtailment``
    ``0 <= g[t] <= forecast[t]`` when ``curtailable``, else ``g[t] = forecast[t]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from vpp.assets.registry import AssetKind
from vpp.device import Common, DeviceSpec, DeviceVars, PowerSeries
from vpp.errors import RequestValidationError
from vpp.linear import LinearModel
from vpp.timeseries import Horizon

__all__ = ["KIND", "GenerationParams", "GenerationSpec", "formulate", "resolve"]


class GenerationSpec(DeviceSpec):
    """Flex-model of a generator; ``production`` is its forecast (positive kW)."""

    default_name: ClassVar[str] = "pv"

    type: Literal["generation"]
    production: PowerSeries
    curtailable: bool = False


@dataclass
class GenerationParams:
    name: str
    forecast: np.ndarray
    curtailable: bool


def resolve(spec: GenerationSpec, horizon: Horizon, common: Common, path: str) -> GenerationParams:
    forecast = spec.production.resolve(horizon, f"{path}.production", 0.0)
    if (forecast < 0).any():
        raise RequestValidationError.single(
            f"{path}.production", "is a forecast of production: give positive kW"
        )
    return GenerationParams(spec.label, forecast * common.available, spec.curtailable)


def formulate(p: GenerationParams, lm: LinearModel, horizon: Horizon) -> DeviceVars:
    lower = 0.0 if p.curtailable else p.forecast
    g = lm.add_vars("generation", horizon.steps, lower, p.forecast, device=p.name)
    return DeviceVars(p.name, "generation", horizon.steps, production=[g])


KIND = AssetKind(name="generation", spec=GenerationSpec, resolve=resolve, formulate=formulate)
