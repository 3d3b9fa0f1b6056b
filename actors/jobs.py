"""The job runner: one named Ray actor per cluster that takes queued jobs from the database
and runs them: small ones in its own threads (portfolios through a coordinator actor), big
ones in a worker process that exits afterwards, so the runner's memory stays at its idle level
(:mod:`actors.job_worker`, setting ``VPP_WORKER_JOB_SIZE``).

Nothing is lost on a crash: a job is only ever ``queued`` (in the database) or claimed by a
runner. When a runner starts (also after Ray restarted it), jobs still marked ``running``
belonged to a runner that died: they are queued again, or failed after three attempts; a
requeued portfolio job resumes from its coordinator checkpoint, which is in the same database
(table ``admm_checkpoints``), so the coordinator may run on any node.

The runner reports the metrics of :mod:`actors.metrics` about jobs: the queued and running
counts of its database, and each job's outcome and duration.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from typing import Any

import ray

from actors import metrics
from actors.job_service import execute_job
from actors.job_worker import execute_in_worker, in_worker, portfolio_runner
from store import make_engine, session_factory, upgrade
from store import repository as repo
from vpp.settings import get_settings

__all__ = [
    "COUNT_SECONDS",
    "NAMESPACE",
    "RUNNER_NAME",
    "JobRunner",
    "get_runner",
    "resident_bytes",
    "runner_name",
]

logger = logging.getLogger(__name__)

RUNNER_NAME = "vpp-job-runner"
NAMESPACE = "vpp"
COUNT_SECONDS = 2.0  # how often the runner reports the queued and running jobs


class JobRunner:
    def __init__(self, database_url: str, workers: int = 2) -> None:
        engine = make_engine(database_url)
        upgrade(engine)
        self.database_url = database_url
        self.sessions = session_factory(engine)
        self._portfolio = portfolio_runner(database_url)
        with self.sessions.begin() as session:
            requeued, failed = repo.requeue_unfinished(session)
        if requeued or failed:
            logger.warning("recovered jobs: %d requeued, %d failed", len(requeued), len(failed))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._loop, name=f"job-worker-{i}", daemon=True)
            for i in range(workers)
        ]
        self._threads.append(threading.Thread(target=self._count, name="job-counts", daemon=True))
        for thread in self._threads:
            thread.start()

    def kick(self) -> None:
        """A job was queued: wake a worker now rather than at its next poll."""
        self._wake.set()

    def ping(self) -> str:
        return "ok"

    def rss(self) -> int:
        """This process's resident memory (bytes): the tests check it returns to idle."""
        return resident_bytes()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                with self.sessions.begin() as session:
                    job = repo.claim_next_job(session)
                    job_id, kind, request = (
                        (job.id, job.kind, job.request) if job is not None else (None, "", {})
                    )
            except Exception:  # the database is down: wait and retry, never die
                logger.exception("could not claim a job")
                job_id, kind, request = None, "", {}
            if job_id is None:
                self._wake.wait(timeout=1.0)
                self._wake.clear()
                continue
            started = time.monotonic()
            apart = in_worker(request)  # big jobs: in a worker process (actors.job_worker)
            del request
            if apart:
                status = execute_in_worker(self.sessions, self.database_url, job_id, kind)
            else:
                status = execute_job(self.sessions, job_id, self._portfolio)
            if status in metrics.JOB_STATUSES:  # not when another runner took the job back
                metrics.job_finished(kind, status, time.monotonic() - started)

    def _count(self) -> None:
        """Report the database's queued and running jobs (metric ``vpp_jobs``) until stopped."""
        while True:
            try:
                with self.sessions.begin() as session:
                    counts = repo.count_jobs(session, ("queued", "running"))
                metrics.set_job_counts(counts["queued"], counts["running"])
            except Exception:  # the database is down: report again later
                logger.warning("could not count jobs", exc_info=True)
            if self._stop.wait(COUNT_SECONDS):
                return


def resident_bytes() -> int:
    """The calling process's resident set size in bytes (Linux ``/proc``, else psutil)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except FileNotFoundError:  # not Linux: Ray ships psutil (ray/thirdparty_files)
        import psutil

        return int(psutil.Process().memory_info().rss)


def runner_name(database_url: str) -> str:
    """One runner per database a cluster serves (tests serve SQLite and PostgreSQL at once)."""
    return f"{RUNNER_NAME}-{hashlib.sha256(database_url.encode()).hexdigest()[:10]}"


def get_runner(database_url: str) -> Any:
    """The job runner for ``database_url``, started if it is not running yet."""
    remote: Any = ray.remote(JobRunner)
    return remote.options(
        name=runner_name(database_url),
        namespace=NAMESPACE,
        get_if_exists=True,
        lifetime="detached",
        max_restarts=-1,
        max_task_retries=0,
        max_concurrency=8,
        num_cpus=0,
    ).remote(database_url, get_settings().runner_workers)
