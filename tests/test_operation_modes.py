"""Operation modes (``"type": "modes"``): minimum on/off times, start costs, transition costs
and S2-style timers, judged against a brute-force enumeration of every mode sequence on a
short horizon (written here from the fields' documented meaning, not from the MILP)."""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vpp.errors import InfeasibleError, RequestValidationError
from vpp.site import SiteProblem, schedule

START = datetime(2026, 1, 1, tzinfo=UTC)


def request(device: dict[str, Any], prices: list[float], **context: Any) -> dict[str, Any]:
    return {
        "start": START.isoformat(),
        "duration": f"PT{len(prices)}H",
        "resolution": "PT1H",
        "flex-model": [device],
        "flex-context": {"consumption-price": {"values": prices, "unit": "EUR/MWh"}} | context,
    }


# -- the brute-force reference ---------------------------------------------------------


@dataclass
class Ref:
    """A modes device in plain numbers: powers in kW, costs in EUR, durations in steps."""

    lo: list[float]
    hi: list[float]
    run: list[float]  # EUR/h per mode
    allowed: dict[tuple[int, int], float] | None = None  # None: every switch, free
    start_cost: float = 0.0
    min_on: int = 0
    min_off: int = 0
    min_mode: list[int] = field(default_factory=list)  # per mode, 0 if none
    initial: int | None = None  # None: the first off mode, if any
    since: int | None = None  # steps the initial mode has run before the start
    timers: list[tuple[int, list[tuple[int, int]], list[tuple[int, int]], int]] = field(
        default_factory=list
    )  # (steps, started by, blocked, steps still running at the start)

    def off(self, m: int) -> bool:
        return self.lo[m] == 0 and self.hi[m] == 0


def held(seq: tuple[int, ...], prev: int | None, member: Any, steps: int, carry: int) -> bool:
    """Every stay in the modes ``member`` entered in the horizon lasts ``steps`` (or to the
    end), and one the device is in at the start lasts ``carry``."""
    inside = [member(m) for m in seq]
    for t, now in enumerate(inside):
        entered = now and (not inside[t - 1] if t else prev is not None and not member(prev))
        if entered and not all(inside[t : t + steps]):
            return False
    return all(inside[:carry])


def brute_force(ref: Ref, prices: list[float]) -> float:
    """The least cost over every mode sequence: energy at the site's price (dt = 1 h) at the
    best power of each step's mode, running costs, transition and start costs."""
    n, modes = len(prices), len(ref.lo)
    first_off = next((m for m in range(modes) if ref.off(m)), None)
    prev0 = ref.initial if ref.initial is not None else first_off
    best = math.inf
    for seq in itertools.product(range(modes), repeat=n):
        cost, prev, ok = 0.0, prev0, True
        last_start = {k: running - steps for k, (steps, _, _, running) in enumerate(ref.timers)}
        for t, m in enumerate(seq):
            if prev is not None and m != prev:
                arc = (prev, m)
                if ref.allowed is not None and arc not in ref.allowed:
                    ok = False
                    break
                cost += 0.0 if ref.allowed is None else ref.allowed[arc]
                cost += ref.start_cost if ref.off(prev) and not ref.off(m) else 0.0
                for k, (steps, _, blocks, _) in enumerate(ref.timers):
                    if arc in blocks and t - last_start[k] < steps:
                        ok = False
                for k, (_, starts, _, _) in enumerate(ref.timers):
                    if arc in starts:
                        last_start[k] = t
            cost += ref.run[m]  # running cost, 1 h steps
            cost += min(prices[t] * ref.lo[m], prices[t] * ref.hi[m]) / 1000.0
            prev = m
        if not ok:
            continue

        def carry(steps: int, member: Any) -> int:
            if ref.initial is None or ref.since is None or not member(ref.initial):
                return 0
            return max(0, steps - ref.since)

        def on(m: int) -> bool:
            return not ref.off(m)

        groups = [(on, ref.min_on), (ref.off, ref.min_off)]
        groups += [((lambda m, i=i: m == i), d) for i, d in enumerate(ref.min_mode)]
        if all(held(seq, prev0, g, d, carry(d, g)) for g, d in groups if d > 0):
            best = min(best, cost)
    return best


def device_of(ref: Ref, names: list[str]) -> dict[str, Any]:
    """The flex-model device of ``ref``."""
    modes: list[dict[str, Any]] = []
    for m, name in enumerate(names):
        spec: dict[str, Any] = {"name": name}
        if ref.lo[m] == ref.hi[m]:
            spec["power"] = f"{ref.lo[m]} kW"
        else:
            spec |= {"min-power": f"{ref.lo[m]} kW", "max-power": f"{ref.hi[m]} kW"}
        if ref.run[m]:
            spec["cost"] = f"{ref.run[m]} EUR/h"
        if ref.min_mode and ref.min_mode[m]:
            spec["min-duration"] = f"PT{ref.min_mode[m]}H"
        modes.append(spec)
    device: dict[str, Any] = {"type": "modes", "name": "unit", "modes": modes}
    if ref.allowed is not None:
        device["transitions"] = [
            {"from": names[a], "to": names[b]} | ({"cost": f"{c} EUR"} if c else {})
            for (a, b), c in ref.allowed.items()
        ]
    if ref.timers:
        device["timers"] = []
        for k, (steps, starts, blocks, running) in enumerate(ref.timers):
            timer: dict[str, Any] = {"name": f"t{k}", "duration": f"PT{steps}H"}
            if running:
                timer["finished-at"] = (START + running * timedelta(hours=1)).isoformat()
            device["timers"].append(timer)
            for tr in device["transitions"]:
                arc = (names.index(tr["from"]), names.index(tr["to"]))
                for key, arcs in (("start-timers", starts), ("blocking-timers", blocks)):
                    if arc in arcs:
                        tr.setdefault(key, []).append(f"t{k}")
    if ref.start_cost:
        device["start-cost"] = f"{ref.start_cost} EUR"
    if ref.min_on:
        device["min-on-duration"] = f"PT{ref.min_on}H"
    if ref.min_off:
        device["min-off-duration"] = f"PT{ref.min_off}H"
    if ref.initial is not None:
        device["initial-mode"] = names[ref.initial]
        if ref.since is not None:
            device["initial-mode-since"] = (START - ref.since * timedelta(hours=1)).isoformat()
    return device


def vpp_cost(ref: Ref, prices: list[float]) -> float:
    names = [f"m{i}" for i in range(len(ref.lo))]
    result = schedule(request(device_of(ref, names), prices))
    cost: float = result["cost"]["value"]
    return cost


# -- hand-derived cases ----------------------------------------------------------------

CHP = {
    "type": "modes",
    "name": "chp",
    "modes": [
        {"name": "off", "power": "0 kW"},
        {"name": "on", "min-power": "-50 kW", "max-power": "-20 kW", "cost": "2 EUR/h"},
    ],
    "min-on-duration": "PT3H",
    "start-cost": "5 EUR",
}
CHP_PRICES = [10.0, 200.0, 10.0, 10.0, 200.0, 10.0]


def test_a_chp_runs_once_through_both_dear_hours_at_full_power() -> None:
    """Hand-derived: producing 50 kW earns 0.5 EUR at 10 EUR/MWh and 10 EUR at 200 EUR/MWh,
    and an hour on costs 2 EUR. Running hours 1-4 (one start, 5 EUR) earns 21 EUR for 8 EUR
    of running: -8 EUR. Hours 1-3 only: -11 + 6 + 5 = 0; two runs cannot both last 3 h and
    avoid the cheap hour 0; running all six hours: -22 + 12 + 5 = -5."""
    result = schedule(request(CHP, CHP_PRICES))
    (entry,) = result["devices"]
    assert entry["power"]["values"] == [0, -50, -50, -50, -50, 0]
    assert entry["operation-mode"] == {"values": [0, 1, 1, 1, 1, 0], "unit": "index"}
    assert result["cost"] == pytest.approx(
        {"value": -8.0, "unit": "EUR", "energy": -21.0, "operation-modes": 13.0}
    )
    ref = Ref(lo=[0, -50], hi=[0, -20], run=[0, 2], start_cost=5, min_on=3)
    assert brute_force(ref, CHP_PRICES) == pytest.approx(-8.0)


def test_only_the_required_fields() -> None:
    """``type`` and ``modes`` alone: every switch free, no minimum times, no costs."""
    device = {
        "type": "modes",
        "modes": [{"name": "a", "power": "0 kW"}, {"name": "b", "power": "2 kW"}],
    }
    result = schedule(request(device, [-10.0, 10.0, -10.0]))
    assert result["devices"][0]["name"] == "modes"
    assert result["devices"][0]["power"]["values"] == [2, 0, 2]
    assert result["cost"]["value"] == pytest.approx(-0.04)
    assert "operation-modes" not in result["cost"]  # no running or transition costs


def test_without_an_off_mode_the_first_step_is_free() -> None:
    """No off mode, no initial-mode: any mode at step 0, no transition cost then."""
    device = {
        "type": "modes",
        "modes": [{"name": "low", "power": "1 kW"}, {"name": "high", "power": "3 kW"}],
        "transitions": [
            {"from": "low", "to": "high", "cost": "1 EUR"},
            {"from": "high", "to": "low", "cost": "1 EUR"},
        ],
    }
    result = schedule(request(device, [-1000.0, 0.0, 0.0]))
    # high at step 0 (-3 EUR) costs nothing to enter; dropping to low saves nothing (price 0)
    assert result["devices"][0]["power"]["values"] == [3, 3, 3]
    assert result["cost"]["value"] == pytest.approx(-3.0)
    ref = Ref(lo=[1, 3], hi=[1, 3], run=[0, 0], allowed={(0, 1): 1.0, (1, 0): 1.0})
    assert brute_force(ref, [-1000.0, 0.0, 0.0]) == pytest.approx(-3.0)


def test_initial_mode_since_carries_the_minimum_on_time_into_the_horizon() -> None:
    """On for 1 h of a 3 h minimum: hours 0 and 1 stay on although they lose money."""
    device = CHP | {
        "initial-mode": "on",
        "initial-mode-since": (START - timedelta(hours=1)).isoformat(),
    }
    prices = [-100.0, -100.0, -100.0, -100.0]
    result = schedule(request(device, prices))
    assert result["devices"][0]["power"]["values"] == [-20, -20, 0, 0]
    # each forced hour: 20 kW at -100 EUR/MWh is 2 EUR paid, plus 2 EUR running
    assert result["cost"]["value"] == pytest.approx(8.0)
    ref = Ref(lo=[0, -50], hi=[0, -20], run=[0, 2], start_cost=5, min_on=3, initial=1, since=1)
    assert brute_force(ref, prices) == pytest.approx(8.0)
    # long enough on: free to stop at once
    long_ago = device | {"initial-mode-since": (START - timedelta(hours=5)).isoformat()}
    assert schedule(request(long_ago, prices))["cost"]["value"] == pytest.approx(0.0)


def test_min_on_time_against_power_fixed_is_named() -> None:
    device = CHP | {
        "initial-mode": "on",
        "initial-mode-since": START.isoformat(),
        "power-fixed": [{"start": START.isoformat(), "duration": "PT2H", "value": "0 kW"}],
    }
    with pytest.raises(InfeasibleError) as info:
        SiteProblem(request(device, CHP_PRICES)).solve()
    # the on mode cannot run at 0 kW, and the 3 h minimum holds it on through hour 2
    assert info.value.constraint == "operation-mode-min-on"
    assert info.value.time in (START, START + timedelta(hours=1))
    assert "power-fixed of chp" in str(info.value)
    assert info.value.device == "chp"


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"modes": []}, "modes"),
        ({"modes": [{"name": "a"}]}, "modes[0].power"),
        ({"modes": [{"name": "a", "power": "1 kW", "min-power": "0 kW"}]}, "modes[0].power"),
        (
            {"modes": [{"name": "a", "min-power": "2 kW", "max-power": "1 kW"}]},
            "modes[0].min-power",
        ),
        (
            {"modes": [{"name": "a", "power": "1 kW"}, {"name": "a", "power": "2 kW"}]},
            "modes[1].name",
        ),
        ({"modes": [{"name": "a", "power": "1 kW", "cost": "3 EUR"}]}, "modes[0].cost"),
        ({"transitions": [{"from": "off", "to": "nope"}]}, "transitions[0].to"),
        ({"transitions": [{"from": "off", "to": "off"}]}, "transitions[0].to"),
        (
            {"transitions": [{"from": "off", "to": "on", "start-timers": ["x"]}]},
            "transitions[0].start-timers[0]",
        ),
        ({"transitions": [{"from": "off", "to": "on", "cost": "-1 EUR"}]}, "transitions[0].cost"),
        ({"start-cost": "-1 EUR"}, "start-cost"),
        ({"start-cost": "5"}, "start-cost"),
        ({"min-on-duration": "-PT1H"}, "min-on-duration"),
        ({"initial-mode": "nope"}, "initial-mode"),
        ({"initial-mode-since": START.isoformat()}, "initial-mode-since"),
        (
            {"initial-mode": "on", "initial-mode-since": (START + timedelta(hours=1)).isoformat()},
            "initial-mode-since",
        ),
        (
            {"timers": [{"name": "x", "duration": "PT1H"}, {"name": "x", "duration": "PT1H"}]},
            "timers[1].name",
        ),
    ],
)
def test_bad_fields_are_named(change: dict[str, Any], where: str) -> None:
    with pytest.raises(RequestValidationError) as info:
        schedule(request(CHP | change, CHP_PRICES))
    assert next(i.field for i in info.value.issues) == f"flex-model[0].{where}"


def test_min_times_and_start_cost_need_an_off_mode() -> None:
    device = {
        "type": "modes",
        "modes": [{"name": "low", "power": "1 kW"}, {"name": "high", "power": "3 kW"}],
        "min-off-duration": "PT2H",
        "start-cost": "1 EUR",
    }
    with pytest.raises(RequestValidationError) as info:
        schedule(request(device, [1.0, 2.0]))
    assert {i.field for i in info.value.issues} == {
        "flex-model[0].min-off-duration",
        "flex-model[0].start-cost",
    }


# -- against the brute force, at random ------------------------------------------------


@st.composite
def cases(draw: st.DrawFn) -> tuple[Ref, list[float]]:
    n = draw(st.integers(3, 5))
    modes = draw(st.integers(2, 3))
    lo: list[float] = [0.0]
    hi: list[float] = [0.0]
    for _ in range(modes - 1):
        a = draw(st.sampled_from([-6.0, -3.0, 2.0, 4.0]))
        width = draw(st.sampled_from([0.0, 2.0]))
        lo.append(a)
        hi.append(a + width)
    if draw(st.booleans()):  # sometimes no off mode at all
        lo[0] = hi[0] = draw(st.sampled_from([1.0, -1.0]))
    run = [draw(st.sampled_from([0.0, 0.0, 1.0, 0.5])) for _ in range(modes)]
    arcs = [(a, b) for a in range(modes) for b in range(modes) if a != b]
    allowed = None
    if draw(st.booleans()):
        kept = draw(st.lists(st.sampled_from(arcs), unique=True, min_size=1))
        allowed = {arc: draw(st.sampled_from([0.0, 0.5, 2.0])) for arc in kept}
    ref = Ref(lo, hi, run, allowed)
    has_off = any(ref.off(m) for m in range(modes))
    if has_off:
        ref.start_cost = draw(st.sampled_from([0.0, 0.0, 1.5]))
        ref.min_on = draw(st.integers(0, 3))
        ref.min_off = draw(st.integers(0, 3))
    if draw(st.booleans()):
        ref.min_mode = [draw(st.integers(0, 3)) for _ in range(modes)]
    if draw(st.booleans()):
        ref.initial = draw(st.integers(0, modes - 1))
        if draw(st.booleans()):
            ref.since = draw(st.integers(0, 3))
    if allowed and draw(st.booleans()):
        listed = sorted(allowed)
        steps = draw(st.integers(1, 3))
        starts = draw(st.lists(st.sampled_from(listed), unique=True, max_size=2))
        blocks = draw(st.lists(st.sampled_from(listed), unique=True, max_size=2))
        ref.timers = [(steps, starts, blocks, draw(st.integers(0, 2)))]
    prices = [draw(st.sampled_from([-300.0, -50.0, 0.0, 80.0, 400.0])) for _ in range(n)]
    return ref, prices


@settings(max_examples=60, deadline=None)
@given(cases())
def test_the_optimum_is_the_brute_force_optimum(case: tuple[Ref, list[float]]) -> None:
    ref, prices = case
    best = brute_force(ref, prices)
    if math.isinf(best):
        with pytest.raises(InfeasibleError):
            vpp_cost(ref, prices)
    else:
        assert vpp_cost(ref, prices) == pytest.approx(best, abs=1e-6)


# -- in a portfolio --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "chp", "cost"),
    [
        # alone, as above: -8 EUR, plus the house's 40 kW at 440 EUR/MWh-hours: 17.6 EUR
        (None, [0, -50, -50, -50, -50, 0], 9.6),
        # 10 kW at most: the CHP offsets 30 kW or more every hour, so it runs all six:
        # 17.6 - 22 (produced) + 12 (running) + 5 (one start)
        ({"type": "congestion", "max-consumption": "10 kW"}, [-50] * 6, 12.6),
    ],
)
def test_a_portfolio_schedules_the_chp_centralised_and_by_admm(
    target: dict[str, Any] | None, chp: list[float], cost: float
) -> None:
    from vpp.admm import AdmmSettings, LocalPool, solve_portfolio_admm
    from vpp.portfolio import (
        CentralisedPortfolio,
        build_sites,
        parse_portfolio,
        price_scale,
        resolve_target,
    )

    house = {"name": "house", "type": "inflexible", "power": "40 kW"}
    parsed = parse_portfolio(
        {
            **{k: v for k, v in request(CHP, CHP_PRICES).items() if k != "flex-model"},
            "sites": [{"id": "a", "flex-model": [CHP]}, {"id": "b", "flex-model": [house]}],
            "target": target,
        }
    )
    central = CentralisedPortfolio(parsed).solve().to_json()
    pool = LocalPool([s.id for s in parsed.sites], build_sites(parsed))
    admm = solve_portfolio_admm(
        parsed, pool, resolve_target(parsed), price_scale(parsed), AdmmSettings()
    ).to_json()
    for result in (central, admm):
        assert result["portfolio"]["cost"]["value"] == pytest.approx(cost, abs=1e-6)
        (site_a,) = [s for s in result["sites"] if s["id"] == "a"]
        assert site_a["devices"][0]["power"]["values"] == pytest.approx(chp, abs=1e-6)


# -- the worked example in docs/flex-model.md --------------------------------------------


def test_the_docs_worked_example() -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "flex-model.md").read_text()
    section = text[text.index("## Operation modes") :]
    blocks = re.findall(r"```json\n(.*?)```", section, flags=re.S)
    body, expected = json.loads(blocks[0]), json.loads(blocks[1])
    assert body["flex-model"][0] | {"name": "chp"} == CHP  # the hand-derived case above
    result = schedule(body)
    assert result["cost"] == pytest.approx(expected["cost"])
    (entry,) = result["devices"]
    (want,) = expected["devices"]
    assert {k: entry[k] for k in want} == want


# -- a heat pump switched on and off ----------------------------------------------------

HEAT_PUMP = {
    "type": "heat",
    "name": "hp",
    "soc-at-start": "0 kWh",
    "soc-max": "20 kWh",
    "cop": 3,
    "heat-demand": "6 kW",
    "power-capacity": "8 kW",
}
HEAT_PRICES = [10.0, 100.0, 100.0, 20.0]
DEMAND_9 = {"heat-demand": "9 kW"}
PRICES_9 = [10.0, 100.0, 20.0, 100.0]


@pytest.mark.parametrize(
    ("fields", "prices", "power", "cost"),
    [
        # continuous: 24 kWh of heat in hour 0 (8 kW at 10) covers all four hours' 6 kW
        ({}, HEAT_PRICES, [8, 0, 0, 0], 0.08),
        # a start costs 1 EUR: still one start, in hour 0
        ({"start-cost": "1 EUR", "min-power": "4 kW"}, HEAT_PRICES, [8, 0, 0, 0], 1.08),
        # and on for 2 h at 4 kW or more: hour 1 at 4 kW (0.4 EUR), so hour 0 needs only 4 kW
        (
            {"start-cost": "1 EUR", "min-power": "4 kW", "min-on-duration": "PT2H"},
            HEAT_PRICES,
            [4, 4, 0, 0],
            1.44,
        ),
        # 9 kW of heat: 8 kW in hour 0 leaves 12 kWh for hour 2, at 20: 4 kW
        (DEMAND_9 | {"min-power": "4 kW", "start-cost": "0 EUR"}, PRICES_9, [8, 0, 4, 0], 0.16),
        # off for 2 h once off: hour 2 cannot follow an off hour 1, so 4 kW at 100 in hour 1
        (
            DEMAND_9 | {"min-power": "4 kW", "min-off-duration": "PT2H"},
            PRICES_9,
            [8, 4, 0, 0],
            0.48,
        ),
    ],
)
def test_a_heat_pump_with_a_start_cost_and_minimum_times(
    fields: dict[str, Any], prices: list[float], power: list[float], cost: float
) -> None:
    """Hand-derived: the demand is 6 kW of heat (2 kW electric at COP 3) or 9 kW every hour,
    the buffer holds 20 kWh, starting empty."""
    result = schedule(request(HEAT_PUMP | fields, prices))
    assert result["devices"][0]["power"]["values"] == pytest.approx(power, abs=1e-6)
    assert result["cost"]["value"] == pytest.approx(cost, abs=1e-9)


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"min-power": "1 kW"}, "min-power"),
        ({"min-on-duration": "PT1H"}, "min-on-duration"),
        ({"start-cost": "-1 EUR"}, "start-cost"),
        ({"start-cost": "1 EUR", "min-power": "-1 kW"}, "min-power"),
    ],
)
def test_a_heat_pump_refuses_on_off_fields_that_do_not_hold(
    fields: dict[str, Any], where: str
) -> None:
    with pytest.raises(RequestValidationError) as info:
        schedule(request(HEAT_PUMP | fields, HEAT_PRICES))
    assert [i.field for i in info.value.issues] == [f"flex-model[0].{where}"]


def heat_brute_force(
    prices: list[float],
    *,
    cap: float,
    demand: float,
    soc0: float,
    soc_max: float,
    min_power: float,
    min_on: int,
    min_off: int,
    start_cost: float,
) -> float:
    """Every on/off sequence (off before the start) that keeps the minimum times, each with
    its best power by a small LP built with highspy (tests/reference.py's builder); COP 3,
    1 h steps."""
    from reference import _Builder

    n, best = len(prices), math.inf
    for seq in itertools.product((0, 1), repeat=n):
        if not held(seq, 0, bool, min_on, 0) or not held(seq, 0, lambda m: not m, min_off, 0):
            continue
        b = _Builder()
        lower = [min_power * on for on in seq]
        upper = [cap * on for on in seq]
        p = b.var(n, np.array(lower), np.array(upper), np.array(prices) / 1000.0)
        for t in range(n):  # 0 <= soc[t+1] = soc0 + sum_{k<=t} (3 p[k] - demand) <= soc_max
            b.row(
                list(p[: t + 1]),
                [3.0] * (t + 1),
                (t + 1) * demand - soc0,
                soc_max - soc0 + (t + 1) * demand,
            )
        status, _, cost = b.solve()
        if status == "optimal":
            starts = sum(1 for t in range(n) if seq[t] and not (seq[t - 1] if t else 0))
            best = min(best, cost + start_cost * starts)
    return best


@settings(max_examples=40, deadline=None)
@given(
    prices=st.lists(st.sampled_from([-50.0, 0.0, 20.0, 100.0, 300.0]), min_size=4, max_size=4),
    cap=st.sampled_from([4.0, 8.0]),
    demand=st.sampled_from([3.0, 6.0, 9.0]),
    soc0=st.sampled_from([0.0, 6.0]),
    soc_max=st.sampled_from([12.0, 20.0, 30.0]),
    min_power=st.one_of(st.none(), st.sampled_from([1.0, 4.0])),
    min_on=st.one_of(st.none(), st.integers(1, 3)),
    min_off=st.one_of(st.none(), st.integers(1, 3)),
    start_cost=st.one_of(st.none(), st.sampled_from([0.0, 0.5, 2.0])),
)
def test_a_heat_pump_matches_the_brute_force(
    prices: list[float],
    cap: float,
    demand: float,
    soc0: float,
    soc_max: float,
    min_power: float | None,
    min_on: int | None,
    min_off: int | None,
    start_cost: float | None,
) -> None:
    """Each on/off field present or absent: the optimum is the brute force's (or both find
    no schedule)."""
    on_off = min_on is not None or min_off is not None or start_cost is not None
    if min_on is not None and min_power is None:
        min_power = 1.0  # min-on-duration needs min-power (refusal tested above)
    if not on_off:
        min_power = None  # min-power alone is refused (tested above)
    device = HEAT_PUMP | {
        "soc-at-start": f"{soc0} kWh",
        "soc-max": f"{soc_max} kWh",
        "heat-demand": f"{demand} kW",
        "power-capacity": f"{cap} kW",
    }
    for key, value in (
        ("min-power", None if min_power is None else f"{min_power} kW"),
        ("min-on-duration", None if min_on is None else f"PT{min_on}H"),
        ("min-off-duration", None if min_off is None else f"PT{min_off}H"),
        ("start-cost", None if start_cost is None else f"{start_cost} EUR"),
    ):
        if value is not None:
            device[key] = value
    best = heat_brute_force(
        prices,
        cap=cap,
        demand=demand,
        soc0=soc0,
        soc_max=soc_max,
        min_power=min_power or 0.0,
        min_on=min_on or 0,
        min_off=min_off or 0,
        start_cost=start_cost or 0.0,
    )
    if math.isinf(best):
        with pytest.raises(InfeasibleError):
            schedule(request(device, prices))
    else:
        assert schedule(request(device, prices))["cost"]["value"] == pytest.approx(best, abs=1e-6)


# -- rounding, timers and per-mode minimums by hand ------------------------------------


def test_a_minimum_that_is_not_a_multiple_of_the_resolution_rounds_up() -> None:
    """25 min on a 15-min grid holds 2 steps: producing 20 kW for 15 min earns 1 EUR at
    200 EUR/MWh, and the start holds the CHP on through the next step at -100 EUR/MWh
    (0.5 EUR paid): -0.5 EUR. (Rounded down, one step: -1 EUR; starting a step earlier
    pays 1 EUR at -200.)"""
    device = {
        "type": "modes",
        "modes": [{"name": "off", "power": "0 kW"}, {"name": "on", "power": "-20 kW"}],
        "min-on-duration": "PT25M",
    }
    body = request(device, [-200.0, 200.0, -100.0, -50.0])
    body["duration"], body["resolution"] = "PT1H", "PT15M"
    result = schedule(body)
    assert result["devices"][0]["power"]["values"] == [0, -20, -20, 0]
    assert result["cost"]["value"] == pytest.approx(-0.5)


def test_a_running_timer_that_blocks_the_only_way_off_is_named() -> None:
    """The timer runs until 02:00 and blocks on -> off; a power-fixed of 0 kW at 01:00
    cannot be met."""
    device = CHP | {
        "initial-mode": "on",
        "transitions": [
            {"from": "off", "to": "on"},
            {"from": "on", "to": "off", "blocking-timers": ["warm-up"]},
        ],
        "timers": [
            {
                "name": "warm-up",
                "duration": "PT1H",
                "finished-at": (START + timedelta(hours=2)).isoformat(),
            }
        ],
        "power-fixed": [
            {"start": (START + timedelta(hours=1)).isoformat(), "duration": "PT1H", "value": "0 kW"}
        ],
    }
    with pytest.raises(InfeasibleError) as info:
        schedule(request(device, CHP_PRICES))
    assert info.value.constraint in ("operation-mode-timer", "power-fixed")
    assert "operation-mode-timer of chp" in str(info.value)
    # the timer finished at the start: off at once
    device["timers"][0]["finished-at"] = START.isoformat()
    assert schedule(request(device, CHP_PRICES))["devices"][0]["power"]["values"][1] == 0


def test_a_mode_with_its_own_minimum_duration() -> None:
    """Boost (4 kW) holds 3 h once entered, normal (1 kW) does not: boosting for the one
    negative hour costs more than it earns, so the load stays at 1 kW."""
    device = {
        "type": "modes",
        "modes": [
            {"name": "normal", "power": "1 kW"},
            {"name": "boost", "power": "4 kW", "min-duration": "PT3H"},
        ],
        "initial-mode": "normal",
    }
    # boost for hours 0-2: 3 kW more at -100, 100, 100: +0.3 EUR; staying normal is cheaper
    result = schedule(request(device, [-100.0, 100.0, 100.0, 100.0]))
    assert result["devices"][0]["power"]["values"] == [1, 1, 1, 1]
    assert result["cost"]["value"] == pytest.approx(0.2)
    # without the minimum, boosting in hour 0 alone saves 0.3 EUR
    del device["modes"][1]["min-duration"]
    assert schedule(request(device, [-100.0, 100.0, 100.0, 100.0]))["cost"]["value"] == (
        pytest.approx(-0.1)
    )
