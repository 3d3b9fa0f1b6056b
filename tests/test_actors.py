"""Portfolios on Ray: site actors, the coordinator, failures, checkpoints, progress, spans.

Every Ray test uses the session's one local Ray (``ray_session`` in conftest.py) and checks
its result against the independent reference (``reference.portfolio_reference``). Site
failures are simulated with :class:`~actors.site.SiteShard` subclasses defined here (this
module is pickled by value so Ray workers need not import it). Every run is bounded by an
alarm, so a hang fails the test instead of the session.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray
import ray.cloudpickle
from db_fixtures import fresh_database
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from reference import solve_portfolio_reference
from sqlalchemy import text
from test_portfolio import (
    GAP,
    admm,
    assert_near_optimum,
    batteries,
    check_result,
    congestion,
    mixed,
)

from actors.coordinator import Coordinator
from actors.run import run_portfolio, start_coordinator
from actors.site import SiteShard
from store import checkpoints, make_engine, session_factory, upgrade
from vpp import telemetry
from vpp.admm import AdmmSettings, AdmmState, LocalPool, run_admm
from vpp.errors import RequestValidationError, VppError
from vpp.portfolio import build_sites, parse_portfolio, price_scale, resolve_target

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

uses_ray = pytest.mark.usefixtures("ray_session")


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail with TimeoutError instead of hanging (pytest-timeout is not a dependency)."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"no result within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_on_ray(
    request: dict[str, Any], tmp_path: Path, limit: int = 120, **kwargs: Any
) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
    """``run_portfolio`` through a coordinator checkpointing under ``tmp_path`` (not the
    user's data directory); the result, the progress entries and the wall time."""
    coordinator = start_coordinator(str(tmp_path))
    progress: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        with time_limit(limit):
            body = run_portfolio(
                request, coordinator=coordinator, on_progress=progress.append, **kwargs
            )
    finally:
        ray.kill(coordinator)
    return body, progress, time.monotonic() - started


def congested() -> dict[str, Any]:
    """Four mixed sites (battery, EV, heat pump, PV among them) under a binding limit."""
    return congestion(mixed(4, 7), 0.6)


# -- shards that fail --------------------------------------------------------------------------


class CrashingShard(SiteShard):
    """The shard holding ``victim`` kills its own process in its ``crash_on``-th x-update,
    once per test (a marker file: Ray re-runs the constructor on restart, so a counter in
    the instance starts again)."""

    victim = "site-1"
    crash_on = 5
    marker = ""

    def x_update(self, rho: float, targets: np.ndarray, accuracy: float, rows: list[int]) -> Any:
        self.calls = getattr(self, "calls", 0) + 1
        crash = self.victim in self.ids and self.calls == self.crash_on
        if crash and not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)
        return super().x_update(rho, targets, accuracy, rows)


class SlowShard(SiteShard):
    """The shard holding ``victim`` sleeps ``delay`` seconds in x-updates ``slow_on``."""

    victim = "site-2"
    slow_on: tuple[int, ...] = (3,)
    delay = 2.5

    def x_update(self, rho: float, targets: np.ndarray, accuracy: float, rows: list[int]) -> Any:
        self.calls = getattr(self, "calls", 0) + 1
        if self.victim in self.ids and self.calls in self.slow_on:
            time.sleep(self.delay)
        return super().x_update(rho, targets, accuracy, rows)


# -- (a) + (e): a congestion portfolio on Ray --------------------------------------------------


@pytest.fixture(scope="module")
def ray_run(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One Ray run of :func:`congested` (one actor per site), shared by the tests below."""
    request = congested()
    body, progress, seconds = run_on_ray(
        request, tmp_path_factory.mktemp("ray-run"), settings={"max_iterations": 300}
    )
    return {"request": request, "body": body, "progress": progress, "seconds": seconds}


def test_ray_congestion_reaches_the_optimum(ray_run):
    request, body = ray_run["request"], ray_run["body"]
    optimum = solve_portfolio_reference(request)
    assert optimum > solve_portfolio_reference({**request, "target": None}) + 1e-3  # binding
    cost = check_result(request, body)  # the limit, every site's own constraints, the cost
    assert_near_optimum(cost, optimum)
    assert body["portfolio"]["degraded-sites"] == []
    print(f"Ray: {body['portfolio']['iterations']} iterations in {ray_run['seconds']:.1f} s")


def test_ray_progress_is_reported_every_iteration(ray_run):
    progress, body = ray_run["progress"], ray_run["body"]
    iterations = [p["iteration"] for p in progress]
    assert iterations == list(range(1, body["portfolio"]["iterations"] + 1))
    for entry in progress:
        for key in ("primal_residual", "dual_residual", "primal_tolerance", "dual_tolerance"):
            assert np.isfinite(entry[key]) and entry[key] >= 0, (key, entry)
        assert entry["rho"] > 0
    assert progress[-1]["primal_residual"] == pytest.approx(body["portfolio"]["primal-residual"])
    seconds = [p["seconds"] for p in progress]
    assert seconds == sorted(seconds)


@uses_ray
def test_ray_sharded_gives_the_same_result(ray_run, tmp_path):
    request = ray_run["request"]
    body, _, _ = run_on_ray(
        request,
        tmp_path,
        settings={"max_iterations": 300},
        pool_options={"one_per_site_max": 2, "shards": 2},
    )
    cost = check_result(request, body)
    assert_near_optimum(cost, solve_portfolio_reference(request))
    assert cost == pytest.approx(ray_run["body"]["portfolio"]["cost"]["value"], rel=GAP)


# -- (b), (c): failing sites -------------------------------------------------------------------


@uses_ray
def test_a_site_actor_crashing_mid_run(tmp_path):
    request = congested()
    shard = type("CrashOnce", (CrashingShard,), {"marker": str(tmp_path / "crashed")})
    try:
        body, progress, seconds = run_on_ray(
            request, tmp_path, settings={"max_iterations": 60}, shard_class=shard
        )
    except VppError as err:  # acceptable: a clear error, not a hang
        assert str(err)
        return
    assert (tmp_path / "crashed").exists()  # it did crash
    check_result(request, body)  # feasible: the limit holds, every site within its own limits
    assert "site-1" in body["portfolio"]["degraded-sites"]
    assert len(progress) == body["portfolio"]["iterations"] >= 5
    print(f"crash: degraded {body['portfolio']['degraded-sites']}, {seconds:.1f} s")


@uses_ray
def test_a_site_missing_its_deadline(tmp_path):
    request = congested()
    deadline, delay = 1.0, 2.5
    body, progress, seconds = run_on_ray(
        request,
        tmp_path,
        settings={"max_iterations": 40},
        pool_options={"deadline": deadline},
        shard_class=type("Slow", (SlowShard,), {"delay": delay}),
    )
    check_result(request, body)
    assert "site-2" in body["portfolio"]["degraded-sites"]  # others only if the machine is busy
    # the coordinator never waited for the sleeping site: no iteration took much more
    # than the deadline, though the site slept 2.5 s
    slow = [b["seconds"] - a["seconds"] for a, b in itertools.pairwise(progress)]
    assert max(slow) < deadline + 2.0, slow
    assert seconds < 60
    print(f"deadline: {seconds:.1f} s, slowest iteration {max(slow):.2f} s")


# -- (d): the coordinator's checkpoints --------------------------------------------------------


class RecordingCoordinator(Coordinator):
    """Notes, after each checkpoint, which iteration the file on disk (or the database row)
    holds, read directly rather than through the coordinator's store."""

    def __init__(self, checkpoint_dir: str | None = None, database_url: str | None = None) -> None:
        super().__init__(checkpoint_dir, database_url)
        self.database = database_url
        self.on_disk: list[int] = []

    def _checkpoint(self, job_id: str, state: AdmmState) -> None:
        super()._checkpoint(job_id, state)
        if self.database is not None:
            self.on_disk.append(AdmmState.from_bytes(stored_rows(self.database)[job_id]).iteration)
            return
        assert self.checkpoint_dir is not None
        self.on_disk.append(AdmmState.load(self.checkpoint_dir / f"{job_id}.npz").iteration)


def stored_rows(database_url: str) -> dict[str, bytes]:
    """Every row of ``admm_checkpoints``, read with plain SQL."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT key, data FROM admm_checkpoints")).all()
    finally:
        engine.dispose()
    return {str(key): bytes(data) for key, data in rows}


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own, migrated to head."""
    with fresh_database(request.param, tmp_path) as url:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url


def three_iterations(request: dict[str, Any]) -> AdmmState:
    """The state of ``request`` after 3 in-process ADMM iterations (a dead job's checkpoint)."""
    parsed = parse_portfolio(request)
    partial = run_admm(
        LocalPool([s.id for s in parsed.sites], build_sites(parsed)),
        resolve_target(parsed),
        price_scale(parsed),
        AdmmSettings(max_iterations=3),
    ).state
    assert partial.iteration == 3
    return partial


def test_admm_state_bytes_round_trip(tmp_path):
    rng = np.random.default_rng(7)
    x, zbar, u = rng.normal(size=(3, 5)), rng.normal(size=5), rng.normal(size=5)
    history = [{"iteration": 1.0, "rho": 0.5}, {"iteration": 2.0, "rho": 0.25}]
    state = AdmmState(2, 0.25, x.copy(), zbar.copy(), u.copy(), [dict(h) for h in history])
    data = state.to_bytes()
    assert isinstance(data, bytes) and data[:4] == b"PK\x03\x04"  # an npz is a zip archive
    loaded = AdmmState.from_bytes(data)
    assert (loaded.iteration, loaded.rho, loaded.history) == (2, 0.25, history)
    for name, expected in (("x", x), ("zbar", zbar), ("u", u)):
        np.testing.assert_array_equal(getattr(loaded, name), expected)
    # files hold the same archive: numpy reads them, and so does from_bytes
    state.save(tmp_path / "state.npz")
    with np.load(tmp_path / "state.npz") as archive:
        np.testing.assert_array_equal(archive["x"], x)
        assert int(archive["iteration"]) == 2
    assert AdmmState.from_bytes((tmp_path / "state.npz").read_bytes()).history == history
    assert [p.name for p in tmp_path.iterdir()] == ["state.npz"]  # no temporary file left
    assert AdmmState.from_bytes(AdmmState(0, 1.0, x, zbar, u).to_bytes()).history == []


@uses_ray
def test_coordinator_checkpoints_every_iteration_and_cleans_up(tmp_path):
    request = congestion(batteries(3, 1), 0.6)
    coordinator = RecordingCoordinator(str(tmp_path))
    with time_limit(120):
        body = coordinator.run("job-5", request, settings={"max_iterations": 5})
    assert coordinator.on_disk == [1, 2, 3, 4, 5]
    assert body["portfolio"]["iterations"] == 5
    assert not (tmp_path / "job-5.npz").exists()  # removed after success
    assert len(list((tmp_path / "warm").glob("*.npz"))) == 1  # kept for the next job
    assert coordinator.progress("job-5")["status"] == "finished"
    check_result(request, body)  # 5 iterations: not optimal, but feasible


@uses_ray
def test_coordinator_resumes_from_a_checkpoint(tmp_path):
    """A job whose coordinator died after 3 iterations (its checkpoint left behind) resumes
    at iteration 4 and ends where an uninterrupted job ends."""
    request = congestion(batteries(4, 0), 0.6)
    partial = three_iterations(request)
    partial.save(tmp_path / "job-r.npz")
    settings = {"max_iterations": 300}
    coordinator = Coordinator(str(tmp_path))
    with time_limit(180):
        resumed = coordinator.run("job-r", request, settings, warm_start=False)
        whole = Coordinator(str(tmp_path / "other")).run(
            "job-w", request, settings, warm_start=False
        )
    history = [h["iteration"] for h in coordinator.progress("job-r")["history"]]
    assert history == list(range(4, resumed["portfolio"]["iterations"] + 1))
    assert not (tmp_path / "job-r.npz").exists()
    cost = check_result(request, resumed)
    assert_near_optimum(cost, solve_portfolio_reference(request))
    assert cost == pytest.approx(check_result(request, whole), rel=GAP)


def next_day(request: dict[str, Any], hours: int = 3) -> dict[str, Any]:
    """The same sites on another day: prices shifted by ``hours``, the limit at 60% of that
    day's unconstrained peak."""
    out = copy.deepcopy(request)
    for key in ("consumption-price", "production-price"):
        values = out["flex-context"][key]["values"]
        out["flex-context"][key]["values"] = values[hours:] + values[:hours]
    return congestion({**out, "target": None}, 0.6)


@uses_ray
def test_warm_start_from_yesterday_is_no_slower_than_cold(tmp_path):
    today = congestion(batteries(4, 0), 0.6)
    tomorrow = next_day(today)
    settings = {"max_iterations": 300}
    with time_limit(180):
        Coordinator(str(tmp_path)).run("today", today, settings)
        warm = Coordinator(str(tmp_path)).run("tomorrow", tomorrow, settings)
        cold = Coordinator(str(tmp_path / "cold")).run("tomorrow", tomorrow, settings)
    assert warm["portfolio"]["warm-start"] and not cold["portfolio"]["warm-start"]
    optimum = solve_portfolio_reference(tomorrow)
    assert_near_optimum(check_result(tomorrow, cold), optimum)
    assert_near_optimum(check_result(tomorrow, warm), optimum)
    assert warm["portfolio"]["iterations"] <= cold["portfolio"]["iterations"]


# -- the same, with the checkpoints in the database (API jobs) ------------------------------------


@uses_ray
def test_database_checkpoints_every_iteration_and_cleans_up(database_url, tmp_path):
    request = congestion(batteries(3, 1), 0.6)
    coordinator = RecordingCoordinator(database_url=database_url)
    with time_limit(120):
        body = coordinator.run("job-5", request, settings={"max_iterations": 5})
    assert coordinator.on_disk == [1, 2, 3, 4, 5]
    assert body["portfolio"]["iterations"] == 5
    rows = stored_rows(database_url)
    assert "job-5" not in rows  # removed after success
    assert [key.startswith("warm/") for key in rows] == [True]  # kept for the next job
    assert list(tmp_path.rglob("*.npz")) == []  # nothing on the local disk
    assert coordinator.progress("job-5")["status"] == "finished"
    check_result(request, body)


class FailingCoordinator(RecordingCoordinator):
    """Fails after its third iteration, like a job cancelled or failing mid-run."""

    def _record(self, job_id: str, progress: Any) -> None:
        super()._record(job_id, progress)
        if progress.iteration == 3:
            raise VppError("stopped after 3 iterations by the test")


@uses_ray
def test_a_failed_job_leaves_no_checkpoint(database_url):
    request = congestion(batteries(3, 1), 0.6)
    coordinator = FailingCoordinator(database_url=database_url)
    with time_limit(120), pytest.raises(VppError, match="stopped after 3"):
        coordinator.run("job-f", request, settings={"max_iterations": 10})
    assert coordinator.on_disk[:2] == [1, 2]  # it did checkpoint while running
    assert "job-f" not in stored_rows(database_url)  # nothing will resume a failed job
    assert coordinator.progress("job-f")["status"] == "failed"


@uses_ray
def test_a_coordinator_actor_resumes_from_a_database_checkpoint(database_url):
    """The checkpoint of a job whose coordinator died after 3 iterations, in the database: a
    new coordinator actor (another process, as on another node) resumes at iteration 4 and
    ends where an uninterrupted job ends."""
    request = congestion(batteries(4, 0), 0.6)
    engine = make_engine(database_url)
    try:
        with session_factory(engine).begin() as session:
            checkpoints.save(session, "job-r", three_iterations(request).to_bytes())
    finally:
        engine.dispose()
    settings = {"max_iterations": 300}
    progress: list[dict[str, Any]] = []
    coordinator = start_coordinator(database_url=database_url)
    try:
        with time_limit(180):
            resumed = run_portfolio(
                request,
                job_id="job-r",
                coordinator=coordinator,
                settings=settings,
                on_progress=progress.append,
            )
            whole = Coordinator().run("job-w", request, settings, warm_start=False)
    finally:
        ray.kill(coordinator)
    iterations = [int(p["iteration"]) for p in progress]
    assert iterations == list(range(4, resumed["portfolio"]["iterations"] + 1))
    assert not resumed["portfolio"]["warm-start"]
    rows = stored_rows(database_url)
    assert "job-r" not in rows and len(rows) == 1  # only the warm-start state is left
    cost = check_result(request, resumed)
    assert_near_optimum(cost, solve_portfolio_reference(request))
    assert cost == pytest.approx(check_result(request, whole), rel=GAP)


@uses_ray
def test_warm_start_from_the_database_is_no_slower_than_cold(database_url):
    today = congestion(batteries(4, 0), 0.6)
    tomorrow = next_day(today)
    settings = {"max_iterations": 300}
    with time_limit(180):
        Coordinator(database_url=database_url).run("today", today, settings)
        warm = Coordinator(database_url=database_url).run("tomorrow", tomorrow, settings)
        cold = Coordinator().run("tomorrow", tomorrow, settings)  # keeps no states at all
    assert warm["portfolio"]["warm-start"] and not cold["portfolio"]["warm-start"]
    optimum = solve_portfolio_reference(tomorrow)
    assert_near_optimum(check_result(tomorrow, cold), optimum)
    assert_near_optimum(check_result(tomorrow, warm), optimum)
    assert warm["portfolio"]["iterations"] <= cold["portfolio"]["iterations"]


# -- validation reaches the caller -------------------------------------------------------------


@uses_ray
def test_a_bad_series_on_ray_names_the_field(tmp_path):
    request = congestion(mixed(4, 0), 0.7)
    next(d for d in request["sites"][1]["flex-model"] if d.get("type") == "heat")["heat-demand"][
        "values"
    ].append(1.0)
    with pytest.raises(RequestValidationError) as info:
        run_on_ray(request, tmp_path, limit=60)
    assert [i.field for i in info.value.issues] == ["sites[1].flex-model[1].heat-demand"]


# -- (f): OpenTelemetry spans, no Ray ----------------------------------------------------------


def test_every_admm_iteration_is_a_span():
    telemetry.configure()
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)  # vpp's SDK provider, set once per process
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    try:
        result, progress = admm(congestion(batteries(3, 1), 0.6), max_iterations=7)
        spans = [s for s in exporter.get_finished_spans() if s.name == "admm.iteration"]
    finally:
        processor.shutdown()  # the provider keeps it, but it exports nothing more
    assert len(spans) == len(progress) == result.iterations == 7
    assert [s.attributes["vpp.iteration"] for s in spans] == list(range(1, 8))
    for span, p in zip(spans, progress, strict=True):
        assert span.attributes["vpp.primal_residual"] == pytest.approx(p.primal_residual)
        assert span.attributes["vpp.dual_residual"] == pytest.approx(p.dual_residual)
        assert span.attributes["vpp.rho"] == pytest.approx(p.rho)
    starts = [s.start_time for s in spans]
    assert starts == sorted(starts)
