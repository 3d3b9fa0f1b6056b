"""Issue 11 item 3, memory: after a big job the runner's memory is back within 20 % of its idle
level. Big jobs (``VPP_WORKER_JOB_SIZE``) run in a worker process that exits afterwards
(actors/job_worker.py); what they store, how they fail and how they are cancelled is as in
the runner.

Measured on a 2-core machine without the worker (threshold set huge): idle 195 MB, 352 MB
(+81 %) after one battery over 35,136 steps, 589 MB (+202 %) after three.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import build_request, default_battery
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from actors.job_service import execute_job, fail_job
from actors.job_worker import SHIFTABLE_STEPS_PER_DEVICE, in_worker, job_size
from store import make_engine, session_factory, upgrade
from store import repository as repo
from store.tables import Schedule
from vpp.errors import VppError
from vpp.settings import get_settings

MB = 2**20
YEAR = 35_136  # steps: a leap year at PT15M, the most VPP_MAX_JOB_STEPS allows
TASK_TITLE = b"ray::_execute_in_worker"  # the worker's process title while it runs a job
# in the environment of this module's runners and so of their workers: other test runs on
# the machine have workers of their own, never to be touched
MARKER = ("VPP_TEST_RUNNER_MEMORY", uuid.uuid4().hex)


def batteries(n: int, steps: int) -> dict[str, Any]:
    return build_request([{"name": f"b{i}", **default_battery()} for i in range(n)], steps=steps)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[tuple[str, sessionmaker[Session]]]:
    url = f"sqlite:///{tmp_path / 'vpp.db'}"
    engine = make_engine(url)
    upgrade(engine)
    yield url, session_factory(engine)
    engine.dispose()


def queue(sessions: sessionmaker[Session], request: dict[str, Any]) -> str:
    with sessions.begin() as session:
        return str(repo.create_job(session, "storage", request).id)


def wait_for(
    sessions: sessionmaker[Session], job_id: str, seconds: float = 60.0
) -> tuple[str, Any]:
    """The job's final status and error, once it has one and no worker runs any more."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with sessions.begin() as session:
            job = repo.get_job(session, job_id)
            status, error = str(job.status), job.error
        if status in ("finished", "failed", "cancelled") and not worker_pids():
            return status, error
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end within {seconds} s")


def worker_pids() -> list[int]:
    """The processes running a job in a worker of this module's runners (Linux: their title
    and environment in /proc)."""
    marker = f"{MARKER[0]}={MARKER[1]}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(TASK_TITLE) and marker in (
                    entry / "environ"
                ).read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:  # it exited meanwhile, or is not ours to read
                continue
    return pids


def start_runner(url: str, env: dict[str, str] | None = None) -> Any:
    import ray

    from actors.jobs import JobRunner

    env_vars = {MARKER[0]: MARKER[1], **(env or {})}
    runner = (
        ray.remote(JobRunner)
        .options(num_cpus=0, max_concurrency=8, runtime_env={"env_vars": env_vars})
        .remote(url, 1)
    )
    ray.get(runner.ping.remote(), timeout=60)
    return runner


# -- where a job runs (no Ray) ---------------------------------------------------------------


def test_the_size_is_steps_times_devices() -> None:
    assert job_size(build_request()) == 96
    assert job_size(batteries(3, 672)) == 3 * 672
    portfolio = {**build_request(), "sites": [{"flex-model": [{}, {}]}, {"flex-model": {}}]}
    assert job_size(portfolio) == 3 * 96
    assert job_size({"start": "soon", "flex-model": {}}) == 0  # fails its validation anyway
    process = {"type": "shiftable", "name": "p", "power": "3 kW", "duration": "PT4H"}
    assert job_size(build_request(process, steps=400)) == 400 * 400 // SHIFTABLE_STEPS_PER_DEVICE
    breakable = {**process, "process-type": "BREAKABLE"}
    assert job_size(build_request(breakable, steps=400)) == 400


def test_the_threshold_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    get_settings.cache_clear()
    try:
        assert get_settings().worker_job_size == 2000
        assert not in_worker(build_request())  # the REST load's jobs stay in the runner
        assert in_worker(batteries(1, YEAR))
        monkeypatch.setenv("VPP_WORKER_JOB_SIZE", "0")
        get_settings.cache_clear()
        assert in_worker(build_request())
    finally:
        get_settings.cache_clear()


def test_failing_a_job_keeps_an_end_it_already_had(
    sessions: tuple[str, sessionmaker[Session]],
) -> None:
    _, factory = sessions
    ids = [queue(factory, build_request()) for _ in range(3)]
    with factory.begin() as session:
        for job_id in ids:
            repo.set_job_status(session, job_id, "running")
        repo.set_job_status(session, ids[1], "cancelled")
        repo.set_job_status(session, ids[2], "finished", result={"status": "finished"})
    error = VppError("the worker died")
    assert [fail_job(factory, job_id, error) for job_id in ids] == [
        "failed", "cancelled", "finished"
    ]
    with factory.begin() as session:
        assert repo.get_job(session, ids[0]).error == error.to_problem()


# -- through the real runner (Ray) -----------------------------------------------------------


@pytest.mark.usefixtures("ray_session")
def test_the_runner_returns_to_its_idle_memory_after_a_big_job(
    sessions: tuple[str, sessionmaker[Session]],
) -> None:
    """Warm (imports, a solve) then idle; a year at PT15M; within 20 % of idle again. A
    cancelled big job stays cancelled; a worker killed mid-job fails its job, saying so."""
    import ray

    url, factory = sessions
    runner = start_runner(url)
    try:
        for _ in range(2):  # the first job imports the solver stack: that is idle too
            warm = queue(factory, build_request())
            runner.kick.remote()
            assert wait_for(factory, warm)[0] == "finished"
        time.sleep(0.5)
        idle = ray.get(runner.rss.remote())

        big = queue(factory, batteries(1, YEAR))
        runner.kick.remote()
        status, error = wait_for(factory, big)
        time.sleep(0.5)
        after = ray.get(runner.rss.remote())
        assert status == "finished", error
        assert after <= 1.2 * idle, f"idle {idle / MB:.0f} MB, after {after / MB:.0f} MB"
        with factory.begin() as session:  # stored as ever: the result, a row per device + site
            assert repo.get_job(session, big).result["status"] == "finished"
            rows = session.scalar(select(func.count()).where(Schedule.job_id == big))
        assert rows == 2

        # cancelled while its worker runs: the worker's result is dropped
        cancelled = queue(factory, batteries(1, YEAR))  # seconds of solving: cancelled first
        runner.kick.remote()
        _wait_for_worker()
        with factory.begin() as session:
            repo.set_job_status(session, cancelled, "cancelled")
        assert wait_for(factory, cancelled)[0] == "cancelled"

        # a worker that dies (as if OOM-killed) fails its job, never "finished"
        killed = queue(factory, batteries(3, YEAR))
        runner.kick.remote()
        (pid,) = _wait_for_worker()
        os.kill(pid, signal.SIGKILL)
        status, error = wait_for(factory, killed)
        assert status == "failed"
        assert error["type"] == "urn:vpp:error:JobWorkerDiedError"
        assert error["status"] == 500
        assert "WorkerCrashedError" in error["detail"] and "died" in error["detail"]
    finally:
        ray.kill(runner)


@pytest.mark.usefixtures("ray_session")
def test_an_error_in_the_worker_fails_the_job_as_in_the_runner(tmp_path: Path) -> None:
    """Every job in a worker (threshold 0): a request error is the same problem+json as when
    the runner's own thread meets it."""
    import ray

    bad = build_request({**default_battery(), "soc-max": "5 kWh", "soc-at-start": "10 kWh"})
    results = []
    for where, env in (("runner", None), ("worker", {"VPP_WORKER_JOB_SIZE": "0"})):
        url = f"sqlite:///{tmp_path / where}.db"
        engine = make_engine(url)
        upgrade(engine)
        factory = session_factory(engine)
        job_id = queue(factory, bad)
        if where == "runner":
            with factory.begin() as session:
                repo.set_job_status(session, job_id, "running")  # claimed
            assert execute_job(factory, job_id) == "failed"
        else:
            runner = start_runner(url, env)
            try:
                runner.kick.remote()
                assert wait_for(factory, job_id)[0] == "failed"
            finally:
                ray.kill(runner)
        with factory.begin() as session:
            results.append(repo.get_job(session, job_id).error)
        engine.dispose()
    assert results[0] == results[1]
    assert results[0]["status"] == 422, results[0]


def _wait_for_worker(seconds: float = 30.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pids = worker_pids()
        if pids:
            return pids
        time.sleep(0.02)
    raise AssertionError("no job worker started")
