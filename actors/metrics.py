"""vpp's operational metrics, recorded with ``ray.util.metrics`` (Ray dashboard, Prometheus).

Each Ray process records what it sees; Ray's metrics agent on every node serves the values
of all its processes at ``http://<node>:<MetricsExportPort>/metrics`` (the port is in
``ray.nodes()``), with labels ``WorkerId``, ``NodeAddress``, ``SessionName``, ... added. Ray
prefixes user metrics with ``ray_`` and, since Ray's OpenTelemetry backend, gives counters
the Prometheus ``_total`` suffix. Logical name (where recorded) -> exported names:

* ``vpp_jobs`` gauge -> ``ray_vpp_jobs{status}``, status ``queued`` | ``running``: the
  database's counts, set by the JobRunner about every 2 s.
* ``vpp_jobs_finished``, ``vpp_jobs_failed`` counters -> ``ray_vpp_jobs_finished_total{kind}``,
  ``ray_vpp_jobs_failed_total{kind}`` (JobRunner).
* ``vpp_job_duration_seconds`` histogram -> ``ray_vpp_job_duration_seconds_bucket{kind,le}``,
  ``ray_vpp_job_duration_seconds_count{kind}``, ``ray_vpp_job_duration_seconds_sum{kind}``
  (JobRunner).
* ``vpp_admm_iterations`` counter -> ``ray_vpp_admm_iterations_total`` (Coordinator, one
  per iteration).
* ``vpp_admm_primal_residual``, ``vpp_admm_dual_residual`` gauges (kW, last iteration) ->
  ``ray_vpp_admm_primal_residual``, ``ray_vpp_admm_dual_residual`` (Coordinator).
* ``vpp_site_solve_seconds`` histogram -> ``ray_vpp_site_solve_seconds_bucket{method,le}``,
  ``..._count{method}``, ``..._sum{method}``; method ``solve_alone`` | ``x_update`` |
  ``solve_within`` | ``dual_value`` (the bound's LPs), one observation per site and call
  (SiteShard).
* ``vpp_uftp_messages`` counter -> ``ray_vpp_uftp_messages_total{direction,type,outcome}``,
  direction ``in`` | ``out`` (the UFTP endpoint in the API).

Contracts worth knowing when reading the numbers:

* Values are pushed to the agent about every 10 s (Ray's ``metrics_report_interval_ms``)
  and when a process exits; a process's last values stay exported after it ended.
* Ray sums a histogram from its bucket midpoints, so ``_sum`` is approximate; ``_count``
  and the buckets are exact.
* Job duration runs from the runner's claim of the job to its stored outcome; finished,
  failed and cancelled jobs are all observed (cancelled ones count in neither counter).

Every function validates its arguments first (``ValueError`` for a value outside the closed
sets of ``status``, ``method`` and ``direction``, for an empty label or negative seconds: a
typo must not create a new time series) and is then a no-op unless Ray is initialised in
this process, so code paths without Ray (unit tests, the in-process dispatcher) need no
guard. Metric objects are created once per process, on first use.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import ray

__all__ = [
    "DIRECTIONS",
    "JOB_BOUNDARIES",
    "JOB_STATUSES",
    "SOLVE_BOUNDARIES",
    "SOLVE_METHODS",
    "admm_iteration",
    "job_finished",
    "set_job_counts",
    "site_solve",
    "uftp_message",
]


JOB_STATUSES = ("finished", "failed", "cancelled")
SOLVE_METHODS = ("solve_alone", "x_update", "solve_within", "dual_value")
DIRECTIONS = ("in", "out")

# seconds; a site LP/MILP takes milliseconds, a whole job seconds to an hour
SOLVE_BOUNDARIES = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0]
JOB_BOUNDARIES = [0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0]


@dataclass(frozen=True)
class _Metrics:
    jobs: Any
    jobs_finished: Any
    jobs_failed: Any
    job_duration: Any
    admm_iterations: Any
    primal_residual: Any
    dual_residual: Any
    site_solve: Any
    uftp_messages: Any


_lock = threading.Lock()
_metrics: _Metrics | None = None


def _create() -> _Metrics:
    from ray.util.metrics import Counter, Gauge, Histogram

    return _Metrics(
        jobs=Gauge("vpp_jobs", "Scheduling jobs by status (database counts).", ("status",)),
        jobs_finished=Counter("vpp_jobs_finished", "Jobs finished, by kind.", ("kind",)),
        jobs_failed=Counter("vpp_jobs_failed", "Jobs failed, by kind.", ("kind",)),
        job_duration=Histogram(
            "vpp_job_duration_seconds",
            "Seconds from a job's claim to its stored outcome.",
            JOB_BOUNDARIES,
            ("kind",),
        ),
        admm_iterations=Counter("vpp_admm_iterations", "ADMM iterations run."),
        primal_residual=Gauge("vpp_admm_primal_residual", "Last ADMM primal residual (kW)."),
        dual_residual=Gauge("vpp_admm_dual_residual", "Last ADMM dual residual (kW)."),
        site_solve=Histogram(
            "vpp_site_solve_seconds",
            "Seconds one site's solve takes, by call.",
            SOLVE_BOUNDARIES,
            ("method",),
        ),
        uftp_messages=Counter(
            "vpp_uftp_messages",
            "UFTP messages, by direction, message type and outcome.",
            ("direction", "type", "outcome"),
        ),
    )


def _registry() -> _Metrics | None:
    """This process's metrics, created on first use; ``None`` while Ray is not initialised."""
    global _metrics
    if _metrics is not None:
        return _metrics
    if not ray.is_initialized():
        return None
    with _lock:
        if _metrics is None:
            _metrics = _create()
    return _metrics


def _check(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


def _check_label(what: str, value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string; got {value!r}")


def _check_seconds(seconds: float) -> None:
    if not seconds >= 0.0:  # also rejects NaN
        raise ValueError(f"seconds must be >= 0; got {seconds!r}")


def set_job_counts(queued: int, running: int) -> None:
    """``vpp_jobs{status}`` := the numbers of queued and running jobs in the database."""
    if queued < 0 or running < 0:
        raise ValueError(f"job counts must be >= 0; got queued={queued}, running={running}")
    metrics = _registry()
    if metrics is not None:
        metrics.jobs.set(queued, tags={"status": "queued"})
        metrics.jobs.set(running, tags={"status": "running"})


def job_finished(kind: str, status: str, seconds: float) -> None:
    """A job of ``kind`` ended with ``status`` after ``seconds``: counted in
    ``vpp_jobs_finished`` or ``vpp_jobs_failed`` (cancelled: neither) and observed in
    ``vpp_job_duration_seconds``."""
    _check_label("kind", kind)
    _check("status", status, JOB_STATUSES)
    _check_seconds(seconds)
    metrics = _registry()
    if metrics is None:
        return
    if status == "finished":
        metrics.jobs_finished.inc(1, tags={"kind": kind})
    elif status == "failed":
        metrics.jobs_failed.inc(1, tags={"kind": kind})
    metrics.job_duration.observe(seconds, tags={"kind": kind})


def admm_iteration(primal: float, dual: float) -> None:
    """One more ADMM iteration, ending with these residuals (kW)."""
    metrics = _registry()
    if metrics is None:
        return
    metrics.admm_iterations.inc(1)
    metrics.primal_residual.set(float(primal))
    metrics.dual_residual.set(float(dual))


def site_solve(method: str, seconds: float) -> None:
    """One site solved in ``seconds`` within shard call ``method``."""
    _check("method", method, SOLVE_METHODS)
    _check_seconds(seconds)
    metrics = _registry()
    if metrics is not None:
        metrics.site_solve.observe(seconds, tags={"method": method})


def uftp_message(direction: str, message_type: str, outcome: str) -> None:
    """One UFTP message ``message_type`` (e.g. ``FlexRequest``) received (``in``) or sent
    (``out``), with its ``outcome`` (e.g. ``accepted``, ``rejected``)."""
    _check("direction", direction, DIRECTIONS)
    _check_label("message_type", message_type)
    _check_label("outcome", outcome)
    metrics = _registry()
    if metrics is not None:
        metrics.uftp_messages.inc(
            1, tags={"direction": direction, "type": message_type, "outcome": outcome}
        )
