"""Shiftable processes: a power profile of a given duration that must run between an
earliest start and a latest end (a MILP; HiGHS branches on the start binaries).

Process types (FlexMeasures' names):

``INFLEXIBLE``
    starts at ``earliest-start``; no decision.
``SHIFTABLE``
    runs as one block. Binaries ``start[j]`` for each admissible start step ``j``:

    ``shiftable-start``: ``sum_j start[j] = 1``

    ``process-power``: ``p[t] = sum_k profile[k] * start[t-k]``
``BREAKABLE``
    the profile's steps run in order but may pause between steps. Binaries ``on[k, t]``
    (profile step ``k`` runs at step ``t``):

    ``breakable-once``: ``sum_t on[k, t] = 1`` for every ``k``

    ``breakable-one-at-a-time``: ``sum_k on[k, t] <= 1`` for every ``t``

    ``breakable-order``: ``sum_t t*on[k+1, t] >= sum_t t*on[k, t] + 1``

    ``process-power``: ``p[t] = sum_k profile[k] * on[k, t]``

    With a constant profile the steps are interchangeable and one binary per step does:
    ``sum_t on[t] = duration``, ``p[t] = power * on[t]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar, Literal

import numpy as np
from pydantic import AwareDatetime

from vpp.assets.registry import AssetKind
from vpp.device import Common, DeviceSpec, DeviceVars, PowerSeries
from vpp.errors import InfeasibleError, RequestValidationError
from vpp.linear import LinearModel
from vpp.timeseries import Horizon

__all__ = ["KIND", "ShiftableParams", "ShiftableSpec", "formulate", "precheck", "resolve"]


class ShiftableSpec(DeviceSpec):
    """Flex-model of a shiftable process."""

    default_name: ClassVar[str] = "process"

    type: Literal["shiftable"]
    power: PowerSeries
    duration: timedelta | None = None
    process_type: Literal["INFLEXIBLE", "SHIFTABLE", "BREAKABLE"] = "SHIFTABLE"
    earliest_start: AwareDatetime | None = None
    latest_end: AwareDatetime | None = None


@dataclass
class ShiftableParams:
    name: str
    profile: np.ndarray  # kW per step of the run
    first: int  # earliest start step
    stop: int  # latest end step (exclusive)
    process_type: str
    available: np.ndarray


def resolve(spec: ShiftableSpec, horizon: Horizon, common: Common, path: str) -> ShiftableParams:
    profile = _profile(spec, horizon, path)
    first = _step(horizon, spec.earliest_start, 0, f"{path}.earliest-start")
    stop = _step(horizon, spec.latest_end, horizon.steps, f"{path}.latest-end")
    if stop < first:
        raise RequestValidationError.single(f"{path}.latest-end", "is before earliest-start")
    return ShiftableParams(spec.label, profile, first, stop, spec.process_type, common.available)


def _profile(spec: ShiftableSpec, horizon: Horizon, path: str) -> np.ndarray:
    power = spec.power
    if power.segments is not None:
        raise RequestValidationError.single(
            f"{path}.power", "give one power ('5 kW') or a profile {'values': [...], 'unit': ...}"
        )
    if power.values is not None:
        profile = np.array(power.values)
        if (
            spec.duration is not None
            and abs(spec.duration / horizon.resolution - len(profile)) > 1e-9
        ):
            raise RequestValidationError.single(
                f"{path}.duration", f"does not match the profile's {len(profile)} steps"
            )
    else:
        if spec.duration is None:
            raise RequestValidationError.single(
                f"{path}.duration", "required with a constant power"
            )
        steps = spec.duration / horizon.resolution
        if steps <= 0 or abs(steps - round(steps)) > 1e-9:
            raise RequestValidationError.single(
                f"{path}.duration", "must be a positive multiple of the resolution"
            )
        profile = np.full(round(steps), float(power.constant or 0.0))
    if len(profile) == 0:
        raise RequestValidationError.single(f"{path}.power", "the profile is empty")
    return profile


def _step(horizon: Horizon, when: AwareDatetime | None, default: int, field: str) -> int:
    if when is None:
        return default
    k = horizon.instant_index(when)
    if k is None:
        raise RequestValidationError.single(
            field, "must be an instant of the schedule (on a time step, within the horizon)"
        )
    return k


def precheck(p: ShiftableParams, horizon: Horizon) -> None:
    """``process-window``: the window must hold the run, at steps when the device is
    available. (The site's capacity is left to the solver: which start fits is the decision.)
    """
    length = len(p.profile)
    free = np.flatnonzero(p.available[p.first : p.stop]) + p.first
    when = horizon.at(p.first)
    if p.process_type == "INFLEXIBLE":
        if p.first + length > horizon.steps or not p.available[p.first : p.first + length].all():
            raise InfeasibleError(
                f"{p.name} must start at {when.isoformat()} but its {length} steps do not fit "
                f"in the schedule or its availability",
                constraint="process-window",
                time=when,
                device=p.name,
            )
        return
    if p.process_type == "SHIFTABLE":
        ok = any(p.available[j : j + length].all() for j in range(p.first, p.stop - length + 1))
    else:
        ok = len(free) >= length
    if not ok:
        raise InfeasibleError(
            f"{p.name} needs {length} steps ({p.process_type.lower()}) between "
            f"{when.isoformat()} and {horizon.at(p.stop).isoformat()}, which has too few "
            f"available steps",
            constraint="process-window",
            time=when,
            device=p.name,
        )


def formulate(p: ShiftableParams, lm: LinearModel, horizon: Horizon) -> DeviceVars:
    precheck(p, horizon)
    n, length = horizon.steps, len(p.profile)
    lo, hi = min(0.0, float(p.profile.min())), max(0.0, float(p.profile.max()))
    power = lm.add_vars("process-power", n, lo, hi, device=p.name)
    if p.process_type == "INFLEXIBLE":
        fixed = np.zeros(n)
        fixed[p.first : p.first + length] = p.profile
        lm.tighten(power, fixed, fixed)
    elif p.process_type == "SHIFTABLE":
        _shiftable(p, lm, power, n)
    elif np.allclose(p.profile, p.profile[0]):
        _breakable_constant(p, lm, power, n)
    else:
        _breakable(p, lm, power, n)
    # power may be negative for a generating process: split it for the site's accounting
    dv = DeviceVars(p.name, "shiftable", n)
    cons = lm.add_vars("process-consumption", n, 0.0, hi, device=p.name)
    prod = lm.add_vars("process-production", n, 0.0, -lo, device=p.name)
    lm.add_rows("process-split", [(1.0, power), (-1.0, cons), (1.0, prod)], 0.0, 0.0, device=p.name)
    dv.consumption, dv.production = [cons], [prod]
    if lo < 0 < hi:
        dv.exclusive.append((cons, prod))
    return dv


def _shiftable(p: ShiftableParams, lm: LinearModel, power: np.ndarray, n: int) -> None:
    length = len(p.profile)
    starts = np.array(
        [j for j in range(p.first, p.stop - length + 1) if p.available[j : j + length].all()]
    )
    start = lm.add_vars("process-start", len(starts), 0.0, 1.0, device=p.name, integer=True)
    lm.add_rows(
        "shiftable-start",
        [(1.0, start[None, :])],
        1.0,
        1.0,
        device=p.name,
        size=1,
        offset=int(starts[0]),
    )
    # row t: p[t] - sum_k profile[k] * start[j] where j = t - k is an admissible start
    col_of_start = np.full(n, -1)
    col_of_start[starts] = start
    t = np.arange(n)[:, None]
    j = t - np.arange(length)[None, :]
    cols = np.where((j >= 0) & (j < n), col_of_start[np.clip(j, 0, n - 1)], -1)
    coefs = -np.broadcast_to(p.profile[None, :], cols.shape)
    lm.add_rows("process-power", [(1.0, power), (coefs, cols)], 0.0, 0.0, device=p.name)


def _breakable_constant(p: ShiftableParams, lm: LinearModel, power: np.ndarray, n: int) -> None:
    length = len(p.profile)
    allowed = np.zeros(n)
    allowed[p.first : p.stop] = p.available[p.first : p.stop]
    on = lm.add_vars("process-on", n, 0.0, allowed, device=p.name, integer=True)
    lm.add_rows("breakable-duration", [(1.0, on[None, :])], length, length, device=p.name, size=1)
    lm.add_rows(
        "process-power", [(1.0, power), (-float(p.profile[0]), on)], 0.0, 0.0, device=p.name
    )


def _breakable(p: ShiftableParams, lm: LinearModel, power: np.ndarray, n: int) -> None:
    length = len(p.profile)
    window = np.array([t for t in range(p.first, p.stop) if p.available[t]])
    w = len(window)
    on = lm.add_vars("process-on", length * w, 0.0, 1.0, device=p.name, integer=True)
    grid = on.reshape(length, w)  # grid[k, i]: profile step k runs at step window[i]
    lm.add_rows("breakable-once", [(1.0, grid)], 1.0, 1.0, device=p.name, size=length)
    lm.add_rows(
        "breakable-one-at-a-time",
        [(1.0, grid.T)],
        -np.inf,
        1.0,
        device=p.name,
        size=w,
        offset=int(window[0]),
    )
    position = np.broadcast_to(window.astype(float), (length - 1, w))
    lm.add_rows(
        "breakable-order",
        [(position, grid[1:]), (-position, grid[:-1])],
        1.0,
        np.inf,
        device=p.name,
        size=length - 1,
    )
    cols = np.full((n, length), -1)
    cols[window, :] = grid.T
    coefs = -np.broadcast_to(p.profile[None, :], cols.shape)
    lm.add_rows("process-power", [(1.0, power), (coefs, cols)], 0.0, 0.0, device=p.name)


# no site precheck: formulate checks the process window itself (which start fits the
# connection's capacity is the decision, left to the solver)
KIND = AssetKind(name="shiftable", spec=ShiftableSpec, resolve=resolve, formulate=formulate)
