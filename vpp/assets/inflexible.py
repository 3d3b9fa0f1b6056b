"""Inflexible load or generation: a fixed power series (consumption positive). It adds no
decision, only a load or generation at the site, possibly settled at its own prices
(``p[t] = power[t]``, a constant of the ``site-balance``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from vpp.assets.registry import AssetKind
from vpp.device import Common, DeviceSpec, DeviceVars, PowerSeries
from vpp.linear import LinearModel
from vpp.timeseries import Horizon

__all__ = ["KIND", "InflexibleParams", "InflexibleSpec", "formulate", "resolve"]


class InflexibleSpec(DeviceSpec):
    """An inflexible load or generation series (consumption positive)."""

    default_name: ClassVar[str] = "load"

    type: Literal["inflexible"]
    power: PowerSeries


@dataclass
class InflexibleParams:
    name: str
    power: np.ndarray


def resolve(spec: InflexibleSpec, horizon: Horizon, common: Common, path: str) -> InflexibleParams:
    power = spec.power.resolve(horizon, f"{path}.power", 0.0)
    return InflexibleParams(spec.label, power * common.available)


def formulate(p: InflexibleParams, lm: LinearModel, horizon: Horizon) -> DeviceVars:
    return DeviceVars(p.name, "inflexible", horizon.steps, constant=p.power.copy())


KIND = AssetKind(name="inflexible", spec=InflexibleSpec, resolve=resolve, formulate=formulate)
