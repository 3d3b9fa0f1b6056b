"""Operation modes: a device that runs in one of a few modes at every step (a CHP that is off,
at part load or at full load; a heat pump or an industrial load with discrete stages), with
minimum on/off times, start costs and running costs (a MILP; HiGHS branches on the modes).

A mode runs at a fixed ``power`` or anywhere in ``[min-power, max-power]`` (kW, consumption
positive: a CHP producing electricity has negative power). A mode whose power is exactly 0 kW
is *off*; every other mode is *on*. Columns: a binary ``u[m, t]`` per mode and step (``m``
runs at ``t``), the power ``p[t] = cons[t] - prod[t]`` and, per allowed arc ``a -> b``
(``a == b`` staying, always allowed), ``s[a, b, t] in [0, 1]``: the device is in ``a`` at
``t - 1`` and in ``b`` at ``t``. ``u[a, -1]`` is 1 for ``initial-mode``; without one, for the
first off mode (off long enough to start at once), and with no off mode step 0 has no arcs
(the device may start in any mode, with no transition cost and no carried min time).

``operation-mode-choice``
    ``sum_m u[m, t] = 1``
``operation-mode-power``
    ``sum_m min_m * u[m, t] <= p[t] <= sum_m max_m * u[m, t]``
``operation-mode-switch``
    ``sum_b s[a, b, t] = u[a, t-1]`` and ``sum_a s[a, b, t] = u[b, t]`` (a flow of one unit
    through the modes over time: with binary ``u`` every ``s`` is 0 or 1 and ``s[a, b, t] = 1``
    exactly when the device switches from ``a`` to ``b`` at ``t``; a transition not allowed
    has no column)
``operation-mode-min-on`` / ``operation-mode-min-off`` / ``operation-mode-min-duration``
    for a set ``G`` of modes (the on modes, the off modes, or one mode with its own
    ``min-duration``) held for ``D`` steps once entered, Rajan and Takriti's tight form:
    ``sum_{tau = t-D+1..t} sum_{a not in G, b in G} s[a, b, tau] <= sum_{m in G} u[m, t]``;
    and ``sum_{m in G} u[m, t] >= 1`` for the steps of ``D`` not yet served since
    ``initial-mode-since``.
``operation-mode-timer``
    a timer of ``D`` steps, started by the transitions ``S`` and blocking the transitions
    ``B`` until it finishes (S2's timers): ``sum_{B} s[t] + sum_{S} s[t-d] <= 1`` for
    ``d = 1..D-1`` (one transition per step at most, so this is exact), and
    ``sum_{B} s[t] = 0`` while a timer given as running (``finished-at``) has not finished.

Objective: ``sum_t dt * cost_m * u[m, t]`` (running cost, EUR/h) plus
``sum_t cost_ab * s[a, b, t]`` (transition costs; ``start-cost`` adds to every off -> on
arc), next to the energy cost of ``p`` the site accounts. Durations that are not a multiple
of the resolution round up to whole steps (a 25-min minimum on a 15-min grid holds 2 steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import AwareDatetime, BeforeValidator, Field, WithJsonSchema

from vpp.assets.registry import AssetKind, ResultField
from vpp.device import Common, DeviceSpec, DeviceVars, Power, Spec
from vpp.errors import FieldIssue, RequestValidationError
from vpp.linear import LinearModel, Term
from vpp.timeseries import Horizon
from vpp.units import UNREADABLE, registry

__all__ = [
    "KIND",
    "MODE",
    "Cost",
    "CostRate",
    "GroupMin",
    "ModeSpec",
    "ModesParams",
    "ModesSpec",
    "OnOff",
    "TimerParams",
    "TimerSpec",
    "TransitionSpec",
    "add_group_minimum",
    "add_mode_logic",
    "add_on_off",
    "formulate",
    "resolve",
    "steps_of",
]


# what pint raises on unreadable text (see vpp.units): bad input, not a bug of ours
_UNREADABLE = UNREADABLE  # vpp.units' list: what pint raises on unreadable text


def _money(unit: str) -> BeforeValidator:
    """A quantity such as ``"20 EUR"`` (or ``"3 EUR/h"``) converted to ``unit``."""

    def parse(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, str):
            raise ValueError(f"expected text with a unit, e.g. '3 {unit}'")
        try:
            quantity: Any = registry().Quantity(value.strip())
            return float(quantity.to(unit).magnitude)
        except _UNREADABLE as err:
            raise ValueError(f"cannot read {value!r} as {unit} (e.g. '3 {unit}')") from err

    return BeforeValidator(parse)


Cost = Annotated[float, _money("EUR"), WithJsonSchema({"type": "string"})]
"""A cost in EUR (``"20 EUR"``)."""
CostRate = Annotated[float, _money("EUR/hour"), WithJsonSchema({"type": "string"})]
"""A cost per hour of running in EUR/h (``"3 EUR/h"``)."""


class ModeSpec(Spec):
    """One operation mode: a fixed ``power`` or a range ``min-power``..``max-power``."""

    name: str
    power: Power | None = None
    min_power: Power | None = None
    max_power: Power | None = None
    cost: CostRate | None = None
    min_duration: timedelta | None = None


class TransitionSpec(Spec):
    """An allowed switch between two modes, with its cost and the timers it starts or
    waits for."""

    from_: str = Field(alias="from")
    to: str
    cost: Cost | None = None
    start_timers: list[str] | None = None
    blocking_timers: list[str] | None = None


class TimerSpec(Spec):
    """A timer (S2's): started by transitions, blocking others until ``duration`` passed;
    ``finished-at`` says when one running at the schedule's start finishes."""

    name: str
    duration: timedelta
    finished_at: AwareDatetime | None = None


class ModesSpec(DeviceSpec):
    """Flex-model of a device with operation modes."""

    default_name: ClassVar[str] = "modes"

    type: Literal["modes"]
    modes: list[ModeSpec]
    transitions: list[TransitionSpec] | None = None
    timers: list[TimerSpec] | None = None
    min_on_duration: timedelta | None = None
    min_off_duration: timedelta | None = None
    start_cost: Cost | None = None
    initial_mode: str | None = None
    initial_mode_since: AwareDatetime | None = None


@dataclass
class GroupMin:
    """Modes ``members`` held ``steps`` once entered (``family`` names the rows); the first
    ``carry`` steps must stay in them (what is left of a stay begun before the start)."""

    family: str
    members: np.ndarray  # bool per mode
    steps: int
    carry: int = 0


@dataclass
class TimerParams:
    steps: int
    starters: list[int]  # arc indices
    blockers: list[int]
    running: int = 0  # steps from the start during which a running timer blocks


@dataclass
class ModesParams:
    name: str
    mode_names: list[str]
    lower: np.ndarray  # kW per mode
    upper: np.ndarray
    running_cost: np.ndarray  # EUR/h per mode
    arcs: list[tuple[int, int]]  # (from, to), stays included
    arc_cost: np.ndarray  # EUR per arc
    initial: int | None
    minimums: list[GroupMin] = field(default_factory=list)
    timers: list[TimerParams] = field(default_factory=list)

    @property
    def off(self) -> np.ndarray:
        """Which modes are off (power exactly 0 kW)."""
        off: np.ndarray = (self.lower == 0.0) & (self.upper == 0.0)
        return off


def steps_of(duration: timedelta, horizon: Horizon) -> int:
    """Whole steps a duration spans, rounded up (a minimum is a minimum)."""
    return max(0, math.ceil(duration / horizon.resolution - 1e-9))


def resolve(spec: ModesSpec, horizon: Horizon, common: Common, path: str) -> ModesParams:
    issues: list[FieldIssue] = []

    def bad(where: str, message: str) -> None:
        issues.append(FieldIssue(f"{path}.{where}", message))

    if not spec.modes:
        raise RequestValidationError.single(f"{path}.modes", "give at least one mode")
    names = [m.name for m in spec.modes]
    index = {name: i for i, name in enumerate(names)}
    lower, upper = np.zeros(len(names)), np.zeros(len(names))
    for i, m in enumerate(spec.modes):
        where = f"modes[{i}]"
        if names.index(m.name) != i:
            bad(f"{where}.name", f"mode {m.name!r} is named twice")
        if m.power is not None:
            if m.min_power is not None or m.max_power is not None:
                bad(f"{where}.power", "give 'power' or 'min-power' and 'max-power', not both")
            lower[i] = upper[i] = m.power
        elif m.min_power is None or m.max_power is None:
            bad(f"{where}.power", "give 'power', or 'min-power' and 'max-power'")
        elif m.min_power > m.max_power:
            bad(f"{where}.min-power", "is above max-power")
        else:
            lower[i], upper[i] = m.min_power, m.max_power
        if m.min_duration is not None and m.min_duration < timedelta(0):
            bad(f"{where}.min-duration", "must not be negative")
    running = np.array([m.cost or 0.0 for m in spec.modes])
    off = (lower == 0.0) & (upper == 0.0)

    arcs: dict[tuple[int, int], int] = {(i, i): i for i in range(len(names))}
    cost: list[float] = [0.0] * len(names)
    starts: list[list[str]] = [[] for _ in names]
    blocks: list[list[str]] = [[] for _ in names]
    if spec.transitions is None:  # every switch allowed and free
        for a in range(len(names)):
            for b in range(len(names)):
                if a != b:
                    arcs[(a, b)] = len(cost)
                    cost.append(0.0)
                    starts.append([])
                    blocks.append([])
    for i, tr in enumerate(spec.transitions or []):
        where = f"transitions[{i}]"
        if tr.from_ not in index:
            bad(f"{where}.from", f"no mode is named {tr.from_!r}")
        if tr.to not in index:
            bad(f"{where}.to", f"no mode is named {tr.to!r}")
        if tr.from_ not in index or tr.to not in index:
            continue
        pair = (index[tr.from_], index[tr.to])
        if pair[0] == pair[1]:
            bad(f"{where}.to", "a transition goes to another mode (staying is always allowed)")
            continue
        if pair in arcs:
            bad(where, f"a second transition from {tr.from_!r} to {tr.to!r}")
            continue
        if (tr.cost or 0.0) < 0:
            bad(f"{where}.cost", "must not be negative (a paid switch would be made every step)")
        arcs[pair] = len(cost)
        cost.append(tr.cost or 0.0)
        starts.append(list(tr.start_timers or []))
        blocks.append(list(tr.blocking_timers or []))
    arc_list = sorted(arcs, key=arcs.__getitem__)
    arc_cost = np.array(cost)
    if spec.start_cost is not None:
        if spec.start_cost < 0:
            bad("start-cost", "must not be negative")
        if not off.any():
            bad("start-cost", "needs an off mode (a mode of 0 kW) to start from")
        for k, (a, b) in enumerate(arc_list):
            if off[a] and not off[b]:
                arc_cost[k] += spec.start_cost

    # no initial-mode: off (long enough) when there is an off mode, so a start at step 0
    # pays its start cost and holds its minimum on time like any other; free otherwise
    initial = int(np.argmax(off)) if off.any() else None
    if spec.initial_mode is not None:
        initial = index.get(spec.initial_mode)
        if initial is None:
            bad("initial-mode", f"no mode is named {spec.initial_mode!r}")
    since = spec.initial_mode_since
    if since is not None:
        if spec.initial_mode is None:
            bad("initial-mode-since", "needs initial-mode")
        elif since > horizon.start:
            bad("initial-mode-since", "must not be after the schedule's start")

    minimums: list[GroupMin] = []
    groups: list[tuple[str, str, np.ndarray, timedelta | None]] = [
        ("min-on-duration", "operation-mode-min-on", ~off, spec.min_on_duration),
        ("min-off-duration", "operation-mode-min-off", off, spec.min_off_duration),
    ]
    for i, m in enumerate(spec.modes):
        only = np.arange(len(names)) == i
        groups.append(
            (f"modes[{i}].min-duration", "operation-mode-min-duration", only, m.min_duration)
        )
    for where, family, members, duration in groups:
        if duration is None:
            continue
        if duration < timedelta(0):
            bad(where, "must not be negative")
            continue
        if not members.any():
            bad(where, "needs an off mode (0 kW) and an on mode")
            continue
        steps = steps_of(duration, horizon)
        carry = 0
        if initial is not None and since is not None and members[initial]:
            carry = min(horizon.steps, steps_of(since + duration - horizon.start, horizon))
        minimums.append(GroupMin(family, members, steps, carry))

    timers: list[TimerParams] = []
    timer_names = [t.name for t in spec.timers or []]
    for i, timer in enumerate(spec.timers or []):
        where = f"timers[{i}]"
        if timer_names.index(timer.name) != i:
            bad(f"{where}.name", f"timer {timer.name!r} is named twice")
        if timer.duration < timedelta(0):
            bad(f"{where}.duration", "must not be negative")
            continue
        running_steps = 0
        if timer.finished_at is not None:
            running_steps = min(horizon.steps, steps_of(timer.finished_at - horizon.start, horizon))
        timers.append(
            TimerParams(
                steps_of(timer.duration, horizon),
                [k for k, names_ in enumerate(starts) if timer.name in names_],
                [k for k, names_ in enumerate(blocks) if timer.name in names_],
                running_steps,
            )
        )
    for i, tr in enumerate(spec.transitions or []):
        for key, given in (
            ("start-timers", tr.start_timers),
            ("blocking-timers", tr.blocking_timers),
        ):
            for j, name in enumerate(given or []):
                if name not in timer_names:
                    bad(f"transitions[{i}].{key}[{j}]", f"no timer is named {name!r}")
    if issues:
        raise RequestValidationError(issues)
    # the device off outside its availability: only a mode that can run at 0 kW may hold it
    return ModesParams(
        spec.label, names, lower, upper, running, arc_list, arc_cost, initial, minimums, timers
    )


def formulate(p: ModesParams, lm: LinearModel, horizon: Horizon) -> DeviceVars:
    n, m = horizon.steps, len(p.mode_names)
    # one block per mode (and per arc below): a block's columns are its steps, so a bound in
    # an infeasibility report is told at the right time
    u = np.array(
        [lm.add_vars("operation-mode", n, 0.0, 1.0, device=p.name, integer=True) for _ in range(m)]
    ).reshape(m, n)
    lm.add_rows("operation-mode-choice", [(1.0, u.T)], 1.0, 1.0, device=p.name, size=n)
    dv = DeviceVars(p.name, "modes", n)
    hi, lo = float(max(p.upper.max(), 0.0)), float(max(-p.lower.min(), 0.0))
    power: list[Term] = []
    if hi > 0:
        cons = lm.add_vars("modes-consumption", n, 0.0, hi, device=p.name)
        dv.consumption, power = [cons], [(1.0, cons)]
    if lo > 0:
        prod = lm.add_vars("modes-production", n, 0.0, lo, device=p.name)
        dv.production, power = [prod], [*power, (-1.0, prod)]
    if hi > 0 and lo > 0:
        dv.exclusive.append((dv.consumption[0], dv.production[0]))
    if power:
        if np.array_equal(p.lower, p.upper):
            lm.add_rows(
                "operation-mode-power", [*power, _per_mode(p.lower, u)], 0.0, 0.0, device=p.name
            )
        else:
            lm.add_rows(
                "operation-mode-power", [*power, _per_mode(p.lower, u)], 0.0, np.inf, device=p.name
            )
            lm.add_rows(
                "operation-mode-power", [*power, _per_mode(p.upper, u)], -np.inf, 0.0, device=p.name
            )
    dv.extra["column-cost"] = add_mode_logic(p, lm, u, horizon)
    dv.extra["modes"] = u
    return dv


def add_mode_logic(
    p: ModesParams, lm: LinearModel, u: np.ndarray, horizon: Horizon
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Switches, minimum times and timers of the mode binaries ``u`` ``(modes, steps)``;
    returns the running and transition costs as ``(columns, EUR per unit)`` pairs."""
    n = horizon.steps
    s = _switches(p, lm, u, n)
    for group in p.minimums:
        add_group_minimum(lm, p.name, u, s, p.arcs, group)
    for timer in p.timers:
        _timer(lm, p.name, s, timer)
    costs: list[tuple[np.ndarray, np.ndarray]] = []
    if p.running_cost.any():
        costs.append((u.ravel(), np.repeat(p.running_cost * horizon.dt, n)))
    if p.arc_cost.any():
        present = s >= 0
        costs.append((s[present], np.broadcast_to(p.arc_cost[:, None], s.shape)[present]))
    return costs


@dataclass(frozen=True)
class OnOff:
    """Minimum on/off times and a start cost for a device whose power column is either 0
    (off) or within ``[min_power, capacity]`` (on), e.g. a heat pump; durations in steps."""

    min_power: np.ndarray  # kW per step while on
    min_on: int = 0
    min_off: int = 0
    start_cost: float = 0.0


def add_on_off(
    lm: LinearModel,
    device: str,
    power: np.ndarray,
    capacity: np.ndarray,
    spec: OnOff,
    horizon: Horizon,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """An off and an on mode over the columns ``power`` (kW, >= 0), the device off before
    the start: the families of the module docstring, with ``operation-mode-power``
    ``min_power[t] * u[on, t] <= p[t] <= capacity[t] * u[on, t]``. Returns the start costs
    as column costs."""
    n = horizon.steps
    u = np.array(
        [lm.add_vars("operation-mode", n, 0.0, 1.0, device=device, integer=True) for _ in "01"]
    )
    lm.add_rows("operation-mode-choice", [(1.0, u.T)], 1.0, 1.0, device=device, size=n)
    lm.add_rows(
        "operation-mode-power", [(1.0, power), (-spec.min_power, u[1])], 0.0, np.inf, device=device
    )
    lm.add_rows(
        "operation-mode-power", [(1.0, power), (-capacity, u[1])], -np.inf, 0.0, device=device
    )
    on, off = np.array([False, True]), np.array([True, False])
    params = ModesParams(
        name=device,
        mode_names=["off", "on"],
        lower=np.zeros(2),
        upper=np.array([0.0, 1.0]),
        running_cost=np.zeros(2),
        arcs=[(0, 0), (1, 1), (0, 1), (1, 0)],
        arc_cost=np.array([0.0, 0.0, spec.start_cost, 0.0]),
        initial=0,
        minimums=[
            GroupMin(family, members, steps)
            for family, members, steps in (
                ("operation-mode-min-on", on, spec.min_on),
                ("operation-mode-min-off", off, spec.min_off),
            )
            if steps > 1
        ],
    )
    return add_mode_logic(params, lm, u, horizon)


def _per_mode(per_mode: np.ndarray, u: np.ndarray) -> Term:
    """The term ``-sum_m per_mode[m] * u[m, t]`` for every step."""
    return (np.broadcast_to(-per_mode[:, None], u.shape).T, u.T)


def _switches(p: ModesParams, lm: LinearModel, u: np.ndarray, n: int) -> np.ndarray:
    """The arc columns ``s[arc, t]`` (-1 at step 0 when there is no initial mode) and the
    ``operation-mode-switch`` rows that tie them to the modes."""
    first = 0 if p.initial is not None else 1
    a = len(p.arcs)
    s = np.full((a, n), -1)
    if n > first:
        for k in range(a):
            s[k, first:] = lm.add_vars(
                "operation-mode-transition", n - first, 0.0, 1.0, device=p.name, offset=first
            )
    steps = n - first
    if steps <= 0:
        return s
    for mode in range(len(p.mode_names)):
        out = [k for k, (x, _) in enumerate(p.arcs) if x == mode]
        into = [k for k, (_, y) in enumerate(p.arcs) if y == mode]
        prev = np.concatenate([[-1], u[mode, :-1]])[first:]
        start = np.zeros(steps)
        if p.initial is not None:  # u[mode, -1] is a constant
            start[0] = float(p.initial == mode)
        lm.add_rows(
            "operation-mode-switch",
            [(1.0, s[out, first:].T), (-1.0, prev)],
            start,
            start,
            device=p.name,
            offset=first,
        )
        lm.add_rows(
            "operation-mode-switch",
            [(1.0, s[into, first:].T), (-1.0, u[mode, first:])],
            0.0,
            0.0,
            device=p.name,
            offset=first,
        )
    return s


def add_group_minimum(
    lm: LinearModel,
    device: str,
    u: np.ndarray,
    s: np.ndarray,
    arcs: list[tuple[int, int]],
    group: GroupMin,
) -> None:
    """Rajan–Takriti rows holding the modes ``group.members`` for ``group.steps`` steps once
    entered (``u`` the mode binaries ``(modes, steps)``, ``s`` the arc columns
    ``(arcs, steps)``, -1 where absent); see the module docstring."""
    n = u.shape[1]
    members = np.flatnonzero(group.members)
    enter = [k for k, (a, b) in enumerate(arcs) if not group.members[a] and group.members[b]]
    if group.steps > 1 and enter:
        taus = np.arange(n)[:, None] - np.arange(group.steps)[None, :]  # (n, D)
        window = np.where(taus[None] >= 0, s[enter][:, np.clip(taus, 0, None)], -1)
        cols = window.transpose(1, 0, 2).reshape(n, -1)
        lm.add_rows(
            group.family,
            [(1.0, cols), (-1.0, u[members].T)],
            -np.inf,
            0.0,
            device=device,
        )
    if group.carry > 0:
        lm.add_rows(
            group.family,
            [(1.0, u[members, : group.carry].T)],
            1.0,
            np.inf,
            device=device,
            size=group.carry,
        )


def _timer(lm: LinearModel, device: str, s: np.ndarray, timer: TimerParams) -> None:
    n = s.shape[1]
    if timer.blockers and timer.running > 0:
        lm.add_rows(
            "operation-mode-timer",
            [(1.0, s[timer.blockers, : timer.running].T)],
            -np.inf,
            0.0,
            device=device,
            size=timer.running,
        )
    if not (timer.blockers and timer.starters):
        return
    for d in range(1, min(timer.steps, n)):
        lm.add_rows(
            "operation-mode-timer",
            [(1.0, s[timer.blockers, d:].T), (1.0, s[timer.starters, : n - d].T)],
            -np.inf,
            1.0,
            device=device,
            offset=d,
        )


def _mode(dv: DeviceVars, x: np.ndarray) -> np.ndarray | None:
    u = dv.extra.get("modes")
    return None if u is None else np.argmax(x[u], axis=0).astype(float)


MODE = ResultField("operation-mode", "index", _mode)
"""The mode each step runs in: its index in the device's ``modes`` (0 the first)."""

KIND = AssetKind(
    name="modes", spec=ModesSpec, resolve=resolve, formulate=formulate, result_fields=(MODE,)
)
