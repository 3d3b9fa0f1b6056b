"""Run a portfolio job from a driver (the CLI, the API, a notebook).

``run_portfolio`` solves by the request's ``method``: centralised in this process, or ADMM
on Ray: it joins the Ray cluster at ``address`` (or ``RAY_ADDRESS``; a local Ray is started
when neither is set), starts a coordinator actor, and polls its progress while the job runs,
handing every new iteration to ``on_progress``. ``compare`` adds the exact optimum.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.coordinator import Coordinator
from vpp.admm import settings_for
from vpp.errors import VppError
from vpp.portfolio import (
    CentralisedPortfolio,
    PortfolioRequest,
    choose_method,
    compare_with_centralised,
    validate_portfolio,
)
from vpp.settings import get_settings
from vpp.telemetry import inject

__all__ = ["OnPhase", "ensure_ray", "run_portfolio", "start_coordinator"]


logger = logging.getLogger(__name__)

OnPhase = Callable[[str, dict[str, Any]], None]
"""``(phase, fields)``: a portfolio job moved to ``phase`` (``fields``: e.g.
``max_iterations``, to store with it)."""


def ensure_ray(address: str | None = None, **init_kwargs: Any) -> None:
    """Connect to Ray once per process (``address`` or ``RAY_ADDRESS``, else local)."""
    if not ray.is_initialized():
        # Without an address Ray would join the newest cluster `ray start` left on this
        # machine; only RAY_ADDRESS or an explicit address should do that.
        address = address or get_settings().ray_address or "local"
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False, **init_kwargs)


def start_coordinator(checkpoint_dir: str | None = None, database_url: str | None = None) -> Any:
    """A coordinator on the caller's node (the head, for a driver there; it needs no CPU,
    so Ray would put it on any node): losing a worker node must not take the job's
    coordinator with it. A hard affinity (a soft one was not honoured for zero-CPU actors,
    Ray 2.60): if the caller's node dies the job fails with a clear error.

    With ``database_url`` it checkpoints to that database (API jobs: a coordinator restarted
    on another node still finds them), else under ``checkpoint_dir`` (default
    ``VPP_DATA_DIR/checkpoints``)."""
    remote: Any = ray.remote(Coordinator)
    directory = None
    if database_url is None:
        directory = checkpoint_dir or str(get_settings().data_dir / "checkpoints")
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return remote.options(
        max_restarts=1, max_task_retries=1, max_concurrency=4, num_cpus=0, scheduling_strategy=here
    ).remote(directory, database_url)


def run_portfolio(
    request: dict[str, Any],
    *,
    job_id: str | None = None,
    address: str | None = None,
    settings: dict[str, Any] | None = None,
    pool_options: dict[str, Any] | None = None,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
    poll_seconds: float = 0.25,
    coordinator: Any = None,
    shard_class: Any = None,
    on_phase: OnPhase | None = None,
) -> dict[str, Any]:
    """Schedule a portfolio by its method (``auto``: by size); the result JSON.

    ``on_progress`` gets each ADMM iteration's entry; ``on_phase`` each change of phase
    (``starting``, ``building``, ``iterating``, ``finalising``, see
    :data:`store.jobs.PHASES`) with fields to store along (``max_iterations``: the cap)."""
    portfolio = validate_portfolio(request)  # field errors before any actor starts
    method = choose_method(portfolio)
    if method == "centralised":
        if on_phase is not None:
            on_phase("building", {})
        result = CentralisedPortfolio(portfolio).solve(portfolio.time_limit).to_json()
        if on_phase is not None:
            on_phase("finalising", {})
    else:
        if on_phase is not None:  # the cap is known before any actor starts
            cap = settings_for(portfolio, settings).max_iterations
            on_phase("starting", {"max_iterations": cap})
        result = _run_admm(
            portfolio,  # parsed and validated once: the coordinator and shards use it as is
            job_id=job_id,
            address=address,
            settings=settings,
            pool_options=pool_options,
            on_progress=on_progress,
            poll_seconds=poll_seconds,
            coordinator=coordinator,
            shard_class=shard_class,
            on_phase=on_phase,
        )
    result["portfolio"]["method-requested"] = portfolio.method
    if portfolio.compare:
        compare_with_centralised(result, portfolio)
    return result


def _run_admm(
    request: dict[str, Any] | PortfolioRequest,
    *,
    job_id: str | None,
    address: str | None,
    settings: dict[str, Any] | None,
    pool_options: dict[str, Any] | None,
    on_progress: Callable[[dict[str, Any]], None] | None,
    poll_seconds: float,
    coordinator: Any,
    shard_class: Any,
    on_phase: OnPhase | None = None,
) -> dict[str, Any]:
    """ADMM on Ray through a coordinator actor; the result JSON."""
    ensure_ray(address)
    job_id = job_id or uuid.uuid4().hex
    owned = coordinator is None
    coordinator = coordinator or start_coordinator()
    # the coordinator's spans continue the caller's current span (a job's, in the runner)
    ref = coordinator.run.remote(
        job_id, request, settings, pool_options, shard_class, trace_context=inject()
    )
    relay = _Relay(on_progress, on_phase)
    try:
        while True:
            ready, _ = ray.wait([ref], timeout=poll_seconds)
            if on_progress is not None or on_phase is not None:
                relay.report(coordinator, job_id)
            if ready:
                if on_phase is not None:
                    relay.phase("finalising")
                try:
                    return dict(ray.get(ref))
                except RayTaskError as err:  # the coordinator's own VppError, unwrapped
                    if isinstance(err.cause, VppError):
                        raise err.cause from None
                    raise
                except RayActorError as err:  # died beyond its restarts (e.g. its node)
                    raise VppError(f"job {job_id}: the coordinator died: {err}") from None
    finally:
        if owned:
            ray.kill(coordinator)


class _Relay:
    """Hands the coordinator's progress to the driver's callbacks: each new iteration to
    ``on_progress``, each change of phase to ``on_phase``."""

    def __init__(
        self, on_progress: Callable[[dict[str, Any]], None] | None, on_phase: OnPhase | None
    ) -> None:
        self.on_progress = on_progress
        self.on_phase = on_phase
        self.seen = 0  # the last iteration handed to on_progress
        self.shown: str | None = None  # the last phase handed to on_phase

    def phase(self, name: str, fields: dict[str, Any] | None = None) -> None:
        if self.on_phase is not None and name != self.shown:
            self.shown = name
            self.on_phase(name, fields or {})

    def report(self, coordinator: Any, job_id: str) -> None:
        """One poll. A coordinator that is restarting (its node died; the retried run
        resumes from its checkpoint) is skipped this poll: the job's own result says how it
        ended."""
        try:
            state = ray.get(coordinator.progress.remote(job_id), timeout=10.0)
        except (RayError, GetTimeoutError) as err:
            logger.warning(
                "job %s: no progress from the coordinator: %s", job_id, type(err).__name__
            )
            return
        phase = state.get("phase")
        if phase in ("building", "iterating") and phase != self.shown:
            extra = {"max_iterations": state["max_iterations"]} if "max_iterations" in state else {}
            self.phase(str(phase), extra)
        if self.on_progress is None:
            return
        for entry in state.get("history", []):
            if int(entry["iteration"]) > self.seen:
                self.on_progress(entry)
                self.seen = int(entry["iteration"])
