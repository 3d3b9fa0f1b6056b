"""Groups of devices with shared limits inside a site (flex-context ``groups``).

A group is a named set of devices whose summed power has its own consumption and production
capacity, between each device's own capacity and the site's connection: a hybrid inverter
shared by PV and a battery, a feeder inside a factory, a cluster of charge points. A group
lists flex-model devices, flex-context ``inflexible-devices`` and other groups (nesting); a
nested group's members count once in every group that contains it.

Constraint families, for a group ``g`` with member devices ``D(g)`` (nested groups
flattened), ``p_d`` the power of device ``d`` (consumption positive) and ``c_g[t]`` the fixed
power of its members (inflexible devices and fixed device power):

``group-consumption-capacity``
    ``sum_{d in D(g)} p_d[t] + c_g[t] <= consumption-capacity_g[t]``
``group-production-capacity``
    ``-production-capacity_g[t] <= sum_{d in D(g)} p_d[t] + c_g[t]``

``consumption-capacity`` and ``production-capacity`` each default to ``power-capacity``;
given both, the tighter holds. A direction with neither is unlimited (no rows). Rows exist
only at the steps where the capacity is finite. Each family carries the group's name as its
``device``, so an infeasibility report names the group and the time.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import Field, model_validator

from vpp.breach import Breach, add_soft_limit
from vpp.device import DeviceVars, PowerSeries, Spec
from vpp.errors import FieldIssue, InfeasibleError, RequestValidationError
from vpp.linear import INF, LinearModel, Term
from vpp.peaks import DemandPriceSeries
from vpp.timeseries import Horizon, Series

__all__ = [
    "CONSUMPTION",
    "PRODUCTION",
    "GroupSpec",
    "ResolvedGroup",
    "add_group_rows",
    "add_groups",
    "check_group_capacity",
    "device_room",
    "resolve_groups",
]

CONSUMPTION = "group-consumption-capacity"
PRODUCTION = "group-production-capacity"
_CAPACITIES = ("power-capacity", "consumption-capacity", "production-capacity")


class GroupSpec(Spec):
    """One entry of the flex-context's ``groups``."""

    name: str = Field(min_length=1)
    devices: list[str] = Field(min_length=1)
    power_capacity: PowerSeries | None = None
    consumption_capacity: PowerSeries | None = None
    production_capacity: PowerSeries | None = None
    # soft consumption/production capacity (vpp/breach.py); power-capacity stays hard
    consumption_breach_price: DemandPriceSeries | None = None
    production_breach_price: DemandPriceSeries | None = None

    @model_validator(mode="after")
    def _some_capacity(self) -> GroupSpec:
        if (
            self.power_capacity is None
            and self.consumption_capacity is None
            and self.production_capacity is None
        ):
            raise ValueError(
                "give at least one of 'power-capacity', 'consumption-capacity' and "
                "'production-capacity'"
            )
        return self


@dataclass(frozen=True)
class ResolvedGroup:
    """A group on the horizon: its flattened members and its capacities (kW, ``inf`` where
    unlimited)."""

    name: str
    path: str  # flex-context.groups[i]
    members: tuple[str, ...]  # flex-model devices and inflexible devices, each once
    consumption_capacity: np.ndarray
    production_capacity: np.ndarray
    sources: tuple[str, str]  # the fields that gave each capacity, for messages
    inflexible: np.ndarray  # kW per step: the summed power of its inflexible-devices members
    # soft limits: (direction, limit kW per step, breach price EUR/kW per step)
    soft: tuple[tuple[str, np.ndarray, np.ndarray], ...] = ()


def resolve_groups(
    specs: Sequence[GroupSpec],
    devices: Sequence[str],
    inflexible: Mapping[str, Series],
    horizon: Horizon,
    issues: list[FieldIssue],
) -> list[ResolvedGroup]:
    """Check the groups against the site's device names (flex-model devices and
    flex-context ``inflexible-devices``) and resolve their capacities; every problem is
    appended to ``issues`` (field-named), none raised."""
    names = set(devices) | set(inflexible)
    index: dict[str, int] = {}
    for i, spec in enumerate(specs):
        path = f"flex-context.groups[{i}].name"
        if spec.name in index:
            issues.append(
                FieldIssue(path, f"'{spec.name}' is also flex-context.groups[{index[spec.name]}]")
            )
        elif spec.name in names:
            issues.append(
                FieldIssue(path, f"'{spec.name}' is the name of a device; a group needs its own")
            )
        else:
            index[spec.name] = i
    before = len(issues)
    for i, spec in enumerate(specs):
        for j, member in enumerate(spec.devices):
            path = f"flex-context.groups[{i}].devices[{j}]"
            if member not in names and member not in index:
                issues.append(
                    FieldIssue(path, f"'{member}' is neither a device of this site nor a group")
                )
            elif member in spec.devices[:j]:
                issues.append(FieldIssue(path, f"'{member}' is listed twice"))
    if len(issues) > before:
        return []  # flattening needs every name known
    members = _flatten(specs, index, issues)
    out = []
    for i, spec in enumerate(specs):
        path = f"flex-context.groups[{i}]"
        caps = {}
        for name in _CAPACITIES:
            value = getattr(spec, name.replace("-", "_"))
            arr = np.full(horizon.steps, INF)
            if value is not None:
                try:
                    arr = np.nan_to_num(value.resolve(horizon, f"{path}.{name}", INF), nan=INF)
                except RequestValidationError as err:
                    issues.extend(err.issues)
                if (arr < 0).any():
                    issues.append(FieldIssue(f"{path}.{name}", "must not be negative"))
            caps[name] = arr
        sources = (
            "consumption-capacity" if spec.consumption_capacity else "power-capacity",
            "production-capacity" if spec.production_capacity else "power-capacity",
        )
        fixed = np.zeros(horizon.steps)
        for m in members.get(spec.name, ()):
            if m in inflexible and m not in devices:
                field = f"flex-context.inflexible-devices.{m}"
                try:
                    fixed = fixed + inflexible[m].resolve(horizon, field, 0.0)
                except RequestValidationError as err:
                    issues.extend(err.issues)  # the same issue the flex-context reports
        hard, soft = _soft_capacities(spec, caps, path, horizon, issues)
        out.append(
            ResolvedGroup(
                spec.name,
                path,
                members.get(spec.name, ()),
                hard["consumption"],
                hard["production"],
                sources,
                fixed,
                soft,
            )
        )
    return out


def _soft_capacities(
    spec: GroupSpec,
    caps: Mapping[str, np.ndarray],
    path: str,
    horizon: Horizon,
    issues: list[FieldIssue],
) -> tuple[dict[str, np.ndarray], tuple[tuple[str, np.ndarray, np.ndarray], ...]]:
    """Each direction's hard capacity, and its soft one where a breach price is given (the
    hard one then is ``power-capacity``, as in FlexMeasures)."""
    hard: dict[str, np.ndarray] = {}
    soft = []
    for direction in ("consumption", "production"):
        capacity = caps[f"{direction}-capacity"]
        price = getattr(spec, f"{direction}_breach_price")
        hard[direction] = np.minimum(capacity, caps["power-capacity"])
        if price is None:
            continue
        field = f"{path}.{direction}-breach-price"
        if getattr(spec, f"{direction}_capacity") is None:
            issues.append(FieldIssue(field, f"softens the {direction}-capacity: give one"))
            continue
        values = price.resolve(horizon, field, np.nan)
        if np.isnan(values).any() or (values < 0).any():
            issues.append(FieldIssue(field, "a price (>= 0) at every step"))
            continue
        hard[direction] = caps["power-capacity"].copy()
        soft.append((direction, capacity, values))
    return hard, tuple(soft)


def _flatten(
    specs: Sequence[GroupSpec], index: Mapping[str, int], issues: list[FieldIssue]
) -> dict[str, tuple[str, ...]]:
    """Each group's member devices with nested groups expanded, by group name. A cycle and a
    device reached twice within one group are issues, named at the entry that causes them."""
    done: dict[str, tuple[str, ...]] = {}

    def visit(name: str, stack: list[str]) -> tuple[str, ...]:
        if name in done:
            return done[name]
        i = index[name]
        seen: dict[str, str] = {}  # device -> the entry of this group it came through
        for j, entry in enumerate(specs[i].devices):
            path = f"flex-context.groups[{i}].devices[{j}]"
            chain = [*stack, name]
            if entry in chain:
                cycle = " -> ".join([*chain[chain.index(entry) :], entry])
                issues.append(FieldIssue(path, f"groups nest in a cycle: {cycle}"))
                continue
            reached = visit(entry, [*stack, name]) if entry in index else (entry,)
            for device in reached:
                if device in seen:
                    issues.append(
                        FieldIssue(
                            path,
                            f"'{device}' is already in group '{name}' through '{seen[device]}'",
                        )
                    )
                    break
                seen[device] = entry
        done[name] = tuple(seen)
        return done[name]

    for name in index:
        visit(name, [])
    return done


def add_groups(
    lm: LinearModel,
    groups: Sequence[ResolvedGroup],
    devices: Sequence[DeviceVars],
    ranges: Sequence[tuple[np.ndarray, np.ndarray]],
    horizon: Horizon,
) -> list[Breach]:
    """Check every group's fixed power against its capacity, then add its rows (the site's
    hook); the breach columns of soft groups. ``ranges``: each device's least and most power
    per step, in ``devices``' order."""
    by_name = {dv.name: r for dv, r in zip(devices, ranges, strict=True)}
    check_group_capacity(groups, by_name, horizon)
    return add_group_rows(lm, groups, devices, horizon)


def _summed(
    group: ResolvedGroup, ranges: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """Least and most summed power of a group's members per step."""
    least, most = group.inflexible.copy(), group.inflexible.copy()
    for m in group.members:
        if m in ranges:
            least, most = least + ranges[m][0], most + ranges[m][1]
    return least, most


def check_group_capacity(
    groups: Sequence[ResolvedGroup],
    ranges: Mapping[str, tuple[np.ndarray, np.ndarray]],
    horizon: Horizon,
) -> None:
    """A group whose members' fixed power alone exceeds its capacity is named before
    solving, with the time. ``ranges``: least and most power of every flex-model device by
    name."""
    for g in groups:
        least, most = _summed(g, ranges)
        cases = (
            (CONSUMPTION, g.sources[0], g.consumption_capacity, least, "consume"),
            (PRODUCTION, g.sources[1], g.production_capacity, -most, "produce"),
        )
        for family, source, limit, amount, verb in cases:
            over = np.flatnonzero(amount > limit + 1e-6)
            if over.size:
                t = int(over[0])
                when = horizon.at(t)
                raise InfeasibleError(
                    f"{source} = {limit[t]:g} kW of group '{g.name}' ({g.path}) at "
                    f"{when.isoformat()} is exceeded: its members {verb} at least "
                    f"{amount[t]:.4g} kW then (inflexible load and fixed device power)",
                    constraint=family,
                    time=when,
                    device=g.name,
                )


def device_room(
    groups: Sequence[ResolvedGroup],
    ranges: Mapping[str, tuple[np.ndarray, np.ndarray]],
    steps: int,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The least and most power every grouped device may take given its groups' capacities
    and the other members' least and most power (for the kinds' pre-checks), by name."""
    room: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for g in groups:
        least, most = _summed(g, ranges)
        for m in g.members:
            if m not in ranges:
                continue
            lo, hi = room.get(m, (np.full(steps, -INF), np.full(steps, INF)))
            upper = g.consumption_capacity - (least - ranges[m][0])
            lower = -g.production_capacity - (most - ranges[m][1])
            room[m] = (np.maximum(lo, lower), np.minimum(hi, upper))
    return room


def add_group_rows(
    lm: LinearModel,
    groups: Sequence[ResolvedGroup],
    devices: Sequence[DeviceVars],
    horizon: Horizon,
) -> list[Breach]:
    """The rows of every group's two families (see the module docstring), and the soft ones'
    breach columns (vpp/breach.py)."""
    by_name = {dv.name: dv for dv in devices}
    breaches = []
    for g in groups:
        terms: list[tuple[float, np.ndarray]] = []
        constant = g.inflexible.copy()
        for m in g.members:
            if m in by_name:
                dv = by_name[m]
                terms += dv.power_terms(1.0)
                if dv.constant is not None:
                    constant = constant + dv.constant
        if not terms:  # fixed members only: check_group_capacity has judged them
            continue
        for family, cap, upper in (
            (CONSUMPTION, g.consumption_capacity, True),
            (PRODUCTION, g.production_capacity, False),
        ):
            for a, b in _runs(np.flatnonzero(np.isfinite(cap))):
                sel = slice(a, b)
                lo = np.full(b - a, -INF) if upper else -cap[sel] - constant[sel]
                hi = cap[sel] - constant[sel] if upper else np.full(b - a, INF)
                cols: list[Term] = [(coef, c[sel]) for coef, c in terms]
                lm.add_rows(family, cols, lo, hi, device=g.name, offset=a)
        for direction, limit, price in g.soft:
            upper = direction == "consumption"
            family = CONSUMPTION if upper else PRODUCTION
            bound = limit if upper else -limit
            breaches.append(
                add_soft_limit(lm, family, g.name, terms, constant, bound, upper, price, horizon)
            )
    return breaches


def _runs(steps: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive runs of sorted step indices, as ``[start, stop)`` steps."""
    if steps.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(steps) != 1) + 1
    edges = [0, *breaks.tolist(), steps.size]
    return [(int(steps[a]), int(steps[b - 1]) + 1) for a, b in itertools.pairwise(edges)]
