"""Issue 10: a portfolio result earns its status.

- a site whose own code raises fails the job and names the site (never "degraded");
- every result carries a Lagrangian lower bound that never exceeds the optimum built
  independently (tests/reference.py), and a certified gap;
- ``converged`` means the stopping rule held; the iteration cap and the time limit say so;
- ``method``, ``gap-tolerance``, ``max-iterations``, ``time-limit`` and ``compare`` are
  request fields, checked like every other field;
- the warm-start key follows the portfolio's structure, not only its ids.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from db_fixtures import fresh_database
from reference import portfolio_reference
from test_actors import congested, run_on_ray, uses_ray
from test_portfolio import batteries, congestion, market, mixed

from actors.coordinator import warm_key
from actors.job_service import execute_job
from actors.run import run_portfolio
from actors.site import SiteShard
from store import make_engine, session_factory, upgrade
from store import repository as repo
from vpp.admm import AdmmSettings, LocalPool, solve_portfolio_admm
from vpp.errors import RequestValidationError, SiteFailedError, SolverError
from vpp.portfolio import (
    AUTO_ADMM_MIN_SITES,
    CentralisedPortfolio,
    PortfolioRequest,
    Target,
    build_sites,
    choose_method,
    parse_portfolio,
    price_scale,
    resolve_target,
)


def run_local(request: dict[str, Any], **settings: Any) -> dict[str, Any]:
    parsed = parse_portfolio(request)
    pool = LocalPool([s.id for s in parsed.sites], build_sites(parsed))
    result = solve_portfolio_admm(
        parsed, pool, resolve_target(parsed), price_scale(parsed), AdmmSettings(**settings)
    )
    return result.to_json()


def tolerance(optimum: float) -> float:
    return 1e-6 * max(1.0, abs(optimum))


# -- (1) an error is an error ------------------------------------------------------------------


class BoomError(RuntimeError):
    pass


def test_a_site_raising_in_its_x_update_fails_the_job_naming_it():
    request = congestion(mixed(4, 3), 0.7)
    parsed = parse_portfolio(request)
    sites = build_sites(parsed)

    def boom(*args: Any, **kwargs: Any) -> np.ndarray:
        raise BoomError("injected")

    sites[2].prox = boom  # type: ignore[method-assign]
    pool = LocalPool([s.id for s in parsed.sites], sites)
    with pytest.raises(SiteFailedError) as caught:
        solve_portfolio_admm(parsed, pool, resolve_target(parsed), price_scale(parsed))
    assert caught.value.site == "site-2"
    assert "site-2" in caught.value.message and "BoomError: injected" in caught.value.message
    problem = caught.value.to_problem()
    assert problem["site"] == "site-2" and problem["status"] == 500


class RaisingShard(SiteShard):
    """The shard holding ``victim`` has that site's x-update raise from its third call."""

    victim = "site-2"

    def x_update(self, rho: float, targets: np.ndarray, accuracy: float, rows: list[int]) -> Any:
        self.calls = getattr(self, "calls", 0) + 1
        if self.victim in self.ids and self.calls == 3:
            site = self.sites[self.ids.index(self.victim)]

            def boom(*args: Any, **kwargs: Any) -> np.ndarray:
                raise ZeroDivisionError("injected into the x-update")

            site.prox = boom  # type: ignore[method-assign]
        return super().x_update(rho, targets, accuracy, rows)


@uses_ray
def test_a_site_raising_on_ray_fails_the_job_naming_it(tmp_path):
    import sys

    from ray import cloudpickle

    # Ray's workers cannot import this test module: ship the shard class by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with pytest.raises(SiteFailedError) as caught:
            run_on_ray(congested(), tmp_path, shard_class=RaisingShard)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert caught.value.site == "site-2"
    assert "ZeroDivisionError: injected into the x-update" in caught.value.message


def test_a_raising_site_fails_the_stored_job_with_problem_json(tmp_path):
    with fresh_database("sqlite", tmp_path) as url:
        engine = make_engine(url)
        upgrade(engine)
        sessions = session_factory(engine)
        with sessions.begin() as session:
            job_id = repo.create_job(session, "portfolio", congested()).id
            repo.set_job_status(session, job_id, "running")

        def runner(request: dict[str, Any], job: str, on_progress: Any) -> dict[str, Any]:
            raise SiteFailedError("site-1", "x_update", BoomError("injected"))

        assert execute_job(sessions, job_id, runner) == "failed"
        with sessions.begin() as session:
            error = repo.get_job(session, job_id).error
        engine.dispose()
    assert error["site"] == "site-1" and "BoomError: injected" in error["detail"]


@uses_ray
def test_a_slow_site_is_degraded_with_its_reason_and_the_result_says_so(tmp_path):
    from test_actors import SlowShard

    body, _, _ = run_on_ray(
        congested(),
        tmp_path,
        settings={"max_iterations": 12},
        pool_options={"deadline": 1.0},
        shard_class=type("Slow", (SlowShard,), {"delay": 2.5}),
    )
    portfolio = body["portfolio"]
    assert "site-2" in portfolio["degraded-sites"]
    assert body["status"] == "degraded"
    assert "missed the 1 s deadline" in portfolio["degraded-reasons"]["site-2"]
    assert "x-update at iteration 3" in portfolio["degraded-reasons"]["site-2"]


# -- (3) the certified gap ---------------------------------------------------------------------


def test_the_target_term_by_hand():
    dt = 1.0
    inf = np.inf
    congestion_target = Target(
        "congestion",
        np.array([-inf, -inf]),
        np.array([10.0, 4.0]),
        np.zeros(2),
        np.zeros(2),
        dt,
    )
    # a price below 0 where only max-consumption binds would make min(-y S) unbounded
    # below: it is projected to 0; then min over S <= upper of -y*S = -y*upper
    y, term = congestion_target.dual_term(np.array([2.0, -1.0]))
    assert y.tolist() == [2.0, 0.0] and term == pytest.approx(-20.0)
    market_target = Target(
        "market",
        np.array([-inf]),
        np.array([inf]),
        np.array([5.0]),
        np.array([1.0]),  # EUR/kWh, dt 1 h: a slope of 1 EUR/kW
        dt,
    )
    # y = 3 is beyond the slope: projected to 1; min_S |S - 5| - S = -5 at any S >= 5
    y, term = market_target.dual_term(np.array([3.0]))
    assert y.tolist() == [1.0] and term == pytest.approx(-5.0)
    # inside the slope the minimum is at the volume: -0.5 * 5
    assert market_target.dual_term(np.array([0.5]))[1] == pytest.approx(-2.5)
    bounded = Target(
        "market", np.array([-2.0]), np.array([3.0]), np.array([5.0]), np.array([1.0]), dt
    )
    # volume 5 is outside [-2, 3]: min over the interval of |S-5| - 2S is at S = 3: 2 - 6
    assert bounded.dual_term(np.array([2.0]))[1] == pytest.approx(-4.0)


CASES = {
    "congestion": lambda: congestion(mixed(5, 4), 0.7),
    "congestion-batteries": lambda: congestion(batteries(6, 1), 0.6),
    "market": lambda: market(mixed(5, 2), "3 kW", "40 EUR/MWh"),
    "shiftable": lambda: congestion(mixed(4, 5, shiftable=True), 0.75),
    "none": lambda: mixed(4, 6),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_bound_never_exceeds_the_independent_optimum(name):
    request = CASES[name]()
    optimum = portfolio_reference(request).cost
    body = run_local(request, max_iterations=300)
    portfolio = body["portfolio"]
    bound = portfolio["lower-bound"]["value"]
    cost = portfolio["cost"]["value"]
    assert bound <= optimum + tolerance(optimum)
    assert cost >= optimum - tolerance(optimum)
    assert portfolio["certified-gap"] == pytest.approx((cost - bound) / abs(cost), abs=1e-9)
    if name != "shiftable":  # LP portfolios: within the tolerance when the rule held
        assert portfolio["converged"], portfolio["stopped-by"]
        if portfolio["stopped-by"] == "gap":
            assert portfolio["certified-gap"] <= 1e-3
        assert (optimum - bound) / abs(optimum) <= 2e-3
    print(
        f"  {name}: optimum {optimum:.6f}, ADMM {cost:.6f}, bound {bound:.6f}, certified gap "
        f"{100 * portfolio['certified-gap']:.4f} %, {portfolio['iterations']} iterations"
    )


def test_the_centralised_bound_is_its_optimum():
    request = congestion(mixed(4, 3), 0.7)
    result = CentralisedPortfolio(request).solve().to_json()["portfolio"]
    optimum = portfolio_reference(request).cost
    assert result["lower-bound"]["value"] == pytest.approx(optimum, abs=1e-5)
    assert result["certified-gap"] <= 1e-6


# -- (4) the stopping rule and the request's options -------------------------------------------


def test_the_cap_and_the_time_limit_are_not_convergence():
    request = congestion(mixed(4, 3), 0.7)
    capped = run_local(request, max_iterations=2)
    assert capped["portfolio"]["converged"] is False
    assert capped["portfolio"]["stopped-by"] == "iterations"
    assert capped["portfolio"]["iterations"] == 2
    timed = run_local(request, time_limit=1e-6)
    assert timed["portfolio"]["stopped-by"] == "time-limit"
    assert timed["portfolio"]["converged"] is False
    assert timed["portfolio"]["target-violation-kw"] <= 1e-6  # the final step still ran
    # both results still carry a valid bound
    optimum = portfolio_reference(request).cost
    for body in (capped, timed):
        assert body["portfolio"]["lower-bound"]["value"] <= optimum + tolerance(optimum)


@uses_ray
def test_the_requests_options_reach_the_admm(tmp_path):
    request = {**congestion(mixed(4, 3), 0.7), "gap-tolerance": 0.05, "max-iterations": 7}
    body, _, _ = run_on_ray(request, tmp_path)  # method admm: tests' portfolios ask for it
    portfolio = body["portfolio"]
    assert portfolio["gap-tolerance"] == 0.05
    assert portfolio["iterations"] <= 7
    assert portfolio["method"] == "admm" and portfolio["method-requested"] == "admm"


def test_auto_picks_centralised_for_small_portfolios_and_compare_reports_both():
    request = {**congestion(mixed(3, 3), 0.7), "method": "auto", "compare": True}
    body = run_portfolio(request)  # no Ray needed
    portfolio = body["portfolio"]
    assert portfolio["method"] == "centralised" and portfolio["method-requested"] == "auto"
    optimum = portfolio_reference(request).cost
    assert portfolio["centralised-cost"] == pytest.approx(optimum, abs=1e-5)
    assert portfolio["gap"] == pytest.approx(0.0, abs=1e-7)
    many = PortfolioRequest.model_construct(method="auto", sites=[None] * AUTO_ADMM_MIN_SITES)
    assert choose_method(many) == "admm"
    few = PortfolioRequest.model_construct(method="auto", sites=[None] * 3)
    assert choose_method(few) == "centralised"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("method", "quantum"),
        ("gap-tolerance", 0),
        ("gap-tolerance", 1.5),
        ("max-iterations", 0),
        ("time-limit", -1),
        ("compare", "maybe"),
    ],
)
def test_bad_options_name_the_field(field, value):
    with pytest.raises(RequestValidationError) as caught:
        parse_portfolio({**mixed(2, 0), field: value})
    assert any(issue.field == field for issue in caught.value.issues), caught.value.issues


def test_a_centralised_solve_out_of_time_names_the_limit():
    request = congestion(mixed(6, 3, shiftable=True), 0.7)
    with pytest.raises(SolverError) as caught:
        CentralisedPortfolio(request).solve(time_limit=1e-9)
    assert "time limit" in caught.value.message and "time-limit" in caught.value.message


# -- (6) warm starts ---------------------------------------------------------------------------


def test_the_warm_key_follows_the_portfolios_structure():
    base = parse_portfolio(congestion(mixed(3, 1), 0.7))
    other_devices = copy.deepcopy(congestion(mixed(3, 1), 0.7))
    other_devices["sites"][0]["flex-model"] = [
        {
            "name": "only-a-battery",
            "soc-at-start": "1 kWh",
            "soc-max": "5 kWh",
            "power-capacity": "2 kW",
        }
    ]
    assert warm_key(parse_portfolio(other_devices)) != warm_key(base)
    shifted = copy.deepcopy(congestion(mixed(3, 1), 0.7))
    values = shifted["flex-context"]["consumption-price"]["values"]
    shifted["flex-context"]["consumption-price"]["values"] = values[1:] + values[:1]
    assert warm_key(parse_portfolio(shifted)) == warm_key(base)  # a re-plan: same state


def test_admm_settings_defaults_document_the_rule():
    cfg = AdmmSettings()
    assert cfg.gap_tolerance == 1e-3 and cfg.max_iterations >= 50
