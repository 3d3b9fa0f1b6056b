"""Shiftable processes against brute force over every admissible placement.

SHIFTABLE: every start step whose run fits the window (and availability); BREAKABLE: every
ordered choice of window steps; INFLEXIBLE: the one placement at earliest-start. The cost
of a placement is computed here with numpy (site net power times prices), and the optimum
is the minimum over placements that respect the site capacity.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from reference import device_arrays, settle

from vpp.errors import InfeasibleError
from vpp.site import SiteProblem, schedule

START = datetime.fromisoformat("2026-03-02T00:00:00+01:00")
REL, ABS = 1e-6, 1e-9


def t(k: int, minutes: int = 60) -> str:
    return (START + k * timedelta(minutes=minutes)).isoformat()


def shiftable_starts(
    profile: np.ndarray, first: int, stop: int, available: np.ndarray
) -> Iterator[np.ndarray]:
    n, m = len(available), len(profile)
    for j in range(first, stop - m + 1):
        if available[j : j + m].all():
            p = np.zeros(n)
            p[j : j + m] = profile
            yield p


def breakable_placements(
    profile: np.ndarray, first: int, stop: int, available: np.ndarray
) -> Iterator[np.ndarray]:
    n = len(available)
    window = [k for k in range(first, stop) if available[k]]
    for steps in itertools.combinations(window, len(profile)):  # increasing: in order
        p = np.zeros(n)
        p[list(steps)] = profile
        yield p


def brute_force(
    placements: list[list[np.ndarray]],
    base: np.ndarray,
    cp: np.ndarray,
    pp: np.ndarray,
    dt: float,
    cap: float = np.inf,
) -> float:
    """Least cost over all combinations of one placement per process (site within cap)."""
    best = np.inf
    for combo in itertools.product(*placements):
        net = base + sum(combo, np.zeros(len(base)))
        if (np.abs(net) > cap + 1e-9).any():
            continue
        best = min(best, settle(net, cp, pp, dt))
    return best


def request(
    devices: list[dict[str, Any]],
    cp: np.ndarray,
    pp: np.ndarray | None = None,
    load: np.ndarray | None = None,
    minutes: int = 60,
    cap: float | None = None,
) -> dict[str, Any]:
    n = len(cp)
    ctx: dict[str, Any] = {
        "consumption-price": {"values": [float(v) for v in cp], "unit": "EUR/MWh"}
    }
    if pp is not None:
        ctx["production-price"] = {"values": [float(v) for v in pp], "unit": "EUR/MWh"}
    if load is not None:
        ctx["inflexible-devices"] = {"house": {"values": [float(v) for v in load], "unit": "kW"}}
    if cap is not None:
        ctx["site-power-capacity"] = f"{cap} kW"
    return {
        "start": START.isoformat(),
        "duration": f"PT{n * minutes}M",
        "resolution": f"PT{minutes}M",
        "flex-model": devices,
        "flex-context": ctx,
    }


def process(
    profile: list[float] | float,
    kind: str = "SHIFTABLE",
    name: str = "process",
    duration: int | None = None,
    first: int | None = None,
    stop: int | None = None,
    minutes: int = 60,
    availability: list[tuple[int, int]] | None = None,
) -> dict[str, Any]:
    d: dict[str, Any] = {"type": "shiftable", "name": name, "process-type": kind}
    if isinstance(profile, list):
        d["power"] = {"values": profile, "unit": "kW"}
    else:
        d["power"] = f"{profile} kW"
        d["duration"] = f"PT{duration * minutes}M"
    if first is not None:
        d["earliest-start"] = t(first, minutes)
    if stop is not None:
        d["latest-end"] = t(stop, minutes)
    if availability is not None:
        d["availability"] = [
            {"start": t(a, minutes), "end": t(b, minutes)} for a, b in availability
        ]
    return d


def check_process(
    power: np.ndarray, profile: np.ndarray, kind: str, first: int, stop: int, available: np.ndarray
) -> None:
    """The returned power is one admissible placement of the profile."""
    n = len(power)
    outside = np.ones(n, bool)
    outside[first:stop] = False
    assert np.abs(power[outside | ~available]).max(initial=0.0) < 1e-6, "runs outside window"
    options = (shiftable_starts if kind == "SHIFTABLE" else breakable_placements)(
        profile, first, stop, available
    )
    assert any(np.abs(power - p).max() < 1e-6 for p in options), f"not a placement: {power}"


# -- hand-derived ---------------------------------------------------------------------------


def test_shiftable_runs_in_cheapest_block():
    # 2 h of 3 kW; prices 50 80 20 30 90: the cheapest consecutive pair is steps 2-3
    # (20 + 30) -> 3 kWh * 0.02 + 3 kWh * 0.03 = 0.15 EUR
    cp = np.array([50, 80, 20, 30, 90.0])
    result = schedule(request([process(3.0, duration=2)], cp))
    assert result["cost"]["value"] == pytest.approx(0.15, rel=REL, abs=ABS)
    np.testing.assert_allclose(
        device_arrays(result)["process"]["power"], [0, 0, 3, 3, 0], atol=1e-6
    )


def test_breakable_skips_the_dear_hour():
    # profile 1, 2, 3 kW in order; prices 10 90 20 30 90: steps 0, 2, 3 cost
    # 1*0.01 + 2*0.02 + 3*0.03 = 0.14
    cp = np.array([10, 90, 20, 30, 90.0])
    result = schedule(request([process([1.0, 2.0, 3.0], "BREAKABLE")], cp))
    assert result["cost"]["value"] == pytest.approx(0.14, rel=REL, abs=ABS)
    np.testing.assert_allclose(
        device_arrays(result)["process"]["power"], [1, 0, 2, 3, 0], atol=1e-6
    )


def test_inflexible_starts_at_earliest_start():
    # 2 kW for 2 h from 01:00, whatever the prices: 2*0.09 + 2*0.01 = 0.20
    cp = np.array([10, 90, 10, 10.0])
    result = schedule(request([process(2.0, "INFLEXIBLE", duration=2, first=1)], cp))
    assert result["cost"]["value"] == pytest.approx(0.2, rel=REL, abs=ABS)
    np.testing.assert_allclose(device_arrays(result)["process"]["power"], [0, 2, 2, 0], atol=1e-6)


def test_shiftable_uses_own_pv_before_cheap_import():
    # PV surplus sells at only 10 while import costs 100: run the 4 kW process where the
    # house's -4 kW surplus is (step 3): net 0 there, cost = the other steps' house load
    cp, pp = np.full(5, 100.0), np.full(5, 10.0)
    load = np.array([1, 1, 1, -4, 1.0])
    result = schedule(request([process(4.0, duration=1)], cp, pp, load))
    # steps 0,1,2,4 import 1 kW each at 100: 0.40
    assert result["cost"]["value"] == pytest.approx(0.4, rel=REL, abs=ABS)


# -- brute force ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_random_processes_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 13))
    minutes = int(rng.choice([15, 60]))
    dt = minutes / 60
    cp = np.round(rng.uniform(-20, 150, n), 2)
    pp = np.round(cp - rng.uniform(0, 50, n), 2)
    load = np.round(rng.uniform(-3, 3, n), 3)
    devices, placements, specs = [], [], []
    for i in range(int(rng.integers(1, 3))):
        kind = str(rng.choice(["SHIFTABLE", "BREAKABLE", "INFLEXIBLE"]))
        m = int(rng.integers(1, 4))
        constant = bool(rng.random() < 0.4)
        profile = (
            np.full(m, float(np.round(rng.uniform(0.5, 5), 2)))
            if constant
            else np.round(rng.uniform(-1, 5, m), 2)
        )
        first = int(rng.integers(0, n - m - 1))
        stop = int(rng.integers(first + m + 1, n + 1)) if kind != "INFLEXIBLE" else n
        available = np.ones(n, bool)
        availability = None
        if kind == "BREAKABLE" and rng.random() < 0.5:  # a gap inside the window
            gap = int(rng.integers(first, stop))
            available[gap] = False
            availability = [(0, gap), (gap + 1, n)] if gap + 1 < n else [(0, gap)]
            if available[first:stop].sum() < m:
                available[gap] = True
                availability = None
        name = f"p{i}"
        devices.append(
            process(
                list(profile) if not constant else float(profile[0]),
                kind,
                name,
                duration=m if constant else None,
                first=first,
                stop=stop if kind != "INFLEXIBLE" else None,
                minutes=minutes,
                availability=availability,
            )
        )
        if kind == "INFLEXIBLE":
            fixed = np.zeros(n)
            fixed[first : first + m] = profile
            placements.append([fixed])
        elif kind == "SHIFTABLE":
            placements.append(list(shiftable_starts(profile, first, stop, available)))
        else:
            placements.append(list(breakable_placements(profile, first, stop, available)))
        specs.append((name, profile, kind, first, stop, available))
    expected = brute_force(placements, load, cp, pp, dt)
    result = schedule(request(devices, cp, pp, load, minutes))
    assert result["cost"]["value"] == pytest.approx(expected, rel=REL, abs=ABS)
    dev = device_arrays(result)
    for name, profile, kind, first, stop, available in specs:
        if kind == "INFLEXIBLE":
            fixed = np.zeros(n)
            fixed[first : first + len(profile)] = profile
            np.testing.assert_allclose(dev[name]["power"], fixed, atol=1e-6)
        else:
            check_process(dev[name]["power"], profile, kind, first, stop, available)
    total = load + sum(dev[name]["power"] for name, *_ in specs)
    np.testing.assert_allclose(result["site"]["power"]["values"], total, atol=1e-6)


@pytest.mark.parametrize("kind", ["SHIFTABLE", "BREAKABLE"])
def test_site_capacity_excludes_placements(kind):
    # the house takes 6 kW at the cheap steps; a 4 kW process on an 8 kW connection must
    # avoid them: brute force over placements that keep |site power| <= 8 kW
    cp = np.array([10, 20, 60, 30, 70, 80, 15, 90.0])
    load = np.array([6, 6, 1, 1, 1, 1, 6, 1.0])
    profile = np.array([4.0, 3.0])
    available = np.ones(8, bool)
    gen = shiftable_starts if kind == "SHIFTABLE" else breakable_placements
    expected = brute_force([list(gen(profile, 0, 8, available))], load, cp, cp, 1.0, cap=8.0)
    result = schedule(request([process([4.0, 3.0], kind)], cp, load=load, cap=8.0))
    assert result["cost"]["value"] == pytest.approx(expected, rel=REL, abs=ABS)
    power = device_arrays(result)["process"]["power"]
    check_process(power, profile, kind, 0, 8, available)
    assert (np.abs(load + power) <= 8 + 1e-6).all()


def test_shiftable_with_battery_matches_brute_force():
    # a battery with no losses and plenty of room: for each start of the process the best
    # battery schedule is independent LP; here the battery is pinned (power-fixed 0), so
    # the optimum is the process's brute force alone
    cp = np.array([40, 10, 30, 25, 80, 60.0])
    battery = {
        "name": "b",
        "soc-at-start": "0 kWh",
        "soc-max": "5 kWh",
        "power-capacity": "2 kW",
        "power-fixed": [{"start": t(0), "end": t(6), "value": "0 kW"}],
    }
    result = schedule(request([battery, process([2.0, 1.0, 2.0], "SHIFTABLE")], cp))
    expected = brute_force(
        [list(shiftable_starts(np.array([2, 1, 2.0]), 0, 6, np.ones(6, bool)))],
        np.zeros(6),
        cp,
        cp,
        1,
    )
    assert result["cost"]["value"] == pytest.approx(expected, rel=REL, abs=ABS)


# -- windows that cannot hold the run -----------------------------------------------------


def test_breakable_constant_window_too_small():
    cp = np.full(4, 50.0)
    with pytest.raises(InfeasibleError) as info:
        SiteProblem(request([process(3.0, "BREAKABLE", duration=3, first=2)], cp)).solve()
    assert info.value.constraint == "process-window"
    assert info.value.device == "process"


@pytest.mark.parametrize(
    "device",
    [
        process(3.0, "SHIFTABLE", duration=2, first=2, stop=3),  # window of 1 step
        process(3.0, "SHIFTABLE", duration=6),  # longer than the horizon
        process([1.0, 2.0], "SHIFTABLE", availability=[(0, 1), (2, 3)]),  # gaps everywhere
        process([1.0, 2.0, 3.0], "BREAKABLE", first=4),  # empty window (at the end)
        process([1.0, 2.0, 3.0], "BREAKABLE", first=1, availability=[(0, 1)]),  # none free
        process(3.0, "INFLEXIBLE", duration=3, first=2),  # runs past the horizon
    ],
    ids=[
        "shiftable-short-window",
        "shiftable-long",
        "shiftable-gaps",
        "breakable-empty",
        "breakable-unavailable",
        "inflexible-past-end",
    ],
)
def test_window_too_small_is_infeasible(device):
    cp = np.full(4, 50.0)
    with pytest.raises(InfeasibleError) as info:
        SiteProblem(request([device], cp)).solve()
    assert info.value.constraint == "process-window"
    assert info.value.device == "process"
