"""Big jobs run in a worker process that exits afterwards, so the runner stays small.

A solve's memory grows with its size (a few KB per device and step: the model, HiGHS, the
result). glibc seldom gives a heap back, so a long-lived process that solved one big job
keeps that memory for good. The runner (:mod:`actors.jobs`) therefore runs a job whose
:func:`job_size` (steps × devices, every site's devices for a portfolio) reaches
``VPP_WORKER_JOB_SIZE`` in a Ray task with ``max_calls=1``: a fresh worker process that
claims nothing, runs :func:`actors.job_service.execute_job` on the job the runner claimed (solve,
result, schedules, progress, cancellation: all as in the runner) and exits. Small jobs stay in
the runner's threads: a worker takes ~2 s to start, a 96-step job solves in ~5 ms.

The task runs on the runner's node (the database may be a SQLite file there) and needs no
CPU (the head node may have none, and the runner's own threads take none either). It is
never retried: a job that killed its worker would kill the next one too. A worker that dies
(killed for its memory, crashed) fails the job with :class:`JobWorkerDiedError`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import ray
from ray.exceptions import OutOfMemoryError, RayError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from sqlalchemy.orm import Session, sessionmaker

from actors.job_service import PortfolioRunner, execute_job, fail_job
from store import make_engine, session_factory
from store.jobs import JobCancelledError, ProgressWriter
from vpp.errors import RequestValidationError, VppError
from vpp.settings import get_settings

__all__ = [
    "SHIFTABLE_STEPS_PER_DEVICE",
    "JobWorkerDiedError",
    "execute_in_worker",
    "in_worker",
    "job_size",
    "portfolio_runner",
]

logger = logging.getLogger(__name__)


class JobWorkerDiedError(VppError):
    """The worker process running a big job died (or failed outside the job) before the job
    ended."""

    http_status = 500
    title = "Job worker failed"


SHIFTABLE_STEPS_PER_DEVICE = 8
"""A ``SHIFTABLE`` process counts as ``steps / 8`` devices (at least one): its model has a
start per step, each covering its whole run, so its memory grows with steps² (measured: +6 MB
at 96 steps, +25 MB at 400, +133 MB at 1,000, where a battery takes ~4 KB per step)."""


def job_size(request: Mapping[str, Any]) -> int:
    """Steps × devices of a job's request (for a portfolio, every site's devices): what a
    solve's memory grows with; a ``SHIFTABLE`` process weighs more (see
    :data:`SHIFTABLE_STEPS_PER_DEVICE`). 0 when the request's horizon fields do not parse:
    such a job fails its validation at once, wherever it runs."""
    from vpp.request import TimeWindow

    fields = {key: request[key] for key in ("start", "duration", "resolution") if key in request}
    try:
        steps = TimeWindow.model_validate(fields).horizon.steps
    except (ValueError, RequestValidationError):  # pydantic's ValidationError is a ValueError
        return 0
    sites = request.get("sites")
    if isinstance(sites, list):
        models = [site.get("flex-model") for site in sites if isinstance(site, dict)]
    else:
        models = [request.get("flex-model")]
    return steps * sum(_weight(device, steps) for model in models for device in _devices(model))


def _devices(model: Any) -> list[Any]:
    return model if isinstance(model, list) else [model] if isinstance(model, dict) else []


def _weight(device: Any, steps: int) -> int:
    """How many batteries' worth of memory a device's model takes (per step)."""
    if (
        isinstance(device, dict)
        and device.get("type") == "shiftable"
        and device.get("process-type", "SHIFTABLE") == "SHIFTABLE"
    ):
        return max(1, steps // SHIFTABLE_STEPS_PER_DEVICE)
    return 1


def in_worker(request: Mapping[str, Any]) -> bool:
    """Whether a job runs in a worker process of its own (its size reaches
    ``VPP_WORKER_JOB_SIZE``) rather than in a thread of the runner."""
    return job_size(request) >= get_settings().worker_job_size


def portfolio_runner(database_url: str) -> PortfolioRunner:
    """The :data:`actors.job_service.PortfolioRunner` of a process serving ``database_url``: ADMM
    through a coordinator actor (checkpointing to that database) that is killed after the
    job; a centralised portfolio is solved in the calling process."""

    def run(request: dict[str, Any], job_id: str, on_progress: Any) -> dict[str, Any]:
        # imported here: a worker running a site job need not import the ADMM actors
        from actors.run import run_portfolio, start_coordinator

        coordinator = start_coordinator(database_url=database_url)
        try:
            on_phase = on_progress.phase if isinstance(on_progress, ProgressWriter) else None
            return run_portfolio(
                request,
                job_id=job_id,
                coordinator=coordinator,
                on_progress=on_progress,
                on_phase=on_phase,
            )
        finally:
            ray.kill(coordinator)

    return run


@ray.remote(max_calls=1, max_retries=0, num_cpus=0)
def _execute_in_worker(database_url: str, job_id: str) -> str:
    """Run the claimed job ``job_id`` here, store its outcome; its final status."""
    engine = make_engine(database_url)
    try:
        return execute_job(session_factory(engine), job_id, portfolio_runner(database_url))
    finally:
        engine.dispose()


def execute_in_worker(
    sessions: sessionmaker[Session], database_url: str, job_id: str, kind: str
) -> str:
    """Run the claimed job ``job_id`` in a fresh worker process on this node and wait for it;
    its final status. If the worker dies first (or fails outside the job, e.g. cannot reach
    the database), the job is failed here with the cause, unless it ended meanwhile
    (cancelled, or stored just before the worker died)."""
    if kind == "portfolio":  # its phase at once, as in the runner: the worker takes seconds
        try:
            ProgressWriter(sessions, job_id).phase("starting")
        except JobCancelledError:
            return "cancelled"
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    ref = _execute_in_worker.options(scheduling_strategy=here).remote(database_url, job_id)
    try:
        return str(ray.get(ref))
    except RayTaskError as err:  # raised in the worker outside execute_job (which catches all)
        logger.error("job %s: its worker failed: %s", job_id, err)
        cause = err.cause if err.cause is not None else err
        error = JobWorkerDiedError(
            f"{type(cause).__name__}: the job's worker process failed before the job could "
            f"finish: {cause}"
        )
    except OutOfMemoryError as err:  # Ray's memory monitor killed the worker
        logger.error("job %s: its worker was killed for its memory: %s", job_id, err)
        error = JobWorkerDiedError(
            "OutOfMemoryError: the job's worker process was killed because the node ran out "
            "of memory; schedule a shorter horizon, a coarser resolution or fewer devices"
        )
    except RayError as err:  # WorkerCrashedError (e.g. the kernel's OOM killer), lost node
        logger.error("job %s: its worker died: %s", job_id, err)
        error = JobWorkerDiedError(
            f"{type(err).__name__}: the job's worker process died before the job could "
            "finish (killed, e.g. for using too much memory, or crashed)"
        )
    return fail_job(sessions, job_id, error)
