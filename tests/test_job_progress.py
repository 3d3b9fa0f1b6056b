"""Issue 11 item 8, "Progress from the first second": a portfolio job's stored progress has a
``phase`` (``queued`` → ``starting`` → ``building`` → ``iterating`` → ``finalising``) from
the moment it is claimed, and says the server's iteration cap (``max-iterations``).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from api_harness import harness
from db_fixtures import fresh_database
from test_actors import congested, run_on_ray, uses_ray

from actors.job_service import execute_job
from actors.run import run_portfolio
from store import make_engine, session_factory, upgrade
from store import repository as repo
from store.jobs import PHASES, JobCancelledError, ProgressWriter
from vpp.portfolio import CentralisedPortfolio

pytest_plugins = ["db_fixtures"]


def test_a_claimed_portfolio_job_shows_its_phase_at_once(tmp_path: Path) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        engine = make_engine(url)
        upgrade(engine)
        sessions = session_factory(engine)
        with sessions.begin() as session:
            job_id = repo.create_job(session, "portfolio", congested()).id
            repo.set_job_status(session, job_id, "running")  # claimed
        claimed = time.monotonic()
        seen: list[dict[str, Any]] = []

        def stored() -> dict[str, Any]:
            with sessions.begin() as session:
                return dict(repo.get_job(session, job_id).progress or {})

        def runner(request: dict[str, Any], job: str, on_progress: Any) -> dict[str, Any]:
            # before any Ray actor starts (seconds), the job already says what it does
            seen.append(stored())
            assert time.monotonic() - claimed < 1.0
            assert isinstance(on_progress, ProgressWriter)
            on_progress.phase("starting", {"max_iterations": 40})
            on_progress.phase("building")
            seen.append(stored())
            on_progress({"iteration": 1, "primal_residual": 2.0, "dual_residual": 1.0,
                         "rho": 0.5, "objective": 10.0, "seconds": 0.1})
            on_progress({"iteration": 2, "primal_residual": 1.0, "dual_residual": 0.5,
                         "rho": 0.5, "objective": 9.0, "lower_bound": 8.5,
                         "certified_gap": 0.05})
            seen.append(stored())
            on_progress.phase("finalising")
            seen.append(stored())
            # a real result: the job service stores its schedule rows
            return CentralisedPortfolio(request).solve().to_json()

        assert execute_job(sessions, job_id, runner) == "finished"
        final = stored()
        engine.dispose()
    assert seen[0] == {"phase": "starting"}
    assert seen[1] == {"phase": "building", "max-iterations": 40}
    assert seen[2] == {
        "phase": "iterating", "max-iterations": 40, "iteration": 2, "primal-residual": 1.0,
        "dual-residual": 0.5, "rho": 0.5, "objective": 9.0, "lower-bound": 8.5,
        "certified-gap": 0.05,
    }
    assert seen[3] == {**seen[2], "phase": "finalising"}  # the last figures stay
    assert final == seen[3]


def test_the_writer_stops_a_cancelled_job_and_refuses_unknown_phases(tmp_path: Path) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        engine = make_engine(url)
        upgrade(engine)
        sessions = session_factory(engine)
        with sessions.begin() as session:
            job_id = repo.create_job(session, "portfolio", congested()).id
            repo.set_job_status(session, job_id, "running")
        writer = ProgressWriter(sessions, job_id)
        with pytest.raises(ValueError, match="unknown job phase"):
            writer.phase("thinking")
        with sessions.begin() as session:
            repo.set_job_status(session, job_id, "cancelled")
        with pytest.raises(JobCancelledError):
            writer.phase("building")
        engine.dispose()
    assert PHASES == ("queued", "starting", "building", "iterating", "finalising")


def test_a_queued_portfolio_job_says_so(tmp_path: Path) -> None:
    with harness("sqlite", tmp_path) as api:
        me = api.http.get("/api/v1/me", headers=api.admin).json()
        with api.app.state.sessions.begin() as session:
            account = session.get(repo.Account, me["account"]["id"])
            portfolio = repo.create_job(session, "portfolio", {}, account=account).id
            storage = repo.create_job(session, "storage", {}, account=account).id
        body = api.http.get(f"/api/v1/scheduling-job/{portfolio}", headers=api.admin).json()
        assert body["status"] == "queued" and body["progress"] == {"phase": "queued"}
        body = api.http.get(f"/api/v1/scheduling-job/{storage}", headers=api.admin).json()
        assert "progress" not in body  # a single site has no phases to show


def test_a_centralised_portfolio_reports_building_and_finalising() -> None:
    phases: list[str] = []
    request = {**congested(), "method": "centralised"}
    run_portfolio(request, on_phase=lambda name, fields: phases.append(name))
    assert phases == ["building", "finalising"]


@uses_ray
def test_an_admm_job_on_ray_goes_through_every_phase_in_order(tmp_path: Path) -> None:
    phases: list[tuple[str, dict[str, Any]]] = []
    request = {**congested(), "method": "admm", "max-iterations": 60}
    body, progress, _ = run_on_ray(
        request, tmp_path, on_phase=lambda name, fields: phases.append((name, dict(fields)))
    )
    names = [name for name, _ in phases]
    assert names == ["starting", "building", "iterating", "finalising"], phases
    assert phases[0][1] == {"max_iterations": 60}  # the request's cap, before any actor
    # on_progress still gets exactly the iterations
    assert [p["iteration"] for p in progress] == list(range(1, body["portfolio"]["iterations"] + 1))


@uses_ray
def test_the_runner_stores_each_phase_from_the_first_second(tmp_path: Path) -> None:
    """A portfolio job through the real runner: its stored progress is there within a second
    of being claimed (not ``null`` while the actors start), its phases come in order, and it
    carries the cap the request set."""
    import ray
    from test_portfolio import batteries, congestion

    from actors.jobs import JobRunner

    request = {**congestion(batteries(3, 5), 0.6), "method": "admm", "max-iterations": 70}
    with fresh_database("sqlite", tmp_path) as url:
        engine = make_engine(url)
        upgrade(engine)
        sessions = session_factory(engine)
        with sessions.begin() as session:
            job_id = repo.create_job(session, "portfolio", request).id
        runner: Any = ray.remote(JobRunner).options(num_cpus=0, max_concurrency=8).remote(url, 1)
        phases: list[str] = []
        first_progress_after: float | None = None
        try:
            runner.kick.remote()
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                with sessions.begin() as session:
                    job = repo.get_job(session, job_id)
                    status, started, progress = job.status, job.started_at, job.progress
                if started is not None and progress and first_progress_after is None:
                    first_progress_after = (datetime.now(UTC) - started).total_seconds()
                if progress and (not phases or phases[-1] != progress["phase"]):
                    phases.append(progress["phase"])
                if status in ("finished", "failed"):
                    break
                time.sleep(0.02)
        finally:
            ray.kill(runner)
        engine.dispose()
    assert status == "finished", progress
    assert first_progress_after is not None and first_progress_after < 1.0
    assert phases[0] == "starting" and phases[-1] == "finalising", phases
    assert phases == sorted(phases, key=PHASES.index)  # in order, none skipped back
    assert progress["max-iterations"] == 70 and progress["iteration"] >= 1
