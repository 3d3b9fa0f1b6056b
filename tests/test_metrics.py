"""vpp's metrics (actors/metrics.py) on the Prometheus endpoint of the session's Ray node.

Every expected value comes from what the test itself did or read elsewhere: the jobs it put
in the database, the iterations and residuals a job's stored result reports, its number of
sites. The endpoint is parsed with ``prometheus_client``'s parser. Ray pushes a process's
values to its node's agent every ``metrics_report_interval_ms`` (10 s by default; the
actors started here get 500 ms through their ``runtime_env``, inherited by the coordinator
and shards they start) and when the process exits, so every check polls with a deadline.

Counters are cumulative over the session: the test compares the series of processes that
had reported nothing before it started (its runner, coordinator and shards: label
``WorkerId``) with the test's own jobs.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import ray
import ray.cloudpickle
from db_fixtures import fresh_database
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy.orm import Session, sessionmaker
from test_portfolio import batteries, congestion

from actors import metrics
from actors.jobs import JobRunner
from store import make_engine, session_factory, upgrade
from store import repository as repo

pytest_plugins = ["db_fixtures"]
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import it

T = TypeVar("T")
FAST_REPORTS = {"RAY_metrics_report_interval_ms": "500"}
DEADLINE_S = 45.0


# -- the API, without Ray ------------------------------------------------------------------


def test_every_function_checks_its_arguments_and_needs_no_ray(monkeypatch):
    monkeypatch.setattr(metrics.ray, "is_initialized", lambda: False)
    monkeypatch.setattr(metrics, "_metrics", None)
    metrics.set_job_counts(3, 1)
    metrics.job_finished("portfolio", "finished", 2.5)
    metrics.job_finished("storage", "cancelled", 0.0)
    metrics.admm_iteration(0.5, 0.25)
    metrics.site_solve("x_update", 0.01)
    metrics.uftp_message("in", "FlexRequest", "accepted")
    assert metrics._metrics is None  # nothing was created without Ray
    bad: list[Callable[[], None]] = [
        lambda: metrics.set_job_counts(-1, 0),
        lambda: metrics.job_finished("portfolio", "running", 1.0),
        lambda: metrics.job_finished("", "finished", 1.0),
        lambda: metrics.job_finished("portfolio", "failed", -0.1),
        lambda: metrics.job_finished("portfolio", "failed", float("nan")),
        lambda: metrics.site_solve("prox", 0.1),
        lambda: metrics.uftp_message("sideways", "FlexRequest", "accepted"),
        lambda: metrics.uftp_message("out", "", "accepted"),
        lambda: metrics.uftp_message("out", "FlexOffer", ""),
    ]
    for call in bad:
        with pytest.raises(ValueError):
            call()


def test_count_jobs_counts_each_status(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        ids = [repo.create_job(session, "storage", {"n": i}).id for i in range(6)]
        repo.set_job_status(session, ids[0], "running")
        repo.set_job_status(session, ids[1], "running")
        repo.set_job_status(session, ids[2], "running")
        repo.set_job_status(session, ids[2], "finished", result={})
        repo.set_job_status(session, ids[3], "cancelled")
    with sessions.begin() as session:
        assert repo.count_jobs(session, ("queued", "running")) == {"queued": 2, "running": 2}
        assert repo.count_jobs(session, ("failed",)) == {"failed": 0}
        with pytest.raises(ValueError):
            repo.count_jobs(session, ("sleeping",))


# -- on Ray ----------------------------------------------------------------------------------


Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]
"""``(sample name, sorted labels without WorkerId) -> value``, for one process."""


def _port() -> int:
    node = ray.get_runtime_context().get_node_id()
    return int(next(n["MetricsExportPort"] for n in ray.nodes() if n["NodeID"] == node))


def _scrape(port: int) -> dict[str, Series]:
    """vpp's samples on the endpoint, per ``WorkerId`` (one Ray process each)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    workers: dict[str, Series] = defaultdict(dict)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("ray_vpp_"):
                workers[sample.labels.get("WorkerId", "")][_key(sample)] = sample.value
    return dict(workers)


def _key(sample: Sample) -> tuple[str, tuple[tuple[str, str], ...]]:
    own = ("WorkerId", "Component", "NodeAddress", "SessionName", "Version")
    labels = tuple(
        sorted((k, v) for k, v in sample.labels.items() if k not in own and "otel" not in k)
    )
    return sample.name, labels


def _poll(port: int, check: Callable[[dict[str, Series]], T | None], what: str) -> T:
    """The first non-None ``check(scrape)`` within :data:`DEADLINE_S`."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        scraped = _scrape(port)
        found = check(scraped)
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not on the endpoint within {DEADLINE_S} s: {scraped}")
        time.sleep(0.25)


def _total(scraped: dict[str, Series], workers: set[str], name: str, **labels: str) -> float:
    """Sum of sample ``name`` with exactly ``labels`` over ``workers``."""
    key = (name, tuple(sorted(labels.items())))
    return sum(scraped[w].get(key, 0.0) for w in workers if w in scraped)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, sessionmaker[Session]]]:
    with fresh_database("sqlite", tmp_path) as url:
        engine = make_engine(url)
        upgrade(engine)
        yield url, session_factory(engine)
        engine.dispose()


def _runner(url: str, workers: int, tmp_path: Path) -> Any:
    remote: Any = ray.remote(JobRunner)
    return remote.options(
        num_cpus=0, max_concurrency=8, runtime_env={"env_vars": FAST_REPORTS}
    ).remote(url, workers)


@pytest.mark.usefixtures("ray_session")
def test_the_runner_reports_queued_and_running_jobs(database, tmp_path):
    url, sessions = database
    port = _port()
    before = set(_scrape(port))
    runner = _runner(url, 0, tmp_path)  # no worker threads: the jobs stay where the test puts them
    try:
        assert ray.get(runner.ping.remote(), timeout=60) == "ok"
        with sessions.begin() as session:
            for i in range(4):
                repo.create_job(session, "storage", {"n": i})
        with sessions.begin() as session:
            assert repo.claim_next_job(session) is not None  # 3 queued, 1 running

        def reported(scraped: dict[str, Series]) -> tuple[float, float] | None:
            for worker in set(scraped) - before:
                queued = scraped[worker].get(("ray_vpp_jobs", (("status", "queued"),)))
                running = scraped[worker].get(("ray_vpp_jobs", (("status", "running"),)))
                if (queued, running) == (3.0, 1.0):
                    return queued, running
            return None

        assert _poll(port, reported, "vpp_jobs 3 queued, 1 running") == (3.0, 1.0)
    finally:
        ray.kill(runner)


@pytest.mark.usefixtures("ray_session")
def test_a_portfolio_job_is_measured(database, tmp_path):
    url, sessions = database
    port = _port()
    before = set(_scrape(port))
    request = congestion(batteries(3, 5), 0.6)
    with sessions.begin() as session:
        good = repo.create_job(session, "portfolio", request).id
        # not validated on the way in (the API would have refused it): fails in the runner
        bad = repo.create_job(session, "portfolio", {**request, "sites": []}).id
    runner = _runner(url, 1, tmp_path)
    try:
        runner.kick.remote()
        jobs = _wait(sessions, [good, bad])
        assert [job["status"] for job in jobs] == ["finished", "failed"], jobs
        body = jobs[0]["result"]["portfolio"]
        iterations, n = int(body["iterations"]), len(request["sites"])
        assert iterations >= 1

        def measured(scraped: dict[str, Series]) -> Series | None:
            new = set(scraped) - before  # this test's runner, coordinator and shards
            sums: Series = {(name, labels): _total(scraped, new, name, **dict(labels))
                            for name, labels in WANTED}
            for gauge in ("ray_vpp_admm_primal_residual", "ray_vpp_admm_dual_residual"):
                values = [scraped[w][(gauge, ())] for w in new if (gauge, ()) in scraped[w]]
                sums[(gauge, ())] = values[0] if len(values) == 1 else float("nan")
            least = [1, 1, 2, iterations, n, n * iterations, n]  # WANTED's lower bounds
            done = all(sums[key] >= low for key, low in zip(WANTED, least, strict=True))
            return sums if done else None

        got = _poll(port, measured, "the job's metrics")
    finally:
        ray.kill(runner)
    assert got[("ray_vpp_jobs_finished_total", (("kind", "portfolio"),))] == 1
    assert got[("ray_vpp_jobs_failed_total", (("kind", "portfolio"),))] == 1
    assert got[("ray_vpp_job_duration_seconds_count", (("kind", "portfolio"),))] == 2
    # every iteration counted once, and each site solved once per iteration (none degraded)
    assert body["degraded-sites"] == []
    assert got[("ray_vpp_admm_iterations_total", ())] == iterations
    assert got[("ray_vpp_site_solve_seconds_count", (("method", "solve_alone"),))] == n
    assert got[("ray_vpp_site_solve_seconds_count", (("method", "x_update"),))] == n * iterations
    # the feasibility step re-solves every site at least once
    assert got[("ray_vpp_site_solve_seconds_count", (("method", "solve_within"),))] >= n
    # the residual gauges hold the last iteration's values (one coordinator set them)
    assert got[("ray_vpp_admm_primal_residual", ())] == pytest.approx(
        body["primal-residual"], rel=1e-12
    )
    assert got[("ray_vpp_admm_dual_residual", ())] == pytest.approx(
        body["dual-residual"], rel=1e-12
    )


WANTED = [
    ("ray_vpp_jobs_finished_total", (("kind", "portfolio"),)),
    ("ray_vpp_jobs_failed_total", (("kind", "portfolio"),)),
    ("ray_vpp_job_duration_seconds_count", (("kind", "portfolio"),)),
    ("ray_vpp_admm_iterations_total", ()),
    ("ray_vpp_site_solve_seconds_count", (("method", "solve_alone"),)),
    ("ray_vpp_site_solve_seconds_count", (("method", "x_update"),)),
    ("ray_vpp_site_solve_seconds_count", (("method", "solve_within"),)),
]


def _wait(sessions: sessionmaker[Session], ids: list[str]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        with sessions.begin() as session:
            jobs = [repo.get_job(session, i) for i in ids]
            if all(job.status in repo.TERMINAL_STATUSES for job in jobs):
                return [{"status": j.status, "result": j.result, "error": j.error} for j in jobs]
        time.sleep(0.1)
    raise AssertionError(f"jobs {ids} did not end within {DEADLINE_S} s")


class UftpSender:
    """A process of its own that counts UFTP messages as the API's endpoint does."""

    def send(self, messages: list[tuple[str, str, str]]) -> str:
        for direction, message_type, outcome in messages:
            metrics.uftp_message(direction, message_type, outcome)
        return str(ray.get_runtime_context().get_worker_id())


@pytest.mark.usefixtures("ray_session")
def test_uftp_messages_are_counted_per_direction_type_and_outcome():
    port = _port()
    remote: Any = ray.remote(UftpSender)
    sender = remote.options(num_cpus=0, runtime_env={"env_vars": FAST_REPORTS}).remote()
    messages = [("in", "FlexRequest", "accepted")] * 3 + [("out", "FlexOffer", "rejected")]
    try:
        worker = ray.get(sender.send.remote(messages), timeout=60)
    finally:
        ray.kill(sender)  # a fresh process: its series hold exactly these messages
    key_in = ("ray_vpp_uftp_messages_total",
              (("direction", "in"), ("outcome", "accepted"), ("type", "FlexRequest")))
    key_out = ("ray_vpp_uftp_messages_total",
               (("direction", "out"), ("outcome", "rejected"), ("type", "FlexOffer")))

    def counted(scraped: dict[str, Series]) -> Series | None:
        return scraped.get(worker)

    got = _poll(port, counted, "vpp_uftp_messages")
    assert got == {key_in: 3.0, key_out: 1.0}
