"""Property tests over random feasible storage sites.

Feasibility is built in: every device follows a random trajectory that respects its power
and SoC limits, targets are read off that trajectory, minima/maxima are placed around it and
the site capacity is chosen above the trajectory's net power (``reference.random_site``).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import device_arrays, random_site, settle, simulate_soc, solve_site

from vpp.site import schedule

PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

site_options = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32 - 1),
        "steps": st.sampled_from([8, 24, 48, 96]),
        "minutes": st.sampled_from([15, 30, 60]),
        "n_storage": st.integers(1, 2),
        "efficiency": st.sampled_from(["split", "roundtrip", "series", "none"]),
        "keep": st.booleans(),
        "usage": st.booleans(),
        "targets": st.integers(0, 3),
        "bounds": st.integers(0, 2),
        "availability": st.booleans(),
        "fixed": st.booleans(),
        "capacity": st.booleans(),
        "load": st.booleans(),
        "spread": st.sampled_from(["equal", "lower", "lower", "higher"]),
        "negative_prices": st.booleans(),
    }
)


@PROPERTY_SETTINGS
@given(options=site_options)
def test_random_feasible_site(options):
    options = dict(options)
    seed = options.pop("seed")
    if options["spread"] == "higher":  # import/export binaries at every step: keep it small
        options["steps"] = min(options["steps"], 24)
    case = random_site(np.random.default_rng(seed), **options)
    result = schedule(case.request)
    dev = device_arrays(result)
    site, dt = case.site, case.dt
    n = site.steps
    for s in case.storages:
        p, soc = dev[s.name]["power"], dev[s.name]["soc"]
        assert len(p) == n and len(soc) == n + 1
        assert soc[0] == pytest.approx(s.soc0, abs=1e-9)
        # SoC within bounds (incl. minima/maxima) and on every target
        assert (soc >= s.lower - 1e-6).all(), "soc below its lower bound"
        assert (soc <= s.upper + 1e-6).all(), "soc above its upper bound"
        for k, v in s.targets.items():
            assert soc[k] == pytest.approx(v, abs=1e-6)
        # power within the capacities (0 outside availability) and power-fixed commitments
        assert (p <= s.charge_max + 1e-6).all() and (p >= -s.discharge_max - 1e-6).all()
        fixed = ~np.isnan(s.net_lower)
        assert (p[fixed] >= s.net_lower[fixed] - 1e-6).all()
        assert (p[fixed] <= s.net_upper[fixed] + 1e-6).all()
        # the SoC is what the power does to the store
        sim = simulate_soc(p, s.soc0, s.eta_c, s.eta_d, s.keep, s.usage, dt)
        np.testing.assert_allclose(soc, sim, atol=1e-6)
    site_power = np.array(result["site"]["power"]["values"])
    expected = np.asarray(site.inflexible) + sum(dev[s.name]["power"] for s in case.storages)
    np.testing.assert_allclose(site_power, expected, atol=1e-6)
    assert (site_power <= np.asarray(site.consumption_capacity) + 1e-6).all()
    assert (site_power >= -np.asarray(site.production_capacity) - 1e-6).all()
    # the cost is the prices times the returned net power ...
    cost = result["cost"]["value"]
    recomputed = settle(site_power, site.consumption_price, site.production_price, dt)
    assert cost == pytest.approx(recomputed, rel=1e-6, abs=1e-8)
    # ... and the optimum of the independent reference
    ref = solve_site(site)
    assert ref.status == "optimal"
    assert cost == pytest.approx(ref.cost, rel=1e-6, abs=1e-8)


@PROPERTY_SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([0.5, 2.0, 10.0]),
)
def test_cost_scales_with_prices(seed, scale):
    """Multiplying every price by a positive factor scales the optimal cost by it."""
    case = random_site(np.random.default_rng(seed), steps=24, minutes=60, targets=1, spread="lower")
    base = schedule(case.request)["cost"]["value"]
    request = dict(case.request)
    context = dict(request["flex-context"])
    for key in ("consumption-price", "production-price"):
        context[key] = {"values": [v * scale for v in context[key]["values"]], "unit": "EUR/MWh"}
    request["flex-context"] = context
    scaled = schedule(request)["cost"]["value"]
    assert scaled == pytest.approx(base * scale, rel=1e-6, abs=1e-8)
